"""What DP-SGD makes of a site's units: the warning a small site gets before it joins."""

from __future__ import annotations

import pytest
from node_site import COORDINATOR_YAML

from coordinator.config import load_coordinator_config
from enterprise_node.contribution import MIN_UNITS, contribution_outlook
from enterprise_node.noise_plan import plan_noise
from protocols.plan import TrainingPlan


def _plan(**training: object) -> TrainingPlan:
    """Factory: the shipped plan with some training settings changed."""
    plan = load_coordinator_config(COORDINATOR_YAML).plan
    return plan.model_copy(update={"training": plan.training.model_copy(update=training)})


def test_a_handful_of_units_under_dp_sgd_is_mostly_noise():
    # Prepare: 5 units, the shipped plan trained by DP-SGD
    plan = _plan(method="dp_sgd")
    # Execute
    outlook = contribution_outlook(5, plan)
    # Assert: q = 1 and sigma as the node will calibrate it; noise 2.5 x the largest signal
    noise = plan_noise(plan, 5)
    assert (outlook.sample_rate, outlook.noise_multiplier) == (1.0, noise.model_noise_multiplier)
    assert outlook.noise_multiplier == pytest.approx(12.53, abs=0.01)
    assert outlook.noise_to_signal == pytest.approx(outlook.noise_multiplier / 5)
    (warning,) = outlook.warnings
    assert "will be mostly noise: only 5 units (fewer than 100)" in warning
    assert "sample rate 1" in warning and "noise multiplier 12.5" in warning
    assert "plan.training.method: newton" in warning and "added once to the sum" in warning


def test_a_large_site_under_dp_sgd_gets_no_warning():
    # Execute
    outlook = contribution_outlook(2_000, _plan(method="dp_sgd"))
    # Assert
    assert outlook.warnings == () and outlook.noise_to_signal < 0.05


def test_noise_beyond_the_limit_warns_a_site_with_enough_units():
    # Prepare: a tiny batch makes every step's noise large against its signal
    outlook = contribution_outlook(MIN_UNITS * 5, _plan(method="dp_sgd", batch_size=1))
    # Assert
    assert outlook.noise_to_signal > 0.5
    assert "500 units and this plan's noise" in outlook.warnings[0]


@pytest.mark.parametrize("n_units", [5, 2_000])
def test_secure_sum_fits_are_not_warned(n_units):
    # Execute
    outlook = contribution_outlook(n_units, _plan(method="newton"))
    # Assert
    assert (outlook.method, outlook.noise_multiplier, outlook.warnings) == ("newton", None, ())


def test_without_a_plan_only_the_unit_count_is_judged():
    # Execute
    few, many = contribution_outlook(5, None), contribution_outlook(MIN_UNITS, None)
    # Assert
    assert few.warnings[0].startswith("Only 5 units here (fewer than 100)")
    assert many.warnings == () and many.noise_multiplier is None
