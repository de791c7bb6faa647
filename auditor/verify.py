"""`audit`: verify ledgers from their public keys alone, recompute epsilon, cross-check.

The auditor is told who the coordinator is (its public key, ``coordinator_key``): the
ledger that key signs is the coordinator's, every other ledger a node's. Steps: each
ledger is verified under its owner's key (:mod:`auditor.ledgers`); a node's
lifetime epsilon is recomputed after every release (:mod:`auditor.node_epsilon`); the
coordinator's per-run and enterprise-level epsilon are recomputed
(:mod:`auditor.run_epsilon`), counting each round once, a resumed run's interrupted round
included (:mod:`auditor.rounds`); node ledgers are cross-checked against the coordinator's
(:mod:`auditor.cross_check`); the coordinator's run records agree with each other
(:mod:`auditor.round_roles`); nothing is recorded for a run after its end
(:mod:`auditor.run_end`). Every finding is collected; the verdict and exit code follow
from the errors (:mod:`auditor.findings`). Warnings never fail an audit. The parties a
run must have come from the coordinator's records (:mod:`auditor.parties`): without the
ledger of one of them (or without the coordinator's) an audit with no errors is
INCOMPLETE, or a PASS WITH GAPS when ``partial``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from auditor.claims import DEFAULT_TOLERANCE
from auditor.cross_check import cross_check
from auditor.errors import AuditUsageError
from auditor.findings import AuditFinding, FailureClass, exit_code_for, verdict_for
from auditor.ledgers import AuditedLedger, audit_ledger, too_large
from auditor.node_epsilon import NodeEpsilonRow, node_epsilon
from auditor.parties import MissingParty, missing_parties
from auditor.released_shares import released_share_findings
from auditor.remote import fetch_coordinator_ledger
from auditor.round_roles import round_role_findings
from auditor.rounds import charged_once, counted_once
from auditor.run_end import run_end_findings
from auditor.run_epsilon import EnterpriseEpsilonRow, RunEpsilonRow, run_epsilon
from common.errors import StateError
from common.exit_codes import ExitCode
from ledger.log import ENTRIES_FILE, TREE_HEADS_FILE, LedgerContents, read_ledger
from ledger.ranges import MAX_LEDGER_BYTES
from ledger.signing import key_id, load_public_key

__all__ = ["LedgerSummary", "AuditResult", "audit", "load_keys"]


@dataclass(frozen=True)
class LedgerSummary:
    """One audited ledger in the report: name, source, trusted key, sizes, its errors."""

    name: str
    source: str
    key_id: str | None
    entries: int
    tree_heads: int
    signed_size: int
    errors: int


@dataclass(frozen=True)
class AuditResult:
    """The outcome of an audit: ``verdict`` ("PASS", "FAIL", "INCOMPLETE" or "PASS WITH
    GAPS"), ``exit_code``, every finding, the ledgers, the epsilon tables (per node
    lifetime, per run, enterprise) and the ``missing`` parties."""

    verdict: str
    exit_code: ExitCode
    findings: tuple[AuditFinding, ...]
    ledgers: tuple[LedgerSummary, ...]
    node_rows: tuple[NodeEpsilonRow, ...]
    run_rows: tuple[RunEpsilonRow, ...]
    enterprise_rows: tuple[EnterpriseEpsilonRow, ...]
    tolerance: float
    missing: tuple[MissingParty, ...] = ()

    @property
    def errors(self) -> tuple[AuditFinding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[AuditFinding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")

    @property
    def largest_relative_difference(self) -> float:
        """Claimed vs recomputed lifetime epsilon, largest in magnitude over all nodes and
        the enterprise rows (0.0 when nothing was released)."""
        diffs = [r.largest_relative_difference for r in self.node_rows]
        diffs += [r.relative_difference for r in self.enterprise_rows]
        return max(diffs, key=abs, default=0.0)


def load_keys(key_paths: list[Path]) -> dict[str, Ed25519PublicKey]:
    """Public keys by key id (SigningKeyError, exit 10, for a missing or bad file)."""
    if not key_paths:
        raise AuditUsageError("no public key given (--keys)")
    keys = [load_public_key(Path(p)) for p in key_paths]
    return {key_id(k): k for k in keys}


def _oversized(directory: Path) -> dict[str, int]:
    """The ledger's files larger than an auditor reads, with their sizes (none: empty)."""
    sizes = {
        name: (directory / name).stat().st_size
        for name in (ENTRIES_FILE, TREE_HEADS_FILE)
        if (directory / name).is_file()
    }
    return {name: size for name, size in sizes.items() if size > MAX_LEDGER_BYTES}


