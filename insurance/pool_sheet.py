"""The broker's whole product for insurers: the rate table and the pool on one run.

``fedrisk-coordinator pool`` writes the pool's figures (pool.json, fund_fan.png), the
rate table (rates.csv/json) and the product sheet (product.md, product.html and, where
WeasyPrint runs, product.pdf) with the pool's sections: the split, the layer and the
fund beside the curves, rates and discounts they come from. The demo ends with it.
"""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.table import Table

from insurance.pool import Pool
from insurance.pool_report import PoolReport, pool_on_sheet, pool_sections, write_pool_report
from insurance.price_sheet import price_run, write_price_sheet
from insurance.product import Product
from insurance.product_sheet import write_product_sheet

__all__ = ["write_pool_sheet", "pool_tables"]


def write_pool_sheet(
    run_dir: Path, product: Product, pool: Pool, out_dir: Path
) -> tuple[PoolReport, list[Path]]:
    """Assess ``pool`` on the run's curves and write its report, the rate table and the
    product sheet with the pool's sections into ``out_dir``; the report and the paths."""
    sheet = price_run(run_dir, product)
    report = pool_on_sheet(sheet, pool)
    json_path, fan_path = write_pool_report(report, out_dir)
    paths = [json_path, fan_path, *write_price_sheet(sheet, out_dir)]
    paths += write_product_sheet(
        sheet, run_dir, out_dir, extra_sections=pool_sections(report, fan_path)
    )
    return report, paths


def pool_tables(report: PoolReport) -> tuple[Table, Table]:
    """The co-insurance split, then the pool's, the layer's and the fund's key figures."""
    split = Table(title=f"{report.pool}: co-insurance split")
    for name in ("insurer", "share", "expected loss", "VaR 99.5 %", "premium", "capacity"):
        split.add_column(name, justify="left" if name == "insurer" else "right")
    for s in report.split:
        capacity = f"{s.capacity:,.0f}" + (" [red]SHORT[/red]" if s.capacity_short else "")
        split.add_row(escape(s.name), f"{s.share:.0%}", f"{s.expected_loss:,.0f}",
                      f"{s.var_995:,.0f}", f"{s.premium:,.0f}", capacity)  # fmt: skip
    loss, layer, fund = report.loss, report.layer, report.fund
    figures = Table(title="pool, layer and fund")
    figures.add_column("figure")
    figures.add_column("value", justify="right")
    rows = (
        ("pool premium / expected loss", f"{report.premium:,.0f} / {loss.mean:,.0f}"),
        ("pool loss sd / VaR / TVaR 99.5 %",
         f"{loss.sd:,.0f} / {loss.var_995:,.0f} / {loss.tvar_995:,.0f}"),
        (f"layer {layer.cover:,.0f} xs {report.retention:,.0f}, {layer.reinstatements} "
         "reinst.: pays in a year", f"{layer.attach_probability:.1%}"),
        ("layer expected loss / sd", f"{layer.expected_loss:,.0f} / {layer.sd:,.0f}"),
        ("layer premium / upfront", f"{layer.premium:,.0f} / {layer.upfront_premium:,.0f}"),
        (f"fund used up within {fund.years} years", f"{fund.exhaustion_probability:.2%}"),
        ("fund mean payout year 1 / total", f"{fund.payout_mean[0]:,.0f} / "
         f"{fund.mean_total_payout:,.0f}"),
        (f"fund median balance year {fund.years}", f"{fund.balance_p50[-1]:,.0f}"),
    )  # fmt: skip
    for row in rows:
        figures.add_row(*row)
    return split, figures
