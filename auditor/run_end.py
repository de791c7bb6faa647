"""Nothing is recorded for a run after it ended, and its outputs are published once.

In the coordinator's ledger a run's RunEnded is its last record. After it, only these
records of that run are allowed: a RunResumed (the coordinator restarted the run after a
crash; :mod:`auditor.rounds` refuses the resumption of a completed run) and a RunStarted
(a run id used again starts a new run). Any other record of an ended run is a
ledger-class error (``after-run-ended``), as is a second OutputsPublished of one run
attempt (``outputs-twice``): a resumption may publish the outputs again, nothing else may.
"""

from __future__ import annotations

from auditor.findings import AuditFinding, FailureClass
from auditor.ledgers import AuditedLedger
from ledger.records import OutputsPublished, RunEnded, RunResumed, RunStarted

__all__ = ["run_end_findings"]


def _error(kind: str, where: str, message: str) -> AuditFinding:
    return AuditFinding(FailureClass.LEDGER, "error", kind, where, message)


def run_end_findings(coordinator: AuditedLedger) -> list[AuditFinding]:
    """Every record of a run after its RunEnded, and every second outputs record."""
    ended: dict[str, int] = {}  # run id -> seq of its RunEnded
    outputs: dict[str, int] = {}  # run id -> seq of its OutputsPublished this attempt
    findings: list[AuditFinding] = []
    for item in coordinator.records:
        record, seq = item.record, item.entry.seq
        run_id = getattr(record, "run_id", None)
        if not isinstance(run_id, str):
            continue
        where = f"{coordinator.name} seq {seq}"
        if isinstance(record, RunStarted | RunResumed):
            ended.pop(run_id, None)
            outputs.pop(run_id, None)
            continue
        if run_id in ended:
            findings.append(
                _error(
                    "after-run-ended",
                    where,
                    f"{type(record).KIND} of run {run_id!r} recorded after the run ended "
                    f"(run_ended at seq {ended[run_id]})",
                )
            )
        if isinstance(record, OutputsPublished):
            if run_id in outputs:
                findings.append(
                    _error(
                        "outputs-twice",
                        where,
                        f"a second outputs_published of run {run_id!r} (first at seq "
                        f"{outputs[run_id]}, model {record.model_sha256[:16]}...)",
                    )
                )
            outputs.setdefault(run_id, seq)
        if isinstance(record, RunEnded):
            ended.setdefault(run_id, seq)
    return findings
