"""The node's ClientApp handlers, called directly with real Flower messages and contexts.

What leaves the node: an ok reply carries arrays, metrics and a privacy receipt; a refusal
or error carries only a sanitised status (no data values, no traceback). The outbox records
exactly what left, and the accountant is charged before the reply exists.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Context, Message, RecordDict
from node_site import CLEAR_DP_SGD, COORDINATOR_YAML, NodeSite, approve_plan, plan_with

import enterprise_node.client_app as client_app
from coordinator.aggregation import check_update
from coordinator.config import load_coordinator_config
from enterprise_node.budget import BudgetGuard
from enterprise_node.client_app import curve_task, model_task, preflight_task
from enterprise_node.config import load_node_config
from enterprise_node.ingest import ingest
from enterprise_node.node_ledger import node_key
from enterprise_node.noise_plan import plan_noise
from enterprise_node.outbox import Outbox
from harness.defects import plant_defects
from ledger.log import read_ledger
from ledger.signing import key_id
from ledger.verification import verify_ledger
from models.hazard import init_arrays
from models.histogram import unit_histograms
from privacy.accounting import rdp_epsilon
from privacy.mechanisms import Mechanism
from protocols.messages import (
    ARRAYS_KEY,
    CURVE_TASK,
    METRICS_KEY,
    MODEL_TASK,
    PREFLIGHT_TASK,
    PRIVACY_KEY,
    STATUS_KEY,
    TASK_KEY,
    PrivacyReceipt,
    ReplyStatus,
    TaskHeader,
)
from protocols.plan import TrainingPlan
from protocols.reply_digest import reply_digest

pytestmark = pytest.mark.usefixtures("flower_identity")

NODE_ID = 5
S, J = 3, 15  # segments and intervals of configs/coordinator.yaml


def clear_plan() -> TrainingPlan:
    """The shipped plan served in the clear (secure rounds:
    tests/coordinator/test_secure_rounds.py), so with local DP-SGD: the model tasks below
    are DP-SGD tasks (Newton: test_newton_fit)."""
    shipped = load_coordinator_config(COORDINATOR_YAML).plan
    return plan_with(shipped, CLEAR_DP_SGD)


@pytest.fixture(scope="module")
def plan() -> TrainingPlan:
    """The plan every site below has approved (unapproved plans: test_plan_approval.py)."""
    return clear_plan()


def header_for(
    plan: TrainingPlan,
    kind: str,
    *,
    round_number: int = 1,
    plan_json: str | None = None,
    digest: str | None = None,
) -> TaskHeader:
    """Factory: the header the coordinator sends (plan as canonical JSON plus its digest)."""
    text = plan.canonical_json()
    return TaskHeader(
        run_id="run-test",
        round=round_number,
        kind=kind,
        plan_json=text if plan_json is None else plan_json,
        plan_digest=digest or hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )


def curve_message(header: TaskHeader) -> Message:
    content = RecordDict({TASK_KEY: header.to_record()})
    return Message(content=content, dst_node_id=NODE_ID, message_type=CURVE_TASK)


def model_message(header: TaskHeader, plan: TrainingPlan) -> Message:
    arrays = init_arrays(plan.model_spec, seed=0)
    record = ArrayRecord({f"param_{i:03d}": Array(a) for i, a in enumerate(arrays)})
    content = RecordDict({TASK_KEY: header.to_record(), ARRAYS_KEY: record})
    return Message(content=content, dst_node_id=NODE_ID, message_type=MODEL_TASK)


def context_for(node_yaml: Path) -> Context:
    """A SuperNode's context: node config names node.yaml (as `--node-config` would)."""
    return Context(
        run_id=7,
        node_id=NODE_ID,
        node_config={"node-config": str(node_yaml)},
        state=RecordDict(),
        run_config={},
    )


def site(
    root: Path, *, n_rows: int = 40, entry_age: bool = False, privacy: dict | None = None
) -> Path:
    """Factory: a site's data file and node.yaml in ``root``, the clear plan approved;
    returns node.yaml."""
    node = NodeSite(root)
    node.write_data(n_rows)
    extra = {"privacy": privacy} if privacy else None
    node_yaml = node.write_config(entry_age=entry_age, max_bad_fraction=0.01, extra=extra)
    approve_plan([node_yaml], clear_plan())
    return node_yaml


