"""Industry risk curves: sum the nodes' noised histograms, then a life table per segment.

The coordinator only ever handles sums of noised counts. With noise off the result
equals the pooled life table (tested against lifelines).
"""

from __future__ import annotations

import numpy as np

from models.curves import RiskCurve
from models.life_table import life_table
from protocols.model_spec import ModelSpec

__all__ = ["HistogramSum", "check_histogram", "sum_histograms", "estimate_curves"]


class HistogramSum:
    """Running sum of exit (S, J, 2) and entry (S, J) histograms over nodes.

    A node without delayed entry sends no entry histogram: all its units entered at
    interval 0, so its per-segment total counts as entries there once any node sends
    entries (otherwise the at-risk sets of the others would be undercounted).
    """

    def __init__(self, spec: ModelSpec) -> None:
        shape = (len(spec.segments), spec.time_grid.n_intervals)
        self.spec = spec
        self.exits = np.zeros(shape + (2,), dtype=np.int64)
        self._explicit_entries = np.zeros(shape, dtype=np.int64)
        self._implicit_entries = np.zeros(shape[0], dtype=np.int64)
        self._any_entries = False
        self.contributors = 0

    def add(self, exits: np.ndarray, entries: np.ndarray | None) -> None:
        exits = exits.astype(np.int64)
        self.exits += exits
        if entries is None:
            self._implicit_entries += exits.sum(axis=(1, 2))
        else:
            self._explicit_entries += entries.astype(np.int64)
            self._any_entries = True
        self.contributors += 1

    @property
    def entries(self) -> np.ndarray | None:
        """Summed entry histogram, or None when no node reported delayed entry."""
        if not self._any_entries:
            return None
        total = self._explicit_entries.copy()
        total[:, 0] += self._implicit_entries
        return total


def check_histogram(
    spec: ModelSpec, exits: np.ndarray, entries: np.ndarray | None
) -> str | None:
    """None if the histograms have the published shape and integer values; else why not."""
    shape = (len(spec.segments), spec.time_grid.n_intervals)
    if exits.shape != shape + (2,):
        return f"exit histogram shape {exits.shape}, expected {shape + (2,)}"
    if entries is not None and entries.shape != shape:
        return f"entry histogram shape {entries.shape}, expected {shape}"
    for name, arr in (("exits", exits), ("entries", entries)):
        if arr is not None and not np.issubdtype(arr.dtype, np.integer):
            return f"{name}: expected integer counts, got {arr.dtype}"
    return None


def sum_histograms(spec: ModelSpec, parts: list[tuple[np.ndarray, np.ndarray | None]]) -> HistogramSum:
    total = HistogramSum(spec)
    for exits, entries in parts:
        total.add(exits, entries)
    return total


def estimate_curves(total: HistogramSum, *, censor_weight: float) -> list[RiskCurve]:
    """One life-table curve per published segment from the summed histograms."""
    edges = np.asarray(total.spec.time_grid.edges, dtype=float)
    curves = []
    for s, segment in enumerate(total.spec.segments):
        entries = None if total.entries is None else total.entries[s].astype(float)
        table = life_table(
            total.exits[s, :, 0].astype(float),
            total.exits[s, :, 1].astype(float),
            entries=entries,
            censor_weight=censor_weight,
            edges=edges,
        )
        curves.append(RiskCurve.from_life_table(segment, table))
    return curves
