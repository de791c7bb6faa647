"""The secure-sum Newton fit of the GLM hazard model: maths against references, the
sensitivity bound at every corner of the public bounds, accounting, and whole runs of
the real Coordinator and ClientApp in one process (transport: tests/support/inprocess_grid.py).
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import dp_accounting
import numpy as np
import pytest
from inprocess_grid import InProcessGrid, run_coordinator, small_federation
from sklearn.linear_model import LogisticRegression
from test_resume import CrashingGrid, Killed
from test_secure_rounds import secure_config

from auditor.claims import release_of
from auditor.epsilon import compose_epsilon
from bench.baselines import person_period
from coordinator.newton_fit import Curvature, NewtonState, NewtonStep, take_newton_step
from coordinator.outputs import load_global_model
from coordinator.run_summary import SUMMARY_FILE, require_summary
from enterprise_node.config import load_node_config
from enterprise_node.node_ledger import LEDGER_DIR
from enterprise_node.noise_plan import plan_noise
from harness.evaluation import pooled_frame
from ledger.log import read_ledger
from ledger.records import PrivacySpent, record_from_entry
from models.features import EncodedUnits, encode_units
from models.glm import (
    decode_statistics,
    design_centers,
    design_norm_bound,
    encode_statistics,
    hazard_arrays,
    initial_theta,
    newton_step,
    parameter_count,
    release_sensitivity,
    statistics_length,
    theta_from_arrays,
    unit_statistics,
)
from models.spec import CategoryFeature, ModelSpec
from privacy.mechanisms import Mechanism
from protocols.messages import MODEL_TASK
from protocols.plan import NewtonSettings, TrainingPlan
from protocols.secure_glm import glm_bounds, glm_share_sensitivity, round_statistics_length

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("flower_identity")]


def pooled_glm(units: EncodedUnits, spec: ModelSpec, ridge: float) -> np.ndarray:
    """scikit-learn's exact Newton fit of the penalised person-period logistic regression
    (inputs centred as the GLM's coordinates are: the ridge penalises those)."""
    design, target = person_period(units, spec)
    design[:, spec.time_grid.n_intervals :] -= design_centers(spec)
    fit = LogisticRegression(
        C=1.0 / ridge, fit_intercept=False, solver="newton-cholesky", tol=1e-12, max_iter=500
    ).fit(design, target)
    return fit.coef_[0]


def toy_spec() -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "time_grid": {"edges": [0, 6, 12, 24, 36, 48]},
            "segments": ["a", "b"],
            "equipment_classes": ["c", "d"],
            "features": [
                {"name": "load", "kind": "numeric", "lower": 0, "upper": 100},
                {"name": "temp", "kind": "numeric", "lower": 0, "upper": 50},
                {"name": "origin", "kind": "category", "levels": ["x", "y", "z"]},
            ],
        }
    )


def toy_units(spec: ModelSpec, n: int, seed: int) -> EncodedUnits:
    """Units with covariate effects, censoring and delayed entry, encoded like a site's."""
    rng = np.random.default_rng(seed)
    width, n_intervals = spec.input_width, spec.time_grid.n_intervals
    x = np.zeros((n, width), dtype=np.float32)
    x[np.arange(n), rng.integers(0, 2, n)] = 1.0
    x[np.arange(n), 2 + rng.integers(0, 2, n)] = 1.0
    x[:, 4:6] = rng.random((n, 2))
    x[np.arange(n), 6 + rng.integers(0, 3, n)] = 1.0
    logit = -3.0 + 1.5 * x[:, 4] - 1.0 * x[:, 5] + 0.8 * x[:, 7]
    failed_at = np.full(n, n_intervals)
    for j in range(n_intervals - 1, -1, -1):
        failed_at = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), j, failed_at)
    censored_at = rng.integers(0, n_intervals, n)
    interval = np.minimum(np.minimum(failed_at, censored_at), n_intervals - 1)
    event = (failed_at <= censored_at) & (failed_at < n_intervals)
    entry = np.minimum(np.where(rng.random(n) < 0.2, rng.integers(0, 3, n), 0), interval)
    return EncodedUnits(x=x, interval=interval, event=event.astype(np.int64), entry_interval=entry)


