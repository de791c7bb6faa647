"""A run's ledgers: the coordinator's and every node's verify, match message by message,
and the nodes' inclusion checks over gRPC pass (real Coordinator and ClientApp in process)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flwr.supercore.task_identity import TaskIdentity
from inprocess_grid import InProcessGrid, run_coordinator, small_federation

from coordinator.config import load_config_or_default
from coordinator.coordinator_ledger import coordinator_key_paths
from enterprise_node.config import load_node_config
from enterprise_node.node_ledger import node_key
from harness.federation import check_nodes_inclusion
from ledger.log import read_ledger
from ledger.signing import key_id, load_public_key
from ledger.verification import verify_ledger

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def a_run(tmp_path_factory):
    """One secure run of 4 nodes (2 model rounds + curves), with all ledgers."""
    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 7, 0, 1
    root = tmp_path_factory.mktemp("ledgers")
    config = load_config_or_default(None)
    training = config.plan.training.model_copy(update={"rounds": 2, "local_epochs": 1})
    config = config.model_copy(
        update={"plan": config.plan.model_copy(update={"training": training})}
    )
    nodes = small_federation(root / "fed", config.plan.model_spec)
    run_coordinator(InProcessGrid(nodes), config, root / "run", coordinator_dir=root / "coord")
    yield root, nodes
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = saved


def entries_of(directory: Path):
    return read_ledger(directory).entries()


def test_the_coordinator_ledger_verifies_and_tells_the_run(a_run) -> None:
    root, _nodes = a_run
    public = load_public_key(coordinator_key_paths(root / "coord")[1])
    assert verify_ledger(root / "coord" / "ledger", public, ledger_id="coordinator").ok
    kinds = [e.kind for e in entries_of(root / "coord" / "ledger")]
    assert kinds[0] == "run_started" and kinds[-2:] == ["outputs_published", "run_ended"]
    # the pre-flight, then 2 model rounds + 1 curve round, 3 exchanges each and the run's
    # one key set-up, plus a secure-sum record each
    assert kinds.count("round_recorded") == 1 + 3 * 3 + 1 + 3
    assert kinds.count("message_received") == (1 + 3 * 3 + 1) * 4


def test_every_node_message_is_recorded_at_the_coordinator_under_its_pseudonym(a_run) -> None:
    root, nodes = a_run
    received = {
        (e.body["node"], e.body["sha256"])
        for e in entries_of(root / "coord" / "ledger")
        if e.kind == "message_received"
    }
    releases = [
        e.body for e in entries_of(root / "coord" / "ledger") if e.kind == "release_accounted"
    ]
    for path in nodes:
        config = load_node_config(path)
        me = key_id(node_key(config).public_key())
        node_entries = entries_of(config.state_dir / "ledger")
        sent = {(me, e.body["sha256"]) for e in node_entries if e.kind == "message_sent"}
        assert len(sent) == 11 and sent <= received  # the pre-flight and 10 more
        spent = [e.body for e in node_entries if e.kind == "privacy_spent"]
        mine = [r for r in releases if r["node"] == me]
        assert [(s["mechanism"], s["noise_multiplier"]) for s in spent] == [
            (r["mechanism"], r["noise_multiplier"]) for r in mine
        ]
        assert verify_ledger(config.state_dir / "ledger", node_key(config).public_key()).ok


def test_nodes_prove_their_messages_included_over_grpc(a_run) -> None:
    root, nodes = a_run
    verdicts = check_nodes_inclusion(nodes, root / "coord", "inproc")
    assert all(v.startswith("ok: 11 message(s) included") for v in verdicts.values()), verdicts
    for path in nodes:
        config = load_node_config(path)
        last = entries_of(config.state_dir / "ledger")[-1]
        assert last.kind == "inclusion_checked" and last.body["ok"] is True
