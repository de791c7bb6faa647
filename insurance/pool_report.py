"""The insurance pool of one product on one run's curves (`fedrisk-coordinator pool`):
its annual aggregate loss, the co-insurance split, the excess-of-loss layer and the risk
compensation fund, with the run and the SHA-256 of the curves.json the prices come from.

Writes ``pool.json`` (every figure, full precision) and ``fund_fan.png``;
:func:`pool_sections` gives the same figures as report sections for the product sheet.

Compatibility rule: pool.json is read by insurers and auditors; its fields are never
removed and their meaning never changes. Add new ones only (``format_version`` says
which).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from common.atomic import atomic_write_json
from common.errors import ConfigError
from common.report_document import Section, Table
from insurance.aggregate_loss import pool_loss
from insurance.coinsurance import VAR_LEVEL, InsurerShare, coinsurance_split
from insurance.compensation_fund import FundFigures, annual_losses, fund_figures, simulate_fund
from insurance.fund_fan import plot_fund_fan
from insurance.loss_distribution import LossDistribution
from insurance.pool import Pool
from insurance.price_sheet import PriceSheet, price_run
from insurance.product import Product
from insurance.risk_cell import RiskCell, risk_cells
from insurance.xl_layer import LayerCosting, layer_costing, treaty_layer

__all__ = [
    "POOL_FORMAT_VERSION",
    "LossFigures",
    "PoolReport",
    "assess_pool",
    "pool_on_sheet",
    "write_pool_report",
    "pool_sections",
]

POOL_FORMAT_VERSION = 1
_FAN = "fund_fan.png"


@dataclass(frozen=True)
class LossFigures:
    """The pool's annual aggregate loss (currency units): ``expected_failures`` = sum of
    units x q, its mean, sd, VaR and TVaR at 99.5 %, and the ``grid_step`` it was
    computed on."""

    expected_failures: float
    mean: float
    sd: float
    var_995: float
    tvar_995: float
    grid_step: float


@dataclass(frozen=True)
class PoolReport:
    """The pool ``pool`` of product ``product`` priced on run ``run_id``'s curves
    (``curves_sha256``): its ``cells``, ``premium`` (sum of units x gross premium), gross
    ``loss``, co-insurance ``split`` (the lead first), the reinsurance ``layer`` above the
    pool's ``retention`` per failure and the compensation ``fund``."""

    pool: str
    product: str
    run_id: str
    curves_sha256: str
    enterprises: int
    units: int
    sum_insured: float
    premium: float
    cells: tuple[RiskCell, ...]
    loss: LossFigures
    split: tuple[InsurerShare, ...]
    retention: float
    layer: LayerCosting
    fund: FundFigures


def assess_pool(run_dir: Path, product: Product, pool: Pool) -> PoolReport:
    """The pool's figures on the curves ``run_dir`` published (read as
    :func:`insurance.price_sheet.price_run` reads them)."""
    return pool_on_sheet(price_run(run_dir, product), pool)


def pool_on_sheet(sheet: PriceSheet, pool: Pool) -> PoolReport:
    """The pool's figures on a priced run: its curves and its rate table."""
    product = sheet.product
    cells = risk_cells(pool.groups, sheet.curves, sheet.rows, product)
    premium = sum(c.premium for c in cells)
    gross = _loss(cells, product, pool, product.severity.deductible, product.severity.limit)
    treaty = treaty_layer(pool.layer, product)
    to_layer = _loss(cells, product, pool, treaty.deductible, treaty.cover)
    paths = simulate_fund(pool.fund, premium=premium, losses=annual_losses(gross, pool.fund))
    return PoolReport(
        pool=pool.name,
        product=product.name,
        run_id=sheet.run_id,
        curves_sha256=sheet.curves_sha256,
        enterprises=len({g.enterprise for g in pool.groups}),
        units=sum(c.units for c in cells),
        sum_insured=sum(c.units * c.sum_insured for c in cells),
        premium=premium,
        cells=cells,
        loss=LossFigures(
            expected_failures=sum(c.units * c.q for c in cells),
            mean=gross.mean(),
            sd=gross.sd(),
            var_995=gross.value_at_risk(VAR_LEVEL),
            tvar_995=gross.tail_value_at_risk(VAR_LEVEL),
            grid_step=gross.step,
        ),
        split=coinsurance_split(pool.coinsurance, gross, premium),
        retention=pool.layer.retention,
        layer=layer_costing(to_layer, treaty, sd_loading=pool.layer.sd_loading),
        fund=fund_figures(pool.fund, premium=premium, paths=paths),
    )


def _loss(
    cells: tuple[RiskCell, ...], product: Product, pool: Pool, deductible: float, cover: float
) -> LossDistribution:
    try:
        return pool_loss(
            cells,
            product.severity.damage_ratio,
            deductible=deductible,
            cover=cover,
            nodes=pool.severity_nodes,
        )
    except ValueError as err:
        raise ConfigError(f"pool {pool.name!r}, product {product.name!r}: {err}") from None


def write_pool_report(report: PoolReport, out_dir: Path) -> list[Path]:
    """pool.json and fund_fan.png in ``out_dir``; their paths."""
    out_dir = Path(out_dir)
    json_path, fan_path = out_dir / "pool.json", out_dir / _FAN
    atomic_write_json(json_path, {"format_version": POOL_FORMAT_VERSION, **asdict(report)})
    plot_fund_fan(fan_path, report.fund, title=report.pool)
    return [json_path, fan_path]


