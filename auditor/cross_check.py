"""Node ledgers against the coordinator's: the two sides of every message must agree.

The reply digest ties the ledgers together: a node's MessageSent.sha256 is the
coordinator's MessageReceived.sha256 and, for a release, its ReleaseAccounted.message_sha256;
in the node's ledger the PrivacySpent of a release is the entry just before the MessageSent
of the reply that carried it. Checked, each failure a cross-check-class error:

- every MessageSent has a MessageReceived from the same node, run and round (a warning if
  the coordinator recorded that node, by its id, as failed or dropped in that round, or
  re-ran that round after a crash: RunResumed; a failure of an id that names no party
  excuses nobody);
- every MessageReceived naming a node whose ledger is given was sent by that node;
- every record-level ReleaseAccounted matches, field by field, the PrivacySpent before the
  node's MessageSent with that digest (mechanism parameters and claims); a re-sent
  contribution (ContributionResent before the MessageSent) is matched with the node's
  PrivacySpent of that run, round and task, so a re-send is never a new spend and never
  an unspent release;
- every release the coordinator used (received "ok") is accounted by the coordinator;
- every InclusionChecked names a coordinator tree the coordinator's ledger reproduces
  (:mod:`auditor.inclusion`), and a failed one is an error unless the coordinator's ledger
  shows why (the run was resumed or did not complete, or recorded that node as failed or
  dropped);

A node the coordinator names whose ledger is not given is a missing party
(:mod:`auditor.parties`), not a finding here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

from auditor.findings import AuditFinding, FailureClass
from auditor.inclusion import inclusion_findings
from auditor.ledgers import AuditedEntry, AuditedLedger
from auditor.round_roles import excused
from auditor.rounds import resumed_rounds
from ledger.records import (
    ContributionResent,
    InclusionChecked,
    MessageReceived,
    MessageSent,
    PrivacySpent,
    ReleaseAccounted,
    RunEnded,
    RunStarted,
)

__all__ = ["RELEASE_FIELDS", "cross_check"]

R = TypeVar("R")

#: ReleaseAccounted field -> PrivacySpent field that must be equal.
RELEASE_FIELDS: dict[str, str] = {
    "run_id": "run_id",
    "round": "round",
    "task": "task",
    "unit": "unit",
    "mechanism": "mechanism",
    "noise_multiplier": "noise_multiplier",
    "sample_rate": "sample_rate",
    "steps": "steps",
    "sensitivity": "sensitivity",
    "noise_shares": "noise_shares",
    "share_std": "share_std",
    "l1_sensitivity": "l1_sensitivity",
    "integer_scale": "integer_scale",
    "epsilon_claimed": "epsilon_task",
    "epsilon_total_claimed": "epsilon_total",
    "epsilon_cap": "epsilon_cap",
    "delta": "delta",
}


def _error(kind: str, where: str, message: str) -> AuditFinding:
    return AuditFinding(FailureClass.CROSS_CHECK, "error", kind, where, message)


def _warning(kind: str, where: str, message: str) -> AuditFinding:
    return AuditFinding(FailureClass.CROSS_CHECK, "warning", kind, where, message)


def _of(ledger: AuditedLedger, cls: type[R]) -> Iterator[tuple[AuditedEntry, R]]:
    """The entries of ``ledger`` holding a ``cls`` record, with that record."""
    for item in ledger.records:
        if isinstance(item.record, cls):
            yield item, item.record


@dataclass(frozen=True)
class _Coordinator:
    """Indexes of the coordinator's ledger used by the checks."""

    ledger: AuditedLedger
    received: dict[str, tuple[int, MessageReceived]]
    released: dict[str, tuple[int, ReleaseAccounted]]
    excused: frozenset[tuple[str, int, str]]
    runs: frozenset[str]
    resumed: frozenset[tuple[str, int]]
    unfinished: frozenset[str]

    def is_excused(self, run_id: str, round_number: int, node: str) -> bool:
        """The coordinator recorded ``node``, by its id, as failed or dropped in that round."""
        return (run_id, round_number, node) in self.excused

    def explains_failed_check(self, run_id: str, node: str) -> bool:
        """The coordinator's ledger shows why a node's inclusion check of ``run_id`` may
        fail: the run was resumed or did not complete, or ``node`` failed or dropped in it."""
        return (
            run_id in self.unfinished
            or any(run == run_id for run, _round in self.resumed)
            or any(run == run_id and who == node for run, _round, who in self.excused)
        )

    @classmethod
    def index(cls, ledger: AuditedLedger, given: frozenset[str]) -> _Coordinator:
        received = {r.sha256: (i.entry.seq, r) for i, r in _of(ledger, MessageReceived)}
        released = {
            r.message_sha256: (i.entry.seq, r)
            for i, r in _of(ledger, ReleaseAccounted)
            if r.unit == "record"
        }
        runs = frozenset(r.run_id for _i, r in _of(ledger, RunStarted))
        unfinished = frozenset(
            r.run_id for _i, r in _of(ledger, RunEnded) if r.status != "completed"
        )
        return cls(
            ledger,
            received,
            released,
            excused(ledger, given),
            runs,
            resumed_rounds(ledger),
            unfinished,
        )


