"""A node serves only training plans it has approved (`fedrisk-node approve`).

An unapproved plan is refused at the node before any data is read or budget charged: only
the status leaves, the node's signed ledger records the refusal, and the coordinator shows
it as a refusal per node. A plan differing from the approved one in anything (rounds, a
feature, the noise) has another digest and is refused too. The coordinator checks approvals
before starting Flower; ``federate --approve`` approves as each node's IT.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
from flwr.app import Array, ArrayRecord, Context, Message, RecordDict
from inprocess_grid import InProcessGrid, run_coordinator, small_federation
from node_site import CLEAR_DP_SGD, NodeSite, approve_plan, config_with, plan_with

import enterprise_node.client_app as client_app
from auditor.verify import audit
from common.errors import ConfigError, RunFailedError
from common.exit_codes import ExitCode
from coordinator.config import CoordinatorConfig, load_config_or_default
from coordinator.coordinator_ledger import coordinator_key_paths
from coordinator.flower_run import FederationResult
from coordinator.round_summary import NodeNote
from coordinator.run_summary import SUMMARY_FILE, RunPrivacy, RunSummary, require_summary
from coordinator.secure_round import MODULUS_BITS
from enterprise_node.approval import Approvals, not_approved_reason
from enterprise_node.budget import BudgetGuard
from enterprise_node.config import NodeConfig, load_node_config
from enterprise_node.node_ledger import node_key, node_key_id
from enterprise_node.noise_plan import plan_noise
from enterprise_node.outbox import Outbox
from harness.cli import FEDERATE_APPROVER
from harness.cli import main as lab_main
from harness.federation import run_local_federation
from ledger.log import read_ledger
from ledger.signing import public_key_path
from ledger.verification import verify_ledger
from models.hazard import init_arrays
from models.spec import NumericFeature
from protocols.messages import (
    ARRAYS_KEY,
    CURVE_TASK,
    MODEL_TASK,
    SECAGG_KEYS,
    SECAGG_SHARES,
    SECAGG_UNMASK,
    STATUS_KEY,
    TASK_KEY,
    ReplyStatus,
    TaskHeader,
)
from protocols.plan import TrainingPlan
from protocols.secure_round import SECAGG_KEY, SecureRoundSettings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("flower_identity")]


def short_config() -> CoordinatorConfig:
    """The shipped config (its training method, secure aggregation, record DP, curves)
    with one short round."""
    return config_with(
        load_config_or_default(None), plan={"training": {"rounds": 1, "local_epochs": 1}}
    )


def served_as(plan: TrainingPlan, *, secure: bool) -> TrainingPlan:
    """``plan`` as is, or served in the clear: which only local DP-SGD allows."""
    return plan if secure else plan_with(plan, CLEAR_DP_SGD)


def with_plan(config: CoordinatorConfig, plan: TrainingPlan) -> CoordinatorConfig:
    return config.model_copy(update={"plan": plan})


def more_rounds(plan: TrainingPlan) -> TrainingPlan:
    return plan_with(plan, {"training": {"rounds": plan.training.rounds + 1}})


def another_feature(plan: TrainingPlan) -> TrainingPlan:
    """The plan reading one more covariate than the approved one."""
    extra = NumericFeature(name="humidity_pct", lower=0.0, upper=100.0)
    features = [f.model_dump(mode="json") for f in (*plan.model_spec.features, extra)]
    return plan_with(plan, {"model_spec": {"features": features}})


def smaller_noise(plan: TrainingPlan) -> TrainingPlan:
    """The plan with twice the record-level epsilon: a smaller model noise multiplier."""
    changed = plan_with(plan, {"privacy": {"record": {"epsilon": 2 * plan.privacy.record.epsilon}}})
    assert (
        plan_noise(changed, 400).model_noise_multiplier
        < plan_noise(plan, 400).model_noise_multiplier
    )
    return changed


VARIANTS = {"more rounds": more_rounds, "another feature": another_feature}
VARIANTS["smaller noise multiplier"] = smaller_noise


def releases(node_yamls: list[Path]) -> list[int]:
    """How many releases each node's accountant has charged."""
    guards = [
        BudgetGuard(c.state_dir, epsilon_cap=c.privacy.epsilon, delta=c.privacy.delta)
        for c in map(load_node_config, node_yamls)
    ]
    return [guard.status().releases for guard in guards]


