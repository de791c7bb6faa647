"""The distributed Skellam mechanism: the RDP bound's known answers, the bound held against
the exact Renyi divergence (scipy's Skellam pmf), shares that sum to exactly the central
mechanism with no per-share floor, and the Gaussian-equivalent charge."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from privacy.accounting import RDP_ORDERS
from privacy.distributed_noise import share_for_noise_multiplier as ddg_share
from privacy.skellam import (
    gaussian_equivalent,
    share_for_noise_multiplier,
    skellam_noise,
    skellam_rdp,
)


@pytest.mark.parametrize(
    ("alpha", "mu", "l2", "l1", "expected"),
    [
        # alpha D2^2/(2 mu) + min(((2 alpha - 1) D2^2 + 6 D1) / (4 mu^2), 3 D1 / (2 mu))
        (2.0, 100.0, 1.0, 1.0, 0.01 + 9.0 / 40000.0),
        (64.0, 10.0, math.sqrt(2.0), 2.0, 6.4 + 0.3),  # the 3 D1/(2 mu) branch
        (1.5, 4.0, 1.0, 1.0, 1.5 / 8.0 + 8.0 / 64.0),
    ],
)
def test_the_bound_matches_the_reference_formula(alpha, mu, l2, l1, expected) -> None:
    got = skellam_rdp(alpha, variance=mu, l2_sensitivity=l2, l1_sensitivity=l1)
    assert got == pytest.approx(expected, rel=1e-12)


def _exact_renyi(alpha: float, mu: float, shift: int) -> float:
    """D_alpha(Sk(mu) + shift || Sk(mu)) from scipy's pmf (1-D, exact up to the tails)."""
    half = mu / 2.0
    width = int(40 * math.sqrt(mu)) + 50
    k = np.arange(-width, width + 1)
    log_p = stats.skellam.logpmf(k - shift, half, half)
    log_q = stats.skellam.logpmf(k, half, half)
    kept = np.isfinite(log_p) & np.isfinite(log_q)  # far tails underflow to -inf
    terms = alpha * log_p[kept] + (1.0 - alpha) * log_q[kept]
    return float(logsumexp(terms) / (alpha - 1.0))


@pytest.mark.parametrize("mu", [2.0, 10.0, 100.0, 1000.0])
@pytest.mark.parametrize("alpha", [1.5, 2.0, 8.0, 32.0])
def test_the_bound_holds_against_the_exact_divergence(mu, alpha) -> None:
    exact = _exact_renyi(alpha, mu, shift=1)
    bound = skellam_rdp(alpha, variance=mu, l2_sensitivity=1.0, l1_sensitivity=1.0)
    assert exact <= bound
    if mu >= 100:  # not vacuous: near the Gaussian's alpha / (2 mu) once mu is not small
        assert exact >= alpha / (2.0 * mu) * 0.8


def test_the_gaussian_equivalent_dominates_the_bound_at_every_order() -> None:
    for mu in (3.0, 50.0, 5000.0):
        z = gaussian_equivalent(mu, l2_sensitivity=1.0, l1_sensitivity=1.0)
        for alpha in RDP_ORDERS:
            rdp = skellam_rdp(alpha, variance=mu, l2_sensitivity=1.0, l1_sensitivity=1.0)
            assert alpha / (2.0 * z**2) >= rdp * (1 - 1e-12)
        # never better than a Gaussian of the same variance; close once mu is large
        assert z < math.sqrt(mu)
    assert gaussian_equivalent(1e6, l2_sensitivity=1.0, l1_sensitivity=1.0) > 0.999 * 1e3


@pytest.mark.parametrize("n_shares", [1, 8, 50, 500, 1000])
def test_shares_divide_the_noise_without_a_floor(n_shares) -> None:
    share = share_for_noise_multiplier(
        4.0, n_shares=n_shares, l2_sensitivity=1.0, l1_sensitivity=1.0
    )
    total = share.share_variance * n_shares
    assert share.effective_noise_multiplier >= 4.0
    # the total is what the target asks, whatever the number of shares (no floor) ...
    alone = share_for_noise_multiplier(4.0, n_shares=1, l2_sensitivity=1.0, l1_sensitivity=1.0)
    assert total == pytest.approx(alone.share_variance, rel=1e-9)
    # ... and just enough: a little less noise would miss the target
    assert gaussian_equivalent(total * 0.999, l2_sensitivity=1.0, l1_sensitivity=1.0) < 4.0


@pytest.mark.parametrize(("scale", "overhead"), [(1, 1.20), (8, 1.03), (64, 1.004)])
def test_the_tail_term_costs_little_once_counts_are_scaled(scale, overhead) -> None:
    # counts multiplied by `scale` before the noise: sensitivities scale, and the variance
    # over a Gaussian's (z Delta_2)^2 falls towards 1
    share = share_for_noise_multiplier(
        4.0, n_shares=1, l2_sensitivity=float(scale), l1_sensitivity=float(scale)
    )
    assert 1.0 < share.share_variance / (4.0 * scale) ** 2 <= overhead


def test_at_fifty_nodes_the_skellam_total_is_far_below_the_discrete_gaussian_floor() -> None:
    skellam = share_for_noise_multiplier(2.0, n_shares=50, l2_sensitivity=8.0, l1_sensitivity=8.0)
    ddg = ddg_share(2.0, n_shares=50, l2_sensitivity=1.0, l1_sensitivity=1.0, dimension=100)
    skellam_std = math.sqrt(50 * skellam.share_variance) / 8.0  # in counts
    ddg_std = math.sqrt(50) * ddg.share_sigma
    assert skellam_std < 2.0 * 1.03 and ddg_std >= 2.0 * math.sqrt(50)


def test_summed_shares_are_skellam_of_the_summed_variance() -> None:
    shares, variance, draws = 25, 0.8, 40_000
    total = sum(skellam_noise((draws,), variance) for _ in range(shares))
    mu = shares * variance
    assert total.dtype == np.int64
    assert np.var(total) == pytest.approx(mu, rel=0.05)
    # chi-square goodness of fit against Sk(mu) on the central values
    values = np.arange(-12, 13)
    observed = np.array([np.sum(total == v) for v in values])
    expected = draws * stats.skellam.pmf(values, mu / 2.0, mu / 2.0)
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    assert stats.chi2.sf(statistic, df=len(values) - 1) > 1e-6


def test_two_draws_differ_and_bad_parameters_are_refused() -> None:
    a, b = skellam_noise((64,), 100.0), skellam_noise((64,), 100.0)
    assert not np.array_equal(a, b)
    with pytest.raises(ValueError, match="variance"):
        skellam_noise((3,), 0.0)
    with pytest.raises(ValueError, match="l2_sensitivity <= l1_sensitivity"):
        skellam_rdp(2.0, variance=1.0, l2_sensitivity=2.0, l1_sensitivity=1.0)
    with pytest.raises(ValueError, match="order"):
        skellam_rdp(1.0, variance=1.0, l2_sensitivity=1.0, l1_sensitivity=1.0)
