"""Industry risk curves: sum the nodes' noised histograms, then a life table per segment.

The coordinator only ever handles sums of noised counts. With noise off the result
equals the pooled life table (tested against lifelines).
"""

from __future__ import annotations

import numpy as np

from models.bands import band_survival_var
from models.curves import RiskCurve
from models.histogram import ExitCounts
from models.life_table import life_table
from models.spec import ModelSpec

__all__ = ["HistogramSum", "check_counts", "sum_counts", "estimate_curves"]


class HistogramSum:
    """Running sum over nodes of exits (S, J, 2), survivors (S,) and entries (S, J).

    A node without delayed entry sends no entry histogram: all its units entered at
    interval 0, so its per-segment total counts as entries there once any node sends
    entries (otherwise the at-risk sets of the others would be undercounted).
    """

    def __init__(self, spec: ModelSpec) -> None:
        shape = (len(spec.segments), spec.time_grid.n_intervals)
        self.spec = spec
        self.exits = np.zeros(shape + (2,), dtype=np.int64)
        self.survivors = np.zeros(shape[0], dtype=np.int64)
        self._explicit_entries = np.zeros(shape, dtype=np.int64)
        self._implicit_entries = np.zeros(shape[0], dtype=np.int64)
        self._any_entries = False
        self.contributors = 0

    def add(self, counts: ExitCounts) -> None:
        exits = counts.exits.astype(np.int64)
        survivors = counts.survivors.astype(np.int64)
        self.exits += exits
        self.survivors += survivors
        if counts.entries is None:
            self._implicit_entries += exits.sum(axis=(1, 2)) + survivors
        else:
            self._explicit_entries += counts.entries.astype(np.int64)
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


def check_counts(spec: ModelSpec, counts: ExitCounts) -> str | None:
    """None if the histograms have the published shapes and integer values; else why not."""
    shape = (len(spec.segments), spec.time_grid.n_intervals)
    expected = {"exits": shape + (2,), "survivors": shape[:1], "entries": shape}
    for name, want in expected.items():
        array = getattr(counts, name)
        if array is None:
            if name == "entries":
                continue
            return f"{name}: missing"
        if array.shape != want:
            return f"{name}: shape {array.shape}, expected {want}"
        if not np.issubdtype(array.dtype, np.integer):
            return f"{name}: expected integer counts, got {array.dtype}"
    return None


def sum_counts(spec: ModelSpec, parts: list[ExitCounts]) -> HistogramSum:
    total = HistogramSum(spec)
    for counts in parts:
        total.add(counts)
    return total


def estimate_curves(
    total: HistogramSum,
    *,
    censor_weight: float,
    cell_noise_var: float = 0.0,
    entry_noise_var: float | None = None,
    implicit_entry_noise_var: float = 0.0,
) -> list[RiskCurve]:
    """One life-table curve per segment from the summed histograms.

    ``cell_noise_var`` is the total DP-noise variance in each summed exit/survivor cell
    (sum over nodes of each node's noise std^2); when > 0 the bands add its delta-method
    variance to Greenwood's (:mod:`models.bands`). With entries: ``entry_noise_var`` is
    the variance of each summed entry cell (default ``cell_noise_var``) and
    ``implicit_entry_noise_var`` the part of ``cell_noise_var`` from nodes that sent no
    entry histogram (their noisy totals are their entries at interval 0).
    """
    edges = np.asarray(total.spec.time_grid.edges, dtype=float)
    entries = total.entries
    curves = []
    for s, segment in enumerate(total.spec.segments):
        table = life_table(
            total.exits[s, :, 0].astype(float),
            total.exits[s, :, 1].astype(float),
            entries=None if entries is None else entries[s].astype(float),
            survivors=float(total.survivors[s]),
            censor_weight=censor_weight,
            edges=edges,
        )
        variance = None
        if cell_noise_var > 0 or (entry_noise_var or 0.0) > 0:
            variance = band_survival_var(
                table,
                cell_noise_var,
                with_entries=entries is not None,
                entry_var=entry_noise_var,
                implicit_var=implicit_entry_noise_var if entries is not None else 0.0,
            )
        curves.append(RiskCurve.from_life_table(segment, table, survival_var=variance))
    return curves
