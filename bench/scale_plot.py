"""The scale benchmark's figures against the number of enterprises, one panel each.

Seconds per model and curve round (the Newton plan secure + DP; DP-SGD secure + DP and
plain where run), peak memory of the process
tree, bytes per node per model round, the curve noise's error at eps 1 (mean with p10-p90
over the replicates, the secure shares against a central release of the same epsilon) and
Harrell's C of the model on the holdout; a log scale for n.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from common.atomic import atomic_write_bytes

__all__ = ["plot_scale"]

#: the replicate study against the data's non-private estimate: the noise's own error
_NOISE = "vs_non_private_by_epsilon"
_RUNS = (
    ("secure_dp", "Newton, secure + DP"),
    ("secure_dp_dp_sgd", "DP-SGD, secure + DP"),
    ("plain_dp_sgd", "DP-SGD, plain"),
)


def _series(report: dict[str, Any], run: str, key: str) -> tuple[list[int], list[float]]:
    sizes = sorted(report["sizes"], key=int)
    runs = [(int(n), report["sizes"][n]["runs"].get(run)) for n in sizes]
    kept = [(n, r[key]) for n, r in runs if r is not None and r[key] is not None]
    return [n for n, _ in kept], [v for _, v in kept]


def _panel(ax: Any, report: dict[str, Any], key: str, title: str) -> None:
    for run, label in _RUNS:
        xs, ys = _series(report, run, key)
        ax.plot(xs, ys, marker="o", label=label)
    _axis(ax, report, title)


def _axis(ax: Any, report: dict[str, Any], title: str) -> None:
    """Log n with a tick at each size run, labelled plainly; title and legend."""
    sizes = sorted(int(n) for n in report["sizes"])
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(sizes, labels=[str(n) for n in sizes])
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("enterprises")
    ax.legend(fontsize=7)


def _curve_panel(ax: Any, report: dict[str, Any]) -> None:
    sizes = sorted(report["sizes"], key=int)
    for mechanism, label in (("skellam", "secure Skellam shares"), ("central", "central Gaussian")):
        rows = [report["sizes"][n]["curve_replicates"][_NOISE]["1.0"][mechanism] for n in sizes]
        xs = [int(n) for n in sizes]
        ax.plot(xs, [r["max_abs_error_mean"] for r in rows], marker="o", label=label)
        low = [r["max_abs_error_p10"] for r in rows]
        high = [r["max_abs_error_p90"] for r in rows]
        ax.fill_between(xs, low, high, alpha=0.2)
    _axis(ax, report, "curve noise: max |F - F non-private|, eps 1 (p10-p90)")


def plot_scale(report: dict[str, Any], path: Path) -> None:
    """Write the six panels of ``report`` (scale.json's content) to ``path`` (PNG)."""
    figure = Figure(figsize=(13, 7), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, 3)
    _panel(axes[0][0], report, "seconds_per_model_round", "seconds per model round")
    _panel(axes[0][1], report, "seconds_per_curve_round", "seconds per curve round")
    _panel(axes[0][2], report, "peak_tree_pss_mb", "peak memory of the process tree (MB, PSS)")
    _panel(axes[1][0], report, "bytes_per_node_per_model_round", "bytes per node per model round")
    _curve_panel(axes[1][1], report)
    _panel(axes[1][2], report, "harrell_c", "Harrell's C on the holdout")
    figure.suptitle(f"fedrisk at scale ({report['timestamp']}, one machine)", fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(Path(path), buffer.getvalue())
