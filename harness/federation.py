"""Run a federation of local enterprise folders through Flower on this machine.

Starts a private SuperLink in simulation mode (Flower's Simulation Engine, Ray) on a
free loopback port, submits the fedrisk app with ``flwr run`` (the same ServerApp and
ClientApp as a deployment), reports progress from the run's ``progress.jsonl``, and
stops exactly the processes it started (by process group) whatever happens.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import httpx

from common.atomic import atomic_write_json
from common.errors import ConfigError, RunFailedError
from common.processes import spawn_logged, stop_tree
from coordinator.checkpoint import CHECKPOINT_FILE
from coordinator.config import CoordinatorConfig
from coordinator.coordinator_ledger import coordinator_key_paths
from coordinator.flower_env import flower_env, free_port, write_connection
from coordinator.flower_run import FederationResult, ProgressFn, flower_bin, run_flwr
from coordinator.resumption import resumable_request
from coordinator.run_request import RunRequest, write_run_request
from coordinator.run_store import RunStore
from coordinator.run_summary import require_summary, write_summary
from enterprise_node.approval import unapproved_nodes
from enterprise_node.config import load_node_config
from enterprise_node.inclusion import check_inclusion
from enterprise_node.release_cache import ReleaseCache
from ledger.client import LedgerClient
from ledger.service import serve_ledger
from ledger.signing import load_public_key
from protocols.app_identity import staged_app_directory

__all__ = ["check_nodes_inclusion", "run_local_federation"]


def run_local_federation(
    node_configs: list[Path],
    config: CoordinatorConfig,
    run_dir: Path,
    *,
    flwr_home: Path,
    progress: ProgressFn | None = None,
    client_cpus: float = 1.0,
    coordinator_dir: Path | None = None,
    check_approvals: bool = True,
    resume: bool = False,
) -> FederationResult:
    """Run one federated run over ``node_configs`` and return its summary.

    The coordinator's signed ledger and key live in ``coordinator_dir`` (default: a
    ``coordinator`` folder beside the run directory, shared by runs there). After a
    completed run each node checks, over the ledger's gRPC service, that the coordinator's
    ledger includes its messages, and records the check in its own ledger.

    Raises RunFailedError if the run fails (with the ServerApp's reason when it left
    one) and ConfigError for a bad node.yaml or, with ``check_approvals``, for nodes that
    have not approved the plan (both checked before anything starts; without the check
    such nodes refuse every task of the run themselves).

    With ``resume`` the run in ``run_dir`` continues after a crash: same run id,
    configuration (``config`` must be it) and coordinator ledger, from its last completed
    round (:mod:`coordinator.resumption`). Nodes re-send, uncharged, what they released
    for the interrupted round. After a completed run, nodes forget those releases.
    """
    node_configs = [Path(p).resolve() for p in node_configs]
    for path in node_configs:
        load_node_config(path)  # fail early, naming the file
    if check_approvals:
        _require_approvals(node_configs, config)
    if len(node_configs) < config.federation.min_nodes:
        raise ConfigError(
            f"{len(node_configs)} node(s) given, but federation.min_nodes is "
            f"{config.federation.min_nodes}"
        )
    run_dir = Path(run_dir).resolve()
    store = RunStore(run_dir)
    request_path = run_dir / "run_request.json"
    if resume:
        request = resumable_request(run_dir, config, len(node_configs))
        state = Path(str(request.ledger_dir)).parent
    else:
        for stale in (store.progress_path, store.summary_path, run_dir / CHECKPOINT_FILE):
            stale.unlink(missing_ok=True)
        state = Path(coordinator_dir or run_dir.parent / "coordinator").resolve()
        key_path, _public = coordinator_key_paths(state)
        request = RunRequest(
            run_id=uuid.uuid4().hex[:12],
            run_dir=str(run_dir),
            config=config,
            expected_nodes=len(node_configs),
            ledger_dir=str(state / "ledger"),
            ledger_key=str(key_path),
        )
        write_run_request(request_path, request)
    manifest = run_dir / "node_manifest.json"
    atomic_write_json(manifest, [str(p) for p in node_configs])

    env = flower_env(Path(flwr_home).resolve())
    port = free_port()
    write_connection(Path(env["FLWR_HOME"]), "fedrisk-local", f"127.0.0.1:{port}", insecure=True)
    superlink = _start_superlink(port, run_dir, env)
    try:
        _wait_healthy(port, superlink)
        _submit_and_follow(
            request, request_path, manifest, len(node_configs), client_cpus, env, store, progress
        )
    finally:
        _stop(superlink)
    checks = check_nodes_inclusion(node_configs, state, request.run_id)
    summary = require_summary(store.summary_path).with_inclusion_checks(checks)
    write_summary(store.summary_path, summary)
    for path in node_configs:  # the run completed: no round of it will be re-run
        ReleaseCache(load_node_config(path).state_dir).forget_run(request.run_id)
    return FederationResult(run_dir=run_dir, summary=summary)


def _require_approvals(node_configs: list[Path], config: CoordinatorConfig) -> None:
    """ConfigError naming the nodes that have not approved the plan, and how to approve."""
    missing = unapproved_nodes(node_configs, config.plan)
    if missing:
        raise ConfigError(
            f"plan {config.plan.digest[:12]} is not approved at node(s) {', '.join(missing)}; "
            "they would refuse every task",
            advice="Each node's IT runs `fedrisk-node approve PLAN --config node.yaml`; if you "
            "act as every node's IT, run `fedrisk-lab federate --approve`.",
        )


def check_nodes_inclusion(
    node_configs: list[Path], coordinator_dir: Path, run_id: str
) -> dict[str, str]:
    """Serve the coordinator's ledger on loopback; each node checks its messages are in it.

    Returns each node's verdict by name ("ok: ..." or "FAILED: ..."), as in its ledger.
    """
    _private, public = coordinator_key_paths(coordinator_dir)
    server = serve_ledger(coordinator_dir / "ledger")
    verdicts = {}
    try:
        with LedgerClient(server.address, load_public_key(public)) as client:
            for path in node_configs:
                config = load_node_config(path)
                verdict = check_inclusion(config, client, run_id)
                word = "ok" if verdict.ok else "FAILED"
                verdicts[config.node.name] = f"{word}: {verdict.detail}"
    finally:
        server.stop()
    return verdicts


def _start_superlink(port: int, run_dir: Path, env: dict[str, str]) -> subprocess.Popen:
    cmd = [
        flower_bin("flower-superlink"),
        "--insecure",
        "--simulation",
        "--isolation",
        "subprocess",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--control-api-address",
        f"127.0.0.1:{free_port()}",
        "--disable-runtime-dependency-installation",
    ]
    return spawn_logged(cmd, env, run_dir / "superlink.log")


def _wait_healthy(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RunFailedError(f"the SuperLink exited early (code {process.returncode})")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RunFailedError(f"the SuperLink did not become healthy within {timeout:g} s")


def _submit_and_follow(
    request: RunRequest,
    request_path: Path,
    manifest: Path,
    n_nodes: int,
    client_cpus: float,
    env: dict[str, str],
    store: RunStore,
    progress: ProgressFn | None,
) -> None:
    run_config = f"run-request='{request_path}' node-manifest='{manifest}'"
    federation_config = f"num-supernodes={n_nodes} client-resources-num-cpus={client_cpus:g}"
    cmd = [
        flower_bin("flwr"),
        "run",
        str(staged_app_directory(Path(env["FLWR_HOME"]))),
        "fedrisk-local",
        "--run-config",
        run_config,
        "--federation-config",
        federation_config,
        "--stream",
    ]
    plan = request.config.plan
    budget = (plan.training.rounds + 2) * request.config.federation.round_timeout_s + 300
    run_flwr(cmd, env, store, progress, budget_s=budget, superlink_log=store.dir / "superlink.log")


def _stop(process: subprocess.Popen) -> None:
    """Stop ``process`` and everything it started (by PID), if it is still running."""
    stop_tree(process)