# ---- the maths ------------------------------------------------------------------------


def test_newton_iterates_equal_the_pooled_penalised_logistic_fit() -> None:
    # Prepare
    spec, ridge = toy_spec(), 0.7
    units = toy_units(spec, 2_000, seed=1)
    theta = initial_theta(spec)
    # Execute
    for _ in range(12):
        theta = newton_step(theta, unit_statistics(units, theta, spec), ridge=ridge)
    # Assert
    assert np.max(np.abs(theta - pooled_glm(units, spec, ridge))) < 1e-8


def test_clipped_statistics_equal_a_unit_by_unit_computation() -> None:
    # Prepare
    spec = toy_spec()
    units = toy_units(spec, 300, seed=2)
    theta = initial_theta(spec) + np.random.default_rng(3).normal(0, 0.5, parameter_count(spec))
    n_intervals, centers = spec.time_grid.n_intervals, design_centers(spec)
    # Execute
    stats = unit_statistics(units, theta, spec, gradient_clip=0.9, hessian_clip=0.05)
    # Assert: per unit, explicit z_ij = (e_j, x_i - c), clipped, summed
    gradient, hessian = np.zeros_like(theta), np.zeros((theta.size, theta.size))
    for i in range(len(units)):
        g, h = np.zeros_like(theta), np.zeros_like(hessian)
        for j in range(units.entry_interval[i], units.interval[i] + 1):
            z = np.concatenate([np.eye(n_intervals)[j], units.x[i] - centers])
            rate = 1.0 / (1.0 + math.exp(-z @ theta))
            target = float(j == units.interval[i] and units.event[i] == 1)
            g += (target - rate) * z
            h += rate * (1.0 - rate) * np.outer(z, z)
        gradient += g * min(1.0, 0.9 / np.linalg.norm(g))
        hessian += h * min(1.0, 0.05 / np.linalg.norm(h))
    assert np.allclose(stats.gradient, gradient, atol=1e-10)
    assert np.allclose(stats.hessian, hessian, atol=1e-12)
    assert stats.clipped_gradients > 0 and stats.clipped_hessians > 0


def corner_units(spec: ModelSpec) -> EncodedUnits:
    """Adversarial units: every corner of the public bounds (each segment, class,
    numeric at 0 or 1, each category level) with every exit interval, event or not, and
    every entry interval."""
    blocks = [np.eye(len(spec.segments)), np.eye(len(spec.equipment_classes))]
    for feature in spec.features:
        blocks.append(
            np.eye(len(feature.levels))
            if isinstance(feature, CategoryFeature)
            else np.array([[0.0], [1.0]])
        )
    corners = [np.concatenate(parts) for parts in itertools.product(*blocks)]
    n_intervals = spec.time_grid.n_intervals
    rows = [
        (x, exit_at, event, entry)
        for x in corners
        for exit_at in range(n_intervals)
        for event in (0, 1)
        for entry in range(exit_at + 1)
    ]
    return EncodedUnits(
        x=np.array([r[0] for r in rows], dtype=np.float32),
        interval=np.array([r[1] for r in rows]),
        event=np.array([r[2] for r in rows]),
        entry_interval=np.array([r[3] for r in rows]),
    )


def test_design_centers_are_the_middle_of_each_public_range() -> None:
    spec = toy_spec()
    assert design_centers(spec).tolist() == [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1 / 3, 1 / 3, 1 / 3]
    # 1 + segment 1/2 + class 1/2 + two numerics 1/4 each + origin 2/3
    assert design_norm_bound(spec) == pytest.approx(math.sqrt(1 + 0.5 + 0.5 + 0.5 + 2 / 3))


