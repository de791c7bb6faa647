"""One ledger as the auditor sees it: verified against a trusted key, records parsed.

The trusted key is found among the given public keys by the key id its tree heads name
(the key most heads name, if several); a ledger signed by no given key is not trusted,
and its records are not used. The role is the auditor's, not the ledger's: the ledger
signed by the coordinator's key (given apart, ``--coordinator-key``) is the coordinator's,
every other is a node's. A coordinator-key ledger labelled as a node's, or a node key's
ledger labelled "coordinator", is a ledger-class error (a relabelled ledger is audited in
the role of its key, so no coordinator check is skipped).
:func:`ledger.verification.verify_ledger` then checks signatures, Merkle roots,
consistency between successive heads and sequence numbers; its
errors are ledger-class findings and its warnings stay warnings. Only the signed entries
(the first ``signed_size``) are audited further: an unsigned tail is what a crash leaves
and carries no signature to trust.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from auditor.findings import AuditFinding, FailureClass
from ledger.log import Entry, LedgerContents, LedgerError, TreeHead
from ledger.ranges import MAX_LEDGER_BYTES
from ledger.records import LedgerRecord, record_from_entry
from ledger.verification import verify_ledger

__all__ = [
    "COORDINATOR_ID", "Role", "AuditedEntry", "AuditedLedger", "audit_ledger", "too_large"]

COORDINATOR_ID = "coordinator"
Role = Literal["coordinator", "node", "untrusted"]


@dataclass(frozen=True)
class AuditedEntry:
    """A signed entry and its typed record."""

    entry: Entry
    record: LedgerRecord


@dataclass(frozen=True)
class AuditedLedger:
    """A ledger after verification: where it came from (``source``), its ``role``, its
    ``ledger_id`` ("coordinator" or the node's pseudonymous id), the trusted ``key_id``
    (None if no given key signed it), sizes, the raw ``entry_lines`` (for Merkle roots),
    the parsed signed ``records`` and the ``findings`` of this ledger alone."""

    source: str
    role: Role
    ledger_id: str
    key_id: str | None
    entries: int
    tree_heads: int
    signed_size: int
    entry_lines: tuple[bytes, ...]
    records: tuple[AuditedEntry, ...]
    findings: tuple[AuditFinding, ...]
    #: The trusted key (None if no given key signed it): other parties' claims of this
    #: ledger's heads (a node's InclusionChecked) are verified under it.
    public_key: Ed25519PublicKey | None = None

    @property
    def name(self) -> str:
        """How findings name this ledger: "coordinator" or "node <id>"."""
        return COORDINATOR_ID if self.role == COORDINATOR_ID else f"node {self.ledger_id}"


def audit_ledger(
    source: str,
    contents: LedgerContents,
    keys: dict[str, Ed25519PublicKey],
    coordinator_key_id: str,
) -> AuditedLedger:
    """Verify ``contents`` (read from ``source``) under the trusted key among ``keys``
    (by key id) and parse its signed records, collecting every finding; the ledger signed
    by ``coordinator_key_id`` is the coordinator's."""
    heads = _parse_heads(contents)
    key_id = _trusted_key_id(heads, keys)
    if key_id is None:
        return _untrusted(source, contents, heads, keys)
    ledger_id = Counter(h.ledger_id for h in heads if h.key_id == key_id).most_common(1)[0][0]
    role: Role = "coordinator" if key_id == coordinator_key_id else "node"
    name = COORDINATOR_ID if role == "coordinator" else f"node {ledger_id}"
    report = verify_ledger(contents, keys[key_id], ledger_id=ledger_id)
    findings = [
        AuditFinding(FailureClass.LEDGER, f.severity, f.kind, f"{name} {f.where}", f.message)
        for f in report.findings
    ]
    role_error = _role_error(role, ledger_id, key_id)
    if role_error is not None:
        findings.append(
            AuditFinding(FailureClass.LEDGER, "error", "role", f"{name} ({source})", role_error)
        )
        ledger_id = COORDINATOR_ID if role == "coordinator" else key_id
    elif role == "node" and ledger_id != key_id:
        message = f"a node's ledger id is its key id: expected {key_id}, got {ledger_id}"
        findings.append(
            AuditFinding(FailureClass.LEDGER, "error", "ledger-id", f"{name} ({source})", message)
        )
    records = _records(contents.entry_lines[: report.signed_size], name, findings)
    return AuditedLedger(
        source=source,
        role=role,
        ledger_id=ledger_id,
        key_id=key_id,
        entries=report.entries,
        tree_heads=report.tree_heads,
        signed_size=report.signed_size,
        entry_lines=contents.entry_lines,
        records=tuple(records),
        findings=tuple(findings),
        public_key=keys[key_id],
    )


def _role_error(role: Role, ledger_id: str, key_id: str) -> str | None:
    """Why a ledger's own label contradicts the role of the key that signed it, if it does."""
    if role == "coordinator" and ledger_id != COORDINATOR_ID:
        return (
            f"the coordinator's key {key_id} signs a ledger labelled {ledger_id!r}: the "
            "coordinator's ledger is labelled 'coordinator' and it signs no node's ledger"
        )
    if role == "node" and ledger_id == COORDINATOR_ID:
        return (
            f"a ledger labelled 'coordinator' is signed by key {key_id}, not by the "
            "coordinator's key: it is audited as the ledger of node "
            f"{key_id}"
        )
    return None


def _untrusted(
    source: str,
    contents: LedgerContents,
    heads: list[TreeHead],
    keys: dict[str, Ed25519PublicKey],
) -> AuditedLedger:
    """A ledger no given key signed: one finding, and no records to build on."""
    named = sorted({h.key_id for h in heads}) or ["none"]
    message = (
        f"no given public key signed this ledger (tree heads name key(s) "
        f"{', '.join(named)}; given: {', '.join(sorted(keys)) or 'none'})"
    )
    return AuditedLedger(
        source=source,
        role="untrusted",
        ledger_id=heads[0].ledger_id if heads else "?",
        key_id=None,
        entries=len(contents.entry_lines),
        tree_heads=len(contents.head_lines),
        signed_size=0,
        entry_lines=contents.entry_lines,
        records=(),
        findings=(AuditFinding(FailureClass.LEDGER, "error", "no-trusted-key", source, message),),
    )


def too_large(source: str, sizes: dict[str, int]) -> AuditedLedger:
    """A ledger whose files are larger than an auditor reads: one finding, not read."""
    files = ", ".join(f"{name} has {size:,} bytes" for name, size in sorted(sizes.items()))
    message = f"not read: {files}, more than the {MAX_LEDGER_BYTES:,} an audit reads"
    return AuditedLedger(
        source=source,
        role="untrusted",
        ledger_id="?",
        key_id=None,
        entries=0,
        tree_heads=0,
        signed_size=0,
        entry_lines=(),
        records=(),
        findings=(AuditFinding(FailureClass.LEDGER, "error", "too-large", source, message),),
    )


def _parse_heads(contents: LedgerContents) -> list[TreeHead]:
    """The tree heads that parse (bad lines are reported by verify_ledger)."""
    heads = []
    for line in contents.head_lines:
        try:
            heads.append(TreeHead.from_line(line))
        except LedgerError:
            continue
    return heads


def _trusted_key_id(heads: list[TreeHead], keys: dict[str, Ed25519PublicKey]) -> str | None:
    """The given key named by the most tree heads (None if no head names a given key)."""
    counts = Counter(h.key_id for h in heads if h.key_id in keys)
    return counts.most_common(1)[0][0] if counts else None


@lru_cache(maxsize=65536)
def _entry(line: bytes) -> Entry:
    """The entry of a line (cached: a line is immutable bytes, auditors re-read ledgers)."""
    return Entry.from_line(line)


@lru_cache(maxsize=65536)
def _record(line: bytes) -> LedgerRecord:
    """The typed record of a line (cached like :func:`_entry`; type checks are slow)."""
    return record_from_entry(_entry(line))


def _records(
    lines: tuple[bytes, ...], name: str, findings: list[AuditFinding]
) -> list[AuditedEntry]:
    """Typed records of ``lines``; a body that does not parse is a ledger-class finding."""
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            entry = _entry(line)
        except LedgerError:
            continue  # already a "parse" finding of verify_ledger
        try:
            records.append(AuditedEntry(entry, _record(line)))
        except LedgerError as err:
            findings.append(
                AuditFinding(
                    FailureClass.LEDGER,
                    "error",
                    "record",
                    f"{name} seq {entry.seq} (entries.jsonl:{number})",
                    f"the {entry.kind!r} body does not parse as a fedrisk record: {err}",
                )
            )
    return records
