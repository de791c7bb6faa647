"""What an enterprise pays for a unit: the rate table's gross premium after its sharing
discount (by the data-quality grade its node reports; a non-sharer pays the standard
rate), the penalty loading when its data were found false, and the first-of-kind
subsidy of its policy year. The published rate difference between sharers and
non-sharers is :func:`sharing_table`.
"""

from __future__ import annotations

from dataclasses import dataclass

from insurance.product import GRADES, Product

__all__ = ["PremiumTerms", "premium_due", "sharing_table"]


@dataclass(frozen=True)
class PremiumTerms:
    """Whether the enterprise shares data and with which ``grade``, whether its data were
    found ``false``, and the ``policy_year`` (1-based) of a first-of-kind unit (None: not
    first of its kind)."""

    shares: bool
    grade: str = "D"
    false_data: bool = False
    policy_year: int | None = None

    def __post_init__(self) -> None:
        if self.grade not in GRADES:
            raise ValueError(f"grade must be one of {', '.join(GRADES)}, not {self.grade!r}")
        if self.policy_year is not None and self.policy_year < 1:
            raise ValueError("policy_year counts from 1")


def premium_due(gross: float, product: Product, terms: PremiumTerms) -> float:
    """The premium the enterprise pays for a unit whose gross premium is ``gross``."""
    premium = gross
    if terms.shares and not terms.false_data:
        premium *= 1.0 - product.sharing_discount[terms.grade]
    if terms.false_data:
        premium *= 1.0 + product.false_data_penalty
    if terms.policy_year is not None:
        schedule = product.first_of_kind_subsidy
        subsidy = schedule[terms.policy_year - 1] if terms.policy_year <= len(schedule) else 0.0
        premium *= 1.0 - subsidy
    return premium


def sharing_table(gross: float, product: Product) -> list[tuple[str, float, float]]:
    """(who, discount, premium) for a non-sharer and each grade of sharer: the rate
    difference the product publishes."""
    rows = [("does not share", 0.0, gross)]
    rows += [
        (f"shares, grade {grade}", product.sharing_discount[grade],
         premium_due(gross, product, PremiumTerms(shares=True, grade=grade)))
        for grade in GRADES
    ]  # fmt: skip
    return rows
