"""The model benchmark's own logic: its summaries, its acceptance checks and its plans.

The benchmark itself (``make bench``) runs federations for an hour; here only what decides
its verdicts is tested, on figures made up for the purpose.
"""

from __future__ import annotations

import pytest

from bench.model import CELLS, _summary, acceptance, merge
from bench.model_runs import RunScore, plan_config
from coordinator.config import load_config_or_default


def score(c: float, curve: float | None = 0.004) -> RunScore:
    return RunScore(harrell_c=c, curve_error=curve, rounds=5, seconds=1.0, epsilon_run=2.0)


def result(units: int, cells: dict, central: float = 0.85, name: str = "real") -> dict:
    rows = [
        {"partition": p, "fit": f, "epsilon": e, **_summary([score(c) for c in cs])}
        for (p, f, e), cs in cells.items()
    ]
    return {"dataset": name, "units": units, "central": {"glm_same_ridge": central}, "cells": rows}


def test_summary_gives_mean_min_max_and_spread() -> None:
    row = _summary([score(0.80), score(0.84), score(0.82, curve=None)])
    assert (row["c_mean"], row["c_min"], row["c_max"], row["c_spread"]) == (
        0.82,
        0.80,
        0.84,
        0.04,
    )
    assert row["runs"] == 3 and row["curve_error_max"] == 0.004


def test_acceptance_passes_within_the_margins_and_fails_outside() -> None:
    good = result(
        52_000,
        {
            ("group", "newton", 2.0): [0.845, 0.842, 0.848, 0.846, 0.844],
            ("random50", "newton", 1.0): [0.835, 0.84, 0.832, 0.838, 0.836],
            ("group", "newton", None): [0.8505],
        },
    )
    bad = result(
        52_000,
        {
            ("group", "newton", 2.0): [0.845, 0.80, 0.848, 0.846, 0.844],  # spread 0.048
            ("random50", "newton", 1.0): [0.80, 0.81, 0.82, 0.80, 0.81],  # mean 0.808
            ("group", "newton", None): [0.845],  # 0.005 from central
        },
    )
    assert all(c["pass"] and c["binding"] for c in acceptance([good]))
    assert [c["pass"] for c in acceptance([bad])] == [False, False, False]


def test_small_data_sets_are_reported_but_do_not_bind() -> None:
    small = result(686, {("group", "newton", 2.0): [0.6, 0.7, 0.65, 0.62, 0.68]})
    [check] = acceptance([small])
    assert not check["pass"] and not check["binding"]


def test_the_synthetic_curve_check_uses_the_largest_error() -> None:
    synthetic = result(10_000, {("group", "newton", 2.0): [0.7] * 5}, central=0.7, name="synthetic")
    curve = [c for c in acceptance([synthetic]) if "curves" in c["check"]]
    assert curve and curve[0]["pass"] and not curve[0]["binding"]


def test_every_cell_makes_a_valid_plan_and_dp_sgd_never_runs_newton_settings() -> None:
    base = load_config_or_default(None)
    for cell in CELLS:
        config = plan_config(base, base.plan.model_spec, fit=cell.fit, epsilon=cell.epsilon)
        assert config.plan.training.method == cell.fit
        assert config.plan.secure_aggregation
        assert config.plan.privacy.record.enabled == (cell.epsilon is not None)
        if cell.epsilon is not None:
            assert config.plan.privacy.record.epsilon == cell.epsilon


def test_a_bad_override_fails_when_the_plan_is_made() -> None:
    base = load_config_or_default(None)
    spec = base.plan.model_spec.model_copy(update={"hidden_units": (8,)})
    with pytest.raises(ValueError, match="hidden_units"):
        plan_config(base, spec, fit="newton", epsilon=2.0)


def test_an_update_replaces_only_the_cells_measured_again() -> None:
    # Prepare: a report with both fits, then a run of DP-SGD only
    earlier = [
        result(
            52_000,
            {("group", "newton", 2.0): [0.85] * 5, ("group", "dp_sgd", 2.0): [0.70] * 5},
        )
    ]
    now = [result(52_000, {("group", "dp_sgd", 2.0): [0.80] * 5})]
    # Execute
    [merged] = merge(earlier, now)
    # Assert
    by_fit = {c["fit"]: c["c_mean"] for c in merged["cells"]}
    assert by_fit == {"newton": 0.85, "dp_sgd": 0.80}