def refusals(config: NodeConfig) -> list[dict]:
    """Bodies of the node's TaskRefused entries, after checking its ledger verifies."""
    key = node_key(config)
    directory = config.state_dir / "ledger"
    assert verify_ledger(directory, key.public_key(), ledger_id=node_key_id(config)).ok
    return [e.body for e in read_ledger(directory).entries() if e.kind == "task_refused"]


# ---- one node, every task kind --------------------------------------------------------------

TASK_KINDS = [
    (MODEL_TASK, False),
    (CURVE_TASK, False),
    (MODEL_TASK, True),
    (CURVE_TASK, True),
    (SECAGG_KEYS, True),
    (SECAGG_SHARES, True),
    (SECAGG_UNMASK, True),
]


def task_message(plan: TrainingPlan, message_type: str) -> Message:
    """The message the coordinator sends for ``message_type`` under ``plan``."""
    text = plan.canonical_json()
    kind = "curve" if message_type == CURVE_TASK else "model"
    header = TaskHeader("run-x", 1, kind, text, hashlib.sha256(text.encode()).hexdigest())
    content = RecordDict({TASK_KEY: header.to_record()})
    if plan.secure_aggregation:
        settings = SecureRoundSettings("run-x:1", 1, 3, 2, MODULUS_BITS, 2**20, 64, None)
        content[SECAGG_KEY] = settings.to_record()
    if message_type == MODEL_TASK:
        arrays = init_arrays(plan.model_spec, seed=0)
        content[ARRAYS_KEY] = ArrayRecord({f"p{i:03d}": Array(a) for i, a in enumerate(arrays)})
    return Message(content=content, dst_node_id=5, message_type=message_type)


@pytest.mark.parametrize(("message_type", "secure"), TASK_KINDS)
def test_a_node_without_approval_refuses_every_task_kind_before_reading_data(
    tmp_path: Path,
    message_type: str,
    secure: bool,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Prepare: a site with data and no approval; reading its data would fail the test
    node = NodeSite(tmp_path)
    node.write_data(40)
    node_yaml = node.write_config(max_bad_fraction=0.01)
    plan = served_as(short_config().plan, secure=secure)

    def no_ingest(*args: object, **kwargs: object) -> None:
        raise AssertionError("the node read its data for an unapproved plan")

    monkeypatch.setattr("enterprise_node.runtime.ingest", no_ingest)
    context = Context(7, 5, {"node-config": str(node_yaml)}, RecordDict(), {})
    # Execute
    with caplog.at_level(logging.WARNING, logger="fedrisk.node"):
        reply = client_app.app(task_message(plan, message_type), context)
    # Assert: refused with the approval reason (no data in it), only the status left
    status = ReplyStatus.from_record(reply.content[STATUS_KEY])
    assert (status.status, status.reason) == ("refused", not_approved_reason(plan.digest))
    assert f"plan {plan.digest[:12]} is not approved at this node" in status.reason
    assert "run `fedrisk-node approve`" in status.reason
    assert set(reply.content.keys()) == {STATUS_KEY}
    config = load_node_config(node_yaml)
    [sent] = Outbox(config.state_dir).entries()
    assert (sent.status, sent.purpose, sent.arrays) == ("refused", "status-only", ())
    # nothing charged, the refusal signed into the ledger, the local log says so
    assert releases([node_yaml]) == [0]
    assert not (config.state_dir / "accountant.json").exists()
    assert [r["reason"] for r in refusals(config)] == [status.reason]
    assert any("not approved" in r.getMessage() for r in caplog.records)


def test_approving_the_plan_makes_the_same_task_served(tmp_path: Path) -> None:
    # Prepare: the site of the test above, now with the plan approved
    node = NodeSite(tmp_path)
    node.write_data(40)
    node_yaml = node.write_config(max_bad_fraction=0.01)
    plan = served_as(short_config().plan, secure=False)
    approve_plan([node_yaml], plan)
    context = Context(7, 5, {"node-config": str(node_yaml)}, RecordDict(), {})
    # Execute
    reply = client_app.app(task_message(plan, CURVE_TASK), context)
    # Assert
    assert ReplyStatus.from_record(reply.content[STATUS_KEY]).status == "ok"
    assert releases([node_yaml]) == [1]


# ---- a federation that approved one plan ----------------------------------------------------


@pytest.fixture(scope="module")
def approved(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], CoordinatorConfig]:
    """Four sites that approved the short plan (and nothing else)."""
    config = short_config()
    nodes = small_federation(tmp_path_factory.mktemp("approved"), config.plan.model_spec)
    approve_plan(nodes, config.plan)
    return nodes, config


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_plan_differing_from_the_approved_one_is_refused_by_every_node(
    tmp_path: Path, approved: tuple[list[Path], CoordinatorConfig], variant: str
) -> None:
    # Prepare
    nodes, config = approved
    plan = VARIANTS[variant](config.plan)
    assert plan.digest != config.plan.digest
    before = releases(nodes)
    refused_before = [len(refusals(load_node_config(n))) for n in nodes]
    # Execute: the coordinator pushes the variant to the nodes anyway
    with pytest.raises(RunFailedError) as failed:
        run_coordinator(InProcessGrid(nodes), with_plan(config, plan), tmp_path, approve=False)
    # Assert: the run's error names every node (by its pseudonym) and the reason
    names = sorted(node_key_id(load_node_config(n)) for n in nodes)
    assert f"{len(nodes)} node(s): {', '.join(names)}" in str(failed.value)
    assert not_approved_reason(plan.digest) in str(failed.value)
    assert failed.value.exit_code == ExitCode.RUN_FAILED
    # every node refused the first exchange, the pre-flight; nothing was spent or released
    first = require_summary(tmp_path / SUMMARY_FILE).rounds[0]
    assert sorted(r.node for r in first.refused) == names
    assert {r.reason for r in first.refused} == {not_approved_reason(plan.digest)}
    assert first.ok == () and releases(nodes) == before
    assert not (tmp_path / "global_model.npz").exists()
    for path, count in zip(nodes, refused_before, strict=True):
        assert len(refusals(load_node_config(path))) == count + 1


