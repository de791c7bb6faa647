"""A whole fedrisk run in one process: only Flower's TRANSPORT is stood in.

The real :class:`coordinator.server_app.Coordinator` drives the run and the real
ClientApp (:data:`enterprise_node.client_app.app`) serves every task, exchanging real
Flower :class:`Message` objects: same plan approval, same secure aggregation (masking,
key agreement, Shamir shares, dropouts), same record-level noise and accounting, same
ledgers and checkpoints as a federation. What is replaced is the Grid: instead of a
SuperLink routing messages to SuperNodes (Simulation Engine: Ray workers; deployment:
TLS over the network), :class:`InProcessGrid` hands each message to the ClientApp in this
process, one node after another. Model sweeps need it: a Simulation run pays about 20 s
of Ray start-up, and 50-node secure rounds are slow there. Real transports are tested by
tests/*/test_*_e2e.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flwr.app import Context, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity

import enterprise_node.client_app as client_app
from bench.entry import BENCH_APPROVER
from coordinator.config import CoordinatorConfig
from coordinator.coordinator_ledger import coordinator_key_paths
from coordinator.outputs import load_global_model
from coordinator.run_request import RunRequest
from coordinator.run_summary import SUMMARY_FILE, RunSummary, require_summary
from coordinator.server_app import Coordinator
from enterprise_node.approval import approve_at_nodes

__all__ = [
    "RUN_ID",
    "InProcessGrid",
    "InProcessRun",
    "flower_identity",
    "run_coordinator",
    "run_in_process",
]

#: Flower run id of every in-process run (the contexts' and the process identity's).
RUN_ID = 7
_FIRST_NODE_ID = 100


@contextmanager
def flower_identity() -> Iterator[None]:
    """Give this process a Flower task identity (run :data:`RUN_ID`), then restore it.

    flwr 1.42's ``Message(content, dst_node_id=..., message_type=...)`` reads the run,
    node and task ids of the current process; a ServerApp or ClientApp process has them.
    """
    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = RUN_ID, 0, 1
    try:
        yield
    finally:
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = saved


class InProcessGrid:
    """``get_node_ids`` and ``send_and_receive`` over in-process ClientApp calls.

    Node ``i`` (0-based) of ``node_yamls`` is Flower node ``100 + i``. ``drop`` maps a
    node id to the message types it never answers (a dropout); ``received`` keeps every
    reply the coordinator got, in order.
    """

    def __init__(self, node_yamls: Sequence[Path], *, drop: dict[int, set[str]] | None = None):
        self.node_yamls = list(node_yamls)
        self.contexts = {
            _FIRST_NODE_ID + i: Context(
                run_id=RUN_ID,
                node_id=_FIRST_NODE_ID + i,
                node_config={"node-config": str(path)},
                state=RecordDict(),
                run_config={},
            )
            for i, path in enumerate(self.node_yamls)
        }
        self.drop = drop or {}
        self.received: list[Message] = []

    def get_node_ids(self) -> list[int]:
        return list(self.contexts)

    def send_and_receive(
        self, messages: Iterable[Message], timeout: float | None = None
    ) -> list[Message]:
        replies = []
        for message in messages:
            node = message.metadata.dst_node_id
            if message.metadata.message_type in self.drop.get(node, set()):
                continue
            replies.append(client_app.app(message, self.contexts[node]))
        self.received.extend(replies)
        return replies


def run_coordinator(
    grid: InProcessGrid,
    config: CoordinatorConfig,
    run_dir: Path,
    *,
    coordinator_dir: Path | None = None,
    run_id: str = "inproc",
    approve_by: str | None = None,
    resume: bool = False,
) -> None:
    """One whole run of the real Coordinator over ``grid``, with its signed ledger in
    ``coordinator_dir`` when given (else none). With ``approve_by``, every node approves
    the plan first, by that name (acting as each node's IT); with ``resume``, run
    ``run_id`` continues from its checkpoint after a crash. Raises what the run raises."""
    if approve_by is not None:
        approve_at_nodes(grid.node_yamls, config.plan, by=approve_by)
    key = None if coordinator_dir is None else coordinator_key_paths(coordinator_dir)[0]
    request = RunRequest(
        run_id=run_id,
        run_dir=str(run_dir),
        config=config,
        expected_nodes=len(grid.contexts),
        node_wait_timeout_s=1.0,
        ledger_dir=None if coordinator_dir is None else str(coordinator_dir / "ledger"),
        ledger_key=None if key is None else str(key),
        resume=resume,
    )
    with flower_identity():
        Coordinator(grid, request).run()  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False)
class InProcessRun:
    """A completed in-process run: its directory, ``summary.json`` and global model
    (the parameter arrays in order, as :func:`load_global_model` reads them)."""

    run_dir: Path
    summary: RunSummary
    arrays: list[np.ndarray]


def run_in_process(
    node_yamls: Sequence[Path],
    config: CoordinatorConfig,
    run_dir: Path,
    *,
    coordinator_dir: Path | None = None,
    run_id: str = "inproc",
    approve_by: str | None = BENCH_APPROVER,
    drop: dict[int, set[str]] | None = None,
) -> InProcessRun:
    """Run ``config`` over the nodes ``node_yamls`` in this process and return the result.

    A failed run raises (RunFailedError and kin) after writing its failed summary, as in
    a federation; a completed one may still have had refusals or failures below quorum:
    the caller checks ``summary.refusals`` and ``summary.failures``.
    """
    run_dir = Path(run_dir)
    grid = InProcessGrid(node_yamls, drop=drop)
    run_coordinator(
        grid,
        config,
        run_dir,
        coordinator_dir=coordinator_dir,
        run_id=run_id,
        approve_by=approve_by,
    )
    summary = require_summary(run_dir / SUMMARY_FILE)
    return InProcessRun(run_dir=run_dir, summary=summary, arrays=load_global_model(run_dir))
