"""Secure model and curve rounds: the real Coordinator and ClientApp, in one process.

The transport is tests/support/inprocess_grid.py; the cryptography, noise, accounting and round
logic are the product's own. Real Flower runs of the same paths: tests/*/test_*_e2e.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import dp_accounting
import numpy as np
import pytest
import yaml
from flwr.app import Array, ArrayRecord, Context, Message, RecordDict
from inprocess_grid import InProcessGrid, run_coordinator, small_federation
from node_site import approve_plan, config_with, plan_with
from pydantic import BaseModel
from signed_ledgers import resign_ledger

import enterprise_node.client_app as client_app
from auditor.verify import audit
from common.errors import RunFailedError
from coordinator.config import CoordinatorConfig, EnterpriseBudget, load_config_or_default
from coordinator.coordinator_ledger import coordinator_key_paths
from coordinator.outputs import load_global_model
from coordinator.progress_events import EnterpriseBudgetStop, ProgressEvent, SecureSumDone
from coordinator.run_store import RunStore
from coordinator.run_summary import SUMMARY_FILE, RunSummary, require_summary
from enterprise_node.config import load_node_config
from enterprise_node.node_ledger import node_key_id
from enterprise_node.noise_plan import plan_noise
from harness.evaluation import load_curves, pooled_curves, pooled_frame
from ledger.log import read_ledger
from ledger.records import ReleaseAccounted, record_from_entry
from models.hazard import init_arrays
from privacy.mechanisms import Mechanism
from protocols.messages import (
    ARRAYS_KEY,
    CURVE_TASK,
    MODEL_TASK,
    PRIVACY_KEY,
    TASK_KEY,
    PrivacyReceipt,
    TaskHeader,
)
from protocols.plan import EnterprisePrivacy, TrainingPlan
from protocols.secure_update import enterprise_share, flatten

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("flower_identity")]


def secure_config(
    *,
    rounds: int = 1,
    record_dp: bool = False,
    enterprise: EnterprisePrivacy | None = None,
    cap: float | None = None,
    method: str | None = None,
    **plan_updates,
) -> CoordinatorConfig:
    """The packaged config, secure, with short training (DP-SGD: momentum 0, so one
    round = mean). ``method`` pins training.method (None: the packaged one, Newton); the
    whole config is re-validated, so e.g. enterprise DP without ``dp_sgd`` fails here."""
    training: dict = {"rounds": rounds, "local_epochs": 1, "server_momentum": 0.0}
    if method is not None:
        training["method"] = method
    plan = {
        "training": training,
        "privacy": {
            "record": {"enabled": record_dp},
            "enterprise": None if enterprise is None else enterprise.model_dump(mode="json"),
        },
        "secure_aggregation": True,
        **{
            key: value.model_dump(mode="json") if isinstance(value, BaseModel) else value
            for key, value in plan_updates.items()
        },
    }
    budget = None if cap is None else EnterpriseBudget(epsilon_cap=cap, delta=1e-5)
    return config_with(
        load_config_or_default(None),
        plan=plan,
        enterprise_budget=None if budget is None else budget.model_dump(mode="json"),
    )


def events_of(run_dir: Path) -> list[ProgressEvent]:
    return RunStore(run_dir).read_events()


def summary_of(run_dir: Path) -> RunSummary:
    return require_summary(run_dir / SUMMARY_FILE)


def clear_updates(node_yamls: list[Path], plan: TrainingPlan, tmp: Path) -> list[np.ndarray]:
    """Each node's update (local - global) from the model task served in the clear
    (``plan``: a DP-SGD plan, the only kind that may be)."""
    clear_plan = plan_with(plan, {"secure_aggregation": False})
    approve_plan(node_yamls, clear_plan)
    text = clear_plan.canonical_json()
    header = TaskHeader("clear", 1, "model", text, clear_plan.digest)
    initial = init_arrays(plan.model_spec, seed=plan.training.seed)
    record = ArrayRecord({f"param_{i:03d}": Array(a) for i, a in enumerate(initial)})
    updates = []
    for i, path in enumerate(node_yamls):
        context = Context(7, 900 + i, {"node-config": str(path)}, RecordDict(), {})
        message = Message(
            RecordDict({TASK_KEY: header.to_record(), ARRAYS_KEY: record}),
            dst_node_id=900 + i,
            message_type=MODEL_TASK,
        )
        reply = client_app.app(message, context)
        arrays = reply.content.array_records[ARRAYS_KEY]
        local = [arrays[name].numpy() for name in sorted(arrays)]
        updates.append(flatten(local) - flatten(initial))
    return updates


# ---- model rounds -------------------------------------------------------------------


def test_secure_model_round_gives_the_mean_update_of_the_survivors(tmp_path: Path) -> None:
    # Prepare: 4 nodes (DP off so the sum can be checked); node 103 drops after key sharing
    nodes = small_federation(
        tmp_path / "fed", load_config_or_default(None).plan.model_spec, non_private=True
    )
    config = secure_config(method="dp_sgd")
    grid = InProcessGrid(nodes, drop={103: {MODEL_TASK}})
    # Execute
    run_coordinator(grid, config, tmp_path / "run")
    # Assert: the round completed with 3 survivors, the model moved by their mean update
    [secure] = [
        e for e in events_of(tmp_path / "run") if isinstance(e, SecureSumDone) and e.task == "model"
    ]
    assert (secure.survivors, secure.dropped) == (3, 1)
    initial = flatten(init_arrays(config.plan.model_spec, seed=0))
    got = flatten(load_global_model(tmp_path / "run")) - initial
    expected = np.mean(clear_updates(nodes[:3], config.plan, tmp_path), axis=0)
    assert np.abs(got - expected).max() < 1e-5  # fixed point at 2^-20, float32 model
    assert np.abs(expected).max() > 1e-3  # the update is not trivially zero


def test_the_coordinator_receives_masked_updates_only(tmp_path: Path) -> None:
    # Prepare
    nodes = small_federation(
        tmp_path / "fed", load_config_or_default(None).plan.model_spec, non_private=True
    )
    config = secure_config(method="dp_sgd")
    grid = InProcessGrid(nodes)
    # Execute
    run_coordinator(grid, config, tmp_path / "run")
    # Assert: every model reply holds one uint64 vector spread over the whole field, no
    # parameters and no example count; it has no usable correlation with the update
    model_replies = [m for m in grid.received if m.metadata.message_type == MODEL_TASK]
    assert len(model_replies) == 4
    updates = clear_updates(nodes, config.plan, tmp_path)
    for reply in model_replies:
        record = reply.content.array_records[ARRAYS_KEY]
        assert list(record) == ["masked"]
        masked = record["masked"].numpy()
        assert masked.dtype == np.uint64
        assert "num-examples" not in reply.content.metric_records["metrics"]
        as_unit = masked.astype(np.float64) / 2.0**64
        assert 0.35 < as_unit.mean() < 0.65
        for update in updates:
            assert abs(np.corrcoef(as_unit, update)[0, 1]) < 0.25


def test_an_update_outside_the_declared_range_is_an_error_not_a_clip(tmp_path: Path) -> None:
    # Prepare: a bound far below any real update
    nodes = small_federation(
        tmp_path / "fed", load_config_or_default(None).plan.model_spec, non_private=True
    )
    base = secure_config(method="dp_sgd")
    tiny = base.plan.secure_update.model_copy(update={"update_bound": 1e-6})
    config = secure_config(method="dp_sgd", secure_update=tiny)
    grid = InProcessGrid(nodes)
    # Execute / Assert: every node fails the masked stage; the round releases nothing
    with pytest.raises(RunFailedError):
        run_coordinator(grid, config, tmp_path / "run")
    summary = summary_of(tmp_path / "run")
    assert summary.status == "failed"
    model_stage = [r for r in summary.rounds if r.task == "model"]
    reasons = {f.reason for f in model_stage[0].failed}
    assert reasons == {"QuantizationRangeError at the node (details in the node's log)"}
    assert not (tmp_path / "run" / "global_model.npz").exists()


# ---- enterprise-level DP ------------------------------------------------------------------


def test_enterprise_dp_stops_before_the_cap_keeps_the_last_model_and_agrees_with_dp_accounting(
    tmp_path: Path,
) -> None:
    # Prepare: z = 1.0 planned at 3 of 4 shares; a cap that admits 4 of 6 rounds
    nodes = small_federation(
        tmp_path / "fed", load_config_or_default(None).plan.model_spec, non_private=True
    )
    enterprise = EnterprisePrivacy(clip_norm=0.5, noise_multiplier=1.0)
    config = secure_config(method="dp_sgd", rounds=6, enterprise=enterprise, cap=10.0)
    grid = InProcessGrid(nodes)
    # Execute
    run_coordinator(grid, config, tmp_path / "run")
    # Assert: training stopped early, the run completed with the last model
    summary = summary_of(tmp_path / "run")
    notes = summary.privacy.enterprise
    assert notes is not None
    events = events_of(tmp_path / "run")
    model_sums = [e for e in events if isinstance(e, SecureSumDone) and e.task == "model"]
    [stop] = [e for e in events if isinstance(e, EnterpriseBudgetStop)]
    assert summary.completed
    assert len(model_sums) == 4  # rounds 1-4 fit: 4 x 1.155 -> 9.0; a 5th would pass 10
    assert notes["stopped_before_round"] == stop.round == len(model_sums) + 1
    assert notes["epsilon"] <= 10.0 < stop.projected
    # ... the accounted noise is what 4 shares carry: z * sqrt(4/3) (tau is ~0 here)
    history = notes["accountant"]["history"]
    for z, q, _round in history:
        assert q == 1.0
        assert z == pytest.approx(1.0 * math.sqrt(4 / 3), rel=1e-3)
    # ... and dp-accounting, composing the same rounds independently, agrees
    rdp = dp_accounting.rdp.RdpAccountant()
    for z, _q, _round in history:
        rdp.compose(dp_accounting.GaussianDpEvent(z))
    assert notes["epsilon"] == pytest.approx(rdp.get_epsilon(1e-5), rel=0.01)
    # the saved model is the one after the last round that ran (not the initial one)
    assert not np.allclose(
        flatten(load_global_model(tmp_path / "run")),
        flatten(init_arrays(config.plan.model_spec, seed=0)),
    )


def test_enterprise_dp_states_the_expected_noise_next_to_the_update_norm(tmp_path: Path) -> None:
    # Prepare: 4 enterprises, a strong noise multiplier: noise far above the clip norm
    nodes = small_federation(
        tmp_path / "fed", load_config_or_default(None).plan.model_spec, non_private=True
    )
    config = secure_config(
        method="dp_sgd",
        enterprise=EnterprisePrivacy(clip_norm=0.1, noise_multiplier=3.0),
        cap=1000.0,
    )
    # Execute
    run_coordinator(InProcessGrid(nodes), config, tmp_path / "run")
    # Assert
    notes = summary_of(tmp_path / "run").privacy.enterprise
    assert notes is not None
    assert notes["expected_noise_norm_of_mean"] > notes["clip_norm"] == 0.1
    assert "4 enterprises" in notes["warning"]


def test_enterprise_dp_needs_secure_aggregation_and_a_cap() -> None:
    config = load_config_or_default(None)
    data = json.loads(config.model_dump_json())
    data["plan"]["training"]["method"] = "dp_sgd"  # enterprise-level DP clips DP-SGD updates
    data["plan"]["privacy"]["enterprise"] = {"clip_norm": 1.0, "noise_multiplier": 1.0}
    with pytest.raises(ValueError, match="enterprise_budget"):
        CoordinatorConfig.model_validate(data)
    data["enterprise_budget"] = {"epsilon_cap": 5.0}
    data["plan"]["secure_aggregation"] = False
    with pytest.raises(ValueError, match="needs secure_aggregation"):
        CoordinatorConfig.model_validate(data)


# ---- curve rounds -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("share_noise", "mechanism"),
    [
        ("skellam", Mechanism.SKELLAM_CURVE_HISTOGRAM),
        ("discrete_gaussian", Mechanism.DISTRIBUTED_CURVE_HISTOGRAM),
    ],
)
def test_distributed_curve_noise_is_charged_for_the_threshold_and_reported_as_realised(
    tmp_path: Path, share_noise: str, mechanism: Mechanism
) -> None:
    # Prepare: record-level DP on, 4 nodes, threshold 3 (majority)
    spec = load_config_or_default(None).plan.model_spec
    nodes = small_federation(tmp_path / "fed", spec)
    config = secure_config(record_dp=True, share_noise=share_noise)
    # Execute
    run_coordinator(InProcessGrid(nodes), config, tmp_path / "run")
    # Assert: each node charged the curve release as if only 3 shares were in the sum ...
    summary = summary_of(tmp_path / "run")
    noise = summary.privacy.curve_noise
    assert noise is not None and noise["mechanism"] == mechanism
    target = config.plan.privacy.record.curve_epsilon
    assert noise["shares_planned"] == 3 and noise["shares_present"] == 4
    assert noise["epsilon_charged_per_node"] <= target * 1.001
    # ... the 4 shares actually present give a smaller epsilon
    assert noise["epsilon_realised"] < noise["epsilon_charged_per_node"]
    for node in summary.privacy.nodes.values():
        [curve] = [r for r in node.releases if r.task == "curve"]
        assert curve.mechanism == mechanism
        assert node.epsilon_run <= config.plan.privacy.record.epsilon * 1.001
    # ... and the share is no smaller than the central noise spread over 3 shares
    central = plan_noise(config.plan, 400).curve_noise_multiplier
    assert noise["share_std"] * math.sqrt(3) >= central * 0.999
    if share_noise == "skellam":  # no floor: the 3 shares hold the central noise, +<1 %
        assert noise["share_std"] * math.sqrt(3) <= central * 1.01
    else:  # each discrete Gaussian share is at least the floor sigma 2
        assert noise["share_std"] >= 2.0


def test_a_node_that_does_not_count_on_its_peers_adds_the_whole_noise(tmp_path: Path) -> None:
    # Prepare: one of four sites sets privacy.distributed_noise: false
    spec = load_config_or_default(None).plan.model_spec
    nodes = small_federation(tmp_path / "fed", spec)
    data = yaml.safe_load(nodes[0].read_text())
    data["privacy"]["distributed_noise"] = False
    nodes[0].write_text(yaml.safe_dump(data, sort_keys=False))
    config = secure_config(record_dp=True)
    grid = InProcessGrid(nodes)
    # Execute
    run_coordinator(grid, config, tmp_path / "run")
    # Assert: its receipt names one share, as large as the central noise; the others three
    receipts = {
        PrivacyReceipt.from_record(m.content.config_records[PRIVACY_KEY]).noise_shares: (
            PrivacyReceipt.from_record(m.content.config_records[PRIVACY_KEY])
        )
        for m in grid.received
        if m.metadata.message_type == CURVE_TASK
    }
    central = plan_noise(config.plan, 400).curve_noise_multiplier
    assert set(receipts) == {1, 3}
    assert receipts[1].share_std == pytest.approx(central, rel=1e-3)
    assert receipts[3].share_std < receipts[1].share_std
    assert receipts[1].epsilon_task == pytest.approx(receipts[3].epsilon_task, rel=1e-2)


def test_a_node_without_declared_segments_refuses_the_secure_curve_task(tmp_path: Path) -> None:
    # Prepare: one of four sites declares no segments
    spec = load_config_or_default(None).plan.model_spec
    nodes = small_federation(tmp_path / "fed", spec, non_private=True)
    data = yaml.safe_load(nodes[0].read_text())
    del data["node"]["segments"]
    nodes[0].write_text(yaml.safe_dump(data, sort_keys=False))
    # Execute
    run_coordinator(InProcessGrid(nodes), secure_config(), tmp_path / "run")
    # Assert: it dropped out of the curve round with a reason naming node.segments
    [curve] = [r for r in summary_of(tmp_path / "run").rounds if r.task == "curve"]
    assert [r.node for r in curve.refused] == [node_key_id(load_node_config(nodes[0]))]
    assert "node.segments" in curve.refused[0].reason


def test_secure_curves_with_delayed_entry_equal_the_pooled_life_table(tmp_path: Path) -> None:
    # Prepare: two sites with delayed entry, two without; DP off so the check is exact
    spec = load_config_or_default(None).plan.model_spec
    late = small_federation(
        tmp_path / "late", spec, n=2, seed=4, non_private=True, delayed_entry=True
    )
    early = small_federation(tmp_path / "early", spec, n=2, seed=5, non_private=True)
    nodes = late + early
    config = secure_config(delayed_entry=True)
    federation = config.federation.model_copy(update={"min_nodes": 4})
    config = config.model_copy(update={"federation": federation})
    # Execute
    run_coordinator(InProcessGrid(nodes), config, tmp_path / "run")
    # Assert
    expected = pooled_curves(pooled_frame(nodes, spec), spec, censor_weight=0.5)
    got = load_curves(tmp_path / "run" / "curves.json")
    assert [c.segment for c in got] == [c.segment for c in expected]
    for want, have in zip(expected, got, strict=True):
        np.testing.assert_allclose(have.failure, want.failure, atol=1e-12)


def test_enterprise_skellam_shares_are_recorded_and_recomputed_by_the_auditor(
    tmp_path: Path,
) -> None:
    # Prepare: enterprise-level DP with the packaged share noise (Skellam), 2 rounds
    nodes = small_federation(
        tmp_path / "fed", load_config_or_default(None).plan.model_spec, non_private=True
    )
    enterprise = EnterprisePrivacy(clip_norm=0.5, noise_multiplier=1.0)
    config = secure_config(method="dp_sgd", rounds=2, enterprise=enterprise, cap=50.0)
    assert config.plan.share_noise == "skellam"
    coordinator = tmp_path / "coord"
    # Execute
    run_coordinator(InProcessGrid(nodes), config, tmp_path / "run", coordinator_dir=coordinator)
    # Assert: one Skellam release per model round, with the share the auditor needs
    ledger_dir = coordinator / "ledger"
    releases = [
        r
        for r in map(record_from_entry, read_ledger(ledger_dir).entries())
        if isinstance(r, ReleaseAccounted) and r.unit == "enterprise"
    ]
    assert [r.round for r in releases] == [1, 2]
    for r in releases:
        assert r.mechanism == Mechanism.ENTERPRISE_SKELLAM
        assert r.noise_shares == 4 and r.share_std > 0.0 and r.integer_scale > 1
        assert r.sensitivity > enterprise.clip_norm  # the clip plus rounding's sqrt(d)/2
        assert r.noise_multiplier == pytest.approx(math.sqrt(4 / 3), rel=1e-3)
    public = coordinator_key_paths(coordinator)[1]
    clean = audit([ledger_dir], [], coordinator_key=public, partial=True)
    assert not clean.errors, [str(f) for f in clean.errors]
    assert [r.round for r in clean.enterprise_rows] == [1, 2]
    assert abs(clean.largest_relative_difference) < 0.01
    # ... and a share halved after the fact is an understated claim
    resign_ledger(
        ledger_dir,
        coordinator_key_paths(coordinator)[0],
        "coordinator",
        lambda records: [
            replace(r, share_std=r.share_std / 2)
            if isinstance(r, ReleaseAccounted) and r.unit == "enterprise"
            else r
            for r in records
        ],
    )
    bent = audit([ledger_dir], [], coordinator_key=public, partial=True)
    assert any(f.kind == "understated" and "enterprise" in f.message for f in bent.errors)


def test_enterprise_shares_follow_the_plans_share_noise() -> None:
    plan = secure_config(
        method="dp_sgd",
        enterprise=EnterprisePrivacy(clip_norm=0.5, noise_multiplier=1.0),
        cap=10.0,
    ).plan
    dg_plan = plan_with(plan, {"share_noise": "discrete_gaussian"})
    sk = enterprise_share(plan, n_shares=500, dimension=40)
    dg = enterprise_share(dg_plan, n_shares=500, dimension=40)
    assert sk.mechanism == Mechanism.ENTERPRISE_SKELLAM
    assert dg.mechanism == Mechanism.ENTERPRISE_SHARES
    for share in (sk, dg):
        assert share.effective_noise_multiplier >= 1.0
        assert share.noise_multiplier_with(500) == pytest.approx(
            share.effective_noise_multiplier, rel=1e-6
        )
        assert share.noise_multiplier_with(600) > share.effective_noise_multiplier
    # Skellam shares divide the total exactly: 500 shares carry (z L2)^2 and a hair more
    assert sk.share_variance * 500 == pytest.approx((1.0 * sk.l2_sensitivity) ** 2, rel=1e-3)
