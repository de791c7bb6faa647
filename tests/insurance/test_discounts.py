"""Sharing discounts, the false-data penalty and the first-of-kind subsidy, exactly as
the product configures them (DOMAIN.md defaults)."""

from __future__ import annotations

import pytest

from insurance.discounts import PremiumTerms, premium_due, sharing_table
from insurance.product import Product

PRODUCT = Product.model_validate(
    {
        "name": "toy",
        "segments": ["nev_battery"],
        "term": 12,
        "age_bands": [0, 12],
        "sum_insured": 1e6,
        "severity": {"damage_ratio": {"mean": 0.3, "sd": 0.1}, "limit": 1e6},
    }
)


def test_the_domains_defaults_are_the_products() -> None:
    assert PRODUCT.sharing_discount == {"A": 0.30, "B": 0.25, "C": 0.15, "D": 0.0}
    assert PRODUCT.first_of_kind_subsidy == [0.40, 0.20, 0.0]
    assert PRODUCT.loadings.platform_fee == 0.005


def test_the_sharing_table_is_exactly_the_configured_discounts() -> None:
    rows = sharing_table(1000.0, PRODUCT)
    assert rows == [
        ("does not share", 0.0, 1000.0),
        ("shares, grade A", 0.30, pytest.approx(700.0)),
        ("shares, grade B", 0.25, pytest.approx(750.0)),
        ("shares, grade C", 0.15, pytest.approx(850.0)),
        ("shares, grade D", 0.0, 1000.0),
    ]


@pytest.mark.parametrize(
    ("terms", "due"),
    [
        (PremiumTerms(shares=False), 1000.0),
        (PremiumTerms(shares=True, grade="A"), 700.0),
        (PremiumTerms(shares=True, grade="A", false_data=True), 1250.0),  # no discount, +25 %
        (PremiumTerms(shares=True, grade="B", policy_year=1), 750.0 * 0.6),
        (PremiumTerms(shares=False, policy_year=2), 800.0),
        (PremiumTerms(shares=False, policy_year=3), 1000.0),
        (PremiumTerms(shares=False, policy_year=9), 1000.0),  # past the schedule: none
    ],
)
def test_premium_due(terms: PremiumTerms, due: float) -> None:
    assert premium_due(1000.0, PRODUCT, terms) == pytest.approx(due)


def test_bad_terms_are_refused() -> None:
    with pytest.raises(ValueError, match="grade must be one of"):
        PremiumTerms(shares=True, grade="E")
    with pytest.raises(ValueError, match="counts from 1"):
        PremiumTerms(shares=False, policy_year=0)
