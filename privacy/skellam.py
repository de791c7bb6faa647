"""The distributed Skellam mechanism: integer noise shares that sum to exactly the central
mechanism, however many nodes add them.

A symmetric Skellam variable of variance mu is Pois(mu/2) - Pois(mu/2). Poisson is
infinitely divisible, so a sum of independent symmetric Skellams is symmetric Skellam
with the variances added: t nodes each adding Sk(v) give exactly Sk(t v). There is no
per-share floor (unlike a sum of discrete Gaussians, :mod:`privacy.distributed_noise`):
the total noise is what the budget asks at any number of nodes.

Renyi DP of Sk(mu) on every coordinate of an integer vector whose L1 and L2 sensitivities
are Delta_1 and Delta_2 (Agarwal, Kairouz, Liu, "The Skellam Mechanism for Differentially
Private Federated Learning", NeurIPS 2021, Theorem 3.5 and Corollary 3.6), for every
order alpha > 1:

    RDP(alpha) <= alpha Delta_2^2 / (2 mu)
                  + min(((2 alpha - 1) Delta_2^2 + 6 Delta_1) / (4 mu^2), 3 Delta_1 / (2 mu))

(constants checked against google-research/federated ``distributed_dp/accounting_utils.py``,
``_skellam_rdp``, at quantization scale 1: here everything is in integer units).

fedrisk composes every release as a Gaussian of some noise multiplier z (RDP
alpha / (2 z^2), :mod:`privacy.accounting`). A Skellam release is charged as the largest
z whose Gaussian RDP is at least the bound above at every order the accountant evaluates
(:data:`privacy.accounting.RDP_ORDERS`), so every composed charge is an upper bound
where the accountant looks.

Noise is drawn by numpy's Poisson sampler from a ChaCha20 stream (``randomgen``, 20
rounds) keyed with 256 bits from the operating system's CSPRNG; a fresh key per draw.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from privacy.accounting import RDP_ORDERS

__all__ = [
    "SkellamShare",
    "skellam_rdp",
    "gaussian_equivalent",
    "share_for_noise_multiplier",
    "skellam_noise",
]


@dataclass(frozen=True)
class SkellamShare:
    """One node's Skellam share for a secure sum: ``share_variance`` per coordinate;
    ``n_shares`` shares (the fewest a released sum holds) make Sk(n_shares x
    share_variance), charged as a Gaussian of ``effective_noise_multiplier``."""

    share_variance: float
    n_shares: int
    effective_noise_multiplier: float

    @property
    def share_std(self) -> float:
        return math.sqrt(self.share_variance)


def _check_sensitivities(l2_sensitivity: float, l1_sensitivity: float) -> None:
    if not 0.0 < l2_sensitivity <= l1_sensitivity:
        raise ValueError(
            f"need 0 < l2_sensitivity <= l1_sensitivity, got {l2_sensitivity}, {l1_sensitivity}"
        )


def skellam_rdp(
    alpha: float, *, variance: float, l2_sensitivity: float, l1_sensitivity: float
) -> float:
    """The RDP bound of Sk(``variance``) at order ``alpha`` (see the module docstring)."""
    if alpha <= 1.0:
        raise ValueError(f"the order must be > 1, got {alpha}")
    if variance <= 0.0:
        raise ValueError(f"the Skellam variance must be > 0, got {variance}")
    _check_sensitivities(l2_sensitivity, l1_sensitivity)
    mu, l2, l1 = variance, l2_sensitivity, l1_sensitivity
    tail = min(((2.0 * alpha - 1.0) * l2**2 + 6.0 * l1) / (4.0 * mu**2), 3.0 * l1 / (2.0 * mu))
    return alpha * l2**2 / (2.0 * mu) + tail


def gaussian_equivalent(
    variance: float,
    *,
    l2_sensitivity: float,
    l1_sensitivity: float,
    orders: tuple[float, ...] = RDP_ORDERS,
) -> float:
    """The largest noise multiplier z with alpha / (2 z^2) >= RDP of Sk(``variance``) at
    every order in ``orders``: how the release is charged."""
    return min(
        math.sqrt(
            alpha
            / (
                2.0
                * skellam_rdp(
                    alpha,
                    variance=variance,
                    l2_sensitivity=l2_sensitivity,
                    l1_sensitivity=l1_sensitivity,
                )
            )
        )
        for alpha in orders
    )


def share_for_noise_multiplier(
    noise_multiplier: float, *, n_shares: int, l2_sensitivity: float, l1_sensitivity: float
) -> SkellamShare:
    """The smallest share variance (to 0.01 %) whose ``n_shares`` shares sum to a release
    at least as private as a Gaussian with ``noise_multiplier``; more shares only add noise.
    """
    if noise_multiplier <= 0 or n_shares < 1:
        raise ValueError(
            f"need noise_multiplier > 0 and n_shares >= 1, got {noise_multiplier}, {n_shares}"
        )
    _check_sensitivities(l2_sensitivity, l1_sensitivity)

    def z_of(total_variance: float) -> float:
        return gaussian_equivalent(
            total_variance, l2_sensitivity=l2_sensitivity, l1_sensitivity=l1_sensitivity
        )

    # a Gaussian needs variance (z Delta_2)^2; the Skellam tail asks for a little more
    low = (noise_multiplier * l2_sensitivity) ** 2
    high = low * 2.0
    while z_of(high) < noise_multiplier:
        low, high = high, high * 2.0
    if z_of(low) >= noise_multiplier:
        high = low
    while (high - low) / high > 1e-4:
        mid = (low + high) / 2.0
        if z_of(mid) >= noise_multiplier:
            high = mid
        else:
            low = mid
    return SkellamShare(high / n_shares, n_shares, z_of(high))


def skellam_noise(shape: tuple[int, ...], variance: float) -> np.ndarray:
    """Symmetric Skellam noise (int64) of ``variance`` per coordinate from ChaCha20 keyed
    by the OS CSPRNG."""
    if variance <= 0.0:
        raise ValueError(f"the Skellam variance must be > 0, got {variance}")
    from randomgen import ChaCha

    key = int.from_bytes(os.urandom(32), "big")
    generator = np.random.Generator(ChaCha(key=key, counter=0, rounds=20))
    half = variance / 2.0
    plus = generator.poisson(half, size=shape)
    minus = generator.poisson(half, size=shape)
    return (np.asarray(plus, dtype=np.int64) - np.asarray(minus, dtype=np.int64)).reshape(shape)
