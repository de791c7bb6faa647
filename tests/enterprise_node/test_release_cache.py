"""A node's release is idempotent per (run, round, task kind): a retry re-sends the same
noised contribution, uncharged, and says so in the ledger; unsafe retries are refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Context, Message, RecordDict
from node_site import CLEAR_DP_SGD, COORDINATOR_YAML, NodeSite, approve_plan, plan_with

from common.errors import ConfigError, StateError
from coordinator.config import load_coordinator_config
from enterprise_node.budget import BudgetGuard
from enterprise_node.client_app import curve_task, model_task
from enterprise_node.config import load_node_config
from enterprise_node.release_cache import MAX_RUNS, ReleaseCache
from enterprise_node.runtime import load_runtime
from enterprise_node.tasks import TaskResult, release_once, run_curve_task
from ledger.log import read_ledger
from models.hazard import init_arrays
from protocols.messages import (
    ARRAYS_KEY,
    CURVE_TASK,
    MODEL_TASK,
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


@pytest.fixture(scope="module")
def plan() -> TrainingPlan:
    """The shipped plan, served in the clear (secure retries: tests/coordinator/test_resume.py), so
    with local DP-SGD: its model tasks release DP-SGD updates."""
    shipped = load_coordinator_config(COORDINATOR_YAML).plan
    return plan_with(shipped, CLEAR_DP_SGD)


def site(root: Path, plan: TrainingPlan) -> Path:
    """Factory: a 40-unit site that approved ``plan``; returns its node.yaml."""
    node = NodeSite(root)
    node.write_data(40)
    node_yaml = node.write_config(max_bad_fraction=0.01)
    approve_plan([node_yaml], plan)
    return node_yaml


def header(plan: TrainingPlan, kind: str, *, run_id: str = "run-r", round_number: int = 1):
    text = plan.canonical_json()
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return TaskHeader(run_id, round_number, kind, text, digest)


def model_message(task: TaskHeader, plan: TrainingPlan, *, seed: int = 0) -> Message:
    arrays = init_arrays(plan.model_spec, seed=seed)
    record = ArrayRecord({f"param_{i:03d}": Array(a) for i, a in enumerate(arrays)})
    content = RecordDict({TASK_KEY: task.to_record(), ARRAYS_KEY: record})
    return Message(content=content, dst_node_id=5, message_type=MODEL_TASK)


def curve_message(task: TaskHeader) -> Message:
    content = RecordDict({TASK_KEY: task.to_record()})
    return Message(content=content, dst_node_id=5, message_type=CURVE_TASK)


def context(node_yaml: Path) -> Context:
    """A fresh ClientApp context, as the resumed run's Flower run would give."""
    return Context(7, 5, {"node-config": str(node_yaml)}, RecordDict(), {})


def releases(node_yaml: Path) -> int:
    config = load_node_config(node_yaml)
    privacy = config.privacy
    guard = BudgetGuard(config.state_dir, epsilon_cap=privacy.epsilon, delta=privacy.delta)
    return guard.status().releases


def ledger_kinds(node_yaml: Path) -> list[str]:
    entries = read_ledger(load_node_config(node_yaml).state_dir / "ledger").entries()
    return [e.kind for e in entries if e.kind != "plan_approved"]


def arrays_of(reply: Message) -> dict[str, np.ndarray]:
    record = reply.content.array_records[ARRAYS_KEY]
    return {name: record[name].numpy() for name in record}


def status(reply: Message) -> ReplyStatus:
    return ReplyStatus.from_record(reply.content[STATUS_KEY])


def test_a_retried_model_round_re_sends_the_same_update_uncharged(tmp_path, plan) -> None:
    # Prepare
    node_yaml = site(tmp_path, plan)
    task = header(plan, "model", round_number=3)
    # Execute: the round, then the same round again (the coordinator re-ran it)
    first = model_task(model_message(task, plan), context(node_yaml))
    again = model_task(model_message(task, plan), context(node_yaml))
    # Assert: the same noised update and receipt, charged once
    assert status(first).status == status(again).status == "ok"
    one, two = arrays_of(first), arrays_of(again)
    assert one.keys() == two.keys() and all(np.array_equal(one[k], two[k]) for k in one)
    receipts = [PrivacyReceipt.from_record(r.content[PRIVACY_KEY]) for r in (first, again)]
    assert receipts[0] == receipts[1]
    assert releases(node_yaml) == 1
    # the ledger: one spend, then a re-send naming the second reply's digest
    assert ledger_kinds(node_yaml) == [
        "privacy_spent",
        "message_sent",
        "contribution_resent",
        "message_sent",
    ]
    entries = read_ledger(load_node_config(node_yaml).state_dir / "ledger").entries()
    [resent] = [e for e in entries if e.kind == "contribution_resent"]
    assert resent.body == {
        "run_id": "run-r",
        "round": 3,
        "task": "model",
        "sha256": reply_digest(again.content)[0],
    }


def test_the_next_round_is_charged_as_usual(tmp_path, plan) -> None:
    node_yaml = site(tmp_path, plan)
    model_task(model_message(header(plan, "model", round_number=1), plan), context(node_yaml))
    model_task(model_message(header(plan, "model", round_number=2), plan), context(node_yaml))
    assert releases(node_yaml) == 2
    assert "contribution_resent" not in ledger_kinds(node_yaml)


def test_a_retry_on_another_global_model_is_refused_and_not_charged(tmp_path, plan) -> None:
    # Prepare
    node_yaml = site(tmp_path, plan)
    task = header(plan, "model")
    model_task(model_message(task, plan), context(node_yaml))
    # Execute: the same round, but another global model
    reply = model_task(model_message(task, plan, seed=1), context(node_yaml))
    # Assert: refused, nothing but the status left, still one charge
    assert status(reply).status == "refused"
    assert "served before under another plan or on another model" in status(reply).reason
    assert set(reply.content.keys()) == {STATUS_KEY}
    assert releases(node_yaml) == 1


