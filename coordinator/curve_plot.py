"""The industry risk curves as a PNG: one panel per segment, F(t) with its 95 % band and,
for synthetic factories, the true F beside it."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from common.atomic import atomic_write_bytes
from models.curves import RiskCurve

__all__ = ["plot_curves"]


def plot_curves(
    path: Path,
    curves: Sequence[RiskCurve],
    truth: Mapping[str, np.ndarray] | None = None,
    *,
    time_unit: str = "months",
    caption: str = "",
) -> None:
    """PNG with one panel per segment: F(t) as a step curve with its 95 % band and,
    when given, the true F on the same edges (``truth[segment]``) as a dashed line;
    ``caption`` (the run, its enterprises and epsilon) heads the figure, so that a
    broker reading the picture alone knows what it shows."""
    if not curves:
        raise ValueError("plot_curves: no curves to plot")
    figure = Figure(figsize=(4.0 * len(curves), 3.8 if caption else 3.4), layout="constrained")
    FigureCanvasAgg(figure)
    if caption:
        figure.suptitle(caption, fontsize=9)
    axes = figure.subplots(1, len(curves), squeeze=False)[0]
    for ax, curve in zip(axes, curves, strict=True):
        _draw_panel(ax, curve, None if truth is None else truth.get(curve.segment))
        ax.set_xlabel(f"equipment age ({time_unit})")
        ax.set_ylabel("F(t): share failed by age t")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(Path(path), buffer.getvalue())


def _draw_panel(ax: Any, curve: RiskCurve, truth: np.ndarray | None) -> None:
    # The life table estimates F at the grid edges; between edges it is drawn linearly
    # (the actuarial convention of failures spread evenly over an interval).
    ax.plot(curve.edges, curve.failure, "o-", markersize=3, color="C0", label="estimate")
    ax.fill_between(
        curve.edges,
        curve.failure_lower,
        curve.failure_upper,
        color="C0",
        alpha=0.25,
        label="95 % band",
    )
    if truth is not None:
        ax.plot(curve.edges, np.asarray(truth, float), "k--", linewidth=1.0, label="truth")
    title = curve.segment if curve.published else f"{curve.segment} (not published)"
    totals = f"about {curve.n_units:,.0f} units, {curve.n_failures:,.0f} failures"
    ax.set_title(f"{title}\n{totals}", fontsize=9)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlim(curve.edges[0], curve.edges[-1])
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
