"""A node's lifetime record-level epsilon, recomputed after every PrivacySpent (and every
RiskShared: a share of the fleet's relative risk is a release the node's budget pays for).

The node's guarantee is lifetime: its accountant composes every release it ever made,
across rounds and runs, and refuses a task that would pass its cap (DESIGN.md). So after
each PrivacySpent the auditor composes all of that node's releases so far (same unit) at
that entry's ``delta`` and compares with the claimed ``epsilon_total`` and with
``epsilon_cap``; each release alone is compared with ``epsilon_task``, and
``epsilon_remaining`` must equal ``epsilon_cap - epsilon_total``.
"""

from __future__ import annotations

from dataclasses import dataclass

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
from ledger.records import PrivacySpent, RiskShared

__all__ = ["EpsilonPoint", "NodeEpsilonRow", "node_epsilon"]


@dataclass(frozen=True)
class EpsilonPoint:
    """Lifetime epsilon of a node after the PrivacySpent at ``seq`` (entry ``time``):
    ``claimed`` by the node and ``recomputed`` by the auditor, against ``cap``."""

    seq: int
    time: float
    run_id: str
    round: int
    task: str
    claimed: float
    recomputed: float
    cap: float


@dataclass(frozen=True)
class NodeEpsilonRow:
    """One node's lifetime epsilon for ``unit`` at ``delta``: the last claim and
    recomputation, the relative difference largest in magnitude over all its releases
    (negative = a claim understated), the cap, and the history for the plot."""

    node: str
    unit: str
    releases: int
    claimed: float
    recomputed: float
    largest_relative_difference: float
    cap: float
    delta: float
    points: tuple[EpsilonPoint, ...]


def node_epsilon(
    ledger: AuditedLedger, tolerance: float
) -> tuple[list[NodeEpsilonRow], list[AuditFinding]]:
    """Rows (one per privacy unit with releases) and findings for one node ledger."""
    history: dict[str, list[Release]] = {}
    points: dict[str, list[EpsilonPoint]] = {}
    last: dict[str, PrivacySpent | RiskShared] = {}
    findings: list[AuditFinding] = []
    for item in ledger.records:
        spent = item.record
        if not isinstance(spent, PrivacySpent | RiskShared):
            continue
        where = f"{ledger.name} seq {item.entry.seq}"
        try:
            single = compose_epsilon([release_of(spent)], spent.delta)
            releases = [*history.get(spent.unit, []), release_of(spent)]
            total = compose_epsilon(releases, spent.delta)
        except ReleaseError as err:
            findings.append(release_finding(err, where))
            continue
        history[spent.unit] = releases
        findings += _checks(spent, single, total, tolerance, where)
        points.setdefault(spent.unit, []).append(
            EpsilonPoint(
                item.entry.seq,
                item.entry.time,
                spent.run_id,
                spent.round,
                spent.task,
                spent.epsilon_total,
                total,
                spent.epsilon_cap,
            )
        )
        last[spent.unit] = spent
    rows = [_row(ledger.ledger_id, unit, points[unit], last[unit]) for unit in sorted(points)]
    return rows, findings


def _checks(
    spent: PrivacySpent | RiskShared, single: float, total: float, tolerance: float, where: str
) -> list[AuditFinding]:
    found = [
        claim_finding(spent.epsilon_task, single, tolerance, where, "epsilon of this release"),
        claim_finding(spent.epsilon_total, total, tolerance, where, "lifetime epsilon"),
        cap_finding(total, spent.epsilon_cap, where, "recomputed lifetime epsilon"),
    ]
    expected_remaining = spent.epsilon_cap - spent.epsilon_total
    if abs(spent.epsilon_remaining - expected_remaining) > 1e-9 * max(1.0, spent.epsilon_cap):
        found.append(
            AuditFinding(
                FailureClass.EPSILON,
                "error",
                "remaining",
                where,
                f"epsilon_remaining {spent.epsilon_remaining:.6g} is not epsilon_cap - "
                f"epsilon_total = {expected_remaining:.6g}",
            )
        )
    return [f for f in found if f is not None]


def _row(
    node: str, unit: str, points: list[EpsilonPoint], last: PrivacySpent | RiskShared
) -> NodeEpsilonRow:
    diffs = [relative_difference(p.claimed, p.recomputed) for p in points]
    return NodeEpsilonRow(
        node=node,
        unit=unit,
        releases=len(points),
        claimed=points[-1].claimed,
        recomputed=points[-1].recomputed,
        largest_relative_difference=max(diffs, key=abs),
        cap=last.epsilon_cap,
        delta=last.delta,
        points=tuple(points),
    )
