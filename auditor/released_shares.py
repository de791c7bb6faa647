"""A released secure sum holds at least the noise shares its releases were planned for.

Every node sizes its noise share so that ``noise_shares`` shares (ReleaseAccounted and
PrivacySpent record it) carry the noise the plan asks; the coordinator must release no
sum with fewer survivors (``plan.release_fraction``, :mod:`protocols.secure_round`). The
coordinator's ledger records each secure sum's survivors (RoundRecorded, task
``secure-sum:<kind>``); a release whose round's sum holds fewer inputs than its
``noise_shares`` carried less noise than charged: a cross-check error
(``below-planned-shares``, 53). A round recorded twice (a resumed run) is judged by its
last record.
"""

from __future__ import annotations

from auditor.findings import AuditFinding, FailureClass
from auditor.ledgers import AuditedLedger
from ledger.records import ReleaseAccounted, RoundRecorded

__all__ = ["SECURE_SUM_PREFIX", "released_share_findings"]

#: How the coordinator's ledger names the RoundRecorded of a secure sum of ``kind``.
SECURE_SUM_PREFIX = "secure-sum:"


def released_share_findings(coordinator: AuditedLedger) -> list[AuditFinding]:
    """One error per release whose secure sum held fewer inputs than it was planned for."""
    survivors: dict[tuple[str, int, str], int] = {}
    for item in coordinator.records:
        record = item.record
        if isinstance(record, RoundRecorded) and record.task.startswith(SECURE_SUM_PREFIX):
            kind = record.task.removeprefix(SECURE_SUM_PREFIX)
            survivors[(record.run_id, record.round, kind)] = len(record.participants)
    findings = []
    for item in coordinator.records:
        record = item.record
        if not isinstance(record, ReleaseAccounted) or record.noise_shares <= 1:
            continue
        held = survivors.get((record.run_id, record.round, record.task))
        if held is not None and held < record.noise_shares:
            findings.append(
                AuditFinding(
                    FailureClass.CROSS_CHECK,
                    "error",
                    "below-planned-shares",
                    f"{coordinator.name} seq {item.entry.seq}",
                    f"the {record.task} release of node {record.node} in round "
                    f"{record.round} was planned for {record.noise_shares} noise shares, "
                    f"but the secure sum released holds {held} inputs",
                )
            )
    return findings
