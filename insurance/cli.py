"""`fedrisk-coordinator` with the broker's insurance commands.

The coordinator's commands are built by :func:`coordinator.cli.build_app`; the insurance
commands sit above the parties (they read run outputs, never node data), so the console
script ``fedrisk-coordinator`` is this module, which adds them:

    fedrisk-coordinator price RUN_DIR --product product.yaml --out DIR
    fedrisk-coordinator pool RUN_DIR --product product.yaml --pool pool.yaml --out DIR
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from common.cli import run_cli
from coordinator.cli import build_app
from insurance.pool import load_pool
from insurance.pool_sheet import pool_tables, write_pool_sheet
from insurance.price_sheet import price_run, write_price_sheet
from insurance.product import load_product
from insurance.product_sheet import pdf_problem, write_product_sheet
from protocols.app_identity import release

__all__ = ["build_broker_app", "main"]

_console = Console()


def _price(
    run: Annotated[Path, typer.Argument(help="A completed run's directory.", readable=False)],
    product: Annotated[Path, typer.Option("--product", help="product.yaml.", readable=False)],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Price sheet directory.", readable=False)
    ] = Path("price-sheet"),
) -> None:
    """Rate table, sharing discounts and provenance of a product on a run's curves: rates.csv
    and .json, and the product sheet (product.md, .html and, where WeasyPrint runs, .pdf)."""
    sheet = price_run(run, load_product(product))
    paths = write_price_sheet(sheet, out) + write_product_sheet(sheet, run, out)
    table = Table(title=f"{sheet.product.name}: gross premium per unit per term")
    for name in ("segment", "age", "q", "pure", "uncertainty", "gross"):
        table.add_column(name, justify="left" if name in ("segment", "age") else "right")
    for r in sheet.rows:
        table.add_row(
            r.segment,
            f"{r.age_from:g}-{r.age_to:g}" + ("*" if r.extrapolated else ""),
            f"{r.q:.4f}",
            f"{r.pure_premium:,.0f}",
            f"{r.uncertainty_loading:,.0f}",
            f"{r.gross_premium:,.0f}",
        )
    _console.print(table)
    if any(r.extrapolated for r in sheet.rows):
        _console.print("* past the curves' horizon: the last interval's hazard carried on")
    _console.print("Written: " + ", ".join(escape(str(p)) for p in paths))
    _say_if_no_pdf()


def _say_if_no_pdf() -> None:
    problem = pdf_problem()
    if problem is not None:
        _console.print(f"[yellow]product.pdf NOT written:[/yellow] {escape(problem)}")


def _pool(
    run: Annotated[Path, typer.Argument(help="A completed run's directory.", readable=False)],
    product: Annotated[Path, typer.Option("--product", help="product.yaml.", readable=False)],
    pool: Annotated[Path, typer.Option("--pool", help="pool.yaml.", readable=False)],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Pool report directory.", readable=False)
    ] = Path("pool"),
) -> None:
    """The co-insurance pool of a product on a run's curves: annual aggregate loss,
    co-insurance split, excess-of-loss layer and risk compensation fund (pool.json,
    fund_fan.png), with the rate table and the product sheet that shows them all."""
    report, paths = write_pool_sheet(run, load_product(product), load_pool(pool), out)
    for table in pool_tables(report):
        _console.print(table)
    for share in report.split:
        if share.capacity_short:
            _console.print(
                f"[yellow]{escape(share.name)}: capacity {share.capacity:,.0f} is short of its "
                f"VaR 99.5 % {share.var_995:,.0f} by {share.shortfall:,.0f}[/yellow]"
            )
    _console.print("Written: " + ", ".join(escape(str(p)) for p in paths))
    _say_if_no_pdf()


def build_broker_app() -> typer.Typer:
    """The coordinator's commands plus ``price`` and ``pool``."""
    app = build_app()
    app.command("price")(_price)
    app.command("pool")(_pool)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``fedrisk-coordinator``."""
    run_cli(build_broker_app(), "fedrisk-coordinator", argv, release=release)


if __name__ == "__main__":
    main()
