"""The parties a run must have, from the coordinator's run records, and which are missing.

The coordinator's ledger names every node of its runs: the participants, refusals and
dropouts of each round (RoundRecorded), the senders of every reply (MessageReceived) and
the nodes whose releases it accounted (ReleaseAccounted). Each of them must have its
ledger given, or what only that ledger can show (that the node sent what the coordinator
says it received, that its spends match the coordinator's claims, its inclusion checks)
cannot be checked. Without the coordinator's ledger nothing a node's ledger says can be
cross-checked at all. A missing party makes the audit incomplete (exit 54, never PASS):
one warning per missing party says what could not be checked. A failure recorded under an
id that names no party (e.g. "flower-node-12", a node that never told its pseudonym) is
no party: it demands no ledger, and it excuses nobody (:mod:`auditor.round_roles`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from auditor.findings import AuditFinding, FailureClass
from auditor.ledgers import COORDINATOR_ID, AuditedLedger
from ledger.records import MessageReceived, ReleaseAccounted, RoundRecorded

__all__ = ["MissingParty", "run_parties", "missing_parties", "ENTERPRISE_NODE"]

#: The node of an enterprise-level ReleaseAccounted (the secure sum of all sites): no party.
ENTERPRISE_NODE = "*"
#: How the coordinator names a node that never told its pseudonym (e.g. no reply).
FLOWER_PREFIX = "flower-node-"


@dataclass(frozen=True)
class MissingParty:
    """A party of the run whose ledger was not given, and what it leaves unchecked."""

    party: str
    unchecked: str


def _named(node: str) -> bool:
    return node != ENTERPRISE_NODE and not node.startswith(FLOWER_PREFIX)


def run_parties(coordinator: AuditedLedger) -> Counter[str]:
    """Every node the coordinator's run records name as a party (failures aside), with
    how many of the coordinator's records name it."""
    named: Counter[str] = Counter()
    for item in coordinator.records:
        record = item.record
        if isinstance(record, RoundRecorded):
            named.update(record.participants)
            named.update(r.node for r in record.refused)
            named.update(record.dropped)
        elif isinstance(record, MessageReceived | ReleaseAccounted):
            named[record.node] += 1
    return Counter({node: n for node, n in named.items() if _named(node)})


def missing_parties(
    coordinator: AuditedLedger | None, nodes: list[AuditedLedger]
) -> tuple[list[MissingParty], list[AuditFinding]]:
    """The parties whose ledgers are missing and one warning for each."""
    missing: list[MissingParty] = []
    if coordinator is None:
        missing.append(
            MissingParty(
                COORDINATOR_ID,
                "the run's parties, and every node message, spend and inclusion check "
                "against the coordinator's records",
            )
        )
    else:
        given = {n.ledger_id for n in nodes}
        for node, count in sorted(run_parties(coordinator).items()):
            if node not in given:
                missing.append(
                    MissingParty(
                        f"node {node}",
                        f"that it sent what {count} coordinator record(s) name it for, "
                        "that its spends match the claims, its inclusion checks",
                    )
                )
    findings = [
        AuditFinding(
            FailureClass.CROSS_CHECK,
            "warning",
            "party-missing",
            "audit",
            f"the ledger of {m.party} was not given; not checked: {m.unchecked}",
        )
        for m in missing
    ]
    return missing, findings
