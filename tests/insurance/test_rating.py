"""Rate tables against answers worked by hand, and the uncertainty loading's direction."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from common.errors import ConfigError
from insurance.product import Product, load_product
from insurance.rating import (
    conditional_failure,
    expected_payout,
    quantile_curve,
    rate_table,
    survival_at,
)
from models.curves import RiskCurve

EDGES = np.array([0.0, 12.0, 24.0, 36.0])
SURVIVAL = np.array([1.0, 0.9, 0.72, 0.576])  # per-interval survival 0.9, 0.8, 0.8


def _curve(width: float, segment: str = "nev_battery") -> RiskCurve:
    failure = 1 - SURVIVAL
    return RiskCurve(
        segment=segment,
        edges=EDGES,
        survival=SURVIVAL,
        hazard=np.array([0.1, 0.2, 0.2]),
        failure=failure,
        failure_lower=np.clip(failure - width, 0, 1),
        failure_upper=np.clip(failure + width, 0, 1),
        n_units=1000.0,
        n_failures=400.0,
    )


def _product(**changes: object) -> Product:
    data: dict = {
        "name": "toy",
        "segments": ["nev_battery"],
        "term": 12,
        "age_bands": [0, 12, 24],
        "sum_insured": 1_000_000,
        "severity": {"damage_ratio": {"mean": 0.3, "sd": 0.0}, "deductible": 50_000,
                     "limit": 1_000_000},
        "uncertainty": {"band_quantile": 0.5},
    }  # fmt: skip
    return Product.model_validate({**data, **changes})


def test_two_age_bands_priced_by_hand() -> None:
    # By hand: constant hazard within intervals; band middles 6 and 18 months.
    # S(6) = 0.9^0.5, S(18) = 0.9 x 0.8^0.5, S(30) = 0.72 x 0.8^0.5
    s6, s18, s30 = math.sqrt(0.9), 0.9 * math.sqrt(0.8), 0.72 * math.sqrt(0.8)
    q = [1 - s18 / s6, 1 - s30 / s18]
    payout = 0.3 * 1_000_000 - 50_000  # a sure damage ratio of 30 %, less the deductible
    keep = 1 - 0.20 - 0.05 - 0.005  # default expenses, profit and platform fee
    rows = rate_table([_curve(0.05)], _product())
    assert [r.q for r in rows] == pytest.approx(q, rel=1e-12)
    assert [r.pure_premium for r in rows] == pytest.approx([x * payout for x in q], rel=1e-12)
    assert [r.gross_premium for r in rows] == pytest.approx(
        [x * payout / keep for x in q], rel=1e-12
    )
    assert all(r.uncertainty_loading == 0 for r in rows)  # priced at the curve itself
    assert [r.extrapolated for r in rows] == [False, False]


def test_survival_is_geometric_between_edges_and_extrapolated_past_the_horizon() -> None:
    assert survival_at(EDGES, SURVIVAL, 12.0) == pytest.approx(0.9)
    assert survival_at(EDGES, SURVIVAL, 6.0) == pytest.approx(math.sqrt(0.9))
    assert survival_at(EDGES, SURVIVAL, 48.0) == pytest.approx(0.576 * 0.8)  # last hazard on
    assert conditional_failure(EDGES, SURVIVAL, 12.0, 12.0) == pytest.approx(0.2)
    rows = rate_table([_curve(0.05)], _product(age_bands=[24, 36]))
    assert rows[0].extrapolated  # 30 + 12 > 36


def test_expected_payout_of_a_beta_damage_ratio_matches_numerical_integration() -> None:
    product = _product(severity={"damage_ratio": {"mean": 0.3, "sd": 0.2},
                                 "deductible": 50_000, "limit": 400_000})  # fmt: skip
    a = 0.3 * (0.3 * 0.7 / 0.04 - 1)
    b = 0.7 * (0.3 * 0.7 / 0.04 - 1)
    reference = stats.beta(a, b).expect(lambda x: min(max(x * 1e6 - 5e4, 0), 4e5))
    assert expected_payout(product.severity, 1e6) == pytest.approx(reference, rel=1e-6)
    # no deductible, no binding limit: the mean damage
    plain = _product(severity={"damage_ratio": {"mean": 0.3, "sd": 0.2}, "limit": 2e6})
    assert expected_payout(plain.severity, 1e6) == pytest.approx(3e5, rel=1e-6)


def test_a_wider_band_costs_more() -> None:
    product = _product(uncertainty={"band_quantile": 0.975})
    narrow = rate_table([_curve(0.01)], product)
    wide = rate_table([_curve(0.08)], product)
    for n, w in zip(narrow, wide, strict=True):
        assert 0 < n.uncertainty_loading < w.uncertainty_loading
        assert n.gross_premium < w.gross_premium
        assert n.pure_premium == pytest.approx(w.pure_premium)  # the same curve


def test_the_band_quantile_interpolates_to_the_upper_edge() -> None:
    curve = _curve(0.05)
    upper = 1 - quantile_curve(curve, 0.975)
    assert upper == pytest.approx(np.minimum(curve.failure + 0.05, 1), abs=1e-9)
    assert (np.diff(upper) >= 0).all()


def test_withheld_or_missing_segments_cannot_be_priced() -> None:
    withheld = _curve(0.05)
    withheld = RiskCurve(**{**withheld.__dict__, "published": False})
    with pytest.raises(ValueError, match="withheld"):
        rate_table([withheld], _product())
    with pytest.raises(ValueError, match="no curve for segment"):
        rate_table([_curve(0.05, segment="other")], _product())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"age_bands": [12, 12]}, "increase strictly"),
        ({"sharing_discount": {"A": 0.3, "B": 0.25}}, "each grade"),
        ({"loadings": {"expenses": 0.6, "profit": 0.4}}, "below 1"),
        ({"severity": {"damage_ratio": {"mean": 0.3, "sd": 0.5}, "limit": 1}}, "too large"),
    ],
)
def test_bad_products_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _product(**changes)


def test_product_yaml_unknown_key_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "product.yaml"
    path.write_text("product:\n  name: x\n  segmnts: [a]\n")
    with pytest.raises(ConfigError, match="product.yaml"):
        load_product(path)
