"""One Flower exchange of a round, as every kind of round uses it.

Send a task to nodes, sort the replies (:func:`coordinator.rounds.run_round`), move
replies that fail the round's check to its failures, and record the exchange in the
:class:`coordinator.run_log.RunLog`. A round with fewer good replies than
``federation.min_nodes`` releases nothing: :meth:`Exchanges.require_quorum` fails the run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from flwr.app import RecordDict
from flwr.serverapp import Grid

from common.errors import RunFailedError
from coordinator.progress_events import RoundStart
from coordinator.round_summary import NodeNote, reasons
from coordinator.rounds import NodeProblem, NodeReply, RoundOutcome, run_round
from coordinator.run_log import RunLog
from coordinator.run_request import RunRequest
from protocols.messages import TaskHeader

__all__ = ["Check", "Exchanges", "no_check"]

#: A reply content's problem, or None when the round can use it.
Check = Callable[[RecordDict], str | None]


def no_check(_content: RecordDict) -> str | None:
    """Every reply is usable (a secure round's stages check their payloads themselves)."""
    return None


class Exchanges:
    """Flower exchanges of one run over ``grid``, recorded in ``log``."""

    def __init__(self, grid: Grid, request: RunRequest, log: RunLog) -> None:
        self.grid, self.request, self.log = grid, request, log

    def header(self, round_number: int, kind: str) -> TaskHeader:
        """The task header of every message of a round: the run, round and plan."""
        plan_json = self.request.config.plan.canonical_json()
        return TaskHeader(
            run_id=self.request.run_id,
            round=round_number,
            kind=kind,
            plan_json=plan_json,
            plan_digest=hashlib.sha256(plan_json.encode("utf-8")).hexdigest(),
        )

    def run(
        self,
        node_ids: list[int],
        round_number: int,
        task: str,
        message_type: str,
        content_for: Callable[[int], RecordDict],
        check: Check,
    ) -> tuple[RoundOutcome, list[NodeReply]]:
        """Send ``content_for(node)`` to each node; the sorted outcome and its good replies."""
        self.log.store.event(RoundStart(round_number, task, len(node_ids)))
        outcome = run_round(
            self.grid,
            node_ids,
            round_number=round_number,
            task=task,
            message_type=message_type,
            content_for=content_for,
            timeout=self.request.config.federation.round_timeout_s,
        )
        good = _checked(outcome, check)
        self.log.record(outcome, good)
        return outcome, good

    def require_quorum(self, outcome: RoundOutcome, good: list[NodeReply]) -> None:
        """Fail the run when the round has fewer good replies than the minimum."""
        needed = self.request.config.federation.min_nodes
        if len(good) < needed:
            problems = reasons(NodeNote.of(p) for p in outcome.problems)
            raise RunFailedError(
                f"round {outcome.round} ({outcome.task}): {len(good)} good repl(ies), "
                f"fewer than the minimum of {needed}; nothing from this round is released. "
                f"Refusals and failures: {problems}"
            )


def _checked(outcome: RoundOutcome, check: Check) -> list[NodeReply]:
    """Replies that pass ``check``; the others move to the round's failures."""
    good = []
    for reply in list(outcome.ok):
        problem = check(reply.content)
        if problem is None:
            good.append(reply)
        else:
            outcome.ok.remove(reply)
            outcome.failed.append(
                NodeProblem(reply.node_id, reply.node_name, problem, reply.node_key, reply.sha256)
            )
    return good