def bad_site(root: Path, plan: TrainingPlan, kinds: list[str], rate: float) -> tuple[Path, list]:
    """Factory: 200 rows with ``kinds`` of defect planted at ``rate`` (cap 1 %), the plan
    approved; (node.yaml, what was planted)."""
    node = NodeSite(root)
    data = node.write_data(200)
    node_yaml = node.write_config(max_bad_fraction=0.01)
    approve_plan([node_yaml], plan)
    return node_yaml, plant_defects(data, kinds, rate=rate, seed=3)


def status_of(reply: Message) -> ReplyStatus:
    """The reply's status without the node's key id (checked on its own below)."""
    status = ReplyStatus.from_record(reply.content[STATUS_KEY])
    return dataclasses.replace(status, node_key="")


def guard_of(node_yaml: Path) -> BudgetGuard:
    config = load_node_config(node_yaml)
    return BudgetGuard(
        config.state_dir, epsilon_cap=config.privacy.epsilon, delta=config.privacy.delta
    )


def outbox_of(node_yaml: Path) -> Outbox:
    return Outbox(load_node_config(node_yaml).state_dir)


def assert_status_only(reply: Message, node_yaml: Path, status: str) -> None:
    """Nothing but the status left: no arrays, metrics or receipt; outbox says so."""
    assert set(reply.content.keys()) == {STATUS_KEY}
    [entry] = outbox_of(node_yaml).entries()
    assert (entry.status, entry.purpose, entry.arrays) == (status, "status-only", ())
    assert entry.sha256 == reply_digest(reply.content)[0]


# ---- a good curve task --------------------------------------------------------------------


@pytest.mark.parametrize("entry_age", [False, True])
def test_good_curve_task_replies_ok_with_noised_histograms_and_receipt(
    tmp_path: Path, plan: TrainingPlan, entry_age: bool
) -> None:
    # Prepare
    node_yaml = site(tmp_path, entry_age=entry_age)
    message = curve_message(header_for(plan, "curve", round_number=11))
    # Execute
    reply = curve_task(message, context_for(node_yaml))
    # Assert: addressed back to the coordinator, status ok
    assert reply.metadata.src_node_id == NODE_ID
    assert reply.metadata.message_type == CURVE_TASK
    assert status_of(reply) == ReplyStatus("ok")  # no name: node.name never leaves the site
    # arrays of the published shapes, integer counts
    arrays = {name: reply.content[ARRAYS_KEY][name].numpy() for name in reply.content[ARRAYS_KEY]}
    expected = {"exits": (S, J, 2), "survivors": (S,)} | ({"entries": (S, J)} if entry_age else {})
    assert {name: a.shape for name, a in arrays.items()} == expected
    assert all(np.issubdtype(a.dtype, np.integer) for a in arrays.values())
    spec = plan.model_spec
    exact = unit_histograms(ingest(load_node_config(node_yaml), spec).frame, spec)
    assert not np.array_equal(arrays["exits"], exact.exits), "histogram left without noise"
    # a receipt for one discrete Gaussian release, charged to the node's accountant
    receipt = PrivacyReceipt.from_record(reply.content[PRIVACY_KEY])
    spend = plan_noise(plan, 40).curve_spend()
    assert receipt.mechanism == Mechanism.CURVE_HISTOGRAM and receipt.unit == "record"
    assert receipt.noise_multiplier == spend.noise_multiplier
    assert (receipt.sample_rate, receipt.steps, receipt.secure_rng) == (1.0, 1, True)
    assert receipt.sensitivity == pytest.approx(math.sqrt(2.0) if entry_age else 1.0)
    assert (receipt.epsilon_cap, receipt.delta) == (5.0, 1e-5)
    status = guard_of(node_yaml).status()
    assert status.releases == 1
    assert receipt.epsilon_total == pytest.approx(status.epsilon_spent)
    metrics = dict(reply.content[METRICS_KEY])
    assert metrics["noise-std"] == pytest.approx(receipt.noise_multiplier * receipt.sensitivity)
    # the outbox holds what left, under the same digest
    [entry] = outbox_of(node_yaml).entries()
    assert (entry.run_id, entry.round, entry.task) == ("run-test", 11, "curve")
    assert (entry.status, entry.purpose) == ("ok", "curve-histogram")
    assert entry.arrays == tuple(sorted(expected))
    assert (entry.sha256, entry.bytes) == reply_digest(reply.content)