@pytest.mark.parametrize("weight", [None, 1, 2, 8])
@pytest.mark.parametrize("theta_scale", [0.0, 3.0, 30.0])
def test_one_unit_moves_the_released_vector_by_at_most_the_sensitivity(theta_scale, weight) -> None:
    # Prepare: the shipped spec's shape, a small grid, adversarial units at every corner
    plan = secure_config().plan
    spec = toy_spec()
    bounds = glm_bounds(plan.model_copy(update={"model_spec": spec}))
    units = corner_units(spec)
    theta = initial_theta(spec) + theta_scale * np.random.default_rng(4).standard_normal(
        parameter_count(spec)
    )
    # Execute: each unit alone is the change adding or removing it makes to the sum
    lengths = []
    for i in range(len(units)):
        one = EncodedUnits(
            x=units.x[i : i + 1],
            interval=units.interval[i : i + 1],
            event=units.event[i : i + 1],
            entry_interval=units.entry_interval[i : i + 1],
        )
        stats = unit_statistics(
            one,
            theta,
            spec,
            gradient_clip=bounds.gradient_clip,
            hessian_clip=bounds.hessian_clip,
        )
        vector = encode_statistics(
            stats,
            gradient_clip=bounds.gradient_clip,
            hessian_clip=bounds.hessian_clip,
            information_weight=weight,
        )
        lengths.append(np.linalg.norm(vector))
    # Assert
    assert max(lengths) <= release_sensitivity(weight) * (1 + 1e-12)
    centred = np.asarray(units.x, dtype=float) - design_centers(spec)
    norms = np.linalg.norm(centred, axis=1)
    assert math.sqrt(1.0 + norms.max() ** 2) == pytest.approx(design_norm_bound(spec))


def test_the_glm_round_trips_through_hazard_network_arrays() -> None:
    spec = toy_spec()
    theta = np.random.default_rng(5).normal(size=parameter_count(spec))
    assert np.allclose(theta_from_arrays(hazard_arrays(theta, spec), spec), theta, atol=1e-12)
    arrays = hazard_arrays(theta, spec)
    arrays[0] = arrays[0] + 0.1
    with pytest.raises(ValueError, match="vary by interval"):
        theta_from_arrays(arrays, spec)


def test_a_noise_dominated_step_is_warned() -> None:
    state = NewtonState(Curvature(1, np.eye(3), 0.1, 0.0), np.zeros(3))
    quiet = NewtonStep(1, np.zeros(3), state, 1.0, 10.0, 1.0, 0.05, 0.5)
    noisy = NewtonStep(2, np.zeros(3), state, 1.0, 10.0, 1.0, 0.6, 0.5)
    weak = NewtonStep(1, np.zeros(3), state, 1.0, 1.5, 1.0, 0.05, 0.5)
    assert quiet.warning is None
    assert "rank little better than chance" in (noisy.warning or "")
    assert "within twice its noise" in (weak.warning or "")


# ---- the plan and the accounting ------------------------------------------------------


def test_newton_needs_a_glm_in_secure_sums() -> None:
    plan = secure_config().plan
    data = plan.model_dump(mode="json")
    data["model_spec"]["hidden_units"] = [8]
    data["secure_aggregation"] = False
    with pytest.raises(ValueError, match=r"hidden_units: \[\].*secure_aggregation: true"):
        TrainingPlan.model_validate(data)
    data["training"]["method"] = "dp_sgd"
    assert TrainingPlan.model_validate(data).training.method == "dp_sgd"


def test_information_rounds_start_at_one_and_fit_the_run() -> None:
    with pytest.raises(ValueError, match="starting at 1"):
        NewtonSettings(information_rounds=(2, 3))
    with pytest.raises(ValueError, match="increasing"):
        NewtonSettings(information_rounds=(1, 3, 3))
    data = secure_config(rounds=3).plan.model_dump(mode="json")
    data["newton"]["information_rounds"] = [1, 4]
    with pytest.raises(ValueError, match=r"within training.rounds \(3\), not \[4\]"):
        TrainingPlan.model_validate(data)


def test_only_information_rounds_release_the_matrix_and_pay_for_it() -> None:
    # Prepare: information in rounds 1 and 3 at weight 4
    config = newton_config(
        rounds=4, record_dp=True, information_rounds=(1, 3), information_weight=4
    )
    plan, spec = config.plan, config.plan.model_spec
    p = parameter_count(spec)
    # Execute
    lengths = [round_statistics_length(plan, r) for r in (1, 2, 3, 4)]
    l2 = [glm_share_sensitivity(plan, r)[0] for r in (1, 2)]
    noise = plan_noise(plan, 500)
    # Assert
    assert lengths == [statistics_length(spec), p, statistics_length(spec), p]
    assert l2[0] == pytest.approx(math.sqrt(5) * plan.newton.scale + math.sqrt(lengths[0]))
    assert l2[1] == pytest.approx(plan.newton.scale + math.sqrt(p))
    sigma = noise.model_noise_multiplier
    assert noise.round_noise_multiplier(1) == pytest.approx(sigma / math.sqrt(5))
    assert noise.round_noise_multiplier(2) == sigma


