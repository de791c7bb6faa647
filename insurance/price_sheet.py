"""The broker's price sheet of one product from one run's published curves (`fedrisk-
coordinator price`): the rate table per segment and age band, the published rate
difference between sharers and non-sharers, and where the prices come from (the run, the
SHA-256 of its curves.json, which the coordinator's signed ledger records).

Writes ``rates.csv`` and ``rates.json`` (every row, full precision) and ``product.md``
(the tables as insurers read them). The curves are per segment: the product's equipment
classes say what it covers, and price alike until class-level rates are drawn from the
model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from common.atomic import atomic_write_json, atomic_write_text
from common.errors import ConfigError, StateError
from insurance.discounts import sharing_table
from insurance.product import Product
from insurance.rating import RateRow, rate_table
from models.curves import RiskCurve

__all__ = ["PriceSheet", "price_run", "write_price_sheet"]


@dataclass(frozen=True)
class PriceSheet:
    """A product priced on run ``run_id``'s curves (``curves_sha256``)."""

    product: Product
    run_id: str
    curves_sha256: str
    rows: tuple[RateRow, ...]


def price_run(run_dir: Path, product: Product) -> PriceSheet:
    """Price ``product`` on the curves ``run_dir`` published; StateError when the run has
    none, ConfigError when the product covers a segment the run did not publish."""
    run_dir = Path(run_dir)
    path = run_dir / "curves.json"
    try:
        data = path.read_bytes()
        curves = [RiskCurve.from_dict(c) for c in json.loads(data)["curves"]]
    except FileNotFoundError:
        raise StateError(f"{path}: not found; price a completed run with a curve release") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise StateError(f"{path}: cannot be read as a run's curves: {err}") from None
    try:
        rows = rate_table(curves, product)
    except ValueError as err:
        raise ConfigError(f"product {product.name!r} on {path}: {err}") from None
    return PriceSheet(product, _run_id(run_dir), hashlib.sha256(data).hexdigest(), tuple(rows))


def _run_id(run_dir: Path) -> str:
    """The run's id from its summary.json ("unknown" without one)."""
    try:
        return str(json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["run_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"


def write_price_sheet(sheet: PriceSheet, out_dir: Path) -> list[Path]:
    """rates.csv, rates.json and product.md in ``out_dir``; their paths."""
    out_dir = Path(out_dir)
    table = pd.DataFrame([asdict(r) for r in sheet.rows])
    csv_path, json_path, md_path = (
        out_dir / "rates.csv",
        out_dir / "rates.json",
        out_dir / "product.md",
    )
    atomic_write_text(csv_path, table.to_csv(index=False))
    atomic_write_json(
        json_path,
        {
            "product": sheet.product.model_dump(mode="json"),
            "run_id": sheet.run_id,
            "curves_sha256": sheet.curves_sha256,
            "rates": [asdict(r) for r in sheet.rows],
        },
    )
    atomic_write_text(md_path, _markdown(sheet))
    return [csv_path, json_path, md_path]


def _markdown(sheet: PriceSheet) -> str:
    product = sheet.product
    lines = [
        f"# {product.name}",
        "",
        f"Priced on run {sheet.run_id}, curves.json SHA-256 {sheet.curves_sha256} (recorded "
        "in the coordinator's signed ledger). Sum insured per unit "
        f"{product.sum_insured:,.0f}; term {product.term:g} (the curves' time unit); failure "
        f"priced at the {product.uncertainty.band_quantile:.1%} quantile of the curve's DP-aware "
        "band.",
        "",
        "## Rate table (per unit per term)",
        "",
        "| segment | age | q | q priced | pure premium | uncertainty loading | gross premium |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sheet.rows:
        age = f"{r.age_from:g}-{r.age_to:g}" + (" (extrapolated)" if r.extrapolated else "")
        lines.append(
            f"| {r.segment} | {age} | {r.q:.4f} | {r.q_priced:.4f} | {r.pure_premium:,.2f} | "
            f"{r.uncertainty_loading:,.2f} | {r.gross_premium:,.2f} |"
        )
    first = sheet.rows[0]
    lines += [
        "",
        f"## Sharing discount (published rate difference; {first.segment}, age "
        f"{first.age_from:g}-{first.age_to:g})",
        "",
        "| who | discount | premium |",
        "|---|---|---|",
    ]
    lines += [
        f"| {who} | {share:.0%} | {premium:,.2f} |"
        for who, share, premium in sharing_table(first.gross_premium, product)
    ]
    subsidy = ", ".join(
        f"year {i + 1}: {s:.0%}" for i, s in enumerate(product.first_of_kind_subsidy)
    )
    lines += [
        "",
        f"False data found: premium +{product.false_data_penalty:.0%}, no sharing discount. "
        f"First-of-kind equipment subsidy: {subsidy}.",
        "",
    ]
    return "\n".join(lines)
