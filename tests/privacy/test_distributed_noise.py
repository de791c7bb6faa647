"""Secure sums of discrete Gaussian shares: Kairouz-Liu-Steinke accounting and share planning."""

from __future__ import annotations

import math

import opendp.prelude as dp
import pytest

from privacy.distributed_noise import (
    realised_epsilon,
    share_sigma,
    zcdp_of_sum,
    zcdp_to_epsilon,
)

dp.enable_features("contrib")

DELTA = 1e-6
COUNTS = {"l2_sensitivity": 1.0, "l1_sensitivity": 1.0, "dimension": 200}


def opendp_epsilon_of_discrete_gaussian(scale: float, size: int, delta: float) -> float:
    """Reference: OpenDP's own privacy map of ONE discrete Gaussian of ``scale`` on an
    integer vector with L2 sensitivity 1, converted by OpenDP's zCDP -> approx-DP."""
    measurement = dp.c.make_zCDP_to_approxDP(
        dp.m.make_gaussian(
            dp.vector_domain(dp.atom_domain(T="i64"), size=size),
            dp.l2_distance(T="i64"),
            scale=scale,
        )
    )
    return float(measurement.map(1).epsilon(delta))


@pytest.mark.parametrize("sigma", [0.5, 2.0, 7.3])
def test_one_share_is_the_single_discrete_gaussian(sigma: float) -> None:
    # Execute
    zcdp = zcdp_of_sum(sigmas=[sigma], l2_sensitivity=1.5, l1_sensitivity=2.0, dimension=50)
    # Assert: no tau term with one share, rho = Delta^2 / (2 sigma^2)
    assert zcdp.tau == 0.0
    assert zcdp.rho == pytest.approx(1.5**2 / (2 * sigma**2), rel=1e-12)


def test_tau_term_is_negligible_for_shares_of_sigma_two() -> None:
    # Execute
    zcdp = zcdp_of_sum(sigmas=[2.0] * 50, **COUNTS)
    # Assert
    assert zcdp.tau < 1e-15
    assert zcdp.rho - zcdp.rho_central < 1e-12
    assert zcdp.rho_central == pytest.approx(1.0 / (2 * 50 * 4.0), rel=1e-12)


def test_small_shares_are_much_worse_than_central() -> None:
    # Execute: the same total variance as 4 shares of 2.0, split into 64 shares of 0.5
    coarse = zcdp_of_sum(sigmas=[2.0] * 4, **COUNTS)
    fine = zcdp_of_sum(sigmas=[0.5] * 64, **COUNTS)
    # Assert
    assert fine.rho_central == pytest.approx(coarse.rho_central)
    assert fine.rho > 100 * coarse.rho


def test_known_answer_from_the_paper_formula() -> None:
    # Prepare: n = 4 shares of sigma 1/2, Delta_2 = Delta_1 = 1, d = 10, by hand:
    # tau = 10 (e^{-pi^2/4} + e^{-pi^2/3} + e^{-3 pi^2/8}); sqrt(n) sigma = 1 so both scales are 1
    tau = 10 * (
        math.exp(-(math.pi**2) / 4) + math.exp(-(math.pi**2) / 3) + math.exp(-3 * math.pi**2 / 8)
    )
    by_hand = min(
        0.5 + 10 * tau, 0.5 * (1 + 2 * tau + 10 * tau**2), 0.5 * (1 + math.sqrt(10) * tau) ** 2
    )
    # Execute
    zcdp = zcdp_of_sum(sigmas=[0.5] * 4, l2_sensitivity=1.0, l1_sensitivity=1.0, dimension=10)
    # Assert
    assert tau == pytest.approx(1.4676003950, rel=1e-9)
    assert by_hand == pytest.approx(12.7368549925, rel=1e-9)
    assert zcdp.tau == pytest.approx(tau, rel=1e-12)
    assert zcdp.rho == pytest.approx(by_hand, rel=1e-12)