@dataclass(frozen=True)
class _Node:
    """Indexes of one node's ledger: its messages by digest and the spend before each."""

    ledger: AuditedLedger
    sent: dict[str, tuple[int, MessageSent]]
    spent: dict[str, tuple[int, PrivacySpent]]

    @classmethod
    def index(cls, ledger: AuditedLedger) -> _Node:
        sent, spent = {}, {}
        first_spend: dict[tuple[str, int, str], tuple[int, PrivacySpent]] = {}
        previous: AuditedEntry | None = None
        for item in ledger.records:
            record = item.record
            if isinstance(record, PrivacySpent):
                key = (record.run_id, record.round, record.task)
                first_spend.setdefault(key, (item.entry.seq, record))
            if isinstance(record, MessageSent):
                sent[record.sha256] = (item.entry.seq, record)
                if previous is not None and isinstance(previous.record, PrivacySpent):
                    spent[record.sha256] = (previous.entry.seq, previous.record)
                elif previous is not None and isinstance(previous.record, ContributionResent):
                    resent = previous.record
                    original = first_spend.get((resent.run_id, resent.round, resent.task))
                    if original is not None and resent.sha256 == record.sha256:
                        spent[record.sha256] = original
            previous = item
        return cls(ledger, sent, spent)


def cross_check(
    coordinator: AuditedLedger | None, nodes: list[AuditedLedger]
) -> list[AuditFinding]:
    """Every cross-check finding between the coordinator's ledger and the node ledgers
    (none without the coordinator's ledger: that is a missing party, :mod:`auditor.parties`)."""
    if coordinator is None:
        return []
    indexed = {n.ledger_id: _Node.index(n) for n in nodes}
    coord = _Coordinator.index(coordinator, frozenset(indexed))
    findings: list[AuditFinding] = []
    for node in indexed.values():
        findings += _sent_was_received(node, coord)
        findings += _spends_were_accounted(node, coord)
        findings += _failed_checks(node.ledger, coord)
        findings += [
            f
            for f in inclusion_findings(node.ledger, coordinator)
            if f.kind != _INCLUSION_FAILED or f.severity == "error"
        ]
    findings += _received_was_sent(coord, indexed)
    findings += _releases_match(coord, indexed)
    return findings


