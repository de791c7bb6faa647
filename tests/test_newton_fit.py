"""The secure-sum Newton fit of the GLM hazard model: maths against references, the
sensitivity bound at every corner of the public bounds, accounting, and whole runs of
the real Coordinator and ClientApp in one process (transport: tests/inprocess_grid.py).
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
from test_secure_rounds import secure_config

from auditor.epsilon import Release, compose_epsilon
from bench.baselines import person_period
from coordinator.evaluation import pooled_frame
from coordinator.newton_fit import NewtonStep
from coordinator.outputs import load_global_model
from enterprise_node.config import load_node_config
from enterprise_node.noise_plan import GLM_MECHANISM, plan_noise
from models.features import EncodedUnits, encode_units
from models.glm import (
    SENSITIVITY,
    design_norm_bound,
    encode_statistics,
    hazard_arrays,
    initial_theta,
    newton_step,
    parameter_count,
    theta_from_arrays,
    unit_statistics,
)
from protocols.model_spec import CategoryFeature, ModelSpec
from protocols.plan import NewtonSettings, TrainingPlan
from protocols.secure_glm import glm_bounds

pytestmark = pytest.mark.usefixtures("flower_identity")


def pooled_glm(units: EncodedUnits, spec: ModelSpec, ridge: float) -> np.ndarray:
    """scikit-learn's exact Newton fit of the penalised person-period logistic regression."""
    design, target = person_period(units, spec)
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
    n_intervals = spec.time_grid.n_intervals
    # Execute
    stats = unit_statistics(units, theta, spec, gradient_clip=0.9, hessian_clip=0.05)
    # Assert: per unit, explicit z_ij, clipped, summed
    gradient, hessian = np.zeros_like(theta), np.zeros((theta.size, theta.size))
    for i in range(len(units)):
        g, h = np.zeros_like(theta), np.zeros_like(hessian)
        for j in range(units.entry_interval[i], units.interval[i] + 1):
            z = np.concatenate([np.eye(n_intervals)[j], units.x[i]])
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


@pytest.mark.parametrize("theta_scale", [0.0, 3.0, 30.0])
def test_one_unit_moves_the_released_vector_by_at_most_the_sensitivity(theta_scale) -> None:
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
            stats, gradient_clip=bounds.gradient_clip, hessian_clip=bounds.hessian_clip
        )
        lengths.append(np.linalg.norm(vector))
    # Assert
    assert max(lengths) <= SENSITIVITY * (1 + 1e-12)
    norms = np.linalg.norm(np.asarray(units.x, dtype=float), axis=1)
    assert math.sqrt(1.0 + norms.max() ** 2) <= design_norm_bound(spec) + 1e-12


def test_the_glm_round_trips_through_hazard_network_arrays() -> None:
    spec = toy_spec()
    theta = np.random.default_rng(5).normal(size=parameter_count(spec))
    assert np.array_equal(theta_from_arrays(hazard_arrays(theta, spec), spec), theta)
    arrays = hazard_arrays(theta, spec)
    arrays[0] = arrays[0] + 0.1
    with pytest.raises(ValueError, match="vary by interval"):
        theta_from_arrays(arrays, spec)


def test_a_noise_dominated_step_is_warned() -> None:
    quiet = NewtonStep(1, np.zeros(3), 1.0, 10.0, 1.0, 0.1, 0.0, 0.01)
    noisy = NewtonStep(2, np.zeros(3), 1.0, 10.0, 1.0, 0.1, 0.0, 0.6)
    weak = NewtonStep(1, np.zeros(3), 1.0, 1.5, 1.0, 0.1, 0.0, 0.01)
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


def test_newton_noise_plan_agrees_with_dp_accounting() -> None:
    # Prepare: record DP at epsilon 2, 5 Newton rounds and a curve release
    plan = secure_config(rounds=5, record_dp=True).plan
    # Execute
    noise = plan_noise(plan, 1234)
    # Assert: 5 Gaussian releases + the curve's, composed independently
    accountant = dp_accounting.rdp.RdpAccountant(
        list(range(2, 256)) + [1.5, 1.75, 2.5, 3.5, 512.0, 1024.0]
    )
    accountant.compose(
        dp_accounting.SelfComposedDpEvent(
            dp_accounting.GaussianDpEvent(noise.model_noise_multiplier), 5
        )
    )
    accountant.compose(dp_accounting.GaussianDpEvent(noise.curve_noise_multiplier))
    independent = accountant.get_epsilon(plan.privacy.record.delta)
    assert noise.sample_rate == 1.0 and noise.steps_per_round == 1
    assert noise.model_spend().mechanism == GLM_MECHANISM
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
        assert mechanisms[:3] == [("model", GLM_MECHANISM, r) for r in (1, 2, 3)]
        assert [m[0] for m in mechanisms[3:]] == ["curve"]
        assert entries[-1]["epsilon_after"] <= config.plan.privacy.record.epsilon
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    steps = summary["privacy"]["model_noise"]["newton_steps"]
    assert [s["round"] for s in steps] == [1, 2, 3]
    assert all(s["gradient_noise_norm"] > 0 and s["eigen_floor"] > 0 for s in steps)
    # the last node's lifetime epsilon, recomputed by the auditor's independent library
    releases = [
        Release(e["mechanism"], e["noise_multiplier"], e["sample_rate"], e["steps"])
        for e in entries
    ]
    delta = load_node_config(nodes[-1]).privacy.delta
    assert math.isclose(
        compose_epsilon(releases, delta), entries[-1]["epsilon_after"], rel_tol=0.01
    )
