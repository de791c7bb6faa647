"""The pool's aggregate loss: the compound identities E[S] = E[N] E[X] and Var S = E[N]
Var X + Var N E[X]^2 against the payout's moments integrated independently (scipy quad
on the beta), alike units pooled into one cell, and the grid's risk measures by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from insurance.aggregate_loss import beta_severity, binomial_frequency, compound_loss, pool_loss
from insurance.loss_distribution import LossDistribution
from insurance.portfolio import UnitGroup
from insurance.product import DamageRatio, Product
from insurance.rating import RateRow, rate_table
from insurance.risk_cell import risk_cells
from models.curves import RiskCurve

RATIO = DamageRatio(mean=0.25, sd=0.15)
SUM_INSURED, DEDUCTIBLE, LIMIT = 2_000_000.0, 50_000.0, 1_500_000.0


def _payout_moments(sum_insured: float) -> tuple[float, float]:
    """E[Y], E[Y^2] of Y = min(max(X SI - d, 0), L), X ~ Beta(mean 0.25, sd 0.15)."""
    total = RATIO.mean * (1 - RATIO.mean) / RATIO.sd**2 - 1
    beta = stats.beta(RATIO.mean * total, (1 - RATIO.mean) * total)
    kinks = [DEDUCTIBLE / sum_insured, (DEDUCTIBLE + LIMIT) / sum_insured]
    kinks = [k for k in kinks if k < 1]

    def moment(power: int) -> float:
        def integrand(x: float) -> float:
            return min(max(x * sum_insured - DEDUCTIBLE, 0.0), LIMIT) ** power * beta.pdf(x)

        return integrate.quad(integrand, 0, 1, points=kinks, limit=200)[0]

    return moment(1), moment(2)


def _cell_loss(units: int, q: float, sum_insured: float = SUM_INSURED) -> LossDistribution:
    return compound_loss(
        beta_severity(RATIO, sum_insured),
        binomial_frequency(units, q),
        deductible=DEDUCTIBLE,
        cover=LIMIT,
        nodes=1025,
    )


def test_a_cell_has_the_compound_mean_and_variance() -> None:
    # Prepare: 30 units failing with q = 0.08; the payout's moments by quadrature
    units, q = 30, 0.08
    mean_x, square_x = _payout_moments(SUM_INSURED)
    mean_n, var_n = units * q, units * q * (1 - q)
    # Execute
    loss = _cell_loss(units, q)
    # Assert: E[N] E[X]; E[N] Var X + Var N E[X]^2 (a Poisson count, Var N = E[N], would
    # be 6 % off here; the discretisation error is about 1e-6)
    assert loss.mean() == pytest.approx(mean_n * mean_x, rel=1e-4)
    expected_var = mean_n * (square_x - mean_x**2) + var_n * mean_x**2
    assert loss.sd() ** 2 == pytest.approx(expected_var, rel=1e-4)
    assert loss.pmf.sum() == pytest.approx(1.0, abs=1e-12)
    # no failure costs more than half a grid step (mass dispersal rounds those to 0)
    reach = beta_severity(RATIO, SUM_INSURED).model.sf(DEDUCTIBLE + loss.step / 2)
    assert loss.pmf[0] == pytest.approx((1 - q * reach) ** units, rel=1e-9)


def test_independent_cells_add_means_and_variances() -> None:
    # Prepare: two cells of different sums insured on the common grid
    small, large = _cell_loss(12, 0.05, 1_500_000.0), _cell_loss(20, 0.10, 3_000_000.0)
    # Execute
    total = small.plus(large)
    # Assert
    assert total.mean() == pytest.approx(small.mean() + large.mean(), rel=1e-10)
    assert total.sd() ** 2 == pytest.approx(small.sd() ** 2 + large.sd() ** 2, rel=1e-9)
    moments = [_payout_moments(si) for si in (1_500_000.0, 3_000_000.0)]
    by_hand = 12 * 0.05 * moments[0][0] + 20 * 0.10 * moments[1][0]
    assert total.mean() == pytest.approx(by_hand, rel=1e-4)


def test_grids_of_different_steps_do_not_add() -> None:
    with pytest.raises(ValueError, match="grids differ"):
        LossDistribution(1.0, np.array([1.0])).plus(LossDistribution(2.0, np.array([1.0])))


def _flat_curve(q_year: float) -> RiskCurve:
    edges = np.arange(0.0, 121.0, 12.0)
    survival = (1 - q_year) ** np.arange(len(edges))
    failure = 1 - survival
    return RiskCurve(
        segment="nev_battery", edges=edges, survival=survival,
        hazard=np.full(len(edges) - 1, q_year), failure=failure,
        failure_lower=failure, failure_upper=failure, n_units=1e4, n_failures=1e3,
    )  # fmt: skip


def _product() -> Product:
    return Product.model_validate({
        "name": "toy", "segments": ["nev_battery"], "equipment_classes": ["former", "coater"],
        "term": 12, "age_bands": [0, 120], "sum_insured": SUM_INSURED,
        "severity": {"damage_ratio": {"mean": RATIO.mean, "sd": RATIO.sd},
                     "deductible": DEDUCTIBLE, "limit": LIMIT},
        "uncertainty": {"band_quantile": 0.5},
    })  # fmt: skip


def _rows(curve: RiskCurve) -> list[RateRow]:
    """The toy product's rate table on ``curve``, which the cells are priced by."""
    return rate_table([curve], _product())


