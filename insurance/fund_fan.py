"""The compensation fund's fan chart as a PNG: the balance's simulated quantiles by year
(5-95 % and 25-75 % bands, the median), the floor below which it is used up, and the
probability that it is used up by each year."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import StrMethodFormatter

from common.atomic import atomic_write_bytes
from insurance.compensation_fund import FundFigures

__all__ = ["plot_fund_fan"]


def plot_fund_fan(path: Path, fund: FundFigures, *, title: str = "") -> None:
    """Write the fan chart of ``fund`` to ``path`` (PNG, atomically)."""
    years = np.arange(fund.years + 1)
    figure = Figure(figsize=(7.0, 4.0), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    ax.fill_between(years, fund.balance_p05, fund.balance_p95, color="C0", alpha=0.2,
                    label="5-95 % of paths")  # fmt: skip
    ax.fill_between(years, fund.balance_p25, fund.balance_p75, color="C0", alpha=0.35,
                    label="25-75 %")  # fmt: skip
    ax.plot(years, fund.balance_p50, "o-", color="C0", markersize=3, label="median")
    ax.axhline(fund.floor, color="C3", linestyle="--", linewidth=1.0,
               label=f"used up below {fund.floor:,.0f}")  # fmt: skip
    ax.set_xlabel("year")
    ax.set_ylabel("fund balance (currency units)")
    ax.set_xlim(0, fund.years)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    heading = title or "Risk compensation fund"
    ax.set_title(
        f"{heading}: used up within {fund.years} years with probability "
        f"{fund.exhaustion_probability:.1%} ({fund.paths:,} paths, seed {fund.seed})",
        fontsize=9,
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(Path(path), buffer.getvalue())
