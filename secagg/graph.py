"""The public graph of a SecAgg+ round: a Harary graph under a random relabelling.

Each node shares keys with, and masks against, only its closed neighbourhood N(u): k
nodes of the Harary graph H(k-1, n) (Harary 1962), a circulant ring on positions 0..n-1
where p ~ q when their ring distance is 1..h, h = (k-1) // 2; for even k (odd degree
k-1) also the opposite position, p ~ p + n/2 for even n, and for odd n, with
m = (n-1) // 2, p ~ p + m for 0 <= p <= m (position m then has k + 1 members). The graph
is symmetric, so pairwise masks pair up; k == n is the complete graph.

Which node sits at which position is drawn afresh every round from public randomness
(Bell et al., CCS 2020, use a random Harary graph): the nodes are ordered by
SHA-256(seed | node id), the seed being the round's id, which every party knows before
the round. So no node's neighbourhood is fixed across rounds, and each node's k - 1
neighbours are, marginally, a uniformly random subset of the others: the hypergeometric
tails of :mod:`secagg.parameters` apply. An empty seed keeps the plain labelling (node id
u at position u - 1), for tests. The coordinator knows the round id first; a coordinator
that tried many round ids to steer a neighbourhood is outside the honest-but-curious
model this protocol assumes (DESIGN.md).

    >>> sorted(neighbourhood(1, 10, 5, ""))
    [1, 2, 3, 9, 10]
    >>> len(neighbourhood(1, 10, 5, "run:3")), 1 in neighbourhood(1, 10, 5, "run:3")
    (5, True)
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

__all__ = ["GraphError", "labelling", "neighbourhood"]


class GraphError(ValueError):
    """A node id or graph size outside the round's graph."""


@lru_cache(maxsize=64)
def labelling(n: int, seed: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(position of node id u at index u - 1, node id at each position) for ``seed``."""
    ids = list(range(1, n + 1))
    if seed:
        ids.sort(key=lambda u: hashlib.sha256(f"{seed}|{u}".encode()).digest())
    position = [0] * n
    for p, u in enumerate(ids):
        position[u - 1] = p
    return tuple(position), tuple(ids)


def _positions(p: int, n: int, k: int) -> set[int]:
    """The closed neighbourhood of position ``p`` in H(k-1, n) (see the module docstring)."""
    h = (k - 1) // 2
    positions = {(p + offset) % n for offset in range(-h, h + 1)}
    if k % 2 == 0:
        if n % 2 == 0:
            positions.add((p + n // 2) % n)
        else:
            m = (n - 1) // 2
            positions |= {p + m} if p < m else {p - m} if p > m else {0, n - 1}
    return positions


def neighbourhood(node: int, n: int, k: int, seed: str) -> frozenset[int]:
    """N(``node``) as node ids 1..n in the round's graph of ``n`` nodes and degree k - 1."""
    if not 1 <= node <= n:
        raise GraphError(f"node id {node} is not a position 1..{n} of the num_shares={k} graph")
    position, ids = labelling(n, seed)
    return frozenset(ids[q] for q in _positions(position[node - 1], n, k))
