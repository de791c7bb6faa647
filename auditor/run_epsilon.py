"""Epsilon per run from the coordinator's ledger: record level per node, enterprise level.

Record level: each ReleaseAccounted (unit "record") is one node's release in a run; its
``epsilon_claimed`` is recomputed alone, its ``epsilon_total_claimed`` (the node's
lifetime, which only the node's ledger can recompute) must not pass its ``epsilon_cap``,
and the composition of a node's releases within one run, at the run's
``RunStarted.record_delta``, must not pass the plan's ``record_epsilon``.

Enterprise level: each ReleaseAccounted (unit "enterprise", node "*") is one model round of
DP-FedAvg over the secure sum; ``epsilon_total_claimed`` is the run's enterprise epsilon so
far, recomputed as the composition of the run's enterprise releases so far, against the
lower of the recorded cap and the run's ``enterprise_epsilon_cap``.

A run is the stretch of the ledger after its RunStarted; a release naming a run that never
started is a ledger-class finding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from auditor.claims import (
    cap_finding,
    claim_finding,
    relative_difference,
    release_finding,
    release_of,
)
from auditor.epsilon import Release, ReleaseError, compose_epsilon
from auditor.findings import AuditFinding, FailureClass
from auditor.ledgers import AuditedLedger
from ledger.records import ReleaseAccounted, RunStarted

__all__ = ["RunEpsilonRow", "EnterpriseEpsilonRow", "run_epsilon"]


@dataclass(frozen=True)
class RunEpsilonRow:
    """Record-level epsilon of ``node`` in run ``run_id``: its ``releases`` composed at
    the run's ``delta`` (``recomputed``) against the plan's ``record_epsilon``."""

    run_id: str
    node: str
    releases: int
    recomputed: float
    record_epsilon: float
    delta: float


@dataclass(frozen=True)
class EnterpriseEpsilonRow:
    """Enterprise-level epsilon of run ``run_id`` after model round ``round``."""

    run_id: str
    round: int
    claimed: float
    recomputed: float
    relative_difference: float
    cap: float
    delta: float


@dataclass
class _Run:
    started: RunStarted
    per_node: dict[str, list[Release]] = field(default_factory=dict)
    enterprise: list[Release] = field(default_factory=list)


def run_epsilon(
    ledger: AuditedLedger, tolerance: float
) -> tuple[list[RunEpsilonRow], list[EnterpriseEpsilonRow], list[AuditFinding]]:
    """Per-run record-level rows, enterprise rows and findings of the coordinator ledger."""
    runs: list[_Run] = []
    current: dict[str, _Run] = {}
    enterprise_rows: list[EnterpriseEpsilonRow] = []
    findings: list[AuditFinding] = []
    for item in ledger.records:
        record, where = item.record, f"{ledger.name} seq {item.entry.seq}"
        if isinstance(record, RunStarted):
            current[record.run_id] = _Run(record)
            runs.append(current[record.run_id])
        elif isinstance(record, ReleaseAccounted):
            run = current.get(record.run_id)
            if run is None:
                findings.append(_orphan(record, where))
            elif record.unit == "record":
                findings += _record_release(run, record, tolerance, where)
            else:
                row, found = _enterprise_release(run, record, tolerance, where)
                findings += found
                enterprise_rows += [row] if row is not None else []
    run_rows, run_findings = _run_rows(runs, ledger.name)
    return run_rows, enterprise_rows, findings + run_findings


def _record_release(
    run: _Run, record: ReleaseAccounted, tolerance: float, where: str
) -> list[AuditFinding]:
    try:
        single = compose_epsilon([release_of(record)], record.delta)
    except ReleaseError as err:
        return [release_finding(err, where)]
    run.per_node.setdefault(record.node, []).append(release_of(record))
    what = f"release of node {record.node}"
    found = [
        claim_finding(record.epsilon_claimed, single, tolerance, where, f"epsilon of the {what}"),
        cap_finding(
            record.epsilon_total_claimed,
            record.epsilon_cap,
            where,
            f"lifetime epsilon claimed for node {record.node}",
        ),
    ]
    return [f for f in found if f is not None]


def _enterprise_release(
    run: _Run, record: ReleaseAccounted, tolerance: float, where: str
) -> tuple[EnterpriseEpsilonRow | None, list[AuditFinding]]:
    try:
        single = compose_epsilon([release_of(record)], record.delta)
        total = compose_epsilon([*run.enterprise, release_of(record)], record.delta)
    except ReleaseError as err:
        return None, [release_finding(err, where)]
    run.enterprise.append(release_of(record))
    planned = run.started.enterprise_epsilon_cap
    cap = min(record.epsilon_cap, math.inf if planned is None else planned)
    found = [
        claim_finding(record.epsilon_claimed, single, tolerance, where, "enterprise round epsilon"),
        claim_finding(
            record.epsilon_total_claimed, total, tolerance, where, "enterprise epsilon of the run"
        ),
        cap_finding(total, cap, where, f"recomputed enterprise epsilon of run {record.run_id}"),
    ]
    planned_delta = run.started.enterprise_delta
    if planned_delta is not None and record.delta > planned_delta:
        found.append(
            AuditFinding(
                FailureClass.EPSILON,
                "error",
                "delta",
                where,
                f"enterprise epsilon claimed at delta {record.delta:g}, the run planned "
                f"delta {planned_delta:g}",
            )
        )
    row = EnterpriseEpsilonRow(
        record.run_id,
        record.round,
        record.epsilon_total_claimed,
        total,
        relative_difference(record.epsilon_total_claimed, total),
        cap,
        record.delta,
    )
    return row, [f for f in found if f is not None]


def _run_rows(runs: list[_Run], name: str) -> tuple[list[RunEpsilonRow], list[AuditFinding]]:
    rows, findings = [], []
    for run in runs:
        started = run.started
        for node, releases in sorted(run.per_node.items()):
            try:
                epsilon = compose_epsilon(releases, started.record_delta)
            except ReleaseError as err:
                findings.append(release_finding(err, f"{name} run {started.run_id}"))
                continue
            rows.append(
                RunEpsilonRow(
                    started.run_id,
                    node,
                    len(releases),
                    epsilon,
                    started.record_epsilon,
                    started.record_delta,
                )
            )
            found = cap_finding(
                epsilon,
                started.record_epsilon,
                f"{name} run {started.run_id}",
                f"record-level epsilon of node {node} in this run (at delta "
                f"{started.record_delta:g}, the plan's record_epsilon as cap)",
            )
            findings += [found] if found is not None else []
    return rows, findings


def _orphan(record: ReleaseAccounted, where: str) -> AuditFinding:
    return AuditFinding(
        FailureClass.LEDGER,
        "error",
        "run-not-started",
        where,
        f"a release of node {record.node} for run {record.run_id!r}, which has no RunStarted "
        "before it",
    )
