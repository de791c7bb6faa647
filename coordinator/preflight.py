"""The run's pre-flight exchange: which nodes can serve the whole run, asked before any
node computes or is charged anything (:mod:`enterprise_node.preflight` answers it).

Round 0, task "preflight": each node answers ok or refused with its reason (plan not
approved, data refused, budget short for the whole run, ...). The run goes on with the
nodes that answered ok; with fewer than ``federation.min_nodes`` of them it fails here,
so no site is charged for a run that could not release anything.
"""

from __future__ import annotations

from flwr.app import RecordDict

from coordinator.exchanges import Exchanges, no_check
from protocols.messages import PREFLIGHT_TASK, TASK_KEY

__all__ = ["PREFLIGHT_ROUND", "PREFLIGHT", "preflight"]

#: The round number and task of the pre-flight exchange (before model round 1).
PREFLIGHT_ROUND = 0
PREFLIGHT = "preflight"


def preflight(exchanges: Exchanges, node_ids: list[int]) -> list[int]:
    """The nodes among ``node_ids`` that can serve the run; fails the run (RunFailedError)
    when fewer than the minimum can."""
    content = RecordDict({TASK_KEY: exchanges.header(PREFLIGHT_ROUND, PREFLIGHT).to_record()})
    outcome, good = exchanges.run(
        node_ids, PREFLIGHT_ROUND, PREFLIGHT, PREFLIGHT_TASK, lambda _node: content, no_check
    )
    exchanges.require_quorum(outcome, good)
    return sorted(reply.node_id for reply in good)
