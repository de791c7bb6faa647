"""A node's noise plan fills, and never exceeds, the plan's record-level budget (RDP)."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.config import load_coordinator_config
from enterprise_node.noise_plan import plan_noise
from enterprise_node.training import dp_sgd_schedule
from privacy.accounting import rdp_epsilon
from protocols.plan import TrainingPlan

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=["newton", "dp_sgd"])
def plan(request: pytest.FixtureRequest) -> TrainingPlan:
    """The demo plan, fitted by each method (the budget must be filled either way)."""
    shipped = load_coordinator_config(REPO / "configs" / "coordinator.yaml").plan
    return with_changes(shipped, training={"method": request.param})


@pytest.fixture(scope="module")
def dp_sgd_plan() -> TrainingPlan:
    """The demo plan with local DP-SGD, for the tests of its Poisson-sampled schedule."""
    shipped = load_coordinator_config(REPO / "configs" / "coordinator.yaml").plan
    return with_changes(shipped, training={"method": "dp_sgd"})


def with_changes(
    plan: TrainingPlan, *, training: dict | None = None, record: dict | None = None, **top: object
) -> TrainingPlan:
    """Factory: the demo plan with some settings changed (re-validated)."""
    data = plan.model_dump()
    data["training"] |= training or {}
    data["privacy"]["record"] |= record or {}
    data |= top
    return TrainingPlan.model_validate(data)


@pytest.mark.integration
@pytest.mark.parametrize("n_units", [300, 1_500, 12_000])
def test_run_epsilon_fills_the_plan_budget_from_below(plan: TrainingPlan, n_units: int) -> None:
    # Execute
    noise = plan_noise(plan, n_units)
    # Assert
    target = plan.privacy.record.epsilon
    assert noise.run_epsilon() <= target
    assert noise.run_epsilon() >= 0.99 * target


@pytest.mark.parametrize(
    "changes",
    [
        {"training": {"rounds": 3}},
        {"training": {"rounds": 25, "local_epochs": 1}},
        {"record": {"epsilon": 8.0, "curve_share": 0.2}},
        {"record": {"epsilon": 0.5, "delta": 1e-8}},
    ],
    ids=["few-rounds", "many-rounds", "loose", "tight"],
)
def test_run_epsilon_fills_other_budgets_too(plan: TrainingPlan, changes: dict) -> None:
    # Prepare
    other = with_changes(plan, **changes)
    # Execute
    noise = plan_noise(other, 2_000)
    # Assert
    target = other.privacy.record.epsilon
    assert 0.99 * target <= noise.run_epsilon() <= target
    assert noise.rounds == other.training.rounds and noise.delta == other.privacy.record.delta


@pytest.mark.parametrize("curve_share", [0.1, 0.3, 0.5])
def test_curve_release_alone_costs_its_share(plan: TrainingPlan, curve_share: float) -> None:
    # Prepare
    other = with_changes(plan, record={"curve_share": curve_share})
    record = other.privacy.record
    # Execute
    noise = plan_noise(other, 2_000)
    curve_epsilon = rdp_epsilon([noise.curve_spend()], record.delta)
    # Assert
    assert curve_epsilon <= curve_share * record.epsilon
    assert curve_epsilon == pytest.approx(curve_share * record.epsilon, rel=0.01)


def test_curve_spend_is_one_full_release(plan: TrainingPlan) -> None:
    # Execute
    spend = plan_noise(plan, 2_000).curve_spend("run-1", 11)
    # Assert
    assert (spend.sample_rate, spend.steps) == (1.0, 1)
    assert (spend.run_id, spend.round, spend.purpose) == ("run-1", 11, "curve")


def test_model_spend_follows_the_dp_sgd_schedule(dp_sgd_plan: TrainingPlan) -> None:
    # Prepare
    sample_rate, steps = dp_sgd_schedule(2_000, dp_sgd_plan.training)
    # Execute
    spend = plan_noise(dp_sgd_plan, 2_000).model_spend("run-1", 3)
    # Assert
    assert (spend.sample_rate, spend.steps) == (sample_rate, steps)
    assert sample_rate == pytest.approx(dp_sgd_plan.training.batch_size / 2_000)
    assert (spend.run_id, spend.round, spend.purpose) == ("run-1", 3, "model")


def test_larger_nodes_get_a_smaller_dp_sgd_noise_multiplier(dp_sgd_plan: TrainingPlan) -> None:
    # Execute
    sigmas = [
        plan_noise(dp_sgd_plan, n).model_noise_multiplier for n in (400, 1_500, 6_000, 24_000)
    ]
    # Assert: strictly decreasing, and the curve noise does not depend on size
    assert all(a > b for a, b in zip(sigmas, sigmas[1:], strict=False)), sigmas
    curve = {plan_noise(dp_sgd_plan, n).curve_noise_multiplier for n in (400, 24_000)}
    assert len(curve) == 1


def test_without_curve_release_dp_sgd_gets_the_whole_budget(dp_sgd_plan: TrainingPlan) -> None:
    # Prepare
    no_curves = with_changes(dp_sgd_plan, curve_release=False)
    # Execute
    noise = plan_noise(no_curves, 2_000)
    with_curves = plan_noise(dp_sgd_plan, 2_000)
    # Assert
    assert noise.curve_noise_multiplier is None
    with pytest.raises(ValueError, match="releases no curves"):
        noise.curve_spend()
    assert (
        0.99 * dp_sgd_plan.privacy.record.epsilon
        <= noise.run_epsilon()
        <= dp_sgd_plan.privacy.record.epsilon
    )
    assert noise.model_noise_multiplier < with_curves.model_noise_multiplier