def test_known_answer_five_shares_of_two_match_opendp_central_gaussian() -> None:
    # Prepare: 5 shares of sigma 2 ~ one discrete Gaussian of scale 2 sqrt(5) (tau ~ 7e-17)
    reference = opendp_epsilon_of_discrete_gaussian(2.0 * math.sqrt(5.0), size=1000, delta=1e-5)
    # Execute
    epsilon = realised_epsilon(
        [2.0] * 5, l2_sensitivity=1.0, l1_sensitivity=1.0, dimension=1000, delta=1e-5
    )
    # Assert
    assert reference == pytest.approx(0.8966133352, rel=1e-9)
    assert epsilon == pytest.approx(reference, rel=1e-9)


@pytest.mark.parametrize("rho", [0.003, 0.05, 0.5, 4.0])
@pytest.mark.parametrize("delta", [1e-5, 1e-9])
def test_zcdp_conversion_matches_opendp(rho: float, delta: float) -> None:
    # Prepare: a unit-sensitivity discrete Gaussian of scale s is exactly 1/(2 s^2)-zCDP
    reference = opendp_epsilon_of_discrete_gaussian(1.0 / math.sqrt(2 * rho), size=1, delta=delta)
    # Execute / Assert
    assert zcdp_to_epsilon(rho, delta) == pytest.approx(reference, rel=1e-8)


def test_more_survivors_give_smaller_epsilon() -> None:
    # Execute
    epsilons = [realised_epsilon([3.0] * k, delta=DELTA, **COUNTS) for k in range(1, 9)]
    # Assert
    assert all(later < earlier for earlier, later in zip(epsilons, epsilons[1:], strict=False))


def test_dropout_margin_keeps_the_target_when_only_survivors_add_noise() -> None:
    # Prepare
    target = 0.5
    # Execute: plan for 8 nodes of which 6 are expected to survive
    plan = share_sigma(
        target_epsilon=target, delta=DELTA, n_nodes=8, expected_survivors=6, **COUNTS
    )
    six_survive = realised_epsilon([plan.share_sigma] * 6, delta=DELTA, **COUNTS)
    # and, for contrast, a plan without margin when the same 6 survive
    no_margin = share_sigma(
        target_epsilon=target, delta=DELTA, n_nodes=8, expected_survivors=8, **COUNTS
    )
    six_of_no_margin = realised_epsilon([no_margin.share_sigma] * 6, delta=DELTA, **COUNTS)
    # Assert
    assert plan.share_sigma >= 2.0
    assert six_survive <= target
    assert six_survive > 0.999 * target  # the plan is tight, not wasteful
    assert plan.epsilon_if_all_contribute < plan.epsilon_if_survivors_only == six_survive
    assert six_of_no_margin > target


def test_share_sigma_below_two_is_refused_with_the_numbers() -> None:
    # Execute / Assert: epsilon 1 over 6 survivors needs shares of about 1.85
    with pytest.raises(
        ValueError,
        match=r"share sigma 1\.8\d* for epsilon 1\.0 with 6 of 8 nodes .* minimum share sigma 2\.0",
    ):
        share_sigma(target_epsilon=1.0, delta=DELTA, n_nodes=8, expected_survivors=6, **COUNTS)


def test_unequal_shares_are_refused() -> None:
    with pytest.raises(ValueError, match="unequal noise shares"):
        zcdp_of_sum(sigmas=[2.0, 3.0], **COUNTS)


def test_shares_below_the_theorem_minimum_are_refused() -> None:
    with pytest.raises(ValueError, match="below the theorem's minimum 0.5"):
        zcdp_of_sum(sigmas=[0.4, 0.4], **COUNTS)


def test_survivors_cannot_exceed_nodes() -> None:
    with pytest.raises(ValueError, match="expected_survivors <= n_nodes, got 9, 8"):
        share_sigma(target_epsilon=0.5, delta=DELTA, n_nodes=8, expected_survivors=9, **COUNTS)
