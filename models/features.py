"""Encoding of the canonical unit table into model inputs, with the spec's PUBLIC bounds only.

One row per equipment unit becomes one input vector: one-hot segment, one-hot equipment
class, then each spec feature in spec order (numeric scaled to [0, 1] by the published
bounds and clipped; category one-hot over the published levels). Nothing here looks at
local statistics (min, max, quantiles): they would leak the site's data into the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.errors import DataError
from models.spec import CategoryFeature, ModelSpec, NumericFeature, TimeGrid

__all__ = ["EncodedUnits", "encode_units", "entry_interval_index"]

_BASE_COLUMNS = ("segment", "equipment_class", "duration", "failed", "entry_age")


@dataclass(frozen=True, eq=False)
class EncodedUnits:
    """Model-ready arrays, one row per equipment unit (the DP-SGD example).

    ``x``: float32 (n, spec.input_width); ``interval``: 0-based interval of exit;
    ``event``: 1 = failure in that interval, 0 = censored; ``entry_interval``: first
    0-based interval in which the unit is at risk (0 without left truncation).
    """

    x: np.ndarray
    interval: np.ndarray
    event: np.ndarray
    entry_interval: np.ndarray

    def __post_init__(self) -> None:
        n = self.x.shape[0]
        for name in ("interval", "event", "entry_interval"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"EncodedUnits.{name}: expected shape ({n},)")
        if np.any(self.entry_interval > self.interval):
            raise ValueError("EncodedUnits: entry_interval must be <= interval")

    def __len__(self) -> int:
        return int(self.x.shape[0])


def encode_units(frame: pd.DataFrame, spec: ModelSpec) -> EncodedUnits:
    """Encode a canonical unit table with the spec's public grid, levels and bounds."""
    _check_columns(frame, spec)
    blocks = [
        _one_hot(frame["segment"], spec.segments, "segment"),
        _one_hot(frame["equipment_class"], spec.equipment_classes, "equipment_class"),
    ]
    blocks += [_encode_feature(frame[f.name], f) for f in spec.features]
    x = np.concatenate(blocks, axis=1)
    duration = _finite_column(frame["duration"], "duration")
    if np.any(duration < 0):
        raise DataError("column duration: negative durations are not allowed")
    grid = spec.time_grid
    interval = grid.interval_index(duration)
    event = grid.exit_status(duration, frame["failed"].to_numpy())
    entry = entry_interval_index(grid, frame["entry_age"].to_numpy(dtype=float))
    return EncodedUnits(
        x=np.ascontiguousarray(x, dtype=np.float32),
        interval=interval.astype(np.int64),
        event=event.astype(np.int64),
        entry_interval=np.minimum(entry, interval).astype(np.int64),
    )


def entry_interval_index(grid: TimeGrid, entry_age: np.ndarray) -> np.ndarray:
    """First interval in which a unit that entered at ``entry_age`` is at risk (0 if NaN).

    Interval j is (t_{j-1}, t_j]; a unit entering at age a is at risk in the interval that
    contains (a, a + epsilon), so entering exactly on an edge t_j starts at interval j + 1.
    """
    ages = np.asarray(entry_age, dtype=float)
    edges = np.asarray(grid.edges, dtype=float)
    known = np.where(np.isnan(ages), 0.0, ages)
    idx = np.searchsorted(edges, known, side="right") - 1
    return np.clip(idx, 0, grid.n_intervals - 1).astype(np.int64)


def _check_columns(frame: pd.DataFrame, spec: ModelSpec) -> None:
    missing = [c for c in (*_BASE_COLUMNS, *spec.feature_names) if c not in frame.columns]
    if missing:
        raise DataError(f"unit table: missing columns {missing}")


def _one_hot(values: pd.Series, levels: tuple[str, ...], column: str) -> np.ndarray:
    """One-hot over published levels; an unknown level is an error, never a zero row."""
    codes = pd.Categorical(values.astype(str), categories=list(levels)).codes
    unknown = sorted(set(values[codes < 0].astype(str)))
    if unknown:
        raise DataError(f"column {column}: values not in the published levels: {unknown}")
    out = np.zeros((len(values), len(levels)), dtype=np.float32)
    out[np.arange(len(values)), codes] = 1.0
    return out


def _encode_feature(values: pd.Series, feature: NumericFeature | CategoryFeature) -> np.ndarray:
    if isinstance(feature, CategoryFeature):
        return _one_hot(values, feature.levels, feature.name)
    raw = _finite_column(values, feature.name)
    scaled = (raw - feature.lower) / (feature.upper - feature.lower)
    return np.clip(scaled, 0.0, 1.0).reshape(-1, 1).astype(np.float32)


def _finite_column(values: pd.Series, column: str) -> np.ndarray:
    raw = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(raw))
    if bad.size:
        raise DataError(
            f"column {column}: missing or non-numeric values at rows {bad[:10].tolist()}"
        )
    return raw
