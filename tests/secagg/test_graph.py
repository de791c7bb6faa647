"""The round's public graph: a symmetric Harary graph of the asked degree, relabelled at
random per round id (deterministically, so node and coordinator agree), each node's
neighbours a uniformly random subset of the others across rounds."""

from __future__ import annotations

from collections import Counter

import pytest
from scipy import stats

from secagg.graph import GraphError, labelling, neighbourhood


@pytest.mark.parametrize(("n", "k"), [(7, 3), (10, 4), (11, 4), (50, 9), (101, 10)])
@pytest.mark.parametrize("seed", ["", "run-a:1", "run-a:2"])
def test_the_graph_is_symmetric_with_k_members_per_neighbourhood(n, k, seed) -> None:
    graph = {u: neighbourhood(u, n, k, seed) for u in range(1, n + 1)}
    for u, members in graph.items():
        assert u in members
        assert len(members) in (k, k + 1)  # k + 1 only at odd n's middle position, even k
        for v in members:
            assert u in graph[v]
    assert sum(len(m) == k + 1 for m in graph.values()) <= (1 if n % 2 and k % 2 == 0 else 0)


def test_the_empty_seed_keeps_the_plain_harary_labelling() -> None:
    assert neighbourhood(1, 7, 3, "") == {7, 1, 2}
    assert neighbourhood(4, 10, 4, "") == {3, 4, 5, 9}
    assert labelling(5, "") == ((0, 1, 2, 3, 4), (1, 2, 3, 4, 5))


def test_each_round_id_draws_its_own_graph_and_always_the_same() -> None:
    first = {u: neighbourhood(u, 50, 9, "run:1") for u in range(1, 51)}
    again = {u: neighbourhood(u, 50, 9, "run:1") for u in range(1, 51)}
    other = {u: neighbourhood(u, 50, 9, "run:2") for u in range(1, 51)}
    assert first == again and first != other


def test_across_rounds_a_nodes_neighbours_are_uniform_over_the_others() -> None:
    n, k, rounds = 20, 5, 4000
    counts = Counter(
        v for r in range(rounds) for v in neighbourhood(1, n, k, f"run:{r}") if v != 1
    )
    observed = [counts[v] for v in range(2, n + 1)]
    expected = rounds * (k - 1) / (n - 1)
    statistic = sum((o - expected) ** 2 / expected for o in observed)
    assert stats.chi2.sf(statistic, df=n - 2) > 1e-6


def test_a_node_outside_the_graph_is_refused() -> None:
    with pytest.raises(GraphError, match="node id 11"):
        neighbourhood(11, 10, 4, "run:1")
