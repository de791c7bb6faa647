"""Exit/entry histograms: known counts, one cell per unit, grid edge rules, the unit table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.histogram import (
    entry_histogram,
    entry_interval_index,
    exit_histogram,
    unit_histograms,
)
from models.spec import ModelSpec

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "coordinator.yaml"


@pytest.fixture(scope="module")
def spec(grid20_spec: ModelSpec) -> ModelSpec:
    """The demo spec on the fixed 20-interval grid (conftest), whatever the published grid."""
    return grid20_spec


def make_units(spec: ModelSpec, n: int, *, seed: int, with_entry: bool) -> pd.DataFrame:
    """Factory: a canonical unit table (only the columns histograms need, plus features)."""
    rng = np.random.default_rng(seed)
    duration = np.round(rng.uniform(0.0, 140.0, n), 1)
    duration[:5] = [0.0, 6.0, 120.0, 121.0, 130.0]
    entry = np.where(rng.uniform(size=n) < 0.5, np.nan, duration * rng.uniform(0, 0.9, n))
    return pd.DataFrame(
        {
            "unit_id": [f"u{i}" for i in range(n)],
            "segment": rng.choice(list(spec.segments), n),
            "equipment_class": rng.choice(list(spec.equipment_classes), n),
            "duration": duration,
            "failed": rng.integers(0, 2, n),
            "entry_age": entry if with_entry else np.full(n, np.nan),
        }
    )


def test_exit_histogram_counts_known_cells() -> None:
    # Prepare
    segment = np.array([0, 0, 1, 1, 1])
    interval = np.array([0, 0, 2, 2, 1])
    event = np.array([1, 0, 1, 1, 0])
    # Execute
    hist = exit_histogram(segment, interval, event, n_segments=2, n_intervals=3)
    # Assert
    expected = np.zeros((2, 3, 2), dtype=np.int64)
    expected[0, 0] = [1, 1]
    expected[1, 2] = [2, 0]
    expected[1, 1] = [0, 1]
    assert hist.dtype == np.int64
    np.testing.assert_array_equal(hist, expected)


def test_exit_histogram_one_unit_changes_one_cell_by_one() -> None:
    # Prepare
    rng = np.random.default_rng(3)
    seg, interval = rng.integers(0, 3, 200), rng.integers(0, 20, 200)
    event = rng.integers(0, 2, 200)
    # Execute
    full = exit_histogram(seg, interval, event, n_segments=3, n_intervals=20)
    fewer = exit_histogram(seg[1:], interval[1:], event[1:], n_segments=3, n_intervals=20)
    # Assert
    diff = full - fewer
    assert full.sum() == 200
    assert np.abs(diff).sum() == 1
    assert diff[seg[0], interval[0], 1 - event[0]] == 1


def test_entry_histogram_counts_known_cells() -> None:
    # Execute
    hist = entry_histogram(np.array([0, 1, 1]), np.array([2, 0, 0]), n_segments=2, n_intervals=3)
    # Assert
    np.testing.assert_array_equal(hist, [[0, 0, 1], [2, 0, 0]])


def test_entry_interval_index_bins_to_left_edge(spec: ModelSpec) -> None:
    # Prepare: edges 0, 6, 12, ..., 120
    ages = np.array([np.nan, 0.0, 5.9, 6.0, 6.1, 119.0, 120.0, 500.0])
    # Execute
    idx = entry_interval_index(spec.time_grid, ages)
    # Assert: entering at exactly t_j starts interval j; past t_J clips to the last interval
    np.testing.assert_array_equal(idx, [0, 0, 0, 1, 1, 19, 19, 19])


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (([0, 3], [0, 0], [1, 0]), r"segment_idx: .*\[0, 2\]"),
        (([0, 1], [0, 20], [1, 0]), r"interval_idx: .*\[0, 19\]"),
        (([0, 1], [0, 1], [1, 2]), r"event: .*\[0, 1\]"),
        (([0, 1], [0], [1, 0]), "same length"),
        (([0.5, 1], [0, 1], [1, 0]), "integer values"),
    ],
)
def test_exit_histogram_rejects_bad_indices(arrays: tuple, message: str) -> None:
    # Prepare
    segment, interval, event = (np.asarray(a) for a in arrays)
    # Execute / Assert
    with pytest.raises(ValueError, match=message):
        exit_histogram(segment, interval, event, n_segments=3, n_intervals=20)


def test_unit_histograms_match_groupby_and_count_survivors_past_horizon(
    spec: ModelSpec,
) -> None:
    # Prepare
    frame = make_units(spec, 400, seed=1, with_entry=False)
    # Execute
    counts = unit_histograms(frame, spec)
    # Assert: an independent count with pandas
    edges = np.asarray(spec.time_grid.edges)
    seg = frame["segment"].map({s: i for i, s in enumerate(spec.segments)}).to_numpy()
    inside = (frame["duration"] <= edges[-1]).to_numpy()
    j = np.clip(np.ceil(frame["duration"] / 6.0).astype(int) - 1, 0, 19).to_numpy()
    status = np.where(frame["failed"] == 1, 0, 1)
    expected = np.zeros((3, 20, 2), dtype=np.int64)
    np.add.at(expected, (seg[inside], j[inside], status[inside]), 1)
    np.testing.assert_array_equal(counts.exits, expected)
    np.testing.assert_array_equal(counts.survivors, np.bincount(seg[~inside], minlength=3))
    assert counts.entries is None
    assert (~inside).sum() > 0, "fixture must have units observed past the horizon"
    assert counts.exits.sum() + counts.survivors.sum() == 400


def test_unit_histograms_entries_follow_entry_age(spec: ModelSpec) -> None:
    # Prepare
    frame = make_units(spec, 300, seed=2, with_entry=True)
    # Execute
    counts = unit_histograms(frame, spec)
    # Assert
    assert counts.entries is not None
    assert counts.entries.sum() == 300
    no_entry = frame["entry_age"].isna() | (frame["entry_age"] < 6.0)
    first = frame[no_entry]["segment"].value_counts()
    for s, name in enumerate(spec.segments):
        assert counts.entries[s, 0] == first.get(name, 0)


def test_unit_histograms_rejects_unknown_segment_and_late_entry(spec: ModelSpec) -> None:
    # Prepare
    frame = make_units(spec, 20, seed=4, with_entry=False)
    unknown = frame.assign(segment=["mining"] + list(frame["segment"][1:]))
    late = frame.assign(duration=10.0, entry_age=[30.0] + [np.nan] * 19)
    # Execute / Assert
    with pytest.raises(ValueError, match=r"not in the model spec: \['mining'\]"):
        unit_histograms(unknown, spec)
    with pytest.raises(ValueError, match="1 unit\\(s\\) enter after their exit"):
        unit_histograms(late, spec)
