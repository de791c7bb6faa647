"""The share-noise benchmark: its noise plans are what the nodes plan, and a tiny run
writes every figure for both data sets."""

from __future__ import annotations

import json
import math

import pytest

from bench.coverage import node_sigma
from bench.share_noise import MECHANISMS, noise_plan, share_noise_bench
from coordinator.config import load_config_or_default


def test_skellam_totals_stay_at_the_central_noise_and_discrete_gaussian_ones_do_not() -> None:
    spec = load_config_or_default(None).plan.model_spec
    z = node_sigma(1.0)
    central = noise_plan("central", 1.0, spec, n=500, t=500)
    skellam = noise_plan("skellam", 1.0, spec, n=500, t=500)
    ddg = noise_plan("discrete_gaussian", 1.0, spec, n=500, t=500)
    assert central.std == pytest.approx(z)
    assert z <= skellam.std <= 1.01 * z  # all 500 shares present: the planned total
    assert ddg.std >= 2.0 * math.sqrt(500)  # the per-share floor, whatever the budget
    # with only the majority planned for, the n shares carry sqrt(n / t) times the noise
    majority = noise_plan("skellam", 1.0, spec, n=500, t=251)
    assert majority.std == pytest.approx(z * math.sqrt(500 / 251), rel=0.01)


@pytest.mark.integration
def test_a_tiny_run_writes_every_figure(tmp_path) -> None:
    report = share_noise_bench(tmp_path, enterprises=[8], replicates=2, seed=1, real_replicates=3)
    written = json.loads((tmp_path / "share_noise.json").read_text())
    assert written["replicates"] == 2
    for data in ("synthetic", "hdfail"):
        for threshold in ("majority", "four_fifths"):
            figures = report[data]["8"][threshold]
            assert set(figures) == set(MECHANISMS)
            central = figures["central"]["1.0"]
            assert central["ratio_to_central"] == pytest.approx(1.0)
            assert 0.0 < central["max_abs_error_mean"] < 1.0