def test_good_model_task_returns_an_update_the_coordinator_accepts(
    tmp_path: Path, plan: TrainingPlan
) -> None:
    # Prepare
    node_yaml = site(tmp_path)
    message = model_message(header_for(plan, "model", round_number=2), plan)
    # Execute
    reply = model_task(message, context_for(node_yaml))
    # Assert
    assert status_of(reply).status == "ok"
    assert check_update(reply.content, message.content[ARRAYS_KEY]) is None
    assert dict(reply.content[METRICS_KEY]) == {"num-examples": 40.0}
    receipt = PrivacyReceipt.from_record(reply.content[PRIVACY_KEY])
    assert receipt.mechanism == Mechanism.DP_SGD
    assert receipt.max_grad_norm == plan.privacy.record.max_grad_norm
    [entry] = outbox_of(node_yaml).entries()
    assert (entry.status, entry.purpose, entry.round) == ("ok", "model-update", 2)
    assert entry.arrays == tuple(sorted(message.content[ARRAYS_KEY]))


# ---- refusals and errors ------------------------------------------------------------------


def test_cap_too_small_refuses_naming_the_cap_and_sends_nothing(
    tmp_path: Path, plan: TrainingPlan
) -> None:
    # Prepare: the curve release alone costs ~1.0 at delta 1e-6; the cap is 0.25
    node_yaml = site(tmp_path, privacy={"epsilon": 0.25, "delta": 1e-5})
    # Execute
    reply = curve_task(curve_message(header_for(plan, "curve")), context_for(node_yaml))
    # Assert
    status = status_of(reply)
    assert status.status == "refused" and status.node_name == ""
    assert "cap of 0.25" in status.reason
    assert_status_only(reply, node_yaml, "refused")
    assert guard_of(node_yaml).status().releases == 0


