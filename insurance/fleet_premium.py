"""What an enterprise's fleet would pay, by the choice it makes about sharing.

The standard premium of the fleet is the rate table's gross premium of each unit's
segment and age band, summed (a unit older than the last band is not covered). Sharing
earns the discount of the site's data-quality grade (:mod:`insurance.discounts`); when
the site shares its relative-risk factor too, an insurer who rates by it would charge
the discounted premium times the factor. Figures are per term, in currency units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from insurance.discounts import PremiumTerms, premium_due
from insurance.product import Product
from insurance.rating import RateRow

__all__ = ["FleetPremium", "fleet_premium"]


@dataclass(frozen=True)
class FleetPremium:
    """The fleet's premiums per term: ``standard`` (not sharing), ``sharing`` (the grade's
    discount) and ``by_factor`` with its range (``sharing`` times the factor and its
    interval); ``covered`` and ``uncovered`` units (older than the last age band)."""

    standard: float
    sharing: float
    by_factor: float
    by_factor_low: float
    by_factor_high: float
    discount: float
    covered: int
    uncovered: int


def fleet_premium(
    rows: Sequence[RateRow],
    product: Product,
    unit_segments: np.ndarray,
    ages: np.ndarray,
    *,
    quality_grade: str,
    factor: tuple[float, float, float],
) -> FleetPremium:
    """The :class:`FleetPremium` of units of ``unit_segments`` at ``ages``, a site of data
    ``quality_grade`` and relative-risk ``factor`` (estimate, low, high)."""
    standard, covered = 0.0, 0
    for segment in np.unique(unit_segments):
        mine = np.asarray(ages, float)[np.asarray(unit_segments) == segment]
        table = [r for r in rows if r.segment == segment]
        edges = np.array([table[0].age_from] + [r.age_to for r in table]) if table else None
        if edges is None:
            continue
        band = np.searchsorted(edges, mine, side="right") - 1
        inside = (band >= 0) & (band < len(table))
        gross = np.array([r.gross_premium for r in table])
        standard += float(gross[band[inside]].sum())
        covered += int(inside.sum())
    sharing = premium_due(standard, product, PremiumTerms(shares=True, grade=quality_grade))
    estimate, low, high = factor
    return FleetPremium(
        standard=standard,
        sharing=sharing,
        by_factor=sharing * estimate,
        by_factor_low=sharing * low,
        by_factor_high=sharing * high,
        discount=product.sharing_discount[quality_grade],
        covered=covered,
        uncovered=len(ages) - covered,
    )
