"""Bands of S/F that include the DP noise: delta-method variance, its plumbing, coverage."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bench.coverage import SimulationSetup, coverage_study, node_sigma, numpy_noise
from coordinator.config import load_coordinator_config
from models.bands import band_survival_var, noise_survival_var, survival_jacobian
from models.curve_estimator import estimate_curves, sum_counts
from models.histogram import ExitCounts
from models.life_table import LifeTable, life_table
from models.spec import ModelSpec

REPO = Path(__file__).resolve().parents[2]
EDGES = np.arange(0.0, 11.0)
# A fixed histogram of ~9000 units over 10 intervals (failures, censored, survivors).
EVENTS = np.array([60.0, 110, 150, 170, 180, 175, 160, 150, 130, 120])
CENSORED = np.array([300.0, 320, 340, 350, 360, 370, 380, 390, 400, 410])
SURVIVORS = 4000.0
ENTRIES = np.array([7000.0, 500, 400, 300, 200, 100, 50, 30, 20, 10])
CELL_VAR = 8 * 8.68**2  # 8 nodes at record-level epsilon 0.5


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return load_coordinator_config(REPO / "configs" / "coordinator.yaml").plan.model_spec


def table_of(cells: np.ndarray, *, with_entries: bool) -> LifeTable:
    """Life table from the flat cell vector [d, c, r, (e)] of models.bands."""
    j = len(EDGES) - 1
    return life_table(
        cells[:j],
        cells[j : 2 * j],
        survivors=float(cells[2 * j]),
        entries=cells[2 * j + 1 :] if with_entries else None,
        censor_weight=0.5,
        edges=EDGES,
    )


def flat_cells(*, with_entries: bool) -> np.ndarray:
    parts = [EVENTS, CENSORED, [SURVIVORS]] + ([ENTRIES] if with_entries else [])
    return np.concatenate(parts)


@pytest.mark.parametrize("with_entries", [False, True])
def test_jacobian_equals_central_finite_differences_of_the_life_table(
    with_entries: bool,
) -> None:
    # Prepare
    cells = flat_cells(with_entries=with_entries)
    table = table_of(cells, with_entries=with_entries)
    step = 1e-4
    reference = np.zeros((len(EDGES), len(cells)))
    for k in range(len(cells)):
        up, down = cells.copy(), cells.copy()
        up[k] += step
        down[k] -= step
        reference[:, k] = (
            table_of(up, with_entries=with_entries).survival
            - table_of(down, with_entries=with_entries).survival
        ) / (2 * step)
    # Execute
    jacobian = survival_jacobian(table, with_entries=with_entries)
    # Assert
    assert jacobian.shape == reference.shape
    np.testing.assert_allclose(jacobian, reference, rtol=1e-6, atol=1e-10)
    assert np.abs(jacobian).max() > 1e-5


def test_zero_noise_variance_gives_the_greenwood_band() -> None:
    # Prepare
    table = table_of(flat_cells(with_entries=False), with_entries=False)
    # Execute
    noise = noise_survival_var(table, 0.0)
    combined = band_survival_var(table, 0.0)
    # Assert
    np.testing.assert_array_equal(noise, np.zeros(len(EDGES)))
    np.testing.assert_array_equal(combined, table.greenwood_var)


def test_negative_cell_variance_is_refused() -> None:
    table = table_of(flat_cells(with_entries=False), with_entries=False)
    with pytest.raises(ValueError, match="cell_var must be finite and >= 0"):
        noise_survival_var(table, -1.0)


@pytest.mark.parametrize("with_entries", [False, True])
def test_delta_method_variance_matches_the_variance_over_noise_draws(with_entries: bool) -> None:
    # Prepare
    cells = flat_cells(with_entries=with_entries)
    table = table_of(cells, with_entries=with_entries)
    rng = np.random.default_rng(7)
    draws = 4000
    noisy = cells + np.rint(rng.normal(0.0, math.sqrt(CELL_VAR), (draws, len(cells))))
    # Execute
    predicted = noise_survival_var(table, CELL_VAR + 1 / 12, with_entries=with_entries)
    survival = np.array([table_of(x, with_entries=with_entries).survival for x in noisy])
    empirical = survival.var(axis=0, ddof=1)
    # Assert: relative SE of a variance from 4000 draws is ~2 %
    np.testing.assert_allclose(predicted[1:], empirical[1:], rtol=0.15)
    assert predicted[0] == 0.0


def test_estimate_curves_band_widens_with_the_noise_variance(spec: ModelSpec) -> None:
    # Prepare
    rng = np.random.default_rng(3)
    shape = (len(spec.segments), spec.time_grid.n_intervals)
    exits = np.stack([rng.integers(20, 80, shape), rng.integers(50, 150, shape)], axis=-1)
    counts = ExitCounts(exits=exits, entries=None, survivors=np.full(shape[0], 2000))
    total = sum_counts(spec, [counts])
    # Execute
    bands = [
        estimate_curves(total, censor_weight=0.5, cell_noise_var=v) for v in (0.0, 50.0, 500.0)
    ]
    # Assert: same point estimate; each more noisy band strictly contains the previous one
    default = estimate_curves(total, censor_weight=0.5)
    for curve, reference in zip(bands[0], default, strict=True):
        np.testing.assert_array_equal(curve.failure_lower, reference.failure_lower)
        np.testing.assert_array_equal(curve.failure_upper, reference.failure_upper)
    for narrow, wide in zip(bands[:-1], bands[1:], strict=True):
        for a, b in zip(narrow, wide, strict=True):
            np.testing.assert_array_equal(a.failure, b.failure)
            assert np.all(b.failure_lower[1:] < a.failure_lower[1:])
            assert np.all(b.failure_upper[1:] > a.failure_upper[1:])


def test_node_sigma_is_the_calibrated_gaussian_and_zero_without_noise() -> None:
    assert node_sigma(math.inf) == 0.0
    assert 8.0 < node_sigma(0.5) < 9.5
    assert node_sigma(2.0) < node_sigma(0.5)


def test_quick_coverage_of_the_federation_truth_is_near_nominal(spec: ModelSpec) -> None:
    # Prepare
    setup = SimulationSetup(n_enterprises=6, min_units=1500, max_units=3000)
    # Execute
    results = coverage_study(
        spec, replicates=40, setup=setup, epsilons=(0.5, math.inf), seed=4, sampler=numpy_noise
    )
    # Assert
    for key in ("0.5", "inf"):
        figures = results[key]
        assert 0.85 <= figures["coverage_mean"] <= 1.0, (key, figures["coverage_mean"])


def test_mixed_entry_sum_variance_counts_the_implicit_entries_noise(spec: ModelSpec) -> None:
    # Prepare: two nodes without entry histograms (their noisy totals become e_0), one with
    rng = np.random.default_rng(11)
    j = spec.time_grid.n_intervals
    n_seg = len(spec.segments)

    def node(entries: bool) -> ExitCounts:
        exits = np.stack([rng.integers(20, 60, (n_seg, j)), rng.integers(40, 90, (n_seg, j))], -1)
        survivors = np.full(n_seg, 800)
        entry = None
        if entries:
            entry = np.zeros((n_seg, j), dtype=np.int64)
            entry[:, :5] = (exits.sum(axis=(1, 2)) + survivors)[:, None] // 5
            entry[:, 0] += (exits.sum(axis=(1, 2)) + survivors) - entry.sum(axis=1)
        return ExitCounts(exits=exits, entries=entry, survivors=survivors)

    nodes = [node(False), node(False), node(True)]
    sigmas = [6.0, 6.0, 8.0]

    def noised(counts: ExitCounts, sigma: float) -> ExitCounts:
        def add(a: np.ndarray) -> np.ndarray:
            return a + np.rint(rng.normal(0.0, sigma, a.shape)).astype(np.int64)

        entries = None if counts.entries is None else add(counts.entries)
        return ExitCounts(exits=add(counts.exits), entries=entries, survivors=add(counts.survivors))

    def segment_table(total_nodes: list[ExitCounts]) -> LifeTable:
        total = sum_counts(spec, total_nodes)
        assert total.entries is not None
        return life_table(
            total.exits[0, :, 0].astype(float),
            total.exits[0, :, 1].astype(float),
            entries=total.entries[0].astype(float),
            survivors=float(total.survivors[0]),
            censor_weight=0.5,
            edges=np.asarray(spec.time_grid.edges, float),
        )

    table = segment_table(nodes)
    cell_var = sum(s**2 + 1 / 12 for s in sigmas)
    implicit_var = sum(s**2 + 1 / 12 for s in sigmas[:2])
    # Execute
    predicted = noise_survival_var(
        table, cell_var, with_entries=True, entry_var=8.0**2 + 1 / 12, implicit_var=implicit_var
    )
    naive = noise_survival_var(table, cell_var, with_entries=True)
    draws = np.array(
        [
            segment_table([noised(c, s) for c, s in zip(nodes, sigmas, strict=True)]).survival
            for _ in range(2500)
        ]
    )
    empirical = draws.var(axis=0, ddof=1)
    # Assert: the accounting for e_0 matters, and with it the variance matches
    np.testing.assert_allclose(predicted[1:], empirical[1:], rtol=0.15)
    assert np.max(np.abs(naive[1:] / empirical[1:] - 1.0)) > 0.3
