"""The real deployment on loopback: broker and nodes as separate processes over TLS.

One world for the module: a broker (CA, server certificate, ledger key, four registered
node keys) and four synthetic enterprises that approved the plan with the installed app;
one enterprise's data holds planted canaries (a unique unit id and a unique covariate
value). Each party runs its own command as its own process (:mod:`harness.loopback`):

- a run through the SuperLink with a node SIGKILLed mid-round (the round completes without
  it; it rejoins with its budget and ledger intact) and the coordinator SIGKILLed mid-run,
  then ``run --resume``: no round counted twice, epsilon equal to an uninterrupted run's,
  every node's ``join`` checks inclusion of its messages once the run ends,
  ``fedrisk-audit verify`` passes, and no canary in any byte a node sent, log, ledger or
  report;
- runs submitted straight through Flower's unauthenticated Control API with another plan
  (more rounds, another feature and a smaller noise multiplier) or another app: every node
  refuses;
- an unregistered node is refused; a node that does not trust the broker's CA does not
  connect; plain HTTP is refused.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from waiting import running, wait_until

from auditor.verify import audit
from common.processes import stop_pid_tree
from common.tls import init_tls, make_auth_key
from coordinator.config import CoordinatorConfig, load_config_or_default
from coordinator.coordinator_ledger import coordinator_key_paths
from coordinator.flower_env import flower_env
from coordinator.progress_events import (
    CheckpointSaved,
    ProgressEvent,
    RoundEnd,
    RoundStart,
    SecureSumDone,
)
from coordinator.run_request import RunRequest, write_run_request
from coordinator.run_store import RunStore
from coordinator.run_summary import SUMMARY_FILE, require_summary
from coordinator.superlink import CONNECTION, SuperLinkFiles
from enterprise_node.app_guard import KEEP_SENT_ENV
from enterprise_node.budget import BudgetGuard
from enterprise_node.config import load_node_config
from enterprise_node.node_ledger import LEDGER_DIR, node_key_id
from enterprise_node.noise_plan import plan_noise
from harness.deploy_demo import make_world
from harness.loopback import (
    LoopbackDeployment,
    Party,
    inclusion_checks,
    serve_coordinator_ledger,
    verify_inclusion,
)
from ledger.log import read_ledger
from ledger.signing import public_key_path
from privacy.accounting import rdp_epsilon
from protocols.app_identity import _candidate_files, app_directory, staged_app_directory

pytestmark = pytest.mark.slow

CANARY_ID = "CANARY7F3A9C1E5B"
CANARY_VALUE = 63.1415926535
ROUNDS = 1


def _plan(rounds: int = ROUNDS) -> CoordinatorConfig:
    config = load_config_or_default(None)
    training = config.plan.training.model_copy(update={"rounds": rounds, "local_epochs": 0.5})
    plan = config.plan.model_copy(update={"training": training})
    return config.model_copy(update={"plan": plan})


def _plant_canaries(node_yaml: Path) -> None:
    config = load_node_config(node_yaml)
    frame = pd.read_csv(config.data_path, dtype={"unit_id": str})
    frame.loc[0, "unit_id"] = CANARY_ID
    frame.loc[1, "load_pct"] = CANARY_VALUE
    frame.to_csv(config.data_path, index=False, float_format="%.10g")


def _canary_patterns() -> dict[str, bytes]:
    normalised = CANARY_VALUE / 100.0  # load_pct's public bounds are [0, 100]
    return {
        "unit id": CANARY_ID.encode(),
        "value as text": b"63.14159",
        "value float64": struct.pack("<d", CANARY_VALUE),
        "value float32": struct.pack("<f", CANARY_VALUE),
        "normalised float64": struct.pack("<d", normalised),
        "normalised float32": struct.pack("<f", normalised),
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("deploy")
    config = _plan()
    manifest = make_world(out, config, enterprises=4, seed=11, units=400)
    nodes = list(manifest.node_configs)
    _plant_canaries(nodes[0])
    deployment = LoopbackDeployment(out, out / "broker", measure=False)
    for path in nodes:
        name = load_node_config(path).node.name
        deployment.env_for[name] = {KEEP_SENT_ENV: str(out / "sent" / name)}
    deployment.start_superlink()
    serve_coordinator_ledger(deployment)  # nodes check inclusion when a run ends
    joined = {load_node_config(p).node.name: deployment.join(p) for p in nodes}
    yield {
        "out": out,
        "config": config,
        "nodes": nodes,
        "deployment": deployment,
        "joined": joined,
    }
    deployment.stop_all()
    left = [p for p in deployment.parties if p.process.poll() is None]
    assert not left, f"still running: {[p.name for p in left]}"


def _events(run_dir: Path) -> list[ProgressEvent]:
    return RunStore(run_dir).read_events()


def _wait_for(predicate, what: str, timeout: float = 600.0, party: Party | None = None):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if party is not None and party.process.poll() is not None:
            raise AssertionError(
                f"{party.name} ended (code {party.process.returncode}) "
                f"before {what}: {party.log.read_text()[-2000:]}"
            )
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _run_dir(broker: Path) -> Path | None:
    runs = sorted((broker / "runs").glob("*/progress.jsonl"), key=lambda p: p.stat().st_mtime)
    return runs[-1].parent if runs else None


def test_killed_node_and_coordinator_recover_audit_passes_and_canaries_never_leave(
    world: dict,
) -> None:
    out, deployment = world["out"], world["deployment"]
    broker, nodes, config = out / "broker", world["nodes"], world["config"]
    runner = deployment.submit(out / "coordinator.yaml")
    run_dir = _wait_for(lambda: _run_dir(broker), "the run directory", party=runner)

    # a node dies once round 1's keys are shared: the round completes without it
    victim = load_node_config(nodes[3]).node.name
    _wait_for(
        lambda: [e for e in _events(run_dir) if isinstance(e, RoundEnd) and e.round == 1],
        "round 1's first exchange",
        party=runner,
    )
    deployment.kill(world["joined"][victim])
    world["joined"][victim] = deployment.join(nodes[3], name=f"{victim}-rejoined")
    _wait_for(
        lambda: [e for e in _events(run_dir) if isinstance(e, CheckpointSaved) and e.round == 1],
        "round 1 to complete without the killed node", party=runner,
    )  # fmt: skip
    round_1 = [e for e in _events(run_dir) if isinstance(e, SecureSumDone) and e.round == 1]
    assert round_1 and round_1[-1].survivors == 3, round_1

    # the coordinator dies once the curve round starts, after the model round completed
    # (before the curve's masked input stage: a curve contribution is released only once)
    _wait_for(
        lambda: [e for e in _events(run_dir) if isinstance(e, RoundStart) and e.round > ROUNDS],
        "the curve round to start", party=runner,
    )  # fmt: skip
    superlink = next(p for p in deployment.parties if p.name == "superlink")
    deployment.kill(superlink)
    runner.process.wait(timeout=120)
    assert runner.process.returncode != 0
    run_id = run_dir.name
    deployment.start_superlink()
    resumed = deployment.submit(None, "--resume", run_id, name="run-resumed")
    assert resumed.process.wait(timeout=900) == 0, resumed.log.read_text()[-3000:]

    summary = require_summary(run_dir / SUMMARY_FILE)
    assert summary.completed
    # the node that died and rejoined took part again (at the latest after the resumption);
    # the broker knows it by its pseudonym only
    assert node_key_id(load_node_config(nodes[3])) in summary.rounds[-1].ok, summary.rounds[-1]
    # every round once in the coordinator's ledger (the interrupted round is superseded)
    entries = read_ledger(broker / "ledger").entries()
    checkpoints = [
        e.body["round"]
        for e in entries
        if e.kind == "checkpoint_written" and e.body.get("run_id") == run_id
    ]
    assert checkpoints == list(range(1, ROUNDS + 1)), checkpoints

    # the nodes that never died were charged exactly an uninterrupted run's releases: each
    # model round once (a re-run round is re-sent uncharged) and the curve once
    for path in nodes[:3]:
        node = load_node_config(path)
        guard = BudgetGuard(node.state_dir, epsilon_cap=node.privacy.epsilon,
                            delta=node.privacy.delta)  # fmt: skip
        spends = [s for s in guard.spends() if s.run_id == run_id]
        assert [(s.round, s.purpose) for s in spends] == [
            *[(r, "model") for r in range(1, ROUNDS + 1)],
            (ROUNDS + 1, "curve"),
        ], node.node.name
        noise = plan_noise(config.plan, len(pd.read_csv(node.data_path)))
        model = [s for s in spends if s.purpose == "model"]
        # one charge per round, each with its round's planned noise: the planned multiplier,
        # or (a distributed share, Newton fit) the share's effective one, at least the planned
        for spend in model:
            planned = noise.model_spend(round_number=spend.round)
            assert (spend.sample_rate, spend.steps) == (planned.sample_rate, planned.steps)
            assert planned.noise_multiplier <= spend.noise_multiplier
            assert spend.noise_multiplier <= planned.noise_multiplier * 1.001
        uninterrupted = rdp_epsilon([*model, *spends[-1:]], node.privacy.delta)
        assert guard.status().epsilon_spent == pytest.approx(uninterrupted, rel=1e-12)

    # every node's `join` checked its messages are in the coordinator's ledger, served over
    # TLS, as a witness, once the run ended; each check is in its ledger with the head
    checks = inclusion_checks(nodes, run_id)
    assert sorted(checks) == sorted(load_node_config(p).node.name for p in nodes)
    for index, path in enumerate(nodes):
        check = checks[load_node_config(path).node.name]
        assert check.coordinator_head is not None
        assert check.coordinator_head.ledger_id == "coordinator"
        if index < 3:  # the nodes that never died
            assert check.ok and check.checked_seqs, check
    # ... and on demand: nothing is left to check at a node whose automatic check passed
    assert deployment.ledger_service is not None
    by_hand = verify_inclusion(deployment, nodes[0], deployment.ledger_service)
    assert by_hand.returncode == 0 and "no run left to check" in by_hand.stdout, by_hand

    # the killed node's state is intact: its ledger verifies, its budget matches the ledger
    ledgers = [broker / "ledger"]
    keys = [coordinator_key_paths(broker)[1]]
    for path in nodes:
        node = load_node_config(path)
        ledgers.append(node.state_dir / LEDGER_DIR)
        keys.append(public_key_path(node.resolve(node.node.ledger_key_file)))
    result = audit(ledgers, keys, coordinator_key=keys[0])
    assert result.verdict == "PASS", [str(f) for f in result.errors]

    # no canary in any byte a node sent, nor in logs, ledgers, reports or Flower's state
    subprocess.run([sys.executable, "-m", "coordinator.cli", "report", str(run_dir)],
                   check=True, env=deployment.env, capture_output=True)  # fmt: skip
    sent = list((out / "sent").rglob("*.bin"))
    assert len(sent) > 20, "the app guard kept no copy of what left"
    data_files = {load_node_config(p).data_path.resolve() for p in nodes}
    patterns = _canary_patterns()
    scanned = 0
    for path in out.rglob("*"):
        if not path.is_file() or path.resolve() in data_files or "quarantine" in path.parts:
            continue
        blob = path.read_bytes()
        scanned += len(blob)
        for what, pattern in patterns.items():
            assert pattern not in blob, f"canary ({what}) found in {path}"
    assert scanned > 1_000_000


def _stranger_submission(world: dict, config: CoordinatorConfig, name: str,
                         app: Path | None = None) -> subprocess.Popen:  # fmt: skip
    """Submit a run straight through Flower's Control API, as anyone who reaches it could
    (no ledger: a stranger has no coordinator key); its ServerApp writes ``name``/."""
    out, broker = world["out"], world["out"] / "broker"
    run_dir = out / "stranger" / name
    run_dir.mkdir(parents=True)
    request = RunRequest(run_id=f"stranger-{name}", run_dir=str(run_dir), config=config,
                         expected_nodes=4, node_wait_timeout_s=60.0)  # fmt: skip
    write_run_request(run_dir / "run_request.json", request)
    env = flower_env(SuperLinkFiles(broker).flwr_home)
    command = [str(Path(sys.executable).with_name("flwr")), "run",
               str(app or staged_app_directory(SuperLinkFiles(broker).flwr_home)),
               CONNECTION, "--run-config", f"run-request='{run_dir / 'run_request.json'}'",
               "--stream"]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip


def _other_plan(config: CoordinatorConfig) -> CoordinatorConfig:
    """The approved plan with more rounds, without a feature, and with less noise (each
    difference alone is refused in process: tests/harness/test_plan_approval.py)."""
    plan = config.plan
    spec, training, record = plan.model_spec, plan.training, plan.privacy.record
    changed = plan.model_copy(
        update={
            "training": training.model_copy(update={"rounds": training.rounds + 5}),
            "model_spec": spec.model_copy(
                update={"features": tuple(f for f in spec.features if f.name != "vendor_origin")}
            ),
            "privacy": plan.privacy.model_copy(
                update={"record": record.model_copy(update={"epsilon": record.epsilon * 8})}
            ),
        }
    )
    assert changed.digest != plan.digest
    return config.model_copy(update={"plan": changed})


def _copy_of_the_app_with_other_code(target: Path) -> Path:
    import shutil

    for name in _candidate_files(app_directory()):
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(app_directory() / name, target / name)
    client = target / "enterprise_node" / "client_app.py"
    client.write_text(client.read_text() + '\nSTOLEN = "a stranger\'s code would run here"\n')
    return target


def test_control_api_runs_of_other_plans_or_another_app_are_refused_by_every_node(
    world: dict, tmp_path: Path
) -> None:
    # Execute: two strangers' submissions at once, straight through the Control API
    submissions = {"other_plan": _stranger_submission(world, _other_plan(world["config"]),
                                                      "other_plan")}  # fmt: skip
    app = _copy_of_the_app_with_other_code(tmp_path / "app")
    submissions["other_app"] = _stranger_submission(world, world["config"], "other_app", app)
    summaries = {}
    try:
        for name in submissions:
            path = world["out"] / "stranger" / name / SUMMARY_FILE
            _wait_for(path.exists, f"the {name} run to end", timeout=600)
            summaries[name] = require_summary(path)
    finally:
        for process in submissions.values():
            stop_pid_tree(process.pid)
    # Assert: every node refused each of them in its first exchange; nothing was released
    for name, summary in summaries.items():
        assert summary.status == "failed", name
        first = summary.rounds[0]
        refusals = {p.node: p.reason for p in first.refused}
        assert len(refusals) == 4 and not first.ok, (name, first)
        assert all("is not approved at this node" in r for r in refusals.values()), refusals
        if name == "other_app":  # the plan is the approved one; the app is not
            assert all("with app" in r for r in refusals.values()), refusals
    for path in world["nodes"]:
        node = load_node_config(path)
        spends = BudgetGuard(node.state_dir, epsilon_cap=node.privacy.epsilon,
                             delta=node.privacy.delta).spends()  # fmt: skip
        assert not [s for s in spends if s.run_id.startswith("stranger-")]


def test_an_unregistered_node_is_refused_and_one_distrusting_the_ca_does_not_connect(
    world: dict, tmp_path: Path
) -> None:
    # Execute: both at once (each gives up after 15 s of retrying)
    deployment = world["deployment"]
    stranger = deployment.join(_stranger_node(world, tmp_path), name="unregistered",
                               max_wait_s=15)  # fmt: skip
    files, _made = init_tls(tmp_path / "other-ca", [])
    distrusting = deployment.join(world["nodes"][1], ca=files.ca_cert, name="distrusting",
                                  max_wait_s=15)  # fmt: skip
    # Assert: neither was ever activated; each exits 30 with the reason
    for party in (stranger, distrusting):
        assert party.process.wait(timeout=180) == 30, party.log.read_text()[-2000:]
        log = party.log.read_text()
        assert "Starting Flower SuperNode" in log and "SuperNode ID" not in log
        assert "refused this node or could not be reached over TLS" in log
    # the distrusting node failed at the TLS handshake, before it could ask to be activated
    assert "CERTIFICATE_VERIFY_FAILED" in distrusting.log.read_text()
    assert "CERTIFICATE_VERIFY_FAILED" not in stranger.log.read_text()


def test_plain_http_is_refused(world: dict) -> None:
    address = world["deployment"].address
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://{address}/health", timeout=5.0)
    # and the same port over HTTPS, trusting the broker's CA, answers
    ca = SuperLinkFiles(world["out"] / "broker").tls.ca_cert
    assert httpx.get(f"https://{address}/health", verify=str(ca), timeout=5.0).is_success


def _stranger_node(world: dict, tmp_path: Path) -> Path:
    """A copy of a node's folder with a fresh, unregistered authentication key."""
    import shutil

    source = world["nodes"][2].parent
    target = tmp_path / "stranger"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("state", "flwr_auth_key*"))
    config = load_node_config(target / "node.yaml")
    make_auth_key(config.resolve(config.node.auth_key_file))
    return target / "node.yaml"


def test_nothing_is_left_running_after_stop(world: dict) -> None:
    deployment = world["deployment"]
    deployment.stop_all()
    pids = [p.process.pid for p in deployment.parties]
    assert all(p.process.poll() is not None for p in deployment.parties)
    wait_until(
        lambda: not any(running(pid) for pid in pids), timeout=10, what="every party stopped"
    )
    assert np.all([not (world["out"] / "broker" / "superlink" / "superlink.json").exists()])
