"""Each round of a run is counted once; a resumed run's interrupted round only once too.

In the coordinator's ledger a run is the stretch after its RunStarted. When the
coordinator crashes and resumes the run, it writes a RunResumed whose ``from_round`` is
the first round it runs again: an exchange or release of rounds ``from_round`` and later
recorded before the RunResumed belongs to the interrupted attempt, and when the resumed
attempt records it again (a node re-sends the same release), the earlier record is
superseded and counted no more. A superseded release never recorded again stays counted:
it was released, and a RunResumed never hides it. :func:`counted_once` returns the
coordinator ledger without the superseded records (what per-run epsilon is computed on)
and flags, as ledger-class errors:

- ``round-recorded-twice``: a round's exchange (RoundRecorded of the same run, round and
  task) or a release (ReleaseAccounted of the same run, round, task, node and unit)
  recorded a second time with no RunResumed re-opening that round in between;
- ``resumed-completed-round``: a RunResumed whose ``from_round`` is not after the last
  round its run recorded as complete (CheckpointWritten): a completed round run again;
- ``resumed-unknown-run``: a RunResumed of a run that never started, or that completed.

In a node's ledger a retried round is a ContributionResent (no new spend);
:func:`charged_once` warns when a node recorded two spends for one (run, round, task):
both are composed into its lifetime epsilon, so this over-counts, but a retry should
have been a re-send.
"""

from __future__ import annotations

import dataclasses

from auditor.findings import AuditFinding, FailureClass
from auditor.ledgers import AuditedEntry, AuditedLedger
from ledger.records import (
    CheckpointWritten,
    LedgerRecord,
    PrivacySpent,
    ReleaseAccounted,
    RoundRecorded,
    RunEnded,
    RunResumed,
    RunStarted,
)

__all__ = ["counted_once", "charged_once", "resumed_rounds"]


def _error(kind: str, where: str, message: str) -> AuditFinding:
    return AuditFinding(FailureClass.LEDGER, "error", kind, where, message)


#: (kind, round, task, node, unit): what is recorded once per round of a run attempt.
_Key = tuple[str, int, str, str, str]


def _key(record: LedgerRecord) -> _Key | None:
    """What must be recorded only once per run attempt (None: no such constraint)."""
    if isinstance(record, RoundRecorded):
        return ("exchange", record.round, record.task, "", "")
    if isinstance(record, ReleaseAccounted):
        return ("release", record.round, record.task, record.node, record.unit)
    return None


class _Run:
    """One run's state while the ledger is read: kept records, the entry (seq) holding
    each once-only key and whether a resumption re-opened it, progress."""

    def __init__(self) -> None:
        self.kept: dict[int, AuditedEntry] = {}
        self.seen: dict[_Key, tuple[int, bool]] = {}
        self.completed_round = 0
        self.ended = False

    def reopen(self, from_round: int) -> None:
        """A resumption: rounds ``from_round`` and later may be recorded once more."""
        for key, (seq, _reopened) in self.seen.items():
            if key[1] >= from_round:
                self.seen[key] = (seq, True)


def counted_once(ledger: AuditedLedger) -> tuple[AuditedLedger, list[AuditFinding]]:
    """The coordinator's ledger without superseded records, and the findings above."""
    runs: dict[str, _Run] = {}
    other: list[tuple[int, AuditedEntry]] = []
    findings: list[AuditFinding] = []
    for item in ledger.records:
        record, where = item.record, f"{ledger.name} seq {item.entry.seq}"
        run_id = getattr(record, "run_id", None)
        if isinstance(record, RunStarted):  # (a run id used again starts a new run)
            earlier = runs.get(record.run_id)
            other += [] if earlier is None else list(earlier.kept.items())
            runs[record.run_id] = _Run()
        run = runs.get(run_id) if isinstance(run_id, str) else None
        if run is None:
            other.append((item.entry.seq, item))
            findings += _resumed(record, run, where) if isinstance(record, RunResumed) else []
            continue
        run.kept[item.entry.seq] = item
        if isinstance(record, RunResumed):
            findings += _resumed(record, run, where)
            run.reopen(record.from_round)
        else:
            findings += _recorded(record, run, item, where)
    kept = sorted([*other, *(p for r in runs.values() for p in r.kept.items())], key=lambda p: p[0])
    return dataclasses.replace(ledger, records=tuple(i for _, i in kept)), findings


def _resumed(record: RunResumed, run: _Run | None, where: str) -> list[AuditFinding]:
    if run is None or run.ended:
        state = "never started" if run is None else "completed"
        return [
            _error(
                "resumed-unknown-run",
                where,
                f"run {record.run_id!r} is resumed, but it {state} before this entry",
            )
        ]
    if record.from_round <= run.completed_round:
        return [
            _error(
                "resumed-completed-round",
                where,
                f"run {record.run_id!r} is resumed from round {record.from_round}, but round "
                f"{run.completed_round} was recorded as complete: a completed round is run "
                "and counted again",
            )
        ]
    return []


def _recorded(
    record: LedgerRecord, run: _Run, item: AuditedEntry, where: str
) -> list[AuditFinding]:
    if isinstance(record, CheckpointWritten):
        run.completed_round = max(run.completed_round, record.round)
    elif isinstance(record, RunEnded) and record.status == "completed":
        run.ended = True
    key = _key(record)
    if key is None:
        return []
    first, reopened = run.seen.get(key, (None, False))
    run.seen[key] = (item.entry.seq, False)
    if first is None:
        return []
    if reopened:  # the interrupted attempt's record, superseded by this one
        del run.kept[first]
        return []
    what = f"{type(record).KIND} of round {key[1]} ({', '.join(k for k in key[2:] if k)})"
    return [
        _error(
            "round-recorded-twice",
            where,
            f"{what} of run {getattr(record, 'run_id', '?')!r} was recorded before (seq "
            f"{first}) with no resumption in between: the round would be counted twice",
        )
    ]


def resumed_rounds(ledger: AuditedLedger) -> frozenset[tuple[str, int]]:
    """(run id, round) of every round a RunResumed re-ran (its ``from_round``): messages
    a node sent in the interrupted attempt of that round may be missing at the coordinator."""
    return frozenset(
        (item.record.run_id, item.record.from_round)
        for item in ledger.records
        if isinstance(item.record, RunResumed)
    )


def charged_once(ledger: AuditedLedger) -> list[AuditFinding]:
    """Warnings for a node's second spend in one (run, round, task, unit)."""
    findings: list[AuditFinding] = []
    seen: dict[tuple[str, int, str, str], int] = {}
    for item in ledger.records:
        spent = item.record
        if not isinstance(spent, PrivacySpent):
            continue
        key = (spent.run_id, spent.round, spent.task, spent.unit)
        first = seen.setdefault(key, item.entry.seq)
        if first != item.entry.seq:
            findings.append(
                AuditFinding(
                    FailureClass.EPSILON,
                    "warning",
                    "charged-twice",
                    f"{ledger.name} seq {item.entry.seq}",
                    f"a second {spent.task} spend for round {spent.round} of run "
                    f"{spent.run_id!r} (first at seq {first}): counted twice, which "
                    "over-counts; a retried round should be a re-send",
                )
            )
    return findings
