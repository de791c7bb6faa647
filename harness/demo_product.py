"""The demo's last steps: an enterprise's view of its risk and premiums (`fedrisk-node
risk`, nothing sent), then the broker's product sheet for insurers on the run's curves
(`fedrisk-coordinator pool`), with the shipped product.yaml and pool.yaml.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from common.errors import ConfigError
from enterprise_node.config import load_node_config
from enterprise_node.fleet_risk import load_run_outputs
from insurance.node_cli import assess_fleet, show_fleet
from insurance.pool import Pool, load_pool
from insurance.pool_sheet import pool_tables, write_pool_sheet
from insurance.product import Product, load_product
from insurance.product_sheet import pdf_problem

__all__ = ["SHEET_DIR", "shipped_product", "enterprise_view", "product_sheet"]

#: Where the demo writes the product sheet, under its output directory.
SHEET_DIR = "product-sheet"
#: What a share would spend, shown (not spent) in the enterprise's view.
_SHOWN_EPSILON = 0.5


def shipped_product() -> tuple[Product, Pool]:
    """The packaged product.yaml and pool.yaml (the same as configs/)."""
    templates = resources.files("insurance.templates")
    with (
        resources.as_file(templates.joinpath("product.yaml")) as product,
        resources.as_file(templates.joinpath("pool.yaml")) as pool,
    ):
        return load_product(product), load_pool(pool)


def enterprise_view(
    run_dir: Path, node_configs: list[Path], product: Product, console: Console
) -> str | None:
    """`fedrisk-node risk` at the first enterprise with units in service in the product's
    segments (nothing sent, nothing charged); its name, or None when none has any."""
    outputs = load_run_outputs(run_dir)
    for path in node_configs:
        config = load_node_config(path)
        try:
            view = assess_fleet(
                config, outputs, product, product.segments, product.term, _SHOWN_EPSILON
            )
        except ConfigError:
            continue  # no unit of the product's segments at this site
        console.print(
            f"At {config.node.name} (same as: fedrisk-node risk --config {path} "
            f"--run-outputs {run_dir} --product configs/product.yaml):"
        )
        show_fleet(console, view)
        console.print("Nothing was sent and nothing was charged.")
        return config.node.name
    console.print("No enterprise has units in service in the product's segments.")
    return None


def product_sheet(run_dir: Path, out: Path, product: Product, pool: Pool, console: Console) -> dict:
    """The product sheet with the pool, written to ``out``/product-sheet; a summary."""
    report, paths = write_pool_sheet(run_dir, product, pool, out / SHEET_DIR)
    for table in pool_tables(report):
        console.print(table)
    problem = pdf_problem()
    if problem is not None:
        console.print(f"[yellow]product.pdf NOT written:[/yellow] {escape(problem)}")
    console.print(
        f"Product sheet for insurers ({', '.join(product.segments)}): "
        f"{out / SHEET_DIR / 'product.html'} (and product.md"
        + (", product.pdf" if problem is None else "")
        + "). Same as: fedrisk-coordinator pool "
        f"{run_dir} --product configs/product.yaml --pool configs/pool.yaml --out "
        f"{out / SHEET_DIR}"
    )
    return {
        "segments": list(product.segments),
        "pool_premium": report.premium,
        "expected_annual_loss": report.loss.mean,
        "var_995": report.loss.var_995,
        "fund_exhaustion_probability": report.fund.exhaustion_probability,
        "files": [str(p) for p in paths],
    }
