"""Life-table (actuarial Kaplan-Meier) estimator of one segment's survival on a time grid.

Works on exit histograms that may be float and noisy (summed DP histograms). With J
intervals, interval j = (t_j, t_{j+1}] (0-based), d_j failures, c_j censored units,
e_j entries and censor weight w:

    n_j = E_j - sum_{k<j} (d_k + c_k) - w c_j      units at risk in interval j
    E_j = sum_{k<=j} e_k   (left truncation), or N = sum_k (d_k + c_k) + r without entries,
    where r counts the survivors: units still observed past t_J (at risk in every interval)
    h_j = d_j / n_j                                 discrete hazard, kept in [0, 1]
    S(t_0) = 1,  S(t_{j+1}) = prod_{k<=j} (1 - h_k),  F = 1 - S
    Var S(t_{j+1}) = S(t_{j+1})^2 sum_{k<=j} d_k / (n_k (n_k - d_k))     (Greenwood)

w = 0 is Kaplan-Meier on the binned data (units censored in interval j are at risk for all
of it); w = 0.5 is the actuarial life table (at risk for half of it, on average).

Robust to DP noise: negative counts are clipped to 0; n_j <= 0 gives h_j = 0 and sets
``risk_set_empty[j]``; d_j > n_j caps h_j at 1 and sets ``hazard_capped[j]``. Greenwood
terms use the capped d_j = h_j n_j and are 0 where n_j <= 0 or n_j = d_j (S is 0 from
there on, so its variance is 0). No output is ever NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LifeTable", "life_table"]


@dataclass(frozen=True, eq=False)
class LifeTable:
    """One segment's life table on ``edges`` (J + 1 values t_0 = 0 < ... < t_J).

    Per interval (length J): ``n_at_risk`` n_j, ``events`` d_j and ``censored`` c_j
    (after clipping at 0), ``hazard`` h_j, flags ``risk_set_empty`` (n_j <= 0) and
    ``hazard_capped`` (d_j > n_j). Per edge (length J + 1): ``survival`` S(t_j) with
    S(t_0) = 1 and ``greenwood_var`` Var S(t_j). Arrays are read-only.
    """

    edges: np.ndarray
    n_at_risk: np.ndarray
    events: np.ndarray
    censored: np.ndarray
    hazard: np.ndarray
    survival: np.ndarray
    greenwood_var: np.ndarray
    risk_set_empty: np.ndarray
    hazard_capped: np.ndarray
    censor_weight: float
    survivors: float = 0.0

    @property
    def failure(self) -> np.ndarray:
        """Cumulative failure probability F(t_j) = 1 - S(t_j), per edge."""
        return 1.0 - self.survival

    @property
    def n_units(self) -> float:
        """All units: exits within the grid sum_j (d_j + c_j) plus the survivors past t_J."""
        return float(np.sum(self.events) + np.sum(self.censored) + self.survivors)

    @property
    def n_failures(self) -> float:
        """Failures within the grid: sum_j d_j."""
        return float(np.sum(self.events))


def life_table(
    events: np.ndarray,
    censored: np.ndarray,
    *,
    entries: np.ndarray | None = None,
    survivors: float = 0.0,
    censor_weight: float = 0.5,
    edges: np.ndarray,
) -> LifeTable:
    """Estimate S, h and the Greenwood variance from one segment's exit histogram.

    ``survivors`` (possibly noisy; clipped at 0) are units observed beyond t_J; with
    ``entries`` they are already counted among those who entered.
    """
    edges_arr = _check_edges(edges)
    n_intervals = len(edges_arr) - 1
    d = _clipped_counts(events, n_intervals, "events")
    c = _clipped_counts(censored, n_intervals, "censored")
    if not 0.0 <= censor_weight <= 1.0:
        raise ValueError(f"censor_weight must lie in [0, 1], got {censor_weight}")
    if not np.isfinite(survivors):
        raise ValueError("survivors: must be finite")
    r = max(float(survivors), 0.0)
    entered = _entered(entries, d, c, r, n_intervals)
    exits_before = np.concatenate(([0.0], np.cumsum(d + c)[:-1]))
    n = entered - exits_before - censor_weight * c
    empty = n <= 0
    capped = ~empty & (d > n)
    hazard = np.zeros(n_intervals)
    np.divide(d, n, out=hazard, where=~empty)
    hazard = np.clip(hazard, 0.0, 1.0)
    survival = np.concatenate(([1.0], np.cumprod(1.0 - hazard)))
    return LifeTable(
        edges=_frozen(edges_arr),
        n_at_risk=_frozen(n),
        events=_frozen(d),
        censored=_frozen(c),
        hazard=_frozen(hazard),
        survival=_frozen(survival),
        greenwood_var=_frozen(_greenwood_var(n, hazard, survival)),
        risk_set_empty=_frozen(empty),
        hazard_capped=_frozen(capped),
        censor_weight=float(censor_weight),
        survivors=r,
    )


def _greenwood_var(n: np.ndarray, hazard: np.ndarray, survival: np.ndarray) -> np.ndarray:
    """Var S(t_{j+1}) = S^2 sum_{k<=j} d_k / (n_k (n_k - d_k)) with d_k = h_k n_k."""
    d = hazard * n
    alive = n - d
    terms = np.zeros_like(n)
    np.divide(d, n * alive, out=terms, where=(n > 0) & (alive > 0))
    variance = survival[1:] ** 2 * np.cumsum(terms)
    return np.concatenate(([0.0], variance))


def _entered(
    entries: np.ndarray | None, d: np.ndarray, c: np.ndarray, survivors: float, n_intervals: int
) -> np.ndarray:
    """E_j: units that have entered by interval j (all of them without left truncation)."""
    if entries is None:
        return np.full(n_intervals, float(np.sum(d) + np.sum(c) + survivors))
    return np.cumsum(_clipped_counts(entries, n_intervals, "entries"))


def _clipped_counts(values: np.ndarray, n_intervals: int, name: str) -> np.ndarray:
    counts = np.asarray(values, dtype=float)
    if counts.shape != (n_intervals,):
        raise ValueError(f"{name}: expected shape ({n_intervals},), got {counts.shape}")
    if not np.all(np.isfinite(counts)):
        raise ValueError(f"{name}: counts must be finite")
    return np.maximum(counts, 0.0)


def _check_edges(edges: np.ndarray) -> np.ndarray:
    edges_arr = np.asarray(edges, dtype=float)
    if edges_arr.ndim != 1 or len(edges_arr) < 2:
        raise ValueError("edges: need a 1-D array of at least two edges")
    if not np.all(np.diff(edges_arr) > 0):
        raise ValueError("edges: must be strictly increasing")
    return edges_arr


def _frozen(array: np.ndarray) -> np.ndarray:
    out = np.array(array, copy=True)
    out.setflags(write=False)
    return out
