"""Exit and entry histograms: the only data a node releases for the industry curves.

Each unit falls in exactly one exit cell (segment, interval, failed-or-censored), so adding
or removing one unit changes the exit histogram by 1 in one cell: L1 and L2 sensitivity 1.
With left truncation the entry histogram (segment, entry interval) adds one more cell.
Intervals follow ``TimeGrid``: interval j (0-based) is (t_j, t_{j+1}]. A unit still under
observation past the horizon t_J is a *survivor* of the grid: it falls in the survivors
cell of its segment instead (at risk in every interval, exiting in none), so each unit is
still in exactly one cell of (exits, survivors).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.spec import ModelSpec, TimeGrid

__all__ = [
    "ExitCounts",
    "exit_histogram",
    "entry_histogram",
    "entry_interval_index",
    "unit_histograms",
    "with_explicit_entries",
]


@dataclass(frozen=True, eq=False)
class ExitCounts:
    """One node's histograms: ``exits[s, j, 0]`` failures and ``exits[s, j, 1]`` censored
    units of segment s whose exit falls in interval j; ``entries[s, j]`` units of segment s
    entering observation in interval j (None when the data has no ``entry_age``);
    ``survivors[s]`` units of segment s observed beyond the horizon t_J."""

    exits: np.ndarray
    entries: np.ndarray | None
    survivors: np.ndarray


def exit_histogram(
    segment_idx: np.ndarray,
    interval_idx: np.ndarray,
    event: np.ndarray,
    *,
    n_segments: int,
    n_intervals: int,
) -> np.ndarray:
    """Count units per (segment, interval, status): int64 of shape (S, J, 2).

    ``[..., 0]`` counts failures (event = 1) and ``[..., 1]`` censored units (event = 0).
    """
    seg = _index_array(segment_idx, n_segments, "segment_idx")
    interval = _index_array(interval_idx, n_intervals, "interval_idx")
    status = _index_array(event, 2, "event")
    _check_same_length(seg=seg, interval=interval, event=status)
    flat = (seg * n_intervals + interval) * 2 + (1 - status)
    counts = np.bincount(flat, minlength=n_segments * n_intervals * 2)
    return counts.astype(np.int64).reshape(n_segments, n_intervals, 2)


def entry_histogram(
    segment_idx: np.ndarray,
    entry_interval_idx: np.ndarray,
    *,
    n_segments: int,
    n_intervals: int,
) -> np.ndarray:
    """Count units per (segment, entry interval): int64 of shape (S, J)."""
    seg = _index_array(segment_idx, n_segments, "segment_idx")
    interval = _index_array(entry_interval_idx, n_intervals, "entry_interval_idx")
    _check_same_length(seg=seg, interval=interval)
    counts = np.bincount(seg * n_intervals + interval, minlength=n_segments * n_intervals)
    return counts.astype(np.int64).reshape(n_segments, n_intervals)


def entry_interval_index(time_grid: TimeGrid, entry_age: np.ndarray) -> np.ndarray:
    """0-based interval in which each unit enters the risk set (binned to its left edge).

    An entry age e with t_j <= e < t_{j+1} enters in interval j: a unit observed from
    exactly t_j was not under observation during (t_{j-1}, t_j], so it joins interval j.
    This differs from ``TimeGrid.interval_index`` (right-closed) only at exact edges and
    keeps entry interval <= exit interval whenever entry_age < duration. NaN (no left
    truncation) and 0 mean entry at interval 0; ages past t_J are clipped to the last interval.
    """
    ages = np.asarray(entry_age, dtype=float)
    ages = np.where(np.isnan(ages), 0.0, ages)
    edges = np.asarray(time_grid.edges, dtype=float)
    idx = np.searchsorted(edges, ages, side="right") - 1
    return np.clip(idx, 0, time_grid.n_intervals - 1).astype(np.int64)


def unit_histograms(frame: pd.DataFrame, spec: ModelSpec) -> ExitCounts:
    """Exit, survivor (and entry) histograms of a canonical unit table on the spec's grid.

    Units observed past the horizon t_J are counted as survivors of their segment, not as
    censored in the last interval (they were at risk for all of it).
    """
    grid = spec.time_grid
    n_segments, n_intervals = len(spec.segments), grid.n_intervals
    seg = _segment_index(frame["segment"], spec.segments)
    durations = frame["duration"].to_numpy(dtype=float)
    beyond = durations > grid.horizon
    exits = exit_histogram(
        seg[~beyond],
        grid.interval_index(durations[~beyond]),
        grid.exit_status(durations[~beyond], frame["failed"].to_numpy()[~beyond]),
        n_segments=n_segments,
        n_intervals=n_intervals,
    )
    survivors = np.bincount(seg[beyond], minlength=n_segments).astype(np.int64)
    if "entry_age" not in frame.columns or frame["entry_age"].isna().all():
        return ExitCounts(exits=exits, entries=None, survivors=survivors)
    entry_idx = entry_interval_index(grid, frame["entry_age"].to_numpy(dtype=float))
    late = int(np.sum(entry_idx > grid.interval_index(durations)))
    if late:
        raise ValueError(
            f"entry_age: {late} unit(s) enter after their exit (need entry_age < duration)"
        )
    entries = entry_histogram(seg, entry_idx, n_segments=n_segments, n_intervals=n_intervals)
    return ExitCounts(exits=exits, entries=entries, survivors=survivors)


def with_explicit_entries(counts: ExitCounts) -> ExitCounts:
    """``counts`` with an entry histogram: data without delayed entry enters at interval 0."""
    if counts.entries is not None:
        return counts
    entries = np.zeros(counts.exits.shape[:2], dtype=np.int64)
    entries[:, 0] = counts.exits.sum(axis=(1, 2)) + counts.survivors
    return ExitCounts(exits=counts.exits, entries=entries, survivors=counts.survivors)


def _segment_index(segments: pd.Series, names: tuple[str, ...]) -> np.ndarray:
    codes = pd.Categorical(segments, categories=list(names)).codes.astype(np.int64)
    unknown = sorted(set(segments[codes < 0].astype(str)))
    if unknown:
        raise ValueError(f"segment: values not in the model spec: {unknown}")
    return codes


def _index_array(values: np.ndarray, size: int, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == bool:
        array = array.astype(np.int64)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {array.shape}")
    is_integer = np.issubdtype(array.dtype, np.integer)
    if array.size and not is_integer and not np.array_equal(array, np.round(array)):
        raise ValueError(f"{name}: expected integer values")
    array = array.astype(np.int64)
    if array.size and (array.min() < 0 or array.max() >= size):
        raise ValueError(f"{name}: values must lie in [0, {size - 1}]")
    return array


def _check_same_length(**arrays: np.ndarray) -> None:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"arrays must have the same length, got {lengths}")
