"""Industry curves at the coordinator: summed node histograms -> life table per segment.

The acceptance test of the curve issue: with noise off, the federated estimate equals the
POOLED Kaplan-Meier (lifelines) on the binned data of all nodes, to 1e-9, in every segment.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter

from coordinator.config import load_coordinator_config
from enterprise_node.config import load_node_config
from enterprise_node.ingest import ingest
from harness.synthetic import SyntheticConfig, generate_federation
from models.curve_estimator import check_counts, estimate_curves, sum_counts
from models.histogram import ExitCounts, unit_histograms
from models.spec import ModelSpec

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return load_coordinator_config(REPO / "configs" / "coordinator.yaml").plan.model_spec


def federation_frames(
    root: Path, spec: ModelSpec, *, n: int, seed: int, delayed_entry: bool = False
) -> list[pd.DataFrame]:
    """Factory: a small synthetic federation, every node ingested to canonical units."""
    config = SyntheticConfig(
        n_enterprises=n,
        min_units=300,
        max_units=600,
        holdout_units=10,
        seed=seed,
        delayed_entry=delayed_entry,
    )
    manifest = generate_federation(root, spec, config)
    return [ingest(load_node_config(path), spec).frame for path in manifest.node_configs]


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory, spec: ModelSpec) -> list[pd.DataFrame]:
    return federation_frames(tmp_path_factory.mktemp("federation"), spec, n=4, seed=11)


@pytest.fixture(scope="module")
def mixed_frames(tmp_path_factory: pytest.TempPathFactory, spec: ModelSpec) -> list[pd.DataFrame]:
    """Two nodes with delayed entry (entry_age) and two without."""
    late = federation_frames(
        tmp_path_factory.mktemp("late"), spec, n=2, seed=12, delayed_entry=True
    )
    plain = federation_frames(tmp_path_factory.mktemp("plain"), spec, n=2, seed=13)
    for frame in plain:
        frame["entry_age"] = np.nan
    return late + plain


def pooled_km(
    pooled: pd.DataFrame, edges: np.ndarray, *, censor_weight: float, entry: bool = False
) -> KaplanMeierFitter:
    """lifelines on the pooled units binned to the grid, binned independently of fedrisk.

    Exit interval j is (t_j, t_{j+1}] (d = 0 in the first); an event or (censor_weight 0)
    a censoring exits at t_{j+1}; with censor_weight 0.5 a unit censored in the grid is
    two half-weight records censored at t_j and t_{j+1}. Units past t_J are censored at
    t_J, whole. Entry (optional) is the left edge of the interval holding entry_age.
    """
    durations = pooled["duration"].to_numpy(dtype=float)
    beyond = durations > edges[-1]
    j = pd.cut(
        np.minimum(durations, edges[-1]), edges, right=True, include_lowest=True, labels=False
    ).astype(int)
    event = (pooled["failed"].to_numpy() == 1) & ~beyond
    censored_in_grid = ~event & ~beyond
    ages = np.nan_to_num(pooled["entry_age"].to_numpy(dtype=float), nan=0.0)
    start = edges[pd.cut(ages, edges, right=False, labels=False).astype(int)]
    records = [
        (edges[j + 1][event], 1, 1.0, start[event]),
        (np.full(beyond.sum(), edges[-1]), 0, 1.0, start[beyond]),
    ]
    if censor_weight == 0.0:
        records.append((edges[j + 1][censored_in_grid], 0, 1.0, start[censored_in_grid]))
    else:
        for side in (j, j + 1):
            records.append((edges[side][censored_in_grid], 0, 0.5, start[censored_in_grid]))
    times = np.concatenate([r[0] for r in records])
    observed = np.concatenate([np.full(len(r[0]), r[1]) for r in records])
    weights = np.concatenate([np.full(len(r[0]), r[2]) for r in records])
    entries = np.concatenate([r[3] for r in records])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # non-integer weights; entry == exit half-records
        return KaplanMeierFitter().fit(
            times, observed, weights=weights, entry=entries if entry else None, timeline=edges
        )


def assert_equals_pooled_lifelines(
    frames: list[pd.DataFrame], spec: ModelSpec, *, censor_weight: float, entry: bool
) -> None:
    edges = np.asarray(spec.time_grid.edges, dtype=float)
    total = sum_counts(spec, [unit_histograms(frame, spec) for frame in frames])
    curves = estimate_curves(total, censor_weight=censor_weight)
    pooled = pd.concat(frames, ignore_index=True)
    assert [c.segment for c in curves] == list(spec.segments)
    for curve in curves:
        units = pooled[pooled["segment"] == curve.segment]
        reference = pooled_km(units, edges, censor_weight=censor_weight, entry=entry)
        s_ref = reference.survival_function_at_times(edges).to_numpy()
        np.testing.assert_allclose(curve.survival, s_ref, rtol=0, atol=1e-9, err_msg=curve.segment)
        np.testing.assert_allclose(curve.failure, 1.0 - s_ref, rtol=0, atol=1e-9)
        assert curve.n_units == len(units)
        assert curve.n_failures == int(
            ((units["failed"] == 1) & (units["duration"] <= edges[-1])).sum()
        )


def test_acceptance_noise_off_curves_equal_pooled_lifelines_km_on_the_grid(
    frames: list[pd.DataFrame], spec: ModelSpec
) -> None:
    # Prepare: the fixture must exercise every branch of the binning
    pooled = pd.concat(frames, ignore_index=True)
    assert (pooled["duration"] > spec.time_grid.horizon).sum() > 0
    assert ((pooled["failed"] == 0) & (pooled["duration"] <= spec.time_grid.horizon)).sum() > 0
    assert set(pooled["segment"]) == set(spec.segments)
    # Execute / Assert
    assert_equals_pooled_lifelines(frames, spec, censor_weight=0.0, entry=False)


def test_actuarial_curves_equal_lifelines_with_half_weight_censoring(
    frames: list[pd.DataFrame], spec: ModelSpec
) -> None:
    # Execute / Assert
    assert_equals_pooled_lifelines(frames, spec, censor_weight=0.5, entry=False)
    # and the adjustment matters: the two estimators differ
    total = sum_counts(spec, [unit_histograms(frame, spec) for frame in frames])
    km = estimate_curves(total, censor_weight=0.0)[0].survival
    actuarial = estimate_curves(total, censor_weight=0.5)[0].survival
    assert np.max(np.abs(km - actuarial)) > 1e-3


@pytest.mark.parametrize("censor_weight", [0.0, 0.5])
def test_mixed_entry_federation_equals_pooled_lifelines_with_entry(
    mixed_frames: list[pd.DataFrame], spec: ModelSpec, censor_weight: float
) -> None:
    # Prepare: only the first two nodes send entry histograms
    counts = [unit_histograms(frame, spec) for frame in mixed_frames]
    assert [c.entries is not None for c in counts] == [True, True, False, False]
    # Execute / Assert
    assert_equals_pooled_lifelines(mixed_frames, spec, censor_weight=censor_weight, entry=True)


# ---- summing ------------------------------------------------------------------------------


def counts_of(spec: ModelSpec, seed: int, *, entries: bool) -> ExitCounts:
    """Factory: random integer histograms of the spec's shapes."""
    rng = np.random.default_rng(seed)
    s, j = len(spec.segments), spec.time_grid.n_intervals
    exits = rng.integers(0, 20, size=(s, j, 2))
    survivors = rng.integers(0, 50, size=s)
    entry = None
    if entries:
        entry = np.zeros((s, j), dtype=np.int64)
        entry[:, 0] = exits.sum(axis=(1, 2)) + survivors - 10
        entry[:, 3] = 10
    return ExitCounts(exits=exits, entries=entry, survivors=survivors)


