"""The broker's price sheet of one product from one run's published curves (`fedrisk-
coordinator price`): the rate table per segment and age band, the curves it was priced
on, and where the prices come from (the run, the SHA-256 of its curves.json, which the
coordinator's signed ledger records).

Writes ``rates.csv`` and ``rates.json`` (every row, full precision), the data a broker's
systems read; the document insurers read (product.md, .html, .pdf) is
:mod:`insurance.product_sheet`'s. The curves are per segment: the product's equipment
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
from insurance.product import Product
from insurance.rating import RateRow, rate_table
from models.curves import RiskCurve, curves_from_json

__all__ = ["PriceSheet", "price_run", "write_price_sheet"]


@dataclass(frozen=True)
class PriceSheet:
    """A product priced on run ``run_id``'s curves (``curves_sha256``): the ``rows`` of its
    rate table and the ``curves`` of its segments they were read from, in the product's
    order."""

    product: Product
    run_id: str
    curves_sha256: str
    rows: tuple[RateRow, ...]
    curves: tuple[RiskCurve, ...]


def price_run(run_dir: Path, product: Product) -> PriceSheet:
    """Price ``product`` on the curves ``run_dir`` published; StateError when the run has
    none, ConfigError when the product covers a segment the run did not publish."""
    run_dir = Path(run_dir)
    path = run_dir / "curves.json"
    try:
        data = path.read_bytes()
        curves = curves_from_json(data)
    except FileNotFoundError:
        raise StateError(f"{path}: not found; price a completed run with a curve release") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise StateError(f"{path}: cannot be read as a run's curves: {err}") from None
    try:
        rows = rate_table(curves, product)
    except ValueError as err:
        raise ConfigError(f"product {product.name!r} on {path}: {err}") from None
    by_segment = {c.segment: c for c in curves}
    return PriceSheet(
        product=product,
        run_id=_run_id(run_dir),
        curves_sha256=hashlib.sha256(data).hexdigest(),
        rows=tuple(rows),
        curves=tuple(by_segment[s] for s in product.segments),
    )


def _run_id(run_dir: Path) -> str:
    """The run's id from its summary.json ("unknown" without one)."""
    try:
        return str(json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["run_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"


def write_price_sheet(sheet: PriceSheet, out_dir: Path) -> list[Path]:
    """rates.csv and rates.json in ``out_dir``; their paths."""
    out_dir = Path(out_dir)
    table = pd.DataFrame([asdict(r) for r in sheet.rows])
    csv_path, json_path = out_dir / "rates.csv", out_dir / "rates.json"
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
    return [csv_path, json_path]