def _read(directory: Path) -> LedgerContents:
    if not directory.is_dir():
        raise AuditUsageError(f"{directory} is not a directory")
    if not any((directory / name).exists() for name in (ENTRIES_FILE, TREE_HEADS_FILE)):
        raise AuditUsageError(f"{directory} is not a ledger: no {ENTRIES_FILE}, {TREE_HEADS_FILE}")
    try:
        return read_ledger(directory)
    except OSError as err:
        raise StateError(f"cannot read the ledger in {directory}: {err}") from None


def audit(
    ledger_dirs: list[Path],
    key_paths: list[Path],
    *,
    coordinator_key: Path,
    coordinator_address: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    partial: bool = False,
) -> AuditResult:
    """Audit the ledgers in ``ledger_dirs`` (and the coordinator's ledger served at
    ``coordinator_address``, if given) with the public keys in ``key_paths``, the
    coordinator's being ``coordinator_key``; ``partial`` makes missing parties gaps."""
    if not ledger_dirs and coordinator_address is None:
        raise AuditUsageError("no ledger given")
    keys = load_keys(key_paths) if key_paths else {}
    coordinator_keys = load_keys([coordinator_key])
    keys.update(coordinator_keys)
    coordinator_key_id = next(iter(coordinator_keys))
    unique = list(dict.fromkeys(Path(d).resolve() for d in ledger_dirs))
    oversized = {d: sizes for d in unique if (sizes := _oversized(d))}
    sources = [(str(d), _read(d)) for d in unique if d not in oversized]
    if coordinator_address is not None:
        fetched = fetch_coordinator_ledger(coordinator_address, coordinator_keys)
        sources.append((coordinator_address, fetched))
    ledgers = [audit_ledger(src, contents, keys, coordinator_key_id) for src, contents in sources]
    ledgers += [too_large(str(d), sizes) for d, sizes in oversized.items()]
    findings = [f for ledger in ledgers for f in ledger.findings] + _roles(ledgers)
    trusted = [ledger for ledger in ledgers if ledger.role != "untrusted"]
    coordinators = [ledger for ledger in trusted if ledger.role == "coordinator"]
    nodes = [ledger for ledger in trusted if ledger.role == "node"]
    coordinator = coordinators[0] if coordinators else None
    node_rows: list[NodeEpsilonRow] = []
    for node in nodes:
        rows, found = node_epsilon(node, tolerance)
        node_rows += rows
        findings += found + charged_once(node)
    run_rows: list[RunEpsilonRow] = []
    enterprise_rows: list[EnterpriseEpsilonRow] = []
    if coordinator is not None:
        counted, found = counted_once(coordinator)
        run_rows, enterprise_rows, epsilon_found = run_epsilon(counted, tolerance)
        findings += found + epsilon_found + run_end_findings(coordinator)
        findings += released_share_findings(coordinator)
        findings += round_role_findings(counted, frozenset(n.ledger_id for n in nodes))
    findings += cross_check(coordinator, nodes)
    missing, gaps = missing_parties(coordinator, nodes)
    findings += gaps
    incomplete = bool(missing)
    return AuditResult(
        verdict=verdict_for(findings, incomplete=incomplete, partial=partial),
        exit_code=exit_code_for(findings, incomplete=incomplete, partial=partial),
        findings=tuple(findings),
        ledgers=tuple(_summary(ledger) for ledger in ledgers),
        node_rows=tuple(node_rows),
        run_rows=tuple(run_rows),
        enterprise_rows=tuple(enterprise_rows),
        tolerance=tolerance,
        missing=tuple(missing),
    )


def _roles(ledgers: list[AuditedLedger]) -> list[AuditFinding]:
    """One ledger per party and one key per party: a second coordinator ledger, two
    ledgers of one node, or one key signing two parties' ledgers are findings."""
    findings = []
    trusted = [ledger for ledger in ledgers if ledger.role != "untrusted"]
    for ledger_id, count in Counter(ledger.ledger_id for ledger in trusted).items():
        if count > 1:
            findings.append(
                AuditFinding(
                    FailureClass.LEDGER,
                    "error",
                    "duplicate-ledger",
                    "audit",
                    f"{count} ledgers given for party {ledger_id!r}; give each ledger once",
                )
            )
    for key, count in Counter(ledger.key_id for ledger in trusted).items():
        parties = sorted({ledger.ledger_id for ledger in trusted if ledger.key_id == key})
        if count > 1 and len(parties) > 1:
            findings.append(
                AuditFinding(
                    FailureClass.LEDGER,
                    "error",
                    "shared-key",
                    "audit",
                    f"key {key} signs the ledgers of {', '.join(parties)}: each party has its own",
                )
            )
    return findings


def _summary(ledger: AuditedLedger) -> LedgerSummary:
    errors = sum(1 for f in ledger.findings if f.severity == "error")
    return LedgerSummary(
        ledger.name,
        ledger.source,
        ledger.key_id,
        ledger.entries,
        ledger.tree_heads,
        ledger.signed_size,
        errors,
    )