def test_the_approved_plan_is_served_by_every_node(
    tmp_path: Path, approved: tuple[list[Path], CoordinatorConfig]
) -> None:
    # Prepare
    nodes, config = approved
    before = releases(nodes)
    # Execute
    run_coordinator(InProcessGrid(nodes), config, tmp_path, approve=False)
    # Assert: completed, every node answered every exchange and was charged
    summary = require_summary(tmp_path / SUMMARY_FILE)
    assert summary.completed
    assert all(not r.problems for r in summary.rounds)
    assert all(after > was for after, was in zip(releases(nodes), before, strict=True))


def test_a_run_where_one_node_refused_completes_and_its_ledgers_pass_the_audit(
    tmp_path: Path,
) -> None:
    # Prepare: four sites, one of which (enterprise-02) has not approved the plan
    config = short_config()
    nodes = small_federation(tmp_path / "fed", config.plan.model_spec)
    approve_plan([n for n in nodes if n.parent.name != "enterprise-02"], config.plan)
    coordinator = tmp_path / "coord"
    # Execute
    run_coordinator(
        InProcessGrid(nodes), config, tmp_path / "run", coordinator_dir=coordinator, approve=False
    )
    # Assert: the pre-flight shows that node's refusal (under its pseudonym), with the
    # reason; every later exchange goes to the other three only
    summary = require_summary(tmp_path / "run" / SUMMARY_FILE)
    assert summary.completed
    refused = node_key_id(load_node_config(nodes[1]))
    refusal = NodeNote(refused, not_approved_reason(config.plan.digest))
    [check] = [r for r in summary.rounds if r.task == "preflight"]
    assert check.refused == (refusal,) and len(check.ok) == 3
    assert all(not r.refused and len(r.ok) <= 3 for r in summary.rounds if r.task != "preflight")
    # the audit of the coordinator's and all nodes' ledgers passes
    configs = [load_node_config(n) for n in nodes]
    ledgers = [coordinator / "ledger", *(c.state_dir / "ledger" for c in configs)]
    keys = [coordinator_key_paths(coordinator)[1]]
    keys += [public_key_path(c.resolve(c.node.ledger_key_file)) for c in configs]
    result = audit(ledgers, keys, coordinator_key=keys[0])
    assert result.verdict == "PASS", [f.message for f in result.findings]
    assert [len(refusals(c)) > 0 for c in configs] == [False, True, False, False]


