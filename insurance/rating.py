"""Rate tables from industry curves: the failure probability over the policy term given
the unit's age, the expected payout of a failure, and the premium with its loadings.

For a unit of current age a and a term T, the conditional failure probability is
q(a) = (F(a + T) - F(a)) / (1 - F(a)) = 1 - S(a + T) / S(a), from the published curve.
Between grid edges the hazard is constant (S is interpolated geometrically); past the
horizon the last interval's hazard goes on (the row says it is extrapolated). An age band
is priced at its middle age.

pure premium = q x E[payout | failure], with payout = min(max(X x sum insured - deductible,
0), limit) and X the damage ratio. The **uncertainty loading** prices q at the product's
quantile of the curve's DP-aware 95 % band instead of the curve itself (normal on the
band's scale: the quantile's z over 1.96 of the way to the upper edge), so a noisier
curve costs visibly more. gross premium = (pure + uncertainty loading) /
(1 - expenses - profit - platform fee).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import integrate, stats

from insurance.product import DamageRatio, Product, Severity
from models.curves import RiskCurve
from models.term_failure import conditional_failure, survival_at

__all__ = [
    "RateRow",
    "survival_at",
    "conditional_failure",
    "expected_payout",
    "quantile_curve",
    "priced_failure",
    "rate_table",
]

_BAND_Z = stats.norm.ppf(0.975)  # the published band is pointwise 95 %


@dataclass(frozen=True)
class RateRow:
    """One segment and age band: ``q`` from the curve, ``q_priced`` at the band quantile,
    the payout of one failure and the premiums per unit per term (currency units)."""

    segment: str
    age_from: float
    age_to: float
    q: float
    q_priced: float
    expected_payout: float
    pure_premium: float
    uncertainty_loading: float
    gross_premium: float
    extrapolated: bool


def expected_payout(severity: Severity, sum_insured: float) -> float:
    """E[min(max(X x sum_insured - deductible, 0), limit)] with X the damage ratio."""

    def payout(x: float) -> float:
        return min(max(x * sum_insured - severity.deductible, 0.0), severity.limit)

    ratio = severity.damage_ratio
    if ratio.sd == 0:
        return payout(ratio.mean)
    a, b = _beta_parameters(ratio)
    kinks = [
        k
        for k in (
            severity.deductible / sum_insured,
            (severity.deductible + severity.limit) / sum_insured,
        )
        if 0 < k < 1
    ]
    value, _ = integrate.quad(
        lambda x: payout(x) * stats.beta.pdf(x, a, b), 0.0, 1.0, points=kinks or None, limit=200
    )
    return float(value)


def _beta_parameters(ratio: DamageRatio) -> tuple[float, float]:
    """Beta (a, b) with the given mean and sd (method of moments)."""
    common = ratio.mean * (1 - ratio.mean) / ratio.sd**2 - 1
    return ratio.mean * common, (1 - ratio.mean) * common


def quantile_curve(curve: RiskCurve, quantile: float) -> np.ndarray:
    """S at the band's ``quantile`` of F: F + (z_q / 1.96) (F_upper - F), kept a
    distribution function (non-decreasing, below 1)."""
    if quantile == 0.5:
        return np.asarray(curve.survival, float)
    share = stats.norm.ppf(quantile) / _BAND_Z
    failure = np.asarray(curve.failure, float)
    upper = np.nan_to_num(np.asarray(curve.failure_upper, float), nan=1.0)
    priced = np.clip(failure + share * (upper - failure), 0.0, 1.0 - 1e-12)
    return 1.0 - np.maximum.accumulate(priced)


def priced_failure(
    curve: RiskCurve, priced_survival: np.ndarray, age: float, term: float
) -> float:
    """q at the band quantile: (F_q(a + T) - F(a)) / (1 - F(a)), failure by the end of the
    term at the quantile, given survival to age a as the curve has it. The pointwise band
    says nothing of how S(a) and S(a + T) vary together, so the ratio of two band edges
    would not be a quantile of q (it can even fall below q); this grows with the band's
    width at a + T (the rate table keeps it at least q)."""
    alive = survival_at(curve.edges, curve.survival, age)
    if alive <= 0:
        return 1.0
    return 1.0 - survival_at(curve.edges, priced_survival, age + term) / alive


def rate_table(curves: Sequence[RiskCurve], product: Product) -> list[RateRow]:
    """The product's rate table: a row per covered segment and age band."""
    by_segment = {c.segment: c for c in curves}
    missing = [s for s in product.segments if s not in by_segment]
    if missing:
        raise ValueError(f"no curve for segment(s) {', '.join(missing)}")
    unpublished = [s for s in product.segments if not by_segment[s].published]
    if unpublished:
        raise ValueError(f"segment(s) {', '.join(unpublished)} were withheld: no curve to price")
    payout = expected_payout(product.severity, product.sum_insured)
    loadings = product.loadings
    keep = 1.0 - loadings.expenses - loadings.profit - loadings.platform_fee
    rows = []
    for segment in product.segments:
        curve = by_segment[segment]
        priced_survival = quantile_curve(curve, product.uncertainty.band_quantile)
        for age_from, age_to in zip(product.age_bands, product.age_bands[1:], strict=False):
            age = (age_from + age_to) / 2
            q = conditional_failure(curve.edges, curve.survival, age, product.term)
            q_priced = max(q, priced_failure(curve, priced_survival, age, product.term))
            pure = q * payout
            loading = (q_priced - q) * payout
            rows.append(
                RateRow(
                    segment=segment,
                    age_from=age_from,
                    age_to=age_to,
                    q=q,
                    q_priced=q_priced,
                    expected_payout=payout,
                    pure_premium=pure,
                    uncertainty_loading=loading,
                    gross_premium=(pure + loading) / keep,
                    extrapolated=age + product.term > float(curve.edges[-1]) + 1e-9,
                )
            )
    return rows


