"""A stand-in for Flower's Grid that hands each message to fedrisk's ClientApp in this
process: fast tests of the coordinator's round logic and the nodes' secure tasks together.

It is a test double for the transport only; the real federation (SuperLink, SuperNodes,
Simulation Engine) is exercised by the slow tests/test_*_e2e.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml
from flwr.app import Context, Message, RecordDict
from node_site import approve_plan

import enterprise_node.client_app as client_app
from coordinator.config import CoordinatorConfig
from coordinator.coordinator_ledger import coordinator_key_paths
from coordinator.run_request import RunRequest
from coordinator.server_app import Coordinator
from models.synthetic import SyntheticConfig, generate_federation
from protocols.model_spec import ModelSpec


class InProcessGrid:
    """``get_node_ids`` and ``send_and_receive`` over in-process ClientApp calls.

    ``drop`` maps a node id to the message types it never answers (a dropout);
    ``received`` keeps every reply the coordinator got, in order.
    """

    def __init__(self, node_yamls: list[Path], *, drop: dict[int, set[str]] | None = None):
        self.node_yamls = list(node_yamls)
        self.contexts = {
            100 + i: Context(
                run_id=7,
                node_id=100 + i,
                node_config={"node-config": str(path)},
                state=RecordDict(),
                run_config={},
            )
            for i, path in enumerate(node_yamls)
        }
        self.drop = drop or {}
        self.received: list[Message] = []

    def get_node_ids(self) -> list[int]:
        return list(self.contexts)

    def send_and_receive(self, messages: Iterable[Message], timeout: float | None = None):
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
    approve: bool = True,
    resume: bool = False,
) -> None:
    """One whole run of the real Coordinator over ``grid`` (with its signed ledger in
    ``coordinator_dir`` when given); with ``approve``, every node approves the plan first;
    with ``resume``, run ``run_id`` continues from its checkpoint after a crash."""
    if approve:
        approve_plan(grid.node_yamls, config.plan)
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
    Coordinator(grid, request).run()  # type: ignore[arg-type]


def small_federation(
    root: Path,
    spec: ModelSpec,
    *,
    n: int = 4,
    seed: int = 3,
    non_private: bool = False,
    delayed_entry: bool = False,
) -> list[Path]:
    """``n`` synthetic sites of 300-600 units; their node.yaml paths."""
    manifest = generate_federation(
        root,
        spec,
        SyntheticConfig(
            n_enterprises=n,
            seed=seed,
            min_units=300,
            max_units=600,
            holdout_units=10,
            delayed_entry=delayed_entry,
        ),
    )
    if non_private:
        for path in manifest.node_configs:
            data = yaml.safe_load(path.read_text())
            data["privacy"]["allow_non_private"] = True
            path.write_text(yaml.safe_dump(data, sort_keys=False))
    return list(manifest.node_configs)