def _sent_was_received(node: _Node, coord: _Coordinator) -> list[AuditFinding]:
    findings, me = [], node.ledger.ledger_id
    for sha, (seq, sent) in node.sent.items():
        where = f"{node.ledger.name} seq {seq}"
        what = (
            f"message_sent {sha[:16]}... ({sent.purpose}, run {sent.run_id!r} round {sent.round})"
        )
        if sent.run_id not in coord.runs:
            findings.append(
                _warning(
                    "run-not-in-coordinator",
                    where,
                    f"{what}: the coordinator ledger has no such run; not cross-checked",
                )
            )
            continue
        hit = coord.received.get(sha)
        if hit is None:
            excused = coord.is_excused(sent.run_id, sent.round, me)
            interrupted = (sent.run_id, sent.round) in coord.resumed
            make = _warning if excused or interrupted else _error
            note = ""
            if excused:
                note = " (the coordinator recorded a failed or dropped node in that round)"
            elif interrupted:
                note = " (the coordinator crashed in that round and re-ran it: RunResumed)"
            findings.append(
                make(
                    "message-unmatched",
                    where,
                    f"{what} has no message_received at the coordinator{note}",
                )
            )
            continue
        got = hit[1]
        if (got.node, got.run_id, got.round) != (me, sent.run_id, sent.round):
            findings.append(
                _error(
                    "message-mismatch",
                    where,
                    f"{what} is recorded by the coordinator (seq {hit[0]}) as from node "
                    f"{got.node}, run {got.run_id!r} round {got.round}",
                )
            )
    return findings


_INCLUSION_FAILED = "inclusion-failed"


def _failed_checks(node: AuditedLedger, coord: _Coordinator) -> list[AuditFinding]:
    """A node's signed failed inclusion check: an error unless the coordinator's ledger
    shows why (:meth:`_Coordinator.explains_failed_check`), then a warning."""
    findings = []
    for item, check in _of(node, InclusionChecked):
        if check.ok:
            continue
        explained = coord.explains_failed_check(check.run_id, node.ledger_id)
        make = _warning if explained else _error
        why = (
            "; the coordinator's ledger shows why (the run was resumed or did not complete, "
            "or the node failed or dropped)"
            if explained
            else "; nothing in the coordinator's ledger explains it"
        )
        findings.append(
            make(
                _INCLUSION_FAILED,
                f"{node.name} seq {item.entry.seq}",
                f"the node recorded a failed inclusion check of run {check.run_id!r}: "
                f"{check.detail}{why}",
            )
        )
    return findings


def _received_was_sent(coord: _Coordinator, nodes: dict[str, _Node]) -> list[AuditFinding]:
    findings = []
    for sha, (seq, got) in coord.received.items():
        node = nodes.get(got.node)
        if node is not None and sha not in node.sent:
            findings.append(
                _error(
                    "message-unsent",
                    f"coordinator seq {seq}",
                    f"message_received {sha[:16]}... ({got.task}, round {got.round}) names node "
                    f"{got.node}, whose ledger has no message_sent with that digest",
                )
            )
    return findings


def _releases_match(coord: _Coordinator, nodes: dict[str, _Node]) -> list[AuditFinding]:
    findings = []
    for sha, (seq, release) in coord.released.items():
        node = nodes.get(release.node)
        if node is None:
            continue  # a missing party (auditor.parties)
        where = f"coordinator seq {seq}"
        what = f"release_accounted of node {release.node} (message {sha[:16]}...)"
        spent = node.spent.get(sha)
        if spent is None:
            reason = "no message_sent" if sha not in node.sent else "no privacy_spent before it"
            findings.append(
                _error(
                    "release-unmatched",
                    where,
                    f"{what}: the node ledger has {reason} with that digest",
                )
            )
            continue
        diffs = [
            f"{ours} coordinator {getattr(release, ours)!r}, node {getattr(spent[1], theirs)!r}"
            for ours, theirs in RELEASE_FIELDS.items()
            if getattr(release, ours) != getattr(spent[1], theirs)
        ]
        if diffs:
            findings.append(
                _error(
                    "release-mismatch",
                    where,
                    f"{what} differs from the node's privacy_spent (seq {spent[0]}): "
                    + "; ".join(diffs),
                )
            )
    return findings


def _spends_were_accounted(node: _Node, coord: _Coordinator) -> list[AuditFinding]:
    findings = []
    for sha, (seq, spent) in node.spent.items():
        hit = coord.received.get(sha)
        if hit is not None and hit[1].status == "ok" and sha not in coord.released:
            findings.append(
                _error(
                    "release-unaccounted",
                    f"{node.ledger.name} seq {seq}",
                    f"the coordinator used this node's {spent.task} release (message "
                    f"{sha[:16]}..., received seq {hit[0]}) but has no release_accounted for it",
                )
            )
    return findings