def test_sum_puts_entries_of_nodes_without_them_at_interval_zero(spec: ModelSpec) -> None:
    # Prepare
    with_entry = counts_of(spec, 1, entries=True)
    without = [counts_of(spec, 2, entries=False), counts_of(spec, 3, entries=False)]
    # Execute
    total = sum_counts(spec, [without[0], with_entry, without[1]])
    # Assert
    implicit = sum(c.exits.sum(axis=(1, 2)) + c.survivors for c in without)
    expected = with_entry.entries.copy()
    expected[:, 0] += implicit
    np.testing.assert_array_equal(total.entries, expected)
    np.testing.assert_array_equal(
        total.exits, with_entry.exits + without[0].exits + without[1].exits
    )
    np.testing.assert_array_equal(
        total.survivors, with_entry.survivors + without[0].survivors + without[1].survivors
    )
    assert total.contributors == 3
    # every unit entered exactly once
    np.testing.assert_array_equal(
        total.entries.sum(axis=1), total.exits.sum(axis=(1, 2)) + total.survivors
    )


def test_sum_without_any_entries_has_none(spec: ModelSpec) -> None:
    # Execute
    total = sum_counts(spec, [counts_of(spec, 4, entries=False), counts_of(spec, 5, entries=False)])
    # Assert
    assert total.entries is None


# ---- check_counts ------------------------------------------------------------------------


def test_check_counts_accepts_the_published_shapes(spec: ModelSpec) -> None:
    # Execute / Assert
    assert check_counts(spec, counts_of(spec, 1, entries=True)) is None
    assert check_counts(spec, counts_of(spec, 1, entries=False)) is None


def _replace(counts: ExitCounts, **arrays: object) -> ExitCounts:
    fields = {"exits": counts.exits, "entries": counts.entries, "survivors": counts.survivors}
    return ExitCounts(**(fields | arrays))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: {"exits": c.exits[:, :-1]}, r"exits: shape \(3, 14, 2\), expected \(3, 15, 2\)"),
        (lambda c: {"exits": c.exits[..., 0]}, r"exits: shape \(3, 15\), expected \(3, 15, 2\)"),
        (lambda c: {"exits": None}, "exits: missing"),
        (lambda c: {"survivors": c.survivors[:2]}, r"survivors: shape \(2,\), expected \(3,\)"),
        (lambda c: {"survivors": None}, "survivors: missing"),
        (lambda c: {"entries": c.entries.T}, r"entries: shape \(15, 3\), expected \(3, 15\)"),
        (lambda c: {"exits": c.exits.astype(float)}, "exits: expected integer counts, got float64"),
        (lambda c: {"survivors": c.survivors + 0.5}, "survivors: expected integer counts"),
        (lambda c: {"entries": c.entries.astype(np.float32)}, "entries: expected integer counts"),
    ],
    ids=[
        "exits-intervals",
        "exits-status",
        "exits-missing",
        "survivors-shape",
        "survivors-missing",
        "entries-shape",
        "exits-float",
        "survivors-float",
        "entries-float",
    ],
)
def test_check_counts_rejects_bad_shapes_and_dtypes(spec: ModelSpec, change, message: str) -> None:
    # Prepare
    counts = counts_of(spec, 1, entries=True)
    assert (len(spec.segments), spec.time_grid.n_intervals) == (3, 15)
    # Execute
    problem = check_counts(spec, _replace(counts, **change(counts)))
    # Assert
    assert problem is not None
    assert re.search(message, problem), problem
