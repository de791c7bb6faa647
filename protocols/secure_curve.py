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

Under Skellam shares (``plan.share_noise``) a node multiplies its counts by
:data:`SKELLAM_SCALE` before adding its share, so the Skellam bound's tail term is
negligible (:mod:`privacy.skellam`); the decoded sum is divided by it and rounded to whole
counts (post-processing).

Compatibility rule: the layout is never changed in meaning; add new parts at the end.
"""

from __future__ import annotations

import numpy as np

from models.histogram import ExitCounts
from models.spec import ModelSpec

__all__ = [
    "SKELLAM_SCALE",
    "count_scale",
    "curve_vector_length",
    "noised_length",
    "curve_vector",
    "decode_curve_vector",
]

#: Counts are multiplied by this before a Skellam share is added (integer units).
SKELLAM_SCALE = 16


def count_scale(share_noise: str) -> int:
    """The integer scale of the noised counts in a curve vector under ``share_noise``."""
    return SKELLAM_SCALE if share_noise == "skellam" else 1


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
    total: np.ndarray, spec: ModelSpec, *, with_entries: bool, scale: int = 1
) -> tuple[ExitCounts, np.ndarray]:
    """Summed vector -> (summed histograms, contributing enterprises per segment); noised
    counts in units of 1/``scale`` are rounded to whole counts."""
    segments, intervals = len(spec.segments), spec.time_grid.n_intervals
    cut = segments * intervals * 2

    def counts(part: np.ndarray) -> np.ndarray:
        if scale == 1:
            return part.astype(np.int64)
        return np.rint(part.astype(np.float64) / scale).astype(np.int64)

    exits = counts(total[:cut]).reshape(segments, intervals, 2)
    survivors = counts(total[cut : cut + segments])
    present = total[cut + segments : cut + 2 * segments].astype(np.int64)
    entries = None
    if with_entries:
        entries = counts(total[cut + 2 * segments :]).reshape(segments, intervals)
    return ExitCounts(exits=exits, entries=entries, survivors=survivors), present
