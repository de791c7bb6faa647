"""``fedrisk-coordinator run STATE PLAN``: submit a run to the broker's running SuperLink.

The run is the same ServerApp as a local federation, submitted with ``flwr run`` over TLS
to the SuperLink that ``start`` runs; the nodes are whoever ``join``\\ ed with a
registered key. Before submitting, the SuperLink's admitted keys are brought in step with
the register (a key admitted through Flower's open Control API by someone else is removed
and reported). The run directory is ``STATE/runs/<run_id>/``; ``--resume RUN_ID``
continues a run whose coordinator died, from its last completed round.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from pathlib import Path

from common.errors import ConfigError, StateError
from coordinator.config import CoordinatorConfig
from coordinator.coordinator_ledger import coordinator_key_paths
from coordinator.flower_env import flower_env
from coordinator.flower_nodes import NodeSync, sync_nodes
from coordinator.flower_run import FederationResult, ProgressFn, run_flwr
from coordinator.node_registry import NodeRegistry
from coordinator.resumption import resumable_request
from coordinator.run_request import RunRequest, read_run_request, write_run_request
from coordinator.run_store import RunStore
from coordinator.run_summary import require_summary
from coordinator.superlink import CONNECTION, SuperLinkFiles, running_info
from protocols.app_identity import staged_app_directory

__all__ = ["runs_dir", "submit_run"]


def runs_dir(state: Path) -> Path:
    return Path(state).resolve() / "runs"


def _new_request(
    state: Path, config: CoordinatorConfig, expected_nodes: int, node_wait_s: float
) -> RunRequest:
    key, _public = coordinator_key_paths(state)
    if not key.exists():
        raise ConfigError(f"{key}: no ledger key; run `fedrisk-coordinator init {state}`")
    run_id = uuid.uuid4().hex[:12]
    return RunRequest(
        run_id=run_id,
        run_dir=str(runs_dir(state) / run_id),
        config=config,
        expected_nodes=expected_nodes,
        node_wait_timeout_s=node_wait_s,
        ledger_dir=str(Path(state).resolve() / "ledger"),
        ledger_key=str(key),
    )


def _resumed_request(state: Path, run_id: str, expected_nodes: int | None) -> RunRequest:
    """Run ``run_id``'s own request, marked for resumption (:mod:`coordinator.resumption`)."""
    run_dir = runs_dir(state) / run_id
    path = run_dir / "run_request.json"
    if not path.exists():
        raise ConfigError(f"{path}: no run {run_id!r} to resume under {state}")
    previous = read_run_request(path)
    return resumable_request(run_dir, previous.config, expected_nodes or previous.expected_nodes)


def submit_run(
    state: Path,
    config: CoordinatorConfig | None,
    *,
    expected_nodes: int | None = None,
    node_wait_s: float = 120.0,
    resume: str | None = None,
    progress: ProgressFn | None = None,
    on_sync: Callable[[NodeSync], None] | None = None,
) -> FederationResult:
    """Submit a run (or resume run ``resume``) and follow it to the end."""
    state = Path(state).resolve()
    files = SuperLinkFiles(state)
    if running_info(files) is None:
        raise StateError(
            f"no SuperLink is running for {state}",
            advice=f"Start it with `fedrisk-coordinator start {state}`.",
        )
    sync = sync_nodes(state)
    if on_sync is not None:
        on_sync(sync)
    if resume is not None:
        request = _resumed_request(state, resume, expected_nodes)
    else:
        if config is None:
            raise ConfigError("a run needs a plan (coordinator.yaml)")
        active = len(NodeRegistry(state).active())
        expected = expected_nodes or active
        if expected < 1:
            raise ConfigError(
                f"no node is registered in {state}",
                advice="Register each enterprise's key with `fedrisk-coordinator register-node`.",
            )
        request = _new_request(state, config, expected, node_wait_s)
    store = RunStore(Path(request.run_dir))
    request_path = store.dir / "run_request.json"
    write_run_request(request_path, request)
    _submit(request, request_path, files, store, progress)
    return FederationResult(run_dir=store.dir, summary=require_summary(store.summary_path))


def _submit(
    request: RunRequest,
    request_path: Path,
    files: SuperLinkFiles,
    store: RunStore,
    progress: ProgressFn | None,
) -> None:
    command = [
        str(Path(sys.executable).with_name("flwr")),
        "run",
        str(staged_app_directory(files.flwr_home)),
        CONNECTION,
        "--run-config",
        f"run-request='{request_path}'",
        "--stream",
    ]
    plan, federation = request.config.plan, request.config.federation
    budget = (plan.training.rounds + 2) * federation.round_timeout_s + 300
    env = flower_env(files.flwr_home)
    run_flwr(
        command,
        env,
        store,
        progress,
        budget_s=budget + request.node_wait_timeout_s,
        superlink_log=files.log,
    )
