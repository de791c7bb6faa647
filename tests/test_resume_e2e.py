"""A real Flower federation whose coordinator is SIGKILLed mid-run, then resumed (slow).

The federation runs through Flower's Simulation Engine (run_local_federation) in a thread;
once progress.jsonl shows round 2 started, every process the run started (SuperLink,
SuperExec, ServerApp, simulation runtime, Ray: this test's descendants, by PID) gets
SIGKILL. ``run_local_federation(..., resume=True)`` then finishes the run. The reference
is an uninterrupted run of the same plan on fresh copies of the nodes (in process, the same
Coordinator and ClientApp; tests/test_resume.py covers more crash points there).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
from inprocess_grid import InProcessGrid, run_coordinator, small_federation
from node_site import approve_plan

from auditor.cli import main as audit_main
from coordinator.cli import load_config_or_default
from coordinator.config import CoordinatorConfig
from coordinator.coordinator_ledger import coordinator_key_paths
from coordinator.federation import run_local_federation
from enterprise_node.budget import BudgetGuard
from enterprise_node.config import load_node_config
from enterprise_node.release_cache import ReleaseCache
from protocols.errors import RunFailedError
from protocols.ledger import read_ledger
from protocols.processes import descendants

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("flower_identity")]


def two_round_config() -> CoordinatorConfig:
    """The packaged plan (secure, record-level DP, curves) with 2 short rounds."""
    config = load_config_or_default(None)
    training = config.plan.training.model_copy(update={"rounds": 2, "local_epochs": 1})
    return config.model_copy(update={"plan": config.plan.model_copy(update={"training": training})})


def node_epsilon(nodes: list[Path]) -> dict[str, tuple[float, int]]:
    """Each node's lifetime epsilon and number of charges, from its own accountant."""
    out = {}
    for path in nodes:
        config = load_node_config(path)
        privacy = config.privacy
        guard = BudgetGuard(config.state_dir, epsilon_cap=privacy.epsilon, delta=privacy.delta)
        status = guard.status()
        out[config.node.name] = (status.epsilon_spent, status.releases)
    return out


def wait_for_round(run_dir: Path, round_number: int, worker: threading.Thread) -> None:
    """Return once progress.jsonl shows round ``round_number`` started."""
    deadline = time.monotonic() + 120
    progress = run_dir / "progress.jsonl"
    while time.monotonic() < deadline and worker.is_alive():
        lines = progress.read_text().splitlines() if progress.exists() else []
        for line in lines:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written
            if event.get("event") == "round_start" and event.get("round") == round_number:
                return
        time.sleep(0.05)
    raise AssertionError(f"round {round_number} never started: {progress}")


def kill_everything_we_started() -> list[int]:
    """SIGKILL every descendant of this test process (only processes the run started):
    frozen first (SIGSTOP), so that none starts another or is orphaned unseen."""
    frozen: list[int] = []
    for _ in range(3):
        fresh = [pid for pid in descendants(os.getpid()) if pid not in frozen]
        for pid in fresh:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        frozen += fresh
    for pid in frozen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return frozen


def test_a_sigkilled_run_resumes_to_the_same_epsilon_and_passes_the_audit(tmp_path) -> None:
    # Prepare: three sites, approved; fresh copies of them for the reference run
    config = two_round_config()
    nodes = small_federation(tmp_path / "fed", config.plan.model_spec, n=3)
    approve_plan(nodes, config.plan)
    shutil.copytree(tmp_path / "fed", tmp_path / "reference" / "fed")
    copies = sorted((tmp_path / "reference" / "fed").glob("*/node.yaml"))
    run_dir, flwr_home = tmp_path / "run", tmp_path / "flwr"
    failures: list[BaseException] = []

    def first_attempt() -> None:
        try:
            run_local_federation(nodes, config, run_dir, flwr_home=flwr_home)
        except BaseException as err:  # noqa: BLE001 - reported to the test below
            failures.append(err)

    # Execute: kill the whole federation once round 2 started, then resume
    worker = threading.Thread(target=first_attempt)
    worker.start()
    try:
        wait_for_round(run_dir, 2, worker)
    finally:
        killed = kill_everything_we_started()
        worker.join(timeout=120)
    request = json.loads((run_dir / "run_request.json").read_text())
    result = run_local_federation(nodes, config, run_dir, flwr_home=flwr_home, resume=True)
    run_coordinator(InProcessGrid(copies), config, tmp_path / "reference" / "run")
    # Assert: the first attempt died without a result
    assert killed and not worker.is_alive()
    assert len(failures) == 1 and isinstance(failures[0], RunFailedError)
    # the resumed run kept the run id and completed, every node's inclusion check passed
    summary = result.summary
    assert summary["status"] == "completed" and summary["run_id"] == request["run_id"]
    assert all(v.startswith("ok") for v in summary["inclusion_checks"].values())
    # each node spent exactly what the uninterrupted run's copy of it spent
    got, want = node_epsilon(nodes), node_epsilon(copies)
    assert got.keys() == want.keys()
    for name, (epsilon, charges) in got.items():
        assert charges == want[name][1] == 2 + 1  # 2 model rounds and the curve, once each
        assert epsilon == pytest.approx(want[name][0], rel=1e-9)
    # the coordinator's ledger says where the run resumed
    coordinator = tmp_path / "coordinator"
    kinds = [e.kind for e in read_ledger(coordinator / "ledger").entries()]
    assert kinds.count("run_started") == 1 and kinds.count("run_resumed") == 1
    assert kinds[-1] == "run_ended"
    # the nodes forgot the releases kept for the run
    assert all(
        ReleaseCache(load_node_config(p).state_dir).get(request["run_id"], 2, "model") is None
        for p in nodes
    )
    # fedrisk-audit verify passes on the coordinator's and every node's ledger
    argv = ["verify", str(coordinator / "ledger")]
    argv += [str(load_node_config(p).state_dir / "ledger") for p in nodes]
    argv += ["--keys", str(coordinator_key_paths(coordinator)[1])]
    argv += [str(p.parent / "secrets" / "ledger_key.pub.pem") for p in nodes]
    argv += ["--out", str(tmp_path / "audit")]
    with pytest.raises(SystemExit) as exited:
        audit_main(argv)
    assert exited.value.code in (0, None)
    assert "PASS" in (tmp_path / "audit" / "audit.md").read_text()
