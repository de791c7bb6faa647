"""The vector a node masks in a securely aggregated curve round, and its decoding.

For S segments and J intervals the layout is::

    [ exits (S*J*2, row-major as (segment, interval, failed|censored)) |
      survivors (S) | present (S) | entries (S*J, only when the plan carries them) ]

Exits, survivors and entries carry the node's share of the distributed noise.
``present[s]`` is 1 when the enterprise *declares* segment s in node.yaml
(``node.segments``): a public, enterprise-level fact, not a function of its records, so
it needs no noise (an indicator computed from share-noised counts would not be covered
by the node's DP guarantee). Its sum is the number of contributing enterprises the
publication rules need.

Compatibility rule: the layout is never changed in meaning; add new parts at the end.
"""

from __future__ import annotations

import numpy as np

from models.histogram import ExitCounts
from models.spec import ModelSpec

__all__ = ["curve_vector_length", "noised_length", "curve_vector", "decode_curve_vector"]


def noised_length(spec: ModelSpec, *, with_entries: bool) -> int:
    """How many coordinates of the vector carry noise (exits, survivors, entries)."""
    segments, intervals = len(spec.segments), spec.time_grid.n_intervals
    return segments * intervals * 2 + segments + (segments * intervals if with_entries else 0)


def curve_vector_length(spec: ModelSpec, *, with_entries: bool) -> int:
    return noised_length(spec, with_entries=with_entries) + len(spec.segments)


def curve_vector(
    exits: np.ndarray, survivors: np.ndarray, entries: np.ndarray | None, present: np.ndarray
) -> np.ndarray:
    """A node's int64 vector in the layout above, from its noised histograms."""
    parts = [exits.ravel(), survivors, present]
    if entries is not None:
        parts.append(entries.ravel())
    return np.concatenate(parts).astype(np.int64)


def decode_curve_vector(
    total: np.ndarray, spec: ModelSpec, *, with_entries: bool
) -> tuple[ExitCounts, np.ndarray]:
    """Summed vector -> (summed histograms, contributing enterprises per segment)."""
    segments, intervals = len(spec.segments), spec.time_grid.n_intervals
    cut = segments * intervals * 2
    exits = total[:cut].reshape(segments, intervals, 2).astype(np.int64)
    survivors = total[cut : cut + segments].astype(np.int64)
    present = total[cut + segments : cut + 2 * segments].astype(np.int64)
    entries = None
    if with_entries:
        entries = total[cut + 2 * segments :].reshape(segments, intervals).astype(np.int64)
    return ExitCounts(exits=exits, entries=entries, survivors=survivors), present
