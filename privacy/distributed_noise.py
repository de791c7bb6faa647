"""Privacy of a secure sum of per-node discrete Gaussian noise shares, and share planning.

When n nodes each add an independent share N_Z(0, sigma^2) to an integer vector inside a
secure sum, the total noise is *not* a discrete Gaussian, so the single-mechanism bound
rho = Delta^2 / (2 n sigma^2) does not hold exactly. We use the bound of

    P. Kairouz, Z. Liu, T. Steinke, "The Distributed Discrete Gaussian Mechanism for
    Federated Learning with Secure Aggregation", ICML 2021 (arXiv:2102.06387),
    Theorem 1 / Proposition 14 (eq. 17):

    for sigma >= 1/2, n shares X_{i,j} ~ N_Z(0, sigma^2) i.i.d. on d coordinates and an
    input change Delta in Z^d, with  tau = 10 * sum_{k=1}^{n-1} exp(-2 pi^2 sigma^2 k/(k+1)),
    for every order alpha >= 1 the Renyi divergence is at most the minimum of
        alpha ||Delta||_2^2 / (2 n sigma^2) + tau d,
        alpha/2 * (||Delta||_2^2 / (n sigma^2) + 2 ||Delta||_1 tau / (sqrt(n) sigma) + tau^2 d),
        alpha/2 * (||Delta||_2 / (sqrt(n) sigma) + tau sqrt(d))^2.

Because alpha >= 1, the first line is <= alpha (||Delta||_2^2/(2 n sigma^2) + tau d), so
the sum is rho-zCDP with rho the minimum of the three lines divided by alpha. Constants
checked against google-research/federated ``distributed_dp/accounting_utils.py``
(``compute_rdp_dgaussian``, ``ddgauss_epsilon``). Here ``sigma`` is the discrete
Gaussian's scale parameter (OpenDP's ``scale``), as in the paper.

The theorem is stated for equal shares; fedrisk plans equal shares, so unequal ``sigmas``
are refused rather than accounted by an unproven extension. zCDP converts to
(epsilon, delta)-DP by Canonne, Kamath, Steinke 2020 ("The Discrete Gaussian for DP",
Proposition 12 / Corollary 13), the conversion OpenDP's ``make_zCDP_to_approxDP`` uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

__all__ = [
    "MIN_SHARE_SIGMA",
    "DistributedZcdp",
    "SharePlan",
    "zcdp_of_sum",
    "zcdp_to_epsilon",
    "share_sigma",
    "realised_epsilon",
    "ShareNoise",
    "share_for_noise_multiplier",
    "effective_noise_multiplier",
]

#: Fedrisk's policy floor on every node's share sigma: above it the tau term is below
#: 1e-15 and the sum is as private as one central discrete Gaussian (STACK.md).
MIN_SHARE_SIGMA = 2.0

#: The theorem's own condition on each share (Kairouz, Liu, Steinke 2021, Theorem 1).
_THEOREM_MIN_SIGMA = 0.5


@dataclass(frozen=True)
class DistributedZcdp:
    """zCDP of one secure sum of ``n_shares`` equal discrete Gaussian shares.

    ``rho`` is the guarantee (D_alpha <= alpha rho for every alpha > 1); ``rho_central``
    is Delta_2^2 / (2 sum sigma_i^2), what one discrete Gaussian of the same variance
    would give; ``tau`` is the paper's inflation term (0 for a single share).
    """

    rho: float
    rho_central: float
    tau: float
    n_shares: int
    share_sigma: float
    dimension: int


@dataclass(frozen=True)
class SharePlan:
    """Each node's planned share sigma and the epsilon it gives with all or only the
    expected survivors contributing (the dropout margin is the difference)."""

    share_sigma: float
    n_nodes: int
    expected_survivors: int
    epsilon_if_all_contribute: float
    epsilon_if_survivors_only: float
    delta: float


def _tau(n_shares: int, sigma: float) -> float:
    """tau = 10 sum_{k=1}^{n-1} exp(-2 pi^2 sigma^2 k / (k+1)) (Theorem 1)."""
    return 10.0 * math.fsum(
        math.exp(-2.0 * math.pi**2 * sigma**2 * k / (k + 1)) for k in range(1, n_shares)
    )


def _common_sigma(sigmas: Sequence[float]) -> float:
    """The one share sigma of ``sigmas``; refuse empty, unequal or too-small shares."""
    values = [float(s) for s in sigmas]
    if not values:
        raise ValueError("no noise shares: a sum without noise has no privacy guarantee")
    low, high = min(values), max(values)
    if high - low > 1e-12 * high:
        raise ValueError(
            f"unequal noise shares (sigma from {low} to {high}): the Kairouz-Liu-Steinke "
            "bound is stated for equal shares; plan every node with the same sigma"
        )
    if low < _THEOREM_MIN_SIGMA:
        raise ValueError(f"share sigma {low} is below the theorem's minimum {_THEOREM_MIN_SIGMA}")
    return low


def zcdp_of_sum(
    *,
    sigmas: Sequence[float],
    l2_sensitivity: float,
    l1_sensitivity: float,
    dimension: int,
) -> DistributedZcdp:
    """zCDP of the secure sum of discrete Gaussian shares ``sigmas`` (Prop. 14, see module).

    ``dimension`` is the number of integer coordinates d that carry noise (the bound's
    tau term grows with it). Sensitivities are of the integer vector one unit can change.
    """
    if dimension < 1:
        raise ValueError(f"dimension must be >= 1, got {dimension}")
    if l2_sensitivity <= 0 or l1_sensitivity < l2_sensitivity:
        raise ValueError(
            f"need 0 < l2_sensitivity <= l1_sensitivity, got {l2_sensitivity}, {l1_sensitivity}"
        )
    sigma = _common_sigma(sigmas)
    n = len(sigmas)
    tau = _tau(n, sigma)
    l2_scale = l2_sensitivity / (math.sqrt(n) * sigma)
    l1_scale = l1_sensitivity / (math.sqrt(n) * sigma)
    rho = min(
        l2_scale**2 / 2.0 + tau * dimension,
        (l2_scale**2 + 2.0 * l1_scale * tau + tau**2 * dimension) / 2.0,
        (l2_scale + math.sqrt(dimension) * tau) ** 2 / 2.0,
    )
    return DistributedZcdp(
        rho=rho,
        rho_central=l2_scale**2 / 2.0,
        tau=tau,
        n_shares=n,
        share_sigma=sigma,
        dimension=dimension,
    )


def zcdp_to_epsilon(rho: float, delta: float) -> float:
    """Smallest epsilon such that rho-zCDP implies (epsilon, delta)-DP.

    epsilon = inf_{alpha > 1} alpha rho + (log(1/delta) + (alpha-1) log(1-1/alpha)
    - log(alpha)) / (alpha - 1)   (Canonne, Kamath, Steinke 2020, Corollary 13).
    """
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    if rho <= 0.0:
        return 0.0

    def bound(log_alpha_minus_1: float) -> float:
        a1 = math.exp(log_alpha_minus_1)  # alpha - 1 > 0
        alpha = 1.0 + a1
        return (
            alpha * rho + (math.log(1.0 / delta) + a1 * math.log(a1 / alpha) - math.log(alpha)) / a1
        )

    grid = np.linspace(-12.0, 12.0, 481)
    best = int(np.argmin([bound(x) for x in grid]))
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    refined = minimize_scalar(bound, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10})
    return float(max(0.0, min(refined.fun, bound(grid[best]))))


def realised_epsilon(
    sigmas_of_survivors: Sequence[float],
    *,
    l2_sensitivity: float,
    l1_sensitivity: float,
    dimension: int,
    delta: float,
) -> float:
    """Epsilon of the noise actually present: only the shares of nodes that contributed."""
    zcdp = zcdp_of_sum(
        sigmas=sigmas_of_survivors,
        l2_sensitivity=l2_sensitivity,
        l1_sensitivity=l1_sensitivity,
        dimension=dimension,
    )
    return zcdp_to_epsilon(zcdp.rho, delta)


def share_sigma(
    *,
    target_epsilon: float,
    delta: float,
    n_nodes: int,
    expected_survivors: int,
    l2_sensitivity: float,
    l1_sensitivity: float,
    dimension: int,
    min_share_sigma: float = MIN_SHARE_SIGMA,
) -> SharePlan:
    """Plan one equal share sigma per node so the sum meets ``target_epsilon`` even if
    only ``expected_survivors`` of ``n_nodes`` contribute (to 0.01 % in sigma).

    Raises if that sigma is below ``min_share_sigma``: shares that small leave the sum far
    from a discrete Gaussian; plan for fewer survivors or a smaller epsilon instead.
    """
    if not 1 <= expected_survivors <= n_nodes:
        raise ValueError(
            f"need 1 <= expected_survivors <= n_nodes, got {expected_survivors}, {n_nodes}"
        )
    if target_epsilon <= 0:
        raise ValueError(f"target_epsilon must be > 0, got {target_epsilon}")

    def eps(sigma: float, count: int) -> float:
        return realised_epsilon(
            [sigma] * count,
            l2_sensitivity=l2_sensitivity,
            l1_sensitivity=l1_sensitivity,
            dimension=dimension,
            delta=delta,
        )

    sigma = _smallest_sigma(lambda s: eps(s, expected_survivors) <= target_epsilon)
    if sigma < min_share_sigma:
        raise ValueError(
            f"share sigma {sigma:.4g} for epsilon {target_epsilon} with {expected_survivors} "
            f"of {n_nodes} nodes is below the minimum share sigma {min_share_sigma}: "
            "lower the epsilon or plan for fewer survivors"
        )
    return SharePlan(
        share_sigma=sigma,
        n_nodes=n_nodes,
        expected_survivors=expected_survivors,
        epsilon_if_all_contribute=eps(sigma, n_nodes),
        epsilon_if_survivors_only=eps(sigma, expected_survivors),
        delta=delta,
    )


@dataclass(frozen=True)
class ShareNoise:
    """One node's noise share for a secure sum, and what it guarantees.

    ``share_sigma`` is the discrete Gaussian scale each node adds; with ``n_shares``
    shares the sum is rho-zCDP, i.e. as private as a Gaussian mechanism with noise
    multiplier ``effective_noise_multiplier`` = 1 / sqrt(2 rho) (its RDP is alpha rho),
    which is how it composes with the other releases in an RDP accountant.
    """

    share_sigma: float
    n_shares: int
    effective_noise_multiplier: float


def effective_noise_multiplier(
    share: float, *, n_shares: int, l2_sensitivity: float, l1_sensitivity: float, dimension: int
) -> float:
    """1 / sqrt(2 rho) of the sum of ``n_shares`` shares of scale ``share`` (KLS 2021)."""
    zcdp = zcdp_of_sum(
        sigmas=[share] * n_shares,
        l2_sensitivity=l2_sensitivity,
        l1_sensitivity=l1_sensitivity,
        dimension=dimension,
    )
    return 1.0 / math.sqrt(2.0 * zcdp.rho)


def share_for_noise_multiplier(
    noise_multiplier: float,
    *,
    n_shares: int,
    l2_sensitivity: float,
    l1_sensitivity: float,
    dimension: int,
    min_share_sigma: float = MIN_SHARE_SIGMA,
) -> ShareNoise:
    """The smallest share (at least ``min_share_sigma``) whose sum over ``n_shares`` nodes
    is at least as private as a Gaussian mechanism with ``noise_multiplier`` (RDP).

    ``n_shares`` is the fewest shares a released sum can hold (the secure-aggregation
    threshold), so the guarantee holds whichever nodes drop; more survivors only add noise.
    """
    if noise_multiplier <= 0 or n_shares < 1:
        raise ValueError(
            f"need noise_multiplier > 0 and n_shares >= 1, got {noise_multiplier}, {n_shares}"
        )

    def z_eff(share: float) -> float:
        return effective_noise_multiplier(
            share,
            n_shares=n_shares,
            l2_sensitivity=l2_sensitivity,
            l1_sensitivity=l1_sensitivity,
            dimension=dimension,
        )

    share = max(_smallest_sigma(lambda s: z_eff(s) >= noise_multiplier), min_share_sigma)
    return ShareNoise(share, n_shares, z_eff(share))


def _smallest_sigma(meets_target: Callable[[float], bool]) -> float:
    """Bisection for the smallest sigma >= 1/2 with ``meets_target(sigma)`` (monotone)."""
    low, high = _THEOREM_MIN_SIGMA, 1.0
    if meets_target(low):
        return low
    while not meets_target(high):
        low, high = high, high * 2.0
        if high > 1e15:
            raise ValueError("no share sigma up to 1e15 meets the target")
    while (high - low) / high > 1e-4:
        mid = (low + high) / 2.0
        if meets_target(mid):
            high = mid
        else:
            low = mid
    return high
