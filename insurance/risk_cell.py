"""Risk cells: the pool's units grouped by what prices them alike, priced by the product's
rate functions on the run's curves.

Units of one segment, current age and sum insured are alike to the pool, whichever
enterprise or equipment class they belong to (the product prices its classes alike):
each fails within the term with q = 1 - S(age + term) / S(age) from the segment's curve,
costs E[payout] per failure, and pays the gross premium the rate table charges for its
age band (:func:`insurance.rating.rate_table`: q at the product's band quantile at the
band's middle age) x E[payout] at its sum insured / (1 - expenses - profit - platform
fee), as its policies would; a unit older than the last band is not covered, and
refused.
Pooling alike units is exact: a sum of independent Binomial(n_i, q) counts is
Binomial(sum n_i, q).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from common.errors import ConfigError
from insurance.portfolio import UnitGroup
from insurance.product import Product
from insurance.rating import RateRow, conditional_failure, expected_payout
from models.curves import RiskCurve

__all__ = ["RiskCell", "risk_cells"]


@dataclass(frozen=True)
class RiskCell:
    """``units`` alike units: failure probability ``q`` over the term at their age
    (``q_priced``: their age band's, at the band quantile), ``expected_payout`` of a
    failure and ``gross_premium`` per unit (their band's), the
    cell's ``premium`` (units x gross premium) and ``expected_loss`` (units x q x
    expected payout), currency units; ``enterprises`` holding them; ``extrapolated`` when
    age + term is past the curve's horizon."""

    segment: str
    age: float
    sum_insured: float
    units: int
    enterprises: int
    q: float
    q_priced: float
    expected_payout: float
    gross_premium: float
    premium: float
    expected_loss: float
    extrapolated: bool


def risk_cells(
    groups: Sequence[UnitGroup],
    curves: Sequence[RiskCurve],
    rows: Sequence[RateRow],
    product: Product,
) -> tuple[RiskCell, ...]:
    """The portfolio's cells, priced by the rate table ``rows`` of ``product`` on
    ``curves`` (:func:`insurance.rating.rate_table`); ConfigError naming every group the
    product does not cover or the run did not publish a curve for."""
    by_segment = {c.segment: c for c in curves}
    _check_cover(groups, by_segment, product)
    alike: dict[tuple[str, float, float], list[UnitGroup]] = {}
    for group in groups:
        alike.setdefault((group.segment, group.age, group.sum_insured), []).append(group)
    return tuple(
        _price_cell(
            members, by_segment[segment], _band(rows, segment, age), product,
            age=age, sum_insured=sum_insured,
        )
        for (segment, age, sum_insured), members in sorted(alike.items())
    )  # fmt: skip


def _band(rows: Sequence[RateRow], segment: str, age: float) -> RateRow:
    """The rate table's row of ``segment`` whose age band holds ``age``."""
    for row in rows:
        if row.segment == segment and row.age_from <= age < row.age_to:
            return row
    raise ConfigError(
        f"segment {segment!r} at age {age:g}: outside the product's age bands; not covered"
    )


def _check_cover(
    groups: Sequence[UnitGroup], curves: dict[str, RiskCurve], product: Product
) -> None:
    problems = []
    classes = product.equipment_classes
    for number, group in enumerate(groups, start=1):
        where = f"group {number} ({group.enterprise})"
        if group.segment not in product.segments:
            problems.append(f"{where}: segment {group.segment!r} is not covered by the product")
        elif group.segment not in curves:
            problems.append(f"{where}: the run has no curve for segment {group.segment!r}")
        elif not curves[group.segment].published:
            problems.append(f"{where}: segment {group.segment!r} was withheld: no curve")
        if classes is not None and group.equipment_class not in classes:
            problems.append(
                f"{where}: equipment class {group.equipment_class!r} is not covered "
                f"(the product covers {', '.join(classes)})"
            )
    if problems:
        raise ConfigError(
            f"the pool's portfolio and product {product.name!r}:\n" + "\n".join(problems)
        )


def _price_cell(
    members: list[UnitGroup],
    curve: RiskCurve,
    band: RateRow,
    product: Product,
    *,
    age: float,
    sum_insured: float,
) -> RiskCell:
    q = conditional_failure(curve.edges, curve.survival, age, product.term)
    if not 0 <= q < 1:
        raise ConfigError(
            f"segment {curve.segment!r} at age {age:g}: the curve gives q = {q:g}; "
            "a pool needs 0 <= q < 1"
        )
    payout = expected_payout(product.severity, sum_insured)
    loadings = product.loadings
    keep = 1.0 - loadings.expenses - loadings.profit - loadings.platform_fee
    units = sum(g.units for g in members)
    gross = float(band.q_priced * payout / keep)  # the band's rate, at this sum insured
    return RiskCell(
        segment=curve.segment,
        age=float(age),
        sum_insured=float(sum_insured),
        units=units,
        enterprises=len({g.enterprise for g in members}),
        q=float(q),
        q_priced=float(band.q_priced),
        expected_payout=float(payout),
        gross_premium=gross,
        premium=units * gross,
        expected_loss=units * float(q) * float(payout),
        extrapolated=age + product.term > float(curve.edges[-1]) + 1e-9,
    )
