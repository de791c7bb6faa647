"""O/E against a published curve: the cumulative hazard over each unit's exposure, checked
by hand and by the identity H(a, b) = log S(a) - log S(b) of the curve's own survival."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.exposure import cumulative_hazard, expected_failures, observed_over_expected
from models.curves import RiskCurve
from models.term_failure import survival_at

EDGES = np.array([0.0, 1.0, 2.0])
HAZARD = np.array([0.1, 0.2])  # per interval: S(1) = 0.9, S(2) = 0.72


def curve(segment: str, hazard: np.ndarray = HAZARD) -> RiskCurve:
    survival = np.concatenate([[1.0], np.cumprod(1.0 - hazard)])
    return RiskCurve(
        segment=segment, edges=EDGES, survival=survival, hazard=hazard,
        failure=1.0 - survival, failure_lower=1.0 - survival, failure_upper=1.0 - survival,
        n_units=100.0, n_failures=10.0,
    )  # fmt: skip


def test_cumulative_hazard_by_hand() -> None:
    # Prepare: a unit through both intervals, one across the edge, one past the horizon,
    # one that entered and left at the same age
    entry = [0.0, 0.5, 1.0, 1.5]
    exit_ = [2.0, 1.5, 4.0, 1.5]
    # Execute
    h = cumulative_hazard(EDGES, HAZARD, entry, exit_)
    # Assert
    rate0, rate1 = -math.log(0.9), -math.log(0.8)
    assert h == pytest.approx([rate0 + rate1, 0.5 * rate0 + 0.5 * rate1, 3 * rate1, 0.0])


def test_cumulative_hazard_is_the_log_ratio_of_the_curve_survival() -> None:
    rng = np.random.default_rng(4)
    edges = np.array([0.0, 6.0, 12.0, 24.0, 60.0])
    hazard = np.array([0.02, 0.05, 0.11, 0.3])
    survival = np.concatenate([[1.0], np.cumprod(1.0 - hazard)])
    entry = rng.uniform(0, 80, 50)
    exit_ = entry + rng.uniform(0, 40, 50)
    h = cumulative_hazard(edges, hazard, entry, exit_)
    expected = [
        math.log(survival_at(edges, survival, a)) - math.log(survival_at(edges, survival, b))
        for a, b in zip(entry, exit_, strict=True)
    ]
    assert h == pytest.approx(expected, rel=1e-9)


def test_observed_over_expected_counts_only_segments_with_a_curve() -> None:
    # Prepare: two units in the curve's segment (one with a missing entry age: from 0),
    # one in a segment without a curve
    units = pd.DataFrame(
        {
            "segment": ["a", "a", "b"],
            "duration": [2.0, 1.5, 1.0],
            "entry_age": [np.nan, 0.5, 0.0],
            "failed": [1, 0, 1],
        }
    )
    curves = {"a": curve("a")}
    # Execute
    expected = expected_failures(units, curves)
    oe, observed, total = observed_over_expected(units, curves)
    # Assert
    rate0, rate1 = -math.log(0.9), -math.log(0.8)
    assert expected[:2] == pytest.approx([rate0 + rate1, 0.5 * rate0 + 0.5 * rate1])
    assert math.isnan(expected[2])
    assert observed == 1
    assert total == pytest.approx(1.5 * (rate0 + rate1))
    assert oe == pytest.approx(1 / total)


def test_a_hazard_of_one_gives_a_large_finite_expectation() -> None:
    h = cumulative_hazard(EDGES, [0.1, 1.0], [0.0], [2.0])
    assert np.isfinite(h).all() and h[0] > 20
