"""A SecAgg+ round's neighbourhood size k and threshold t, from the failure it may risk.

Inputs: n nodes; at most a fraction ``corrupt`` of them corrupt (colluding with the
coordinator); at most a fraction ``dropout`` dropping out during the round; the
probability ``failure`` the round may fail, over the round's random graph
(:mod:`secagg.graph`: each node's k - 1 neighbours are a uniformly random subset of the
other n - 1, so the counts below are exactly hypergeometric). For every node u, with C
the corrupt, A the surviving and H the honest surviving others in N(u):

- **privacy of u's secrets**: the coordinator asks each honest neighbour for a share of
  u's self-mask seed or of its mask key, never both, but it may ask different neighbours
  different questions, and corrupt ones give both; it rebuilds both secrets only if
  2C + (k - 1 - C) >= 2t, i.e. C >= 2t - k + 1. Required: P[C >= 2t - k + 1] <= f;
- **privacy of u's input**: an honest surviving neighbour's pairwise mask hides it:
  P[H = 0] <= f;
- **reliability**: u's secret can be rebuilt from the survivors among the others:
  P[A < t] <= f;

with f = ``failure`` / (3 n), so a union bound over the n nodes and three events keeps
the round's failure probability at most ``failure``. Security also needs t > k / 2
(:class:`secagg.messages.SecAggConfig`). :func:`graph_parameters` returns the smallest k
(k = n is the complete graph) and, for it, the smallest t meeting all three. This is
fedrisk's own bound, of the kind Bell et al. (CCS 2020) prove for a random Harary graph;
its numbers are not theirs.

    >>> graph_parameters(1000, corrupt=0.05, dropout=0.1, failure=2**-30)
    GraphParameters(num_shares=89, threshold=56)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from common.errors import ConfigError

__all__ = ["GraphParameters", "graph_parameters"]


@dataclass(frozen=True)
class GraphParameters:
    """``num_shares`` k (the closed neighbourhood's size) and ``threshold`` t."""

    num_shares: int
    threshold: int


def _threshold(n: int, k: int, corrupt: int, dropped: int, f: float) -> int | None:
    """The smallest t for neighbourhoods of size k meeting the three bounds, or None."""
    # imported here: scipy.stats takes about 0.35 s to import, and a deployed node's task
    # process (a fresh one per message) imports this module for every message
    from scipy import stats

    others, draws = n - 1, k - 1
    if float(stats.hypergeom(others, max(others - corrupt - dropped, 0), draws).pmf(0)) > f:
        return None
    # P[C >= c] for c = 0..k: the smallest t > k / 2 with P[C >= 2t - k + 1] <= f
    corrupt_sf = stats.hypergeom(others, corrupt, draws).sf(np.arange(-1, k + 1))
    t = next(
        (t for t in range(k // 2 + 1, k + 1) if corrupt_sf[2 * t - k + 1] <= f), None
    )
    if t is None or float(stats.hypergeom(others, others - dropped, draws).cdf(t - 1)) > f:
        return None  # a larger t only makes P[A < t] larger
    return t


@lru_cache(maxsize=256)
def graph_parameters(n: int, *, corrupt: float, dropout: float, failure: float) -> GraphParameters:
    """The smallest k, and for it the smallest t, meeting the module's three bounds."""
    if n < 3:
        raise ConfigError(f"secure aggregation needs >= 3 nodes, got {n}")
    if not (0.0 <= corrupt < 0.5 and 0.0 <= dropout < 0.5 and 0.0 < failure < 1.0):
        raise ConfigError(
            f"need 0 <= corrupt < 0.5, 0 <= dropout < 0.5 and 0 < failure < 1, got "
            f"{corrupt}, {dropout}, {failure}"
        )
    n_corrupt, n_dropped = math.floor(corrupt * n), math.ceil(dropout * n)
    f = failure / (3 * n)
    for k in range(3, n + 1):
        t = _threshold(n, k, n_corrupt, n_dropped, f)
        if t is not None:
            return GraphParameters(k, t)
    raise ConfigError(
        f"no neighbourhood of {n} nodes keeps the failure probability at {failure:g} with "
        f"{corrupt:.0%} corrupt and {dropout:.0%} dropping out: lower the fractions or "
        "accept a larger failure probability"
    )
