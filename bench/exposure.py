"""Observed over expected failures of a set of units against published industry curves.

A curve publishes a discrete hazard h_j for each interval (t_j, t_{j+1}] of its grid: the
probability of failing in the interval given survival to its start. Read the way
:mod:`models.term_failure` reads survival (constant hazard within an interval, the last
interval's hazard going on past the horizon), its continuous rate in interval j is
lambda_j = -log(1 - h_j) / (t_{j+1} - t_j), and a unit observed from its entry age a to
its exit b (failure or censoring) was exposed to the cumulative hazard
H(a, b) = integral of lambda from a to b, its expected number of failures under the curve.
O/E is the units' failures over the sum of their H: 1 when they fail as the industry
does, 2 when twice as often.

>>> curve = dict(edges=[0.0, 1.0, 3.0], hazard=[0.5, 0.75])  # lambda = log 2 throughout
>>> float(cumulative_hazard(curve["edges"], curve["hazard"], [0.5], [4.0])[0] / np.log(2))
3.5
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from models.curves import RiskCurve
from models.term_failure import exposure_hazard

__all__ = ["HAZARD_CAP", "cumulative_hazard", "expected_failures", "observed_over_expected"]

#: A published h_j of 1 (every unit at risk failed) would make H infinite; it is read as
#: this instead, so that one such interval gives a large but finite expectation.
HAZARD_CAP = 1.0 - 1e-9


def cumulative_hazard(
    edges: Sequence[float] | np.ndarray,
    hazard: Sequence[float] | np.ndarray,
    entry: Sequence[float] | np.ndarray,
    exit_: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """H(entry_i, exit_i) of each unit under the discrete ``hazard`` on ``edges`` (see the
    module docstring); 0 for a unit whose exit is not after its entry."""
    edges = np.asarray(edges, float)
    survival = np.concatenate(
        [[1.0], np.cumprod(1.0 - np.clip(np.asarray(hazard, float), 0.0, HAZARD_CAP))]
    )
    start = np.clip(np.asarray(entry, float), 0.0, None)
    end = np.clip(np.asarray(exit_, float), 0.0, None)
    rows = np.broadcast_to(survival, (len(start), len(survival)))
    return np.clip(exposure_hazard(edges, rows, start, end), 0.0, None)


def expected_failures(units: pd.DataFrame, curves: Mapping[str, RiskCurve]) -> np.ndarray:
    """Each unit's H from entry (``entry_age``, 0 where missing) to exit (``duration``)
    under its segment's curve; NaN for a unit whose segment has no curve in ``curves``."""
    expected = np.full(len(units), np.nan)
    segments = units["segment"].astype(str).to_numpy()
    entry_age = np.zeros(len(units))
    if "entry_age" in units:
        entry_age = np.nan_to_num(
            pd.to_numeric(units["entry_age"], errors="coerce").to_numpy(float)
        )
    exit_age = units["duration"].to_numpy(float)
    for segment, curve in curves.items():
        mine = segments == segment
        if mine.any():
            expected[mine] = cumulative_hazard(
                curve.edges, curve.hazard, entry_age[mine], exit_age[mine]
            )
    return expected


def observed_over_expected(
    units: pd.DataFrame, curves: Mapping[str, RiskCurve]
) -> tuple[float, int, float]:
    """(O/E, O, E) of the ``units`` whose segment has a curve in ``curves``: failures over
    the expected failures; O/E is NaN when E is 0."""
    expected = expected_failures(units, curves)
    covered = ~np.isnan(expected)
    observed = int(units["failed"].to_numpy().astype(np.int64)[covered].sum())
    total = float(expected[covered].sum())
    return (observed / total if total > 0 else float("nan")), observed, total