def test_a_gradient_round_reuses_the_last_curvature_with_momentum() -> None:
    # Prepare: a round-1 release at theta0, then a gradient-only one (a DP plan, the
    # noise left out: share stds 0)
    config = newton_config(rounds=3, record_dp=True, momentum=0.5)
    plan, spec = config.plan, config.plan.model_spec
    bounds = glm_bounds(plan)
    units = toy_units(spec, 500, seed=6)

    def total(theta: np.ndarray, weight: int | None) -> np.ndarray:
        stats = unit_statistics(
            units, theta, spec, gradient_clip=bounds.gradient_clip, hessian_clip=bounds.hessian_clip
        )
        u = encode_statistics(
            stats,
            gradient_clip=bounds.gradient_clip,
            hessian_clip=bounds.hessian_clip,
            information_weight=weight,
        )
        return np.rint(u * bounds.scale)

    theta0 = initial_theta(spec)
    # Execute
    first = take_newton_step(theta0, total(theta0, 2), [0.0], plan, round_number=1, state=None)
    second = take_newton_step(
        first.theta, total(first.theta, None), [0.0], plan, round_number=2, state=first.state
    )
    # Assert: round 2 inverts round 1's matrix and adds half of round 1's move
    assert second.state.curvature is first.state.curvature
    assert np.allclose(first.state.velocity, first.theta - theta0)
    stats = decode_statistics(
        total(first.theta, None) / bounds.scale,
        spec,
        gradient_clip=bounds.gradient_clip,
        hessian_clip=bounds.hessian_clip,
        information_weight=None,
    )
    ridge, matrix = plan.newton.ridge, first.state.curvature.matrix
    expected = (
        first.theta
        + np.linalg.solve(
            matrix + ridge * np.eye(len(theta0)), stats.gradient - ridge * first.theta
        )
        + 0.5 * (first.theta - theta0)
    )
    assert np.allclose(second.theta, expected, atol=1e-9)
    with pytest.raises(ValueError, match="no earlier round released one"):
        take_newton_step(theta0, total(theta0, None), [0.0], plan, round_number=2, state=None)


def test_newton_noise_plan_agrees_with_dp_accounting() -> None:
    # Prepare: record DP at epsilon 2, 5 Newton rounds (information in round 1 at the
    # default weight) and a curve release
    plan = secure_config(rounds=5, record_dp=True).plan
    weight = plan.newton.information_weight
    # Execute
    noise = plan_noise(plan, 1234)
    # Assert: 5 Gaussian releases + the curve's, composed independently
    accountant = dp_accounting.rdp.RdpAccountant(
        list(range(2, 256)) + [1.5, 1.75, 2.5, 3.5, 512.0, 1024.0]
    )
    sigma = noise.model_noise_multiplier
    accountant.compose(dp_accounting.GaussianDpEvent(sigma / math.sqrt(1 + weight)))
    accountant.compose(dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(sigma), 4))
    accountant.compose(dp_accounting.GaussianDpEvent(noise.curve_noise_multiplier))
    independent = accountant.get_epsilon(plan.privacy.record.delta)
    assert plan.newton.information_rounds == (1,)
    assert noise.sample_rate == 1.0 and noise.steps_per_round == 1
    assert noise.model_spend().mechanism == Mechanism.SKELLAM_GLM
    assert noise.run_epsilon() <= plan.privacy.record.epsilon
    assert abs(independent - noise.run_epsilon()) / noise.run_epsilon() < 0.01


# ---- whole runs, in process -----------------------------------------------------------


def newton_config(*, rounds: int, record_dp: bool, **newton):
    config = secure_config(rounds=rounds, record_dp=record_dp)
    settings = NewtonSettings(**newton)
    return config.model_copy(update={"plan": config.plan.model_copy(update={"newton": settings})})


