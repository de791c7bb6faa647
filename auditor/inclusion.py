"""A node's InclusionChecked entries against the coordinator's ledger.

When a node checked that its messages are in the coordinator's ledger it recorded the
coordinator's signed tree it checked against: ``coordinator_tree_size`` and
``coordinator_root_hash``, and the coordinator seqs it checked. The coordinator's ledger
given to the auditor must reproduce that tree: within its signed size, with the root of
its first ``tree_size`` entries (RFC 9162 §2.1.1 Merkle tree hash) equal to the recorded
root, and the checked seqs being that node's MessageReceived. A coordinator that rolled
back (truncated) or forked (rewrote) its ledger after nodes checked it fails here, even if
it re-signed everything with its own key.
"""

from __future__ import annotations

from auditor.findings import AuditFinding, FailureClass
from auditor.ledgers import AuditedLedger
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
            findings += _one_check(item.record, node.ledger_id, tree, by_seq, where)
    return findings


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
            f"the node checked a coordinator tree of {size} signed entries; the coordinator's "
            f"ledger signs only {tree.size}: it was rolled back or truncated"
        )
        return [*findings, _error("rolled-back", where, message)]
    root = tree.root(size).hex() if size else ""
    if size and root != check.coordinator_root_hash:
        message = (
            f"the node checked coordinator root {check.coordinator_root_hash} at size {size}; "
            f"the coordinator's ledger gives root {root} there: it was forked or rewritten"
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


def _error(kind: str, where: str, message: str) -> AuditFinding:
    return AuditFinding(FailureClass.CROSS_CHECK, "error", kind, where, message)