def test_model_task_over_the_cap_is_refused_before_training(
    tmp_path: Path, plan: TrainingPlan, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    node_yaml = site(tmp_path, privacy={"epsilon": 0.01, "delta": 1e-5})

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained although the task was over the cap")

    monkeypatch.setattr("enterprise_node.training.train_dp", no_training)
    # Execute
    reply = model_task(model_message(header_for(plan, "model"), plan), context_for(node_yaml))
    # Assert
    assert status_of(reply).status == "refused"
    assert "cap of 0.01" in status_of(reply).reason
    assert_status_only(reply, node_yaml, "refused")


def test_data_refused_by_validation_replies_refused_without_data_values(
    tmp_path: Path, plan: TrainingPlan
) -> None:
    # Prepare: 200 rows, 3 % of them bad (cap 1 %)
    node_yaml, planted = bad_site(
        tmp_path, plan, ["negative_duration", "unknown_segment", "failed_not_binary"], 0.01
    )
    assert len(planted) == 6
    # Execute
    reply = curve_task(curve_message(header_for(plan, "curve")), context_for(node_yaml))
    # Assert: refused, and the reason holds no value, id, row number or path
    status = status_of(reply)
    assert status.status == "refused"
    assert "refused by validation" in status.reason
    assert not re.search(r"\d", status.reason)
    assert "UNIT-" not in status.reason and "commercial_space" not in status.reason
    assert str(tmp_path) not in status.reason
    assert_status_only(reply, node_yaml, "refused")
    assert guard_of(node_yaml).status().releases == 0


def test_unexpected_exception_becomes_an_error_reply_without_traceback(
    tmp_path: Path,
    plan: TrainingPlan,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Prepare: a failure deep in the task whose message carries data values
    node_yaml = site(tmp_path)

    def leaky(*args: object, **kwargs: object) -> None:
        raise ValueError("segment: values not in the model spec: ['fab-7 line 3 (UNIT-0042)']")

    monkeypatch.setattr("enterprise_node.tasks.unit_histograms", leaky)
    # Execute
    with caplog.at_level(logging.ERROR, logger="fedrisk.node"):
        reply = curve_task(curve_message(header_for(plan, "curve")), context_for(node_yaml))
    # Assert: a generic reason naming only the exception type
    status = status_of(reply)
    assert status.status == "error" and status.node_name == ""
    assert status.reason == "internal error at the node: ValueError (details in its log)"
    assert "Traceback" not in status.reason and "UNIT-0042" not in status.reason
    assert_status_only(reply, node_yaml, "error")
    # the details stay in the node's own log
    assert any("UNIT-0042" in (r.exc_text or "") for r in caplog.records)


def test_corrupt_accountant_is_an_error_not_a_reset(tmp_path: Path, plan: TrainingPlan) -> None:
    # Prepare
    node_yaml = site(tmp_path)
    state = load_node_config(node_yaml).state_dir
    state.mkdir(parents=True, exist_ok=True)  # the approval already made it
    (state / "accountant.json").write_text("{not json", encoding="utf-8")
    # Execute
    reply = curve_task(curve_message(header_for(plan, "curve")), context_for(node_yaml))
    # Assert
    status = status_of(reply)
    assert status.status == "error"
    assert status.reason == "StateError at the node (details in the node's log)"
    assert_status_only(reply, node_yaml, "error")


def test_node_without_node_yaml_replies_error(tmp_path: Path, plan: TrainingPlan) -> None:
    # Prepare
    context = Context(run_id=7, node_id=NODE_ID, node_config={}, state=RecordDict(), run_config={})
    # Execute
    reply = curve_task(curve_message(header_for(plan, "curve")), context)
    # Assert
    assert status_of(reply) == ReplyStatus(
        "error", reason="ConfigError at the node (details in the node's log)"
    )
    assert set(reply.content.keys()) == {STATUS_KEY}


@pytest.mark.parametrize("task", ["curve", "model"])
def test_a_secure_plan_is_never_served_in_the_clear(
    tmp_path: Path, plan: TrainingPlan, task: str
) -> None:
    # Prepare: the plan promises secure aggregation; the message carries no secagg settings
    node_yaml = site(tmp_path)
    secure_plan = plan_with(plan, {"secure_aggregation": True})
    approve_plan([node_yaml], secure_plan)
    header = header_for(secure_plan, task)
    # Execute
    if task == "curve":
        reply = curve_task(curve_message(header), context_for(node_yaml))
    else:
        reply = model_task(model_message(header, secure_plan), context_for(node_yaml))
    # Assert: refused, nothing released, nothing spent
    status = status_of(reply)
    assert status.status == "refused"
    assert "requires secure aggregation" in status.reason
    assert_status_only(reply, node_yaml, "refused")
    assert guard_of(node_yaml).status().releases == 0


def test_tampered_plan_is_refused(tmp_path: Path, plan: TrainingPlan) -> None:
    # Prepare: the plan text raises the run's epsilon but keeps the approved digest
    node_yaml = site(tmp_path)
    honest = header_for(plan, "curve")
    tampered_json = honest.plan_json.replace('"epsilon":2.0', '"epsilon":20.0')
    assert tampered_json != honest.plan_json
    header = header_for(plan, "curve", plan_json=tampered_json, digest=honest.plan_digest)
    # Execute
    reply = curve_task(curve_message(header), context_for(node_yaml))
    # Assert
    status = status_of(reply)
    assert status.status == "refused"
    assert "does not match its digest" in status.reason
    assert_status_only(reply, node_yaml, "refused")
    assert guard_of(node_yaml).status().releases == 0


def test_plan_not_in_canonical_form_is_refused(tmp_path: Path, plan: TrainingPlan) -> None:
    # Prepare: same plan, pretty-printed, with a digest that matches the pretty text
    node_yaml = site(tmp_path)
    pretty = json.dumps(json.loads(plan.canonical_json()), indent=2)
    header = header_for(
        plan, "curve", plan_json=pretty, digest=hashlib.sha256(pretty.encode("utf-8")).hexdigest()
    )
    # Execute
    reply = curve_task(curve_message(header), context_for(node_yaml))
    # Assert
    assert status_of(reply).status == "refused"
    assert "canonical form" in status_of(reply).reason


# ---- the accountant is charged before the reply, and persists -----------------------------


def test_spend_is_recorded_before_the_reply_and_persists(
    tmp_path: Path, plan: TrainingPlan, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: a cap that admits exactly one curve release, not two
    spend = plan_noise(plan, 40).curve_spend()
    one, two = rdp_epsilon([spend], 1e-5), rdp_epsilon([spend, spend], 1e-5)
    node_yaml = site(tmp_path, privacy={"epsilon": round((one + two) / 2, 6), "delta": 1e-5})
    seen_at_reply: list[int] = []
    original = client_app._reply_content

    def spy(result, status):  # noqa: ANN001, ANN202 - wraps the private builder
        seen_at_reply.append(guard_of(node_yaml).status().releases)
        return original(result, status)

    monkeypatch.setattr(client_app, "_reply_content", spy)
    # Execute: two tasks (rounds 1 and 2: a retry of one round would be a re-send), each
    # with a fresh context (as a restarted ClientApp would have)
    first = curve_task(curve_message(header_for(plan, "curve")), context_for(node_yaml))
    second = curve_task(
        curve_message(header_for(plan, "curve", round_number=2)), context_for(node_yaml)
    )
    # Assert: charged on disk before the first reply was built
    assert status_of(first).status == "ok"
    assert seen_at_reply[0] == 1
    receipt = PrivacyReceipt.from_record(first.content[PRIVACY_KEY])
    assert receipt.epsilon_total == pytest.approx(one)
    # the second task saw the first spend and was refused
    assert status_of(second).status == "refused"
    assert f"from {one:.3f}" in status_of(second).reason
    assert guard_of(node_yaml).status().releases == 1
    assert [e.status for e in outbox_of(node_yaml).entries()] == ["ok", "refused"]


def test_second_release_is_composed_with_the_first(tmp_path: Path, plan: TrainingPlan) -> None:
    # Prepare
    node_yaml = site(tmp_path)
    message = curve_message(header_for(plan, "curve"))
    # Execute: a second release in another round (the same round again is a re-send)
    first = curve_task(message, context_for(node_yaml))
    second = curve_task(
        curve_message(header_for(plan, "curve", round_number=2)), context_for(node_yaml)
    )
    # Assert
    totals = [
        PrivacyReceipt.from_record(r.content[PRIVACY_KEY]).epsilon_total for r in (first, second)
    ]
    spend = plan_noise(plan, 40).curve_spend()
    assert totals[0] == pytest.approx(rdp_epsilon([spend], 1e-5))
    assert totals[1] == pytest.approx(rdp_epsilon([spend, spend], 1e-5))
    assert totals[1] > totals[0]
    assert guard_of(node_yaml).status().releases == 2


def test_a_receipt_states_the_runs_epsilon_at_the_plans_delta(
    tmp_path: Path, plan: TrainingPlan
) -> None:
    # Prepare: a node that spent in an earlier run
    node_yaml = site(tmp_path)
    earlier = replace(header_for(plan, "curve"), run_id="run-earlier")
    curve_task(curve_message(earlier), context_for(node_yaml))
    # Execute: two releases of this run
    replies = [
        curve_task(curve_message(header_for(plan, "curve", round_number=r)), context_for(node_yaml))
        for r in (1, 2)
    ]
    # Assert: the run's figure composes this run's releases only, at the plan's delta; the
    # lifetime figure all three, at the node's cap delta
    spend = plan_noise(plan, 40).curve_spend()
    plan_delta = plan.privacy.record.delta
    last = PrivacyReceipt.from_record(replies[-1].content[PRIVACY_KEY])
    assert last.delta_run == plan_delta != last.delta
    assert last.epsilon_run == pytest.approx(rdp_epsilon([spend, spend], plan_delta))
    assert last.epsilon_total == pytest.approx(rdp_epsilon([spend] * 3, 1e-5))


def test_every_reply_is_signed_into_the_node_ledger_under_its_pseudonymous_key(
    tmp_path: Path, plan: TrainingPlan
) -> None:
    # Prepare
    node_yaml = site(tmp_path)
    # Execute: one good curve task, one refused (tampered) task
    good = curve_task(curve_message(header_for(plan, "curve")), context_for(node_yaml))
    bad_header = header_for(plan, "curve", digest="0" * 64)
    curve_task(curve_message(bad_header), context_for(node_yaml))
    # Assert: the reply names the node by its ledger key id; the ledger verifies and holds
    # the approval, the spend, the message (same digest as the outbox) and the refusal
    config = load_node_config(node_yaml)
    key = node_key(config)
    node_id = ReplyStatus.from_record(good.content[STATUS_KEY]).node_key
    assert node_id == key_id(key.public_key())
    directory = config.state_dir / "ledger"
    assert verify_ledger(directory, key.public_key(), ledger_id=node_id).ok
    kinds = [e.kind for e in read_ledger(directory).entries()]
    assert kinds == [
        "plan_approved",
        "privacy_spent",
        "message_sent",
        "task_refused",
        "message_sent",
    ]
    sent = [e.body["sha256"] for e in read_ledger(directory).entries() if e.kind == "message_sent"]
    assert sent == [entry.sha256 for entry in outbox_of(node_yaml).entries()]


# ---- the pre-flight check ---------------------------------------------------------------


def preflight(plan: TrainingPlan, node_yaml: Path) -> Message:
    """The node's reply to the run's pre-flight of ``plan``."""
    header = header_for(plan, "preflight", round_number=0)
    content = RecordDict({TASK_KEY: header.to_record()})
    message = Message(content=content, dst_node_id=NODE_ID, message_type=PREFLIGHT_TASK)
    return preflight_task(message, context_for(node_yaml))


def test_preflight_answers_ok_with_the_status_only_and_charges_nothing(
    tmp_path: Path, plan: TrainingPlan
) -> None:
    node_yaml = site(tmp_path)
    reply = preflight(plan, node_yaml)
    assert status_of(reply) == ReplyStatus("ok")
    # an ok reply's records are there, empty: nothing about the data left
    assert len(reply.content[ARRAYS_KEY]) == 0 and len(reply.content[METRICS_KEY]) == 0
    [entry] = outbox_of(node_yaml).entries()
    assert (entry.status, entry.purpose, entry.arrays) == ("ok", "preflight", ())
    assert guard_of(node_yaml).status().releases == 0


def test_preflight_refuses_a_run_whose_whole_spend_would_pass_the_cap(
    tmp_path: Path, plan: TrainingPlan
) -> None:
    # Prepare: a cap that one release fits under, the whole run (3 rounds + curves) not
    runtime_cap = 0.8 * plan.privacy.record.epsilon
    node_yaml = site(tmp_path, privacy={"epsilon": runtime_cap, "delta": 1e-5})
    # Execute
    reply = preflight(plan, node_yaml)
    # Assert: refused naming the cap, before anything was charged
    status = status_of(reply)
    assert status.status == "refused" and f"cap of {runtime_cap:g}" in status.reason
    assert_status_only(reply, node_yaml, "refused")
    assert guard_of(node_yaml).status().releases == 0


def test_preflight_refuses_data_that_validation_refuses_without_data_values(
    tmp_path: Path, plan: TrainingPlan
) -> None:
    node_yaml, _ = bad_site(tmp_path, plan, ["negative_duration", "unknown_segment"], 0.02)
    reply = preflight(plan, node_yaml)
    status = status_of(reply)
    assert status.status == "refused" and "refused by validation" in status.reason
    assert not re.search(r"\d", status.reason)
    assert_status_only(reply, node_yaml, "refused")


def test_preflight_refuses_an_unapproved_plan(tmp_path: Path, plan: TrainingPlan) -> None:
    node_yaml = site(tmp_path)
    other = plan_with(plan, {"training": {"rounds": plan.training.rounds + 1}})
    reply = preflight(other, node_yaml)
    status = status_of(reply)
    assert status.status == "refused" and "not approved" in status.reason
