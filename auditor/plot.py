"""The epsilon-over-time plot of the audit report (matplotlib, Agg, no pyplot state).

One line per node: its lifetime record-level epsilon recomputed after each release (solid,
dots), the node's claims (crosses) and its cap (dashed), against the ledger entry times.
The plot draws only what it can: a point dated outside :mod:`ledger.ranges`' sane range or
with a value beyond :data:`PLOT_LIMIT` in magnitude (no honest epsilon comes near it), and
a cap beyond it, are left out; should matplotlib still fail on what is left (a time axis
spanning millennia), the report goes without its plot. A hostile ledger can cost the
report its plot, never its verdict.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import date2num
from matplotlib.figure import Figure
from numpy.linalg import LinAlgError

from auditor.node_epsilon import EpsilonPoint, NodeEpsilonRow
from ledger.ranges import out_of_range_time

__all__ = ["PLOT_FILE", "PLOT_LIMIT", "write_epsilon_plot"]

PLOT_FILE = "epsilon.png"
#: Largest epsilon (in magnitude) the plot draws.
PLOT_LIMIT = 1e6


def write_epsilon_plot(rows: tuple[NodeEpsilonRow, ...], out_dir: Path) -> Path | None:
    """Write ``epsilon.png`` in ``out_dir``; None (nothing written) without a release it
    can draw."""
    rows = tuple(replace(row, points=_drawable(row.points)) for row in rows)
    rows = tuple(row for row in rows if row.points)
    if not rows:
        return None
    try:
        return _draw(rows, Path(out_dir) / PLOT_FILE)
    except (ValueError, ArithmeticError, LinAlgError):
        return None


def _draw(rows: tuple[NodeEpsilonRow, ...], path: Path) -> Path:
    figure = Figure(figsize=(8.0, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for index, row in enumerate(rows):
        color = f"C{index % 10}"
        times = date2num([datetime.fromtimestamp(p.time, tz=UTC) for p in row.points])
        label = f"node {row.node[:8]} ({row.unit})"
        axes.plot(times, [p.recomputed for p in row.points], "o-", color=color, label=label)
        axes.plot(times, [p.claimed for p in row.points], "x", color=color, markersize=9)
        if _in_limit(row.cap):
            axes.axhline(row.cap, color=color, linestyle="--", linewidth=0.8)
    axes.xaxis_date()
    axes.set_xlabel("ledger time (UTC)")
    axes.set_ylabel("lifetime epsilon")
    axes.set_title("Record-level epsilon per node: recomputed (line), claimed (x), cap (dashed)")
    axes.title.set_fontsize(10)
    axes.set_ylim(bottom=0.0)
    axes.legend(fontsize=8)
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path)
    return path


def _drawable(points: tuple[EpsilonPoint, ...]) -> tuple[EpsilonPoint, ...]:
    """The points with a sane date and values within the limit."""
    return tuple(
        p
        for p in points
        if out_of_range_time(p.time) is None and _in_limit(p.claimed) and _in_limit(p.recomputed)
    )


def _in_limit(value: float) -> bool:
    return math.isfinite(value) and abs(value) <= PLOT_LIMIT
