"""The fleet-risk benchmark's table and scatter (:mod:`bench.fleet_risk`).

The table: one per data set, a row per figure and a column per setting (DP off, DP at the
shipped plan's epsilon), each cell the mean and, over several runs, min-max. The scatter:
each enterprise's relative-risk factor (left) and its in-sample O/E (right, the
experience-rating baseline) against its held-out O/E, DP off and every DP run, on log axes
with the line y = x.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["ROWS", "render", "plot_dataset"]

Figures = dict[str, dict[str, float | None]]


def _cell(figure: dict[str, float | None], digits: int = 2) -> str:
    """mean [min, max]; the mean alone when all runs agree; - when there is none."""
    mean, low, high = figure["mean"], figure["min"], figure["max"]
    if mean is None or low is None or high is None:
        return "-"
    if low == high:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _of(key: str, digits: int = 2) -> Callable[[Figures], str]:
    return lambda figures: _cell(figures[key], digits)


def _worst(mean_key: str, max_key: str) -> Callable[[Figures], str]:
    """The mean over runs of a per-run mean over enterprises, and the largest per-run max."""

    def cell(figures: Figures) -> str:
        mean, most = figures[mean_key]["mean"], figures[max_key]["max"]
        return "-" if mean is None or most is None else f"{mean:.2f} (max {most:.2f})"

    return cell


#: The table's rows: label (``{eps}``, ``{draws}``: the share's epsilon and draws) and
#: how a setting's figures make the cell.
ROWS: tuple[tuple[str, Callable[[Figures], str]], ...] = (
    ("rho(factor, held-out O/E)", _of("rho_factor")),
    ("  base: rho(in-sample O/E, held-out)", _of("rho_in_sample")),
    ("  rho(shared at eps {eps}, held-out)", _of("rho_shared")),
    ("|log factor - log held-out O/E|", _of("log_error_factor")),
    ("  factor re-centred (/ geo. mean)", _of("log_error_factor_recentred")),
    ("  base: in-sample O/E for factor", _of("log_error_in_sample")),
    ("  base: 1 for factor (curve alone)", _of("log_error_one")),
    ("median factor", _of("factor_median")),
    (
        "share eps {eps}: sd/factor, {draws} draws",
        _worst("share_sd_drawn_mean", "share_sd_drawn_max"),
    ),
    ("share eps {eps}: stated sd/factor", _worst("share_sd_stated_mean", "share_sd_stated_max")),
    ("share eps {eps}: draws, no factor", _of("share_no_factor")),
    ("pooled held-out O/E", _of("pooled_held_out_oe")),
    ("enterprises, held-out failure", _of("enterprises_scored", 0)),
)
_LEGEND = (
    "Runs: splits x runs on each. rho: Spearman across enterprises. |log a - log held-out "
    "O/E|: mean over enterprises with a held-out failure. base: the same run's baselines "
    "(experience rating; the curve alone). share rows: mean over enterprises (max). "
    "Cells: mean [min, max] over runs."
)


def render(report: dict[str, Any], console: Console) -> None:
    """One table per data set: a row per figure, a column per setting."""
    for result in report["datasets"]:
        table = Table(title=escape(_title(result)), caption=escape(_LEGEND))
        table.add_column("figure", no_wrap=True)
        splits = len(result["splits"])
        for setting in result["settings"]:
            heading = f"{setting['setting']}: {splits} x {setting['runs'] // splits} run(s)"
            table.add_column(heading, no_wrap=True)
        for label, cell in ROWS:
            label = label.format(eps=report["share_epsilon"], draws=report["share_draws"])
            table.add_row(label, *(cell(s["figures"]) for s in result["settings"]))
        console.print(table)


_MARKERS = ("o", "^")
_FLOOR = 0.02  # an O/E or factor of 0 is drawn here on the log axis
_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)


def _title(result: dict[str, Any]) -> str:
    counts = sorted({len(split["enterprises"]) for split in result["splits"]})
    sizes = [e["joined"] + e["held_out"] for s in result["splits"] for e in s["enterprises"]]
    return (
        f"{result['dataset']}: {'/'.join(map(str, counts))} enterprises of {min(sizes)}-"
        f"{max(sizes)} units, {len(result['splits'])} split(s), term {result['term']:g} "
        f"{result['time_unit']}; mean [min, max] over runs"
    )


def plot_dataset(result: dict[str, Any], path: Path) -> None:
    """Write the scatter of one data set's result (:func:`bench.fleet_risk.run_dataset`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 5.2), sharey=True)
    for axis, key, label in (
        (axes[0], "factor", "relative-risk factor (fleet_risk)"),
        (axes[1], "in_sample_oe", "in-sample O/E (joined units)"),
    ):
        for marker, setting in zip(_MARKERS, result["settings"], strict=False):
            xs, ys = [], []
            for run in (r for s in result["splits"] for r in s["runs"][setting["setting"]]):
                xs += [_drawn(row[key]) for row in run]
                ys += [_drawn(row["held_out_oe"]) for row in run]
            axis.scatter(xs, ys, marker=marker, alpha=0.6, label=setting["setting"])
        _diagonal(axis)
        axis.set_xlabel(label)
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    axes[0].set_ylabel(f"held-out O/E against the published curve (0 drawn at {_FLOOR:g})")
    figure.suptitle(f"{_title(result).split(';')[0]}; each point an enterprise in one run")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _drawn(value: float) -> float:
    """A value as drawn on the log axis: 0 (no failure) at :data:`_FLOOR`."""
    return value if value > 0 else _FLOOR


def _diagonal(axis: Any) -> None:
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    axis.set_xscale("log")
    axis.set_yscale("log")
    low = min(axis.get_xlim()[0], axis.get_ylim()[0])
    high = max(axis.get_xlim()[1], axis.get_ylim()[1])
    axis.plot([low, high], [low, high], "k--", linewidth=1, label="y = x")
    axis.set_xlim(low, high)
    axis.set_ylim(low, high)
    ticks = [t for t in _TICKS if low <= t <= high]
    for part in (axis.xaxis, axis.yaxis):
        part.set_major_locator(FixedLocator(ticks))
        part.set_major_formatter(ScalarFormatter())
        part.set_minor_formatter(NullFormatter())
