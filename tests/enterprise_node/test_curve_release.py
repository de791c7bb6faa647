"""Curve release at a node: discrete Gaussian noise of the right scale on every cell."""

from __future__ import annotations

import math

import numpy as np
import pytest

from enterprise_node.curve_release import (
    discrete_gaussian,
    histogram_sensitivity,
    release_counts,
)
from models.histogram import ExitCounts

S, J = 3, 15


def counts(*, entries: bool, seed: int = 0, intervals: int = J) -> ExitCounts:
    """Factory: integer histograms of S segments and ``intervals`` intervals."""
    rng = np.random.default_rng(seed)
    return ExitCounts(
        exits=rng.integers(0, 40, size=(S, intervals, 2)).astype(np.int64),
        entries=rng.integers(0, 40, size=(S, intervals)).astype(np.int64) if entries else None,
        survivors=rng.integers(0, 40, size=S).astype(np.int64),
    )


def test_sensitivity_is_one_or_root_two_with_entries() -> None:
    # Execute / Assert
    assert histogram_sensitivity(counts(entries=False)) == 1.0
    assert histogram_sensitivity(counts(entries=True)) == pytest.approx(math.sqrt(2.0), abs=1e-15)


@pytest.mark.parametrize("scale", [0.8, 3.0, 12.5])
def test_discrete_gaussian_has_the_requested_std(scale: float) -> None:
    # Execute
    noise = discrete_gaussian((40, 500), scale)
    # Assert: 20,000 draws; std within 10 %, centred, integers
    assert noise.shape == (40, 500) and noise.dtype == np.int64
    assert noise.std() == pytest.approx(scale, rel=0.10)
    assert abs(noise.mean()) < 5 * scale / math.sqrt(noise.size)


@pytest.mark.parametrize(("entries", "factor"), [(False, 1.0), (True, math.sqrt(2.0))])
def test_release_adds_noise_of_multiplier_times_sensitivity(entries: bool, factor: float) -> None:
    # Prepare: many cells, so the empirical std is tight
    sigma = 2.5
    exact = counts(entries=entries, intervals=1_000)
    # Execute
    noisy = release_counts(exact, noise_multiplier=sigma)
    # Assert
    parts = [(noisy.exits, exact.exits), (noisy.survivors, exact.survivors)]
    if entries:
        parts.append((noisy.entries, exact.entries))
    else:
        assert noisy.entries is None
    noise = np.concatenate([(got - want).ravel() for got, want in parts])
    assert noisy.noise_std == pytest.approx(sigma * factor)
    assert noise.std() == pytest.approx(sigma * factor, rel=0.10)
    assert abs(noise.mean()) < 5 * sigma * factor / math.sqrt(noise.size)
    for got, want in parts:
        assert got.shape == want.shape and got.dtype == np.int64


def test_release_noise_differs_between_calls_and_cells() -> None:
    # Prepare
    exact = counts(entries=True)
    # Execute
    first = release_counts(exact, noise_multiplier=3.0)
    second = release_counts(exact, noise_multiplier=3.0)
    # Assert: fresh noise each call (a fixed seed would let the broker difference it away)
    assert not np.array_equal(first.exits, second.exits)
    assert not np.array_equal(first.entries, second.entries)
    assert len(np.unique(first.exits - exact.exits)) > 3


def test_release_leaves_the_input_untouched() -> None:
    # Prepare
    exact = counts(entries=False)
    before = exact.exits.copy()
    # Execute
    release_counts(exact, noise_multiplier=3.0)
    # Assert
    np.testing.assert_array_equal(exact.exits, before)
