"""A node's InclusionChecked entries against the coordinator's ledger.

When a node checked that its messages are in the coordinator's ledger it recorded the
coordinator's signed tree it checked against: ``coordinator_tree_size`` and
``coordinator_root_hash``, and the coordinator seqs it checked. The coordinator's ledger
given to the auditor must reproduce that tree: within its signed size, with the root of
its first ``tree_size`` entries (RFC 9162 §2.1.1 Merkle tree hash) equal to the recorded
root, and the checked seqs being that node's MessageReceived. A coordinator that rolled
back (truncated) or forked (rewrote) its ledger after nodes checked it fails here, even if
it re-signed everything with its own key.

Since version 2 the node also records the signed head itself. The head is verified under
the coordinator's key first: a head the coordinator never signed (or one that disagrees
with the size and root the node recorded beside it) is the node's false claim, flagged on
the node (framing), and the coordinator is not judged by it. A head the coordinator did
sign that its ledger no longer reproduces proves the coordinator rolled back or rewrote
its ledger. A version 1 check carries no signature: its claim is the node's word only.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from auditor.findings import AuditFinding, FailureClass
from auditor.ledgers import COORDINATOR_ID, AuditedLedger
from common.errors import StateError
from ledger.merkle import MerkleTree, leaf_hash
from ledger.records import InclusionChecked, LedgerRecord, MessageReceived

__all__ = ["inclusion_findings"]


def inclusion_findings(node: AuditedLedger, coordinator: AuditedLedger) -> list[AuditFinding]:
    """Cross-check findings of every InclusionChecked in ``node`` against ``coordinator``."""
    lines = coordinator.entry_lines[: coordinator.signed_size]
    tree = MerkleTree([leaf_hash(line) for line in lines])
    by_seq = {item.entry.seq: item.record for item in coordinator.records}
    findings: list[AuditFinding] = []
    for item in node.records:
        if isinstance(item.record, InclusionChecked):
            where = f"{node.name} seq {item.entry.seq}"
            forged = _forged_head(item.record, coordinator.public_key)
            if forged:
                findings.append(_error("inclusion-head-forged", where, forged))
                continue
            findings += _one_check(item.record, node.ledger_id, tree, by_seq, where)
    return findings


def _forged_head(check: InclusionChecked, key: Ed25519PublicKey | None) -> str:
    """Why the node's recorded coordinator head is not the coordinator's ("" if it is, or
    if the check (version 1) records no head)."""
    head = check.coordinator_head
    if head is None or key is None:
        return ""
    blame = "the node records a coordinator tree head the coordinator never signed"
    try:
        head.verify(key)
    except StateError as err:
        return f"{blame} ({err}); its claim against the coordinator is not evidence"
    if head.ledger_id != COORDINATOR_ID:
        return f"{blame} (a head of ledger {head.ledger_id!r})"
    if (head.tree_size, head.root_hash) != (
        check.coordinator_tree_size,
        check.coordinator_root_hash,
    ):
        return (
            f"the node recorded coordinator size {check.coordinator_tree_size} and root "
            f"{check.coordinator_root_hash} beside a signed head of size {head.tree_size} "
            f"and root {head.root_hash}: its claim is not what the coordinator signed"
        )
    return ""


def _one_check(
    check: InclusionChecked,
    node_id: str,
    tree: MerkleTree,
    by_seq: dict[int, LedgerRecord],
    where: str,
) -> list[AuditFinding]:
    findings = []
    size = check.coordinator_tree_size
    if not check.ok:
        findings.append(
            AuditFinding(
                FailureClass.CROSS_CHECK,
                "warning",
                "inclusion-failed",
                where,
                f"the node recorded a failed inclusion check: {check.detail}",
            )
        )
    if size > tree.size:
        message = (
            f"the node checked a coordinator tree of {size} signed entries{_signed(check)}; "
            f"the coordinator's ledger signs only {tree.size}: it was rolled back or truncated"
        )
        return [*findings, _error("rolled-back", where, message)]
    root = tree.root(size).hex() if size else ""
    if size and root != check.coordinator_root_hash:
        message = (
            f"the node checked coordinator root {check.coordinator_root_hash} at size {size}"
            f"{_signed(check)}; the coordinator's ledger gives root {root} there: it was "
            "forked or rewritten"
        )
        findings.append(_error("inclusion-root", where, message))
    for seq in check.checked_seqs:
        got = by_seq.get(seq)
        if not (seq < size and isinstance(got, MessageReceived) and got.node == node_id):
            message = (
                f"checked coordinator seq {seq} is not a message_received of this node within "
                f"the first {size} entries"
            )
            findings.append(_error("inclusion-seq", where, message))
    return findings


def _signed(check: InclusionChecked) -> str:
    if check.coordinator_head is None:
        return " (an unsigned claim: the check predates recorded heads)"
    return " (a head the coordinator signed)"


def _error(kind: str, where: str, message: str) -> AuditFinding:
    return AuditFinding(FailureClass.CROSS_CHECK, "error", kind, where, message)