def test_a_noiseless_federated_newton_fit_equals_the_pooled_fit(tmp_path: Path) -> None:
    # Prepare: bounds that never bind, fine rounding, DP off at every node
    config = newton_config(
        rounds=10, record_dp=False, gradient_clip=5.0, hessian_clip=5.0, scale_bits=28
    )
    spec = config.plan.model_spec
    nodes = small_federation(tmp_path / "sites", spec, non_private=True)
    # Execute
    run_coordinator(InProcessGrid(nodes), config, tmp_path / "run")
    # Assert
    theta = theta_from_arrays(load_global_model(tmp_path / "run"), spec)
    units = encode_units(pooled_frame(nodes, spec), spec)
    assert np.max(np.abs(theta - pooled_glm(units, spec, config.plan.newton.ridge))) < 1e-6


def test_a_private_newton_run_charges_each_round_once_and_reports_its_noise(
    tmp_path: Path,
) -> None:
    # Prepare
    config = newton_config(rounds=3, record_dp=True)
    nodes = small_federation(tmp_path / "sites", config.plan.model_spec)
    # Execute
    run_coordinator(InProcessGrid(nodes), config, tmp_path / "run")
    # Assert: every node charged 3 GLM releases and one curve release, within epsilon
    for path in nodes:
        state = load_node_config(path).state_dir
        entries = json.loads((state / "accountant.json").read_text())["entries"]
        mechanisms = [(e["purpose"], e["mechanism"], e["round"]) for e in entries]
        assert mechanisms[:3] == [("model", Mechanism.SKELLAM_GLM, r) for r in (1, 2, 3)]
        assert [m[0] for m in mechanisms[3:]] == ["curve"]
        assert entries[-1]["epsilon_after"] <= config.plan.privacy.record.epsilon
    summary = require_summary(tmp_path / "run" / SUMMARY_FILE)
    assert summary.privacy.model_noise is not None
    steps = summary.privacy.model_noise.newton_steps or ()
    assert [s["round"] for s in steps] == [1, 2, 3]
    assert [s["information_round"] for s in steps] == [1, 1, 1]
    assert all(s["gradient_noise_norm"] > 0 and s["eigen_floor"] > 0 for s in steps)
    # round 1 also released the information matrix: the same noise over a larger
    # sensitivity, a smaller effective multiplier
    multipliers = [e["noise_multiplier"] for e in entries[:3]]
    assert multipliers[0] < multipliers[1] and multipliers[1] == pytest.approx(multipliers[2])
    # the last node's lifetime epsilon, recomputed by the auditor's independent library
    # from its ledger's records (a Skellam curve release from its recorded share)
    last = load_node_config(nodes[-1])
    releases = [
        release_of(record)
        for e in read_ledger(last.state_dir / LEDGER_DIR).entries()
        if isinstance(record := record_from_entry(e), PrivacySpent)
    ]
    assert len(releases) == len(entries)
    delta = last.privacy.delta
    assert math.isclose(
        compose_epsilon(releases, delta), entries[-1]["epsilon_after"], rel_tol=0.01
    )


def test_a_resumed_newton_run_keeps_the_curvature_of_its_first_round(tmp_path: Path) -> None:
    # Prepare: information in round 1 only; the coordinator dies mid-round 3
    config = newton_config(rounds=3, record_dp=True)
    nodes = small_federation(tmp_path / "sites", config.plan.model_spec)
    grid = CrashingGrid(nodes, round_number=3, message_type=MODEL_TASK, served=1)
    with pytest.raises(Killed):
        run_coordinator(grid, config, tmp_path / "run")
    # Execute
    run_coordinator(InProcessGrid(nodes), config, tmp_path / "run", resume=True)
    # Assert: round 3 stepped with round 1's curvature, restored from the checkpoint
    summary = require_summary(tmp_path / "run" / SUMMARY_FILE)
    assert summary.privacy.model_noise is not None
    steps = summary.privacy.model_noise.newton_steps or ()
    assert [(s["round"], s["information_round"]) for s in steps] == [(1, 1), (2, 1), (3, 1)]
    assert summary.completed
