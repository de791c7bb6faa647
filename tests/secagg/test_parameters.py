"""The SecAgg+ neighbourhood size and threshold: the smallest k meeting the three bounds
(checked against exact counting), safe (t > k / 2), and in simulation over random graphs
the round fails no more often than the failure probability asked."""

from __future__ import annotations

import math
import random

import pytest

from common.errors import ConfigError
from secagg.graph import neighbourhood
from secagg.parameters import graph_parameters


def _hyper_sf(population: int, marked: int, draws: int, at_least: int) -> float:
    """P[X >= at_least], X hypergeometric, by exact counting (independent of scipy)."""
    total = math.comb(population, draws)
    return sum(
        math.comb(marked, x) * math.comb(population - marked, draws - x)
        for x in range(max(at_least, 0), min(marked, draws) + 1)
    ) / total


def _meets(n: int, k: int, t: int, corrupt: int, dropped: int, f: float) -> bool:
    others, draws = n - 1, k - 1
    honest_alive = max(others - corrupt - dropped, 0)
    return (
        t > k // 2
        and _hyper_sf(others, corrupt, draws, 2 * t - k + 1) <= f
        and 1.0 - _hyper_sf(others, honest_alive, draws, 1) <= f
        and 1.0 - _hyper_sf(others, others - dropped, draws, t) <= f
    )


@pytest.mark.parametrize(
    ("n", "corrupt", "dropout", "failure"),
    [(30, 0.1, 0.1, 1e-3), (60, 0.2, 0.1, 1e-6), (120, 0.05, 0.2, 2**-30), (80, 0.3, 0.05, 1e-4)],
)
def test_the_choice_is_the_smallest_meeting_the_bounds_by_exact_counting(
    n, corrupt, dropout, failure
) -> None:
    chosen = graph_parameters(n, corrupt=corrupt, dropout=dropout, failure=failure)
    c, d, f = math.floor(corrupt * n), math.ceil(dropout * n), failure / (3 * n)
    k, t = chosen.num_shares, chosen.threshold
    assert _meets(n, k, t, c, d, f)
    assert not any(_meets(n, k, s, c, d, f) for s in range(k // 2 + 1, t))
    assert not any(
        _meets(n, smaller, s, c, d, f)
        for smaller in range(3, k)
        for s in range(smaller // 2 + 1, smaller + 1)
    )


def test_cost_grows_slowly_with_n() -> None:
    sizes = {
        n: graph_parameters(n, corrupt=0.05, dropout=0.1, failure=2**-30).num_shares
        for n in (100, 500, 1000)
    }
    assert sizes[100] < sizes[500] < sizes[1000] < 100  # against 100, 500, 1000 for all


def test_in_simulation_rounds_fail_no_more_often_than_asked() -> None:
    n, corrupt, dropout, failure = 120, 0.15, 0.15, 0.2
    chosen = graph_parameters(n, corrupt=corrupt, dropout=dropout, failure=failure)
    k, t = chosen.num_shares, chosen.threshold
    rng = random.Random(3)
    failed, rounds = 0, 300
    for r in range(rounds):
        nodes = list(range(1, n + 1))
        rng.shuffle(nodes)
        n_bad, n_gone = math.floor(corrupt * n), math.ceil(dropout * n)
        bad, gone = set(nodes[:n_bad]), set(nodes[n_bad : n_bad + n_gone])
        for u in range(1, n + 1):
            others = neighbourhood(u, n, k, f"sim:{r}") - {u}
            c = len(others & bad)
            alive = len(others - gone)
            honest_alive = len(others - gone - bad)
            if c >= 2 * t - k + 1 or honest_alive == 0 or alive < t:
                failed += 1
                break
    assert failed / rounds <= failure + 3 * math.sqrt(failure * (1 - failure) / rounds)


def test_impossible_or_malformed_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="no neighbourhood"):
        graph_parameters(20, corrupt=0.45, dropout=0.45, failure=1e-12)
    with pytest.raises(ConfigError, match="need 0 <= corrupt < 0.5"):
        graph_parameters(20, corrupt=0.6, dropout=0.1, failure=1e-6)
    with pytest.raises(ConfigError, match=">= 3 nodes"):
        graph_parameters(2, corrupt=0.1, dropout=0.1, failure=1e-6)
