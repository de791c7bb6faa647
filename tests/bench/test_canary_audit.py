"""The one-run privacy audit on a small federation (real Coordinator and ClientApp, in one
process): the shipped plan stays below its claims, the DP-off control shows the audit's
power, and a node code that forgets its noise shares is caught."""

from __future__ import annotations

import pytest

from bench.canary_audit import run_canary_audit
from coordinator.config import load_config_or_default

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def audits(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = load_config_or_default(None)  # the shipped plan: record DP, secure aggregation
    work = tmp_path_factory.mktemp("canary-audit")
    return {
        variant: run_canary_audit(base, work / variant, variant=variant, m=300, seed=3)
        for variant in ("dp", "no_dp", "forgotten_noise")
    }


def test_the_shipped_plan_is_bounded_below_what_it_claims(audits: dict) -> None:
    dp = audits["dp"]
    assert dp.curve_claimed == pytest.approx(1.0, rel=1e-3)  # curve_share 0.5 of 2
    assert dp.curve.epsilon <= dp.curve_claimed
    assert dp.model.epsilon <= dp.model_claimed
    assert dp.curve.m == dp.model.m == 300


def test_the_control_without_dp_shows_the_audit_has_power(audits: dict) -> None:
    dp, control = audits["dp"], audits["no_dp"]
    for part in ("curve", "model"):
        leaked = getattr(control, part).epsilon
        assert leaked > 3.0 and leaked >= 3 * getattr(dp, part).epsilon


def test_forgotten_noise_shares_are_caught(audits: dict) -> None:
    mutant = audits["forgotten_noise"]
    # the receipts still claim the plan's noise ...
    assert mutant.curve_claimed == pytest.approx(audits["dp"].curve_claimed)
    # ... and the released outputs show more than that
    assert mutant.curve.epsilon > mutant.curve_claimed
    assert mutant.model.epsilon > mutant.model_claimed
