"""The curve task at a node: exit histogram + discrete Gaussian noise from a secure source.

One equipment unit changes exactly one cell of the exit-or-survivor histogram by 1
(and, with delayed entry, one cell of the entry histogram by 1): L2 sensitivity 1, or
sqrt(2) for both. Noise
is the discrete Gaussian sampled by OpenDP from OpenSSL's CSPRNG; its Renyi DP equals the
continuous Gaussian's (Canonne, Kamath, Steinke 2020), so the RDP accountant applies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models.histogram import ExitCounts

__all__ = [
    "NoisyCounts",
    "add_skellam_noise",
    "discrete_gaussian",
    "histogram_sensitivity",
    "add_noise",
    "release_counts",
]


@dataclass(frozen=True)
class NoisyCounts:
    """Noised histograms as released: ``exits`` (S, J, 2), ``survivors`` (S,),
    ``entries`` (S, J) or None."""

    exits: np.ndarray
    survivors: np.ndarray
    entries: np.ndarray | None
    noise_std: float


def histogram_sensitivity(counts: ExitCounts) -> float:
    """L2 sensitivity of releasing ``counts``: 1, or sqrt(2) with an entry histogram."""
    return math.sqrt(2.0) if counts.entries is not None else 1.0


def _opendp():  # type: ignore[no-untyped-def]
    """OpenDP, imported when noise is drawn: it takes seconds to load, and most task
    processes (the secure-aggregation stages) draw none."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


def discrete_gaussian(shape: tuple[int, ...], scale: float) -> np.ndarray:
    """Discrete Gaussian noise (int64) of std parameter ``scale`` from OpenDP (CSPRNG)."""
    dp = _opendp()
    size = int(np.prod(shape))
    measurement = dp.m.make_gaussian(
        dp.vector_domain(dp.atom_domain(T="i64"), size=size),
        dp.l2_distance(T="i64"),
        scale=float(scale),
    )
    return np.asarray(measurement([0] * size), dtype=np.int64).reshape(shape)


def release_counts(counts: ExitCounts, *, noise_multiplier: float) -> NoisyCounts:
    """Add discrete Gaussian noise of std ``noise_multiplier`` x sensitivity to every cell."""
    return add_noise(counts, std=noise_multiplier * histogram_sensitivity(counts))


def add_noise(counts: ExitCounts, *, std: float) -> NoisyCounts:
    """Add discrete Gaussian noise of scale ``std`` to every cell (a whole release, or one
    node's share of a distributed release)."""
    exits = np.asarray(counts.exits, dtype=np.int64) + discrete_gaussian(counts.exits.shape, std)
    survivors = np.asarray(counts.survivors, dtype=np.int64) + discrete_gaussian(
        counts.survivors.shape, std
    )
    entries = None
    if counts.entries is not None:
        entries = np.asarray(counts.entries, dtype=np.int64) + discrete_gaussian(
            counts.entries.shape, std
        )
    return NoisyCounts(exits=exits, survivors=survivors, entries=entries, noise_std=std)


def add_skellam_noise(counts: ExitCounts, *, scale: int, variance: float) -> NoisyCounts:
    """One node's Skellam share of a distributed release: every cell multiplied by
    ``scale`` plus Skellam noise of ``variance`` (integer units; :mod:`privacy.skellam`).
    ``noise_std`` is in counts (the share's std / ``scale``)."""
    from privacy.skellam import skellam_noise

    def noised(part: np.ndarray) -> np.ndarray:
        return np.asarray(part, dtype=np.int64) * scale + skellam_noise(part.shape, variance)

    entries = None if counts.entries is None else noised(counts.entries)
    return NoisyCounts(
        exits=noised(counts.exits),
        survivors=noised(counts.survivors),
        entries=entries,
        noise_std=math.sqrt(variance) / scale,
    )