def test_a_retried_clear_curve_round_re_sends_the_same_histograms(tmp_path, plan) -> None:
    node_yaml = site(tmp_path, plan)
    task = header(plan, "curve", round_number=4)
    first = curve_task(curve_message(task), context(node_yaml))
    again = curve_task(curve_message(task), context(node_yaml))
    one, two = arrays_of(first), arrays_of(again)
    assert all(np.array_equal(one[k], two[k]) for k in ("exits", "survivors"))
    assert releases(node_yaml) == 1
    assert ledger_kinds(node_yaml).count("contribution_resent") == 1


def test_a_release_at_most_once_is_refused_on_retry(tmp_path, plan) -> None:
    # Prepare: the rule secure curve contributions follow (resend=False)
    node_yaml = site(tmp_path, plan)
    runtime = load_runtime({"node-config": str(node_yaml)}, {})
    task = header(plan, "curve")
    calls: list[int] = []

    def compute() -> TaskResult:
        calls.append(1)
        return run_curve_task(runtime, task, plan)

    def once() -> TaskResult:
        return release_once(
            runtime, task, plan, kind="curve", basis="", resend=False, compute=compute
        )

    # Execute / Assert: the first call releases and charges, the retry is refused
    assert once().receipt is not None
    with pytest.raises(ConfigError, match="task refused: this node already released"):
        once()
    assert calls == [1] and releases(node_yaml) == 1


def test_a_re_send_whose_first_reply_never_reached_the_ledger_records_the_spend(
    tmp_path, plan
) -> None:
    # Prepare: the node charged and kept its release, then died before its ledger entry
    node_yaml = site(tmp_path, plan)
    runtime = load_runtime({"node-config": str(node_yaml)}, {})
    task = header(plan, "curve")
    release_once(
        runtime,
        task,
        plan,
        kind="curve",
        basis="",
        resend=True,
        compute=lambda: run_curve_task(runtime, task, plan),
    )
    assert ledger_kinds(node_yaml) == []
    # Execute: the retry
    reply = curve_task(curve_message(task), context(node_yaml))
    # Assert: re-sent uncharged, and the ledger gets the one spend it lacked
    assert status(reply).status == "ok" and releases(node_yaml) == 1
    assert ledger_kinds(node_yaml) == ["privacy_spent", "message_sent"]


def test_a_charge_whose_release_was_lost_is_not_charged_again(tmp_path, plan) -> None:
    # Prepare: charged, then the kept release is gone (a crash between the two writes)
    node_yaml = site(tmp_path, plan)
    task = header(plan, "curve")
    curve_task(curve_message(task), context(node_yaml))
    ReleaseCache(load_node_config(node_yaml).state_dir).forget_run("run-r")
    # Execute
    reply = curve_task(curve_message(task), context(node_yaml))
    # Assert: refused, one charge, nothing but the status left
    assert status(reply).status == "refused"
    assert "a crash lost its contribution" in status(reply).reason
    assert releases(node_yaml) == 1 and set(reply.content.keys()) == {STATUS_KEY}


def test_a_corrupt_cached_release_is_an_error_not_a_second_charge(tmp_path, plan) -> None:
    node_yaml = site(tmp_path, plan)
    task = header(plan, "curve")
    curve_task(curve_message(task), context(node_yaml))
    cache = ReleaseCache(load_node_config(node_yaml).state_dir)
    [kept] = list(cache.runs()[0].iterdir())
    kept.write_text("{")
    reply = curve_task(curve_message(task), context(node_yaml))
    assert status(reply).status == "error" and releases(node_yaml) == 1
    with pytest.raises(StateError, match="cached release unreadable"):
        cache.get("run-r", 1, "curve")


def test_releases_are_forgotten_with_their_run_and_at_most_max_runs_are_kept(
    tmp_path, plan
) -> None:
    # Prepare: one curve release in each of MAX_RUNS + 2 runs
    node_yaml = site(tmp_path, plan)
    cache = ReleaseCache(load_node_config(node_yaml).state_dir)
    for i in range(MAX_RUNS + 2):
        curve_task(curve_message(header(plan, "curve", run_id=f"run-{i}")), context(node_yaml))
    # Assert: the oldest two runs went first; forgetting a run deletes its releases
    assert len(cache.runs()) == MAX_RUNS
    assert cache.get("run-0", 1, "curve") is None and cache.get("run-1", 1, "curve") is None
    assert cache.get(f"run-{MAX_RUNS + 1}", 1, "curve") is not None
    cache.forget_run(f"run-{MAX_RUNS + 1}")
    assert cache.get(f"run-{MAX_RUNS + 1}", 1, "curve") is None
    assert len(cache.runs()) == MAX_RUNS - 1


def test_a_run_id_never_names_a_path(tmp_path) -> None:
    cache = ReleaseCache(tmp_path)
    assert cache._path("../../etc", 1, "model").parent.parent == cache.root
    with pytest.raises(ValueError, match="no release is kept for task kind"):
        cache._path("run", 1, "../x")


def test_the_node_ledger_command_shows_a_re_send(tmp_path, plan) -> None:
    from rich.console import Console

    from enterprise_node.ledger_view import show_ledger

    node_yaml = site(tmp_path, plan)
    task = header(plan, "curve")
    curve_task(curve_message(task), context(node_yaml))
    curve_task(curve_message(task), context(node_yaml))
    console = Console(record=True, width=200)
    show_ledger(load_node_config(node_yaml), console)
    assert "re-sent, not charged again" in console.export_text()