# ---- the coordinator's side -----------------------------------------------------------------


def test_run_local_federation_names_the_nodes_that_have_not_approved_before_starting(
    tmp_path: Path,
) -> None:
    # Prepare: three sites, only the first approved the plan
    config = short_config()
    nodes = small_federation(tmp_path / "fed", config.plan.model_spec, n=3)
    approve_plan(nodes[:1], config.plan)
    run_dir = tmp_path / "run"
    # Execute / Assert: a ConfigError naming the other two and the plan, nothing started
    with pytest.raises(ConfigError) as refused:
        run_local_federation(nodes, config, run_dir, flwr_home=tmp_path / "flwr")
    message = str(refused.value)
    assert f"plan {config.plan.digest[:12]} is not approved at node(s) " in message
    assert "enterprise-02, enterprise-03" in message and "enterprise-01" not in message
    assert "fedrisk-node approve" in refused.value.advice
    assert "--approve" in refused.value.advice
    assert not run_dir.exists() and not (tmp_path / "flwr").exists()


def test_federate_approve_records_the_approval_at_every_node_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare: unapproved sites; the federation itself is replaced by a probe
    plan = load_config_or_default(None).plan
    nodes = small_federation(tmp_path / "fed", plan.model_spec, n=3)
    seen: list[bool] = []

    def probe(node_configs: list[Path], *args: object, **kwargs: object) -> FederationResult:
        seen.extend(Approvals(load_node_config(p)).is_approved(plan.digest) for p in node_configs)
        privacy = RunPrivacy("record", "rdp", "", {}, ())
        summary = RunSummary("r", "completed", plan.digest, (), privacy, 0.0)
        return FederationResult(run_dir=tmp_path / "run", summary=summary)

    monkeypatch.setattr("harness.cli.run_local_federation", probe)
    # Execute
    with pytest.raises(SystemExit) as exited:
        lab_main(["federate", *map(str, nodes), "--out", str(tmp_path / "run"), "--approve"])
    # Assert: approved at every node before the run, as that node's IT, and signed
    assert exited.value.code in (0, None)
    assert seen == [True, True, True]
    assert f"Approved plan {plan.digest[:12]}" in capsys.readouterr().out
    for path in nodes:
        config = load_node_config(path)
        entry = Approvals(config).all()[plan.digest]
        assert entry["approved_by"] == f"{FEDERATE_APPROVER} of {config.node.name}"
        [approval] = [
            e.body
            for e in read_ledger(config.state_dir / "ledger").entries()
            if e.kind == "plan_approved"
        ]
        assert approval["plan_digest"] == plan.digest
        assert approval["approved_by"] == entry["approved_by"]


# ---- through Flower -------------------------------------------------------------------------


@pytest.mark.slow
def test_through_flower_every_node_refuses_a_plan_it_did_not_approve(tmp_path: Path) -> None:
    # Prepare: three sites approved the short plan; the run submits one with more rounds
    config = short_config()
    nodes = small_federation(tmp_path / "fed", config.plan.model_spec, n=3)
    approve_plan(nodes, config.plan)
    pushed = with_plan(config, more_rounds(config.plan))
    # Execute: the coordinator's early check is skipped, as a rogue submitter would
    with pytest.raises(RunFailedError) as failed:
        run_local_federation(
            nodes, pushed, tmp_path / "run", flwr_home=tmp_path / "flwr", check_approvals=False
        )
    # Assert: every node refused, named (by pseudonym) in the error; only statuses left;
    # nothing spent
    names = sorted(node_key_id(load_node_config(n)) for n in nodes)
    assert f"3 node(s): {', '.join(names)}" in str(failed.value)
    assert not_approved_reason(pushed.plan.digest) in str(failed.value)
    assert releases(nodes) == [0, 0, 0]
    for path in nodes:
        node = load_node_config(path)
        sent = Outbox(node.state_dir).entries()
        assert sent and all(e.purpose == "status-only" and not e.arrays for e in sent)
        assert [r["reason"] for r in refusals(node)] == [not_approved_reason(pushed.plan.digest)]
