"""Failure within a term given survival to an age, from survival on a grid of edges.

A policy covers a unit of current age a for a term T: it fails within the term with
probability q = 1 - S(a + T) / S(a). Survival is known on the grid's edges only; between
two edges the hazard is constant (S is interpolated geometrically), and past the last
edge the last interval's hazard goes on. The broker prices on the published curves
(:mod:`insurance.rating`) and a node weighs its own units with the global model
(:mod:`enterprise_node.fleet_risk`) by this one rule.
"""

from __future__ import annotations

import numpy as np

__all__ = ["survival_at", "conditional_failure", "unit_term_failure", "exposure_hazard"]


def survival_at(edges: np.ndarray, survival: np.ndarray, t: float) -> float:
    """S(t) from S on ``edges``: geometric within an interval (constant hazard), the last
    interval's hazard past the horizon."""
    row = np.asarray(survival, float)[None, :]
    return float(_survival_rows(np.asarray(edges, float), row, np.array([float(t)]))[0])


def conditional_failure(edges: np.ndarray, survival: np.ndarray, age: float, term: float) -> float:
    """q = 1 - S(age + term) / S(age): failure within the term of a unit alive at ``age``."""
    row = np.asarray(survival, float)[None, :]
    return float(unit_term_failure(edges, row, np.array([float(age)]), term)[0])


def unit_term_failure(
    edges: np.ndarray, survival: np.ndarray, ages: np.ndarray, term: float
) -> np.ndarray:
    """q of each unit: row i of ``survival`` (shape (n, len(edges))) is unit i's survival
    on the edges and ``ages[i]`` its current age; 1 for a unit whose survival to its age
    is 0."""
    edges = np.asarray(edges, float)
    survival = np.atleast_2d(np.asarray(survival, float))
    ages = np.asarray(ages, float)
    alive = _survival_rows(edges, survival, ages)
    later = _survival_rows(edges, survival, ages + term)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = 1.0 - later / alive
    return np.where(alive > 0, q, 1.0)


def exposure_hazard(
    edges: np.ndarray, survival: np.ndarray, start: np.ndarray, end: np.ndarray
) -> np.ndarray:
    """H_i = log S_i(start_i) - log S_i(end_i): the cumulative hazard unit i was exposed to
    from ``start`` (its entry) to ``end`` (its exit), its expected number of failures over
    that time; inf where S_i(end_i) is 0."""
    edges = np.asarray(edges, float)
    survival = np.atleast_2d(np.asarray(survival, float))
    first = _survival_rows(edges, survival, np.asarray(start, float))
    last = _survival_rows(edges, survival, np.asarray(end, float))
    with np.errstate(divide="ignore"):
        return np.log(first) - np.log(last)


def _survival_rows(edges: np.ndarray, survival: np.ndarray, t: np.ndarray) -> np.ndarray:
    """S_i(t_i) for every row i (see :func:`survival_at`)."""
    j = np.clip(np.searchsorted(edges, t, side="left"), 1, len(edges) - 1)
    rows = np.arange(len(t))
    s0, s1 = survival[rows, j - 1], survival[rows, j]
    start, end = edges[j - 1], edges[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(s0 > 0, s1 / s0, 0.0)
        value = s0 * ratio ** ((t - start) / (end - start))
    value = np.where(s0 > 0, value, 0.0)
    return np.where(t <= 0, 1.0, value)
