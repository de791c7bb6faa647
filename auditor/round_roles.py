"""The coordinator's own run records must agree with each other, node ledgers or not.

Checked on the coordinator's ledger alone, each failure a cross-check-class error:

- ``round-roles``: in one round of a task a node is a participant whose reply was used, a
  refusal, a failure or a dropout, never two of these (a secure round's sum record,
  task "secure-sum:<task>", is part of the round of <task>: its survivors participants);
- ``participant-unreceived``: every participant of a round has a message_received "ok"
  from it in that run, round and task (its reply was used, so it was received);
- ``release-unreceived``: every record-level release_accounted has the message_received
  its ``message_sha256`` names, from that node in that run and round.

A failure recorded under an id that names no party of the run (``failure-unknown-party``,
a warning) excuses nobody: :func:`excused` lists only failures and dropouts of parties.
"""

from __future__ import annotations

from auditor.findings import AuditFinding, FailureClass
from auditor.ledgers import AuditedLedger
from auditor.parties import run_parties
from ledger.records import MessageReceived, ReleaseAccounted, RoundRecorded

__all__ = ["round_role_findings", "excused"]

_OK = "ok"


def _error(kind: str, where: str, message: str) -> AuditFinding:
    return AuditFinding(FailureClass.CROSS_CHECK, "error", kind, where, message)


def _known(coordinator: AuditedLedger, given: frozenset[str]) -> set[str]:
    """The registered parties: nodes the run records name, and nodes whose ledger is given."""
    return set(run_parties(coordinator)) | given


def excused(
    coordinator: AuditedLedger, given: frozenset[str] = frozenset()
) -> frozenset[tuple[str, int, str]]:
    """(run, round, node) of every failure or dropout the coordinator recorded of a
    registered party (:func:`_known`); failures of unknown ids excuse nobody."""
    parties = _known(coordinator, given)
    out = set()
    for item in coordinator.records:
        rec = item.record
        if isinstance(rec, RoundRecorded):
            for node in [p.node for p in rec.failed] + list(rec.dropped):
                if node in parties:
                    out.add((rec.run_id, rec.round, node))
    return frozenset(out)


#: The prefix of the task of a secure round's sum record (its survivors and dropouts).
_SECURE_SUM = "secure-sum:"


def _exchange(task: str) -> str:
    """The exchange a round record belongs to: "secure-sum:model" is part of "model"."""
    return task.removeprefix(_SECURE_SUM)


_Round = tuple[str, int, str]  # run id, round, exchange task


def round_role_findings(
    coordinator: AuditedLedger, given: frozenset[str] = frozenset()
) -> list[AuditFinding]:
    """Every finding of the checks above on ``coordinator`` (superseded records of a
    resumed run left out; ``given``: the ids of the node ledgers given, registered too)."""
    received: dict[str, MessageReceived] = {}
    used: set[tuple[str, int, str, str]] = set()
    for item in coordinator.records:
        if isinstance(item.record, MessageReceived):
            got = item.record
            received[got.sha256] = got
            if got.status == _OK:
                used.add((got.run_id, got.round, got.task, got.node))
    parties = _known(coordinator, given)
    roles: dict[_Round, dict[str, set[str]]] = {}
    first: dict[_Round, str] = {}
    findings: list[AuditFinding] = []
    for item in coordinator.records:
        rec, where = item.record, f"{coordinator.name} seq {item.entry.seq}"
        if isinstance(rec, RoundRecorded):
            key = (rec.run_id, rec.round, _exchange(rec.task))
            first.setdefault(key, where)
            _add_roles(roles.setdefault(key, {}), rec)
            findings += _one_round(rec, key, used, parties, where)
        elif isinstance(rec, ReleaseAccounted) and rec.unit == "record":
            hit = received.get(rec.message_sha256)
            if hit is None or (hit.node, hit.run_id, hit.round) != (
                rec.node,
                rec.run_id,
                rec.round,
            ):
                findings.append(
                    _error(
                        "release-unreceived",
                        where,
                        f"release_accounted of node {rec.node} (run {rec.run_id!r} round "
                        f"{rec.round}, message {rec.message_sha256[:16]}...) has no "
                        "message_received of that node, run and round with that digest",
                    )
                )
    for key, by_node in roles.items():
        for node, held in sorted(by_node.items()):
            if len(held) > 1:
                findings.append(
                    _error(
                        "round-roles",
                        first[key],
                        f"round {key[1]} ({key[2]}) of run {key[0]!r} lists node {node} as "
                        f"{' and '.join(sorted(held))}: a node has one role in a round",
                    )
                )
    return findings


def _add_roles(by_node: dict[str, set[str]], rec: RoundRecorded) -> None:
    for role, nodes in (
        ("participant", rec.participants),
        ("refused", [r.node for r in rec.refused]),
        ("failed", [r.node for r in rec.failed]),
        ("dropped", rec.dropped),
    ):
        for node in nodes:
            by_node.setdefault(node, set()).add(role)


def _one_round(
    rec: RoundRecorded,
    key: _Round,
    used: set[tuple[str, int, str, str]],
    parties: set[str],
    where: str,
) -> list[AuditFinding]:
    findings = []
    what = f"round {rec.round} ({rec.task}) of run {rec.run_id!r}"
    for node in rec.participants:
        if (*key, node) not in used:
            findings.append(
                _error(
                    "participant-unreceived",
                    where,
                    f"{what} lists node {node} as a participant, but no message_received "
                    f"'ok' from it in the {key[2]} exchange of that round records its reply",
                )
            )
    for failure in rec.failed:
        if failure.node not in parties:
            findings.append(
                AuditFinding(
                    FailureClass.CROSS_CHECK,
                    "warning",
                    "failure-unknown-party",
                    where,
                    f"{what} records a failure of {failure.node!r}, which names no party of "
                    "the run: it excuses no node's missing message",
                )
            )
    return findings
