"""The epsilon-over-time plot of the audit report (matplotlib, Agg, no pyplot state).

One line per node: its lifetime record-level epsilon recomputed after each release (solid,
dots), the node's claims (crosses) and its cap (dashed), against the ledger entry times.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import date2num
from matplotlib.figure import Figure

from auditor.node_epsilon import NodeEpsilonRow

__all__ = ["PLOT_FILE", "write_epsilon_plot"]

PLOT_FILE = "epsilon.png"


def write_epsilon_plot(rows: tuple[NodeEpsilonRow, ...], out_dir: Path) -> Path | None:
    """Write ``epsilon.png`` in ``out_dir``; None (nothing written) without releases."""
    if not any(row.points for row in rows):
        return None
    figure = Figure(figsize=(8.0, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for index, row in enumerate(rows):
        color = f"C{index % 10}"
        times = date2num([datetime.fromtimestamp(p.time, tz=UTC) for p in row.points])
        label = f"node {row.node[:8]} ({row.unit})"
        axes.plot(times, [p.recomputed for p in row.points], "o-", color=color, label=label)
        axes.plot(times, [p.claimed for p in row.points], "x", color=color, markersize=9)
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
    path = Path(out_dir) / PLOT_FILE
    figure.savefig(path)
    return path