def _group(enterprise: str, units: int, age: float, equipment_class: str = "former") -> UnitGroup:
    return UnitGroup(enterprise=enterprise, segment="nev_battery", equipment_class=equipment_class,
                     units=units, age=age, sum_insured=SUM_INSURED)  # fmt: skip


def test_alike_units_of_several_enterprises_are_one_binomial_cell() -> None:
    # Prepare: two enterprises' groups alike (age 18), one of another age
    groups = [_group("a", 10, 18), _group("b", 15, 18, "coater"), _group("a", 5, 40)]
    # Execute
    cells = risk_cells(groups, [_flat_curve(0.06)], _rows(_flat_curve(0.06)), _product())
    # Assert: the constant hazard gives q = 0.06 a year at every age
    assert [(c.age, c.units, c.enterprises) for c in cells] == [(18.0, 25, 2), (40.0, 5, 1)]
    assert [c.q for c in cells] == pytest.approx([0.06, 0.06])
    merged = pool_loss(cells[:1], RATIO, deductible=DEDUCTIBLE, cover=LIMIT, nodes=1025)
    apart = _cell_loss(10, 0.06).plus(_cell_loss(15, 0.06))
    assert np.allclose(merged.pmf, apart.pmf[: len(merged.pmf)], atol=1e-12)


def test_a_group_the_product_does_not_cover_is_named() -> None:
    from common.errors import ConfigError

    groups = [_group("a", 3, 10), _group("b", 2, 10, "robot_arm")]
    with pytest.raises(ConfigError, match=r"group 2 \(b\): equipment class 'robot_arm'"):
        risk_cells(groups, [_flat_curve(0.06)], _rows(_flat_curve(0.06)), _product())


def test_risk_measures_on_a_grid_by_hand() -> None:
    # Prepare: S = 0, 10, 20, 30 with probabilities 0.9, 0.06, 0.03, 0.01
    loss = LossDistribution(10.0, np.array([0.9, 0.06, 0.03, 0.01]))
    # Execute / Assert: VaR 95 % is 10 (F(10) = 0.96); TVaR 95 % averages the worst 5 %:
    # 1 % at 10, 3 % at 20, 1 % at 30 -> (0.1 + 0.6 + 0.3) / 0.05 = 20
    assert loss.value_at_risk(0.95) == 10.0
    assert loss.tail_value_at_risk(0.95) == pytest.approx(20.0)
    assert loss.value_at_risk(0.995) == 30.0
    assert loss.tail_value_at_risk(0.995) == pytest.approx(30.0)
    assert loss.layer_mean(5.0, 10.0) == pytest.approx(0.06 * 5 + 0.04 * 10)
    assert loss.exceedance(0.0) == pytest.approx(0.1)


def test_draws_follow_the_distribution() -> None:
    loss = LossDistribution(10.0, np.array([0.5, 0.3, 0.2]))
    draws = loss.sample(np.random.default_rng(1), (200_000,))
    shares = [np.mean(draws == x) for x in (0.0, 10.0, 20.0)]
    assert shares == pytest.approx([0.5, 0.3, 0.2], abs=0.005)


def test_a_cell_pays_its_age_bands_rate_and_older_units_are_not_covered() -> None:
    # Prepare: a curve whose hazard rises with age, two bands priced at their middles
    from common.errors import ConfigError

    edges = np.arange(0.0, 121.0, 12.0)
    survival = np.concatenate([[1.0], np.cumprod(1 - np.linspace(0.02, 0.2, len(edges) - 1))])
    curve = RiskCurve(
        segment="nev_battery", edges=edges, survival=survival,
        hazard=1 - survival[1:] / survival[:-1], failure=1 - survival,
        failure_lower=1 - survival, failure_upper=1 - survival, n_units=1e4, n_failures=1e3,
    )  # fmt: skip
    product = _product().model_copy(update={"age_bands": [0.0, 60.0, 120.0]})
    rows = rate_table([curve], product)
    # Execute
    cells = risk_cells(
        [_group("a", 4, 10), _group("b", 2, 50), _group("c", 1, 70)], [curve], rows, product
    )
    # Assert: ages 10 and 50 pay the first band's rate, 70 the second's; q is each age's own
    assert [c.gross_premium for c in cells] == pytest.approx(
        [rows[0].gross_premium, rows[0].gross_premium, rows[1].gross_premium]
    )
    assert cells[0].q < cells[1].q < cells[2].q
    with pytest.raises(ConfigError, match="age 130: outside the product's age bands"):
        risk_cells([_group("d", 1, 130)], [curve], rows, product)
