"""The deployment's parts, without starting Flower: commands, the app's identity, the app
guard's approval check, the register sync, GNU time reports. The processes themselves run
in tests/harness/test_deploy_e2e.py."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from node_site import NodeSite

from common.errors import ConfigError, StateError
from common.tls import init_tls, make_auth_key
from coordinator.flower_nodes import sync_nodes
from coordinator.node_registry import NodeRegistry
from coordinator.superlink import SuperLinkFiles, read_info, superlink_command
from enterprise_node.approval import Approvals, require_approved
from enterprise_node.config import load_node_config
from enterprise_node.supernode import (
    JoinSettings,
    supernode_command,
    supernode_env,
    write_guard_wrapper,
)
from harness.loopback import parse_time_report
from protocols.app_identity import (
    STAGED_APPS_DIR,
    _candidate_files,
    app_directory,
    installed_app_hash,
    staged_app_directory,
)


@pytest.fixture
def broker(tmp_path: Path) -> Path:
    init_tls(tmp_path / "broker" / "tls", [])
    return tmp_path / "broker"


def test_superlink_runs_with_tls_node_authentication_and_no_runtime_installs(broker: Path):
    command = superlink_command(SuperLinkFiles(broker), "127.0.0.1", 9092)
    joined = " ".join(command)
    tls = broker.resolve() / "tls"
    assert f"--ssl-ca-certfile {tls / 'ca.crt'}" in joined
    assert f"--ssl-certfile {tls / 'server.crt'} --ssl-keyfile {tls / 'server.key'}" in joined
    assert "--enable-supernode-auth" in command
    assert "--disable-runtime-dependency-installation" in command
    assert "--insecure" not in command
    assert f"--database {broker.resolve() / 'superlink' / 'state.db'}" in joined


def test_superlink_needs_the_broker_tls_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="server certificate missing; run `fedrisk-coordinator"):
        (tmp_path / "tls").mkdir()
        (tmp_path / "tls" / "ca.crt").write_text("x")
        superlink_command(SuperLinkFiles(tmp_path), "127.0.0.1", 9092)


def test_a_corrupt_superlink_record_is_named(broker: Path):
    files = SuperLinkFiles(broker)
    files.directory.mkdir(parents=True)
    files.info.write_text('{"pid": 1}')
    with pytest.raises(StateError, match="superlink.json: not a SuperLink record"):
        read_info(files)


def _node(tmp_path: Path) -> Path:
    site = NodeSite(tmp_path / "site")
    site.root.mkdir(parents=True)
    site.write_data()
    node_yaml = site.write_config()
    config = load_node_config(node_yaml)
    make_auth_key(config.resolve(config.node.auth_key_file))
    return node_yaml


def test_supernode_dials_over_tls_with_its_key_and_runs_tasks_through_the_guard(
    tmp_path: Path, broker: Path
):
    node_yaml = _node(tmp_path)
    config = load_node_config(node_yaml)
    settings = JoinSettings("broker.example.com:9092", broker / "tls" / "ca.crt")
    command = supernode_command(config, node_yaml, settings)
    joined = " ".join(command)
    assert "--superlink broker.example.com:9092" in joined
    assert f"--root-certificates {(broker / 'tls' / 'ca.crt').resolve()}" in joined
    assert f"--auth-supernode-private-key {config.resolve(config.node.auth_key_file)}" in joined
    assert f"node-config='{node_yaml.resolve()}'" in joined
    assert "--insecure" not in command and "--allow-runtime-dependency-installation" not in command
    guard_dir = write_guard_wrapper(config)
    wrapper = guard_dir / "flwr-clientapp"
    assert wrapper.stat().st_mode & 0o111
    assert "-m enterprise_node.app_guard" in wrapper.read_text()
    env = supernode_env(config, guard_dir)
    assert env["PATH"].split(":")[0] == str(guard_dir)
    assert env["FLWR_TELEMETRY_ENABLED"] == "0" and env["FLWR_DISABLE_UPDATE_CHECK"] == "1"
    assert env["FLWR_HOME"].startswith(str(config.state_dir))


@pytest.mark.parametrize(
    ("address", "message"),
    [("https://b:9092", "without a scheme"), ("broker", "expected HOST:PORT")],
)
def test_join_refuses_a_bad_address(tmp_path: Path, broker: Path, address: str, message: str):
    node_yaml = _node(tmp_path)
    settings = JoinSettings(address, broker / "tls" / "ca.crt")
    with pytest.raises(ConfigError, match=message):
        supernode_command(load_node_config(node_yaml), node_yaml, settings)


def test_join_needs_the_ca_certificate(tmp_path: Path):
    node_yaml = _node(tmp_path)
    settings = JoinSettings("127.0.0.1:9092", tmp_path / "nope.crt")
    with pytest.raises(ConfigError, match="the broker's CA certificate not found"):
        supernode_command(load_node_config(node_yaml), node_yaml, settings)


def test_the_app_hash_is_flowers_fab_hash_of_the_installed_code(tmp_path: Path):
    from flwr.cli.build import build_fab_from_disk, build_fab_from_files

    # a copy of the app (Flower's own builder walks everything under the directory)
    root = tmp_path / "app"
    for name in _candidate_files(app_directory()):
        source = app_directory() / name
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, root / name)
    fast = hashlib.sha256(build_fab_from_files(_candidate_files(root))[0]).hexdigest()
    assert fast == hashlib.sha256(build_fab_from_disk(root)).hexdigest()
    assert len(installed_app_hash()) == 64
    # a change to any app file is another app
    target = root / "enterprise_node" / "client_app.py"
    target.write_text(target.read_text() + "\n# changed\n")
    assert hashlib.sha256(build_fab_from_disk(root)).hexdigest() != fast


def test_flwr_runs_a_staged_copy_of_the_app_with_the_same_hash(tmp_path: Path):
    from flwr.cli.build import build_fab_from_disk

    staged = staged_app_directory(tmp_path / "flwr-home")
    assert staged == staged_app_directory(tmp_path / "flwr-home")  # once per code version
    assert staged.parent == tmp_path / "flwr-home" / STAGED_APPS_DIR
    assert not list(staged.rglob("__pycache__")) and not (staged / ".venv").exists()
    assert hashlib.sha256(build_fab_from_disk(staged)).hexdigest() == installed_app_hash()


def test_staging_the_app_writes_nothing_into_the_installation(tmp_path: Path, monkeypatch):
    # Prepare: an installation of the app's files that must stay as it is (read-only)
    from flwr.cli.build import build_fab_from_disk

    import protocols.app_identity

    install = tmp_path / "install"
    for name, source in _candidate_files(app_directory()).items():
        (install / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, install / name)
    before = sorted(p.relative_to(install) for p in install.rglob("*"))
    monkeypatch.setattr(protocols.app_identity, "app_directory", lambda: install)
    # Execute
    staged = staged_app_directory(tmp_path / "run-state" / "flwr-home")
    # Assert: the copy is under the run's FLWR_HOME, the installation untouched, same FAB
    assert staged.is_relative_to(tmp_path / "run-state" / "flwr-home")
    assert sorted(p.relative_to(install) for p in install.rglob("*")) == before
    assert hashlib.sha256(build_fab_from_disk(staged)).hexdigest() == installed_app_hash()


def test_a_plan_is_served_only_with_the_app_it_was_approved_with(tmp_path: Path):
    from coordinator.config import load_config_or_default

    node_yaml = _node(tmp_path)
    config = load_node_config(node_yaml)
    plan = load_config_or_default(None).plan
    Approvals(config).approve(plan, by="IT", app_hash="a" * 64)
    require_approved(config, plan, "a" * 64)
    require_approved(config, plan)  # a local federation sends no app
    with pytest.raises(ConfigError, match=f"plan {plan.digest[:12]} with app bbbbbbbbbbbb is not"):
        require_approved(config, plan, "b" * 64)
    Approvals(config).approve(plan, by="IT", app_hash="b" * 64)  # a second app, added
    require_approved(config, plan, "b" * 64)
    require_approved(config, plan, "a" * 64)


def test_sync_admits_exactly_the_registers_active_keys(tmp_path: Path, monkeypatch):
    # Prepare: three registered keys, one revoked; the SuperLink holds the revoked one and
    # a stranger's key
    state = tmp_path / "broker"
    registry = NodeRegistry(state)
    for name in ("a", "b", "c"):
        key = tmp_path / name / "key"
        make_auth_key(key)
        registry.register(Path(f"{key}.pub"), name)
    c = next(n for n in registry.nodes() if n.name == "c")
    registry.set_flower_node_id(c.fingerprint, 30)
    registry.revoke("c")
    held = {30: "registered", 99: "online"}
    calls: list[tuple[str, ...]] = []
    next_id = iter([10, 20])

    def fake_flwr(_state: Path, *args: str) -> dict:
        calls.append(args)
        if args[1] == "list":
            return {"success": True, "nodes": [
                {"node-id": str(i), "status": s, "deleted-at": "N/A"} for i, s in held.items()
            ]}  # fmt: skip
        if args[1] == "unregister":
            held.pop(int(args[2]))
            return {"success": True}
        node_id = next(next_id)
        held[node_id] = "registered"
        return {"success": True, "node-id": node_id}

    monkeypatch.setattr("coordinator.flower_nodes.flwr_json", fake_flwr)
    # Execute
    result = sync_nodes(state)
    # Assert
    assert result.unregistered == ["c"] and result.strangers == [99]
    assert sorted(result.registered) == ["a", "b"]
    assert set(held) == {10, 20}
    ids = {n.name: n.flower_node_id for n in NodeRegistry(state).nodes()}
    assert ids == {"a": 10, "b": 20, "c": 30}
    # a second sync changes nothing
    calls.clear()
    again = sync_nodes(state)
    assert (again.registered, again.unregistered, again.strangers) == ([], [], [])
    assert [c[1] for c in calls] == ["list"]


def test_a_gnu_time_report_is_read():
    text = (
        '\tCommand being timed: "fedrisk-node join"\n'
        "\tElapsed (wall clock) time (h:mm:ss or m:ss): 6:02.81\n"
        "\tMaximum resident set size (kbytes): 152704\n"
        "\tExit status: 0\n"
    )
    usage = parse_time_report(text, "node", "enterprise-01")
    assert (usage.wall_s, usage.max_rss_mb, usage.exit_status) == (362.81, 149.1, 0)
    hours = parse_time_report(text.replace("6:02.81", "1:02:03.5"), "node", "x")
    assert hours.wall_s == 3723.5
    with pytest.raises(Exception, match="no /usr/bin/time -v report"):
        parse_time_report("nothing", "node", "x")


def test_flwr_json_failures_are_errors_even_when_flwr_exits_0(tmp_path: Path, monkeypatch):
    import subprocess

    from common.errors import RunFailedError
    from coordinator import flower_nodes

    answer = {"success": False, "error-message": "Using SuperLink\n[code: 23] Public key in use."}

    def fake_run(*_a, **_k):
        return subprocess.CompletedProcess([], 0, stdout=json.dumps(answer), stderr="")

    monkeypatch.setattr(flower_nodes.subprocess, "run", fake_run)
    with pytest.raises(RunFailedError, match=r"was refused: \[code: 23\] Public key in use."):
        flower_nodes.flwr_json(tmp_path, "supernode", "register", "k.pub")
