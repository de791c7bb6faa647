"""Held-back test units, tuning splits and enterprise partitions, all fixed by a seed.

:func:`split_units` draws the TEST split first, from the seed alone (stratified by
``failed``): it never depends on the other fractions and is never used for tuning. The
rest, TRAIN, is split again (stratified, from the seed) into TUNE_TRAIN and VALIDATION,
the data on which defaults are chosen. The partitions divide a training table into
enterprises: by the data set's group column (its natural, unequal enterprises) or into
many small random enterprises of lognormal sizes, each with at least ``min_units``.

>>> ids = [f"u{i}" for i in range(100)]
>>> frame = pd.DataFrame({"unit_id": ids, "failed": [i % 4 == 0 for i in range(100)]})
>>> splits = split_units(frame, seed=1)
>>> len(splits.test), len(splits.train), len(splits.tune_train) + len(splits.validation)
(25, 75, 75)
>>> [len(p) for p in partition_random(splits.train, 5, seed=1, min_units=5)]
[13, 16, 8, 11, 27]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.datasets import GROUP_COLUMN
from common.errors import ConfigError

__all__ = [
    "Splits",
    "split_units",
    "partition_by_group",
    "partition_random",
    "RANDOM_ENTERPRISES",
    "RANDOM_MIN_UNITS",
]

#: The many-small-enterprises partition: how many, and the fewest units each gets.
RANDOM_ENTERPRISES = 50
RANDOM_MIN_UNITS = 5
#: Lognormal sigma of the random enterprises' relative sizes (sizes spread ~ 10x).
_SIZE_SIGMA = 1.0
# Purposes, mixed into the seed so that each draw is independent of the others.
_TEST, _VALIDATION, _RANDOM = 1, 2, 3


@dataclass(frozen=True, eq=False)
class Splits:
    """Disjoint unit tables: ``test`` + ``train`` = the data set; ``tune_train`` +
    ``validation`` = ``train``. Row order follows the data set's."""

    test: pd.DataFrame
    train: pd.DataFrame
    tune_train: pd.DataFrame
    validation: pd.DataFrame
    seed: int


def _rng(seed: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, purpose]))


def _stratified_mask(failed: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask picking round(fraction x n) units of each ``failed`` stratum."""
    mask = np.zeros(len(failed), dtype=bool)
    for stratum in (0, 1):
        rows = np.flatnonzero(failed == stratum)
        take = int(round(fraction * len(rows)))
        mask[rng.permutation(rows)[:take]] = True
    return mask


def split_units(
    units: pd.DataFrame,
    *,
    seed: int = 0,
    test_fraction: float = 0.25,
    validation_fraction: float = 0.25,
) -> Splits:
    """Test / train and, inside train, tune-train / validation; stratified by event."""
    if not (0 < test_fraction < 1 and 0 < validation_fraction < 1):
        raise ConfigError("test_fraction and validation_fraction must be in (0, 1)")
    units = units.reset_index(drop=True)
    failed = units["failed"].to_numpy().astype(np.int64)
    test = _stratified_mask(failed, test_fraction, _rng(seed, _TEST))
    train = units[~test].reset_index(drop=True)
    validation = _stratified_mask(
        train["failed"].to_numpy().astype(np.int64), validation_fraction, _rng(seed, _VALIDATION)
    )
    return Splits(
        test=units[test].reset_index(drop=True),
        train=train,
        tune_train=train[~validation].reset_index(drop=True),
        validation=train[validation].reset_index(drop=True),
        seed=seed,
    )


def partition_by_group(frame: pd.DataFrame, column: str = GROUP_COLUMN) -> list[pd.DataFrame]:
    """One enterprise per value of ``column`` (sorted by value)."""
    return [part.reset_index(drop=True) for _, part in frame.groupby(column, sort=True)]


def partition_random(
    frame: pd.DataFrame,
    n_enterprises: int = RANDOM_ENTERPRISES,
    *,
    seed: int = 0,
    min_units: int = RANDOM_MIN_UNITS,
) -> list[pd.DataFrame]:
    """``n_enterprises`` random enterprises of unequal sizes: ``min_units`` each, the rest
    shared in proportion to lognormal weights (largest remainders), units shuffled."""
    n = len(frame)
    spare = n - n_enterprises * min_units
    if n_enterprises < 1 or min_units < 1 or spare < 0:
        raise ConfigError(
            f"cannot make {n_enterprises} enterprises of at least {min_units} units from {n}"
        )
    rng = _rng(seed, _RANDOM)
    weights = rng.lognormal(0.0, _SIZE_SIGMA, n_enterprises)
    share = spare * weights / weights.sum()
    sizes = np.floor(share).astype(np.int64)
    left = spare - int(sizes.sum())
    sizes[np.argsort(-(share - sizes), kind="stable")[:left]] += 1
    sizes += min_units
    order = rng.permutation(n)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return [
        frame.iloc[np.sort(order[a:b])].reset_index(drop=True)
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