def pool_sections(report: PoolReport, fan: Path) -> tuple[Section, ...]:
    """The pool's split, layer and fund as report sections, showing the fund's fan chart
    ``fan`` (the one :func:`write_pool_report` wrote)."""
    return (_loss_section(report), _split_section(report), _layer_section(report),
            _fund_section(report, fan))  # fmt: skip


def _money(amount: float) -> str:
    return f"{amount:,.0f}"


def _loss_section(report: PoolReport) -> Section:
    loss = report.loss
    note = (
        f"Pool {report.pool}: {report.enterprises} enterprises, {report.units:,} units, sum "
        f"insured {_money(report.sum_insured)}, priced on run {report.run_id} (curves.json "
        f"SHA-256 {report.curves_sha256}). Each unit fails within the term with q from the "
        "curve; a failure costs the product's damage ratio x the sum insured less the "
        "deductible, at most the limit. The loss distribution is the sum of the risk "
        "cells' collective risk models (gemact)."
    )
    rows = (
        ("pool premium (sum of units x gross premium)", _money(report.premium)),
        ("expected failures a year", f"{loss.expected_failures:,.2f}"),
        ("expected annual loss", _money(loss.mean)),
        ("standard deviation", _money(loss.sd)),
        ("VaR 99.5 %", _money(loss.var_995)),
        ("TVaR 99.5 %", _money(loss.tvar_995)),
        ("expected loss ratio", f"{loss.mean / report.premium:.1%}"),
    )
    return Section("Insurance pool: annual aggregate loss", (note,),
                   (Table(("figure", "value"), rows),))  # fmt: skip


def _split_section(report: PoolReport) -> Section:
    headers = ("insurer", "role", "share", "expected loss", "VaR 99.5 %", "TVaR 99.5 %",
               "premium", "capacity", "capacity at VaR 99.5 %")  # fmt: skip
    rows = tuple(
        (s.name, s.role, f"{s.share:.1%}", _money(s.expected_loss), _money(s.var_995),
         _money(s.tvar_995), _money(s.premium), _money(s.capacity),
         f"SHORT by {_money(s.shortfall)}" if s.capacity_short else "sufficient")
        for s in report.split
    )  # fmt: skip
    note = (
        "Each insurer takes its share of every loss and of the premium: the lead 30-50 %, "
        "the co-insurers 50-70 % together. A capacity below the share's VaR 99.5 % (the "
        "loss of a 1-in-200 year) is short."
    )
    return Section("Co-insurance split", (note,), (Table(headers, rows),))


def _layer_section(report: PoolReport) -> Section:
    layer = report.layer
    reinstated = ", ".join(f"{r:.0%}" for r in layer.reinstatement_premium) or "none"
    rows = (
        ("retention (pool's payout per failure)", _money(report.retention)),
        ("cover per failure", _money(layer.cover)),
        ("reinstatements (premium each)", f"{layer.reinstatements} ({reinstated})"),
        ("aggregate limit", _money(layer.aggregate_limit)),
        ("probability the layer pays in a year", f"{layer.attach_probability:.2%}"),
        ("expected layer loss", _money(layer.expected_loss)),
        ("expected loss with unlimited reinstatements", _money(layer.expected_loss_unlimited)),
        ("standard deviation", _money(layer.sd)),
        (f"layer premium (expected + {layer.sd_loading:g} sd)", _money(layer.premium)),
        ("upfront premium", _money(layer.upfront_premium)),
        ("expected reinstatement premium", _money(layer.expected_reinstatement_premium)),
        ("probability every reinstatement is used", f"{layer.exhaustion_probability:.2%}"),
    )
    note = (
        "Excess of loss per failure: the reinsurer pays the part of each failure's payout "
        "above the retention, up to the cover, at most the aggregate limit (1 + "
        "reinstatements) x cover a year; each reinstatement is paid for pro rata to the "
        "cover it restores."
    )
    return Section("Excess-of-loss reinsurance layer", (note,),
                   (Table(("figure", "value"), rows),))  # fmt: skip


def _fund_section(report: PoolReport, fan: Path) -> Section:
    fund = report.fund
    note = (
        f"The fund starts at {_money(fund.initial_balance)} (government seed "
        f"{_money(fund.government_seed)}), takes a levy of {_money(fund.levy_per_year)} a "
        f"year and pays the pool's annual loss above {_money(fund.trigger)}, at most "
        f"{fund.payout_cap:.0%} of its balance a year. Below {_money(fund.floor)} it is used "
        f"up and stops. Used up within {fund.years} years with probability "
        f"{fund.exhaustion_probability:.2%} ({fund.paths:,} simulated paths, seed "
        f"{fund.seed}); a year's loss claims on it with probability "
        f"{fund.claim_probability:.2%}."
    )
    headers = ("year", "used up by then", "mean payout", "payout p90", "payout p99",
               "median balance", "balance 5-95 %")  # fmt: skip
    rows = tuple(
        (str(year + 1), f"{fund.exhausted_by_year[year]:.2%}", _money(fund.payout_mean[year]),
         _money(fund.payout_p90[year]), _money(fund.payout_p99[year]),
         _money(fund.balance_p50[year + 1]),
         f"{_money(fund.balance_p05[year + 1])} - {_money(fund.balance_p95[year + 1])}")
        for year in range(fund.years)
    )  # fmt: skip
    return Section("Risk compensation fund", (note,), (Table(headers, rows),), image=fan,
                   image_alt="The fund's balance by year: simulated quantiles")  # fmt: skip
