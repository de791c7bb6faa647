"""Epsilon recomputed from recorded mechanism parameters with Google's ``dp_accounting``.

The nodes and the coordinator account with Opacus; the auditor recomputes with an
independent library (DESIGN.md, "Privacy model"), over the same RDP orders
(:data:`privacy.accounting.RDP_ORDERS`). Every fedrisk release is a Gaussian mechanism
with noise multiplier z = noise std / L2 sensitivity, Poisson-subsampled with rate q
(none when q = 1) and self-composed ``steps`` times:

- ``dp_sgd``: DP-SGD, ``steps`` subsampled Gaussian steps (Abadi et al. 2016; Mironov,
  Talwar, Zhang 2019);
- ``discrete_gaussian_histogram`` / ``distributed_discrete_gaussian_histogram``: one
  Gaussian release of a histogram; for the distributed one z is already the effective
  multiplier of the secure sum of noise shares (Kairouz, Liu, Steinke 2021). The discrete
  Gaussian's RDP is at most the continuous one's (Canonne, Kamath, Steinke 2020), so
  ``GaussianDpEvent(z)`` is a valid bound;
- ``distributed_skellam_histogram`` / ``distributed_skellam_glm`` /
  ``enterprise_distributed_skellam``: the same releases (the last: the enterprise-level
  one below) with the nodes' Skellam shares (Agarwal, Kairouz, Liu 2021). Their parties
  charge z, the Gaussian equivalent of the sum of shares; the auditor ignores z and recomputes the
  Skellam bound itself at every order from the recorded share std, shares, sensitivities
  and integer scale (:mod:`auditor.skellam`);
- ``distributed_discrete_gaussian_glm``: one Newton round of the GLM hazard model, the
  secure sum of per-unit clipped gradients and information matrices (L2 sensitivity
  sqrt(2) in units of the clip bounds) with the nodes' discrete Gaussian shares; as for
  the distributed histogram, z is the effective multiplier of the sum of shares;
- ``enterprise_distributed_discrete_gaussian``: one Gaussian step of the secure sum per
  model round, enterprise as the unit (DP-FedAvg, McMahan et al. 2018).

RDP adds up under composition; epsilon at delta uses dp-accounting's conversion
(Balle et al. 2020, Prop. 12). Where dp-accounting cannot evaluate an order (its series
for small fractional orders may not converge) that order is left out, which can only
raise the bound.

    >>> sgd = Release("dp_sgd", noise_multiplier=1.5, sample_rate=0.04, steps=2250)
    >>> round(compose_epsilon([sgd], 1e-5), 2)
    7.33
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import dp_accounting
import numpy as np

from auditor.skellam import SkellamShare, share_problem, skellam_rdp
from privacy.accounting import RDP_ORDERS
from privacy.mechanisms import SKELLAM_MECHANISMS, Mechanism

__all__ = [
    "KNOWN_MECHANISMS",
    "ReleaseError",
    "UnknownMechanismError",
    "OutOfRangeError",
    "Release",
    "compose_epsilon",
    "out_of_range",
]

#: Mechanism names the auditor can recompute (as written by the accountants).
KNOWN_MECHANISMS: frozenset[str] = frozenset(Mechanism)


class ReleaseError(ValueError):
    """A recorded release whose epsilon cannot be recomputed."""


class UnknownMechanismError(ReleaseError):
    """A release names a mechanism the auditor has no privacy analysis for."""


class OutOfRangeError(ReleaseError):
    """A release's parameters (or its delta) are outside the ranges an accountant can
    evaluate: no fedrisk party writes them, so the ledger holding them is not valid."""


#: The parameters the auditor recomputes epsilon for (a noise multiplier of 0, no noise,
#: gives an infinite epsilon; so does a sample rate of 0, conservatively).
NOISE_MULTIPLIER_RANGE = (1e-3, 1e6)
STEPS_RANGE = (0, 10**9)


@dataclass(frozen=True)
class Release:
    """One recorded release: ``mechanism`` run ``steps`` times with noise multiplier
    z = ``noise_multiplier`` and Poisson ``sample_rate`` q (1.0 = no subsampling)."""

    mechanism: str
    noise_multiplier: float
    sample_rate: float
    steps: int
    #: For a distributed Skellam release: the L2 and L1 sensitivities, the shares it
    #: holds at least, one share's std and the integer scale (its RDP is recomputed from
    #: these, not from z).
    sensitivity: float = 0.0
    noise_shares: int = 1
    share_std: float = 0.0
    l1_sensitivity: float = 0.0
    integer_scale: int = 1


def compose_epsilon(releases: Sequence[Release], delta: float) -> float:
    """Epsilon at ``delta`` of composing ``releases`` under RDP (0.0 for none; inf when a
    release has no noise). Raises UnknownMechanismError for a mechanism not in
    :data:`KNOWN_MECHANISMS` and OutOfRangeError for parameters or a delta outside the
    ranges of :func:`out_of_range` (or any the accountant cannot evaluate)."""
    if not releases:
        return 0.0
    if not 0.0 < delta < 1.0:
        raise OutOfRangeError(f"delta {delta:g} is not in (0, 1)")
    total = np.zeros(len(RDP_ORDERS))
    for release in releases:
        total = total + np.asarray(_release_rdp(release))
    try:
        epsilon, _order = dp_accounting.rdp.compute_epsilon(RDP_ORDERS, total.tolist(), delta)
    except (ArithmeticError, ValueError) as err:
        raise OutOfRangeError(f"dp-accounting cannot compose these releases: {err}") from None
    return float(epsilon)


def out_of_range(release: Release) -> str | None:
    """Why ``release``'s parameters are outside what the auditor evaluates, or None."""
    z, q, steps = release.noise_multiplier, release.sample_rate, release.steps
    low, high = NOISE_MULTIPLIER_RANGE
    if not (z == 0.0 or low <= z <= high):
        return f"noise multiplier {z:g} is neither 0 nor in [{low:g}, {high:g}]"
    if not 0.0 <= q <= 1.0:
        return f"sample rate {q:g} is not in [0, 1]"
    if not STEPS_RANGE[0] <= steps <= STEPS_RANGE[1]:
        return f"{steps} steps, not in [{STEPS_RANGE[0]}, {STEPS_RANGE[1]:.0e}]"
    return None


@lru_cache(maxsize=4096)
def _release_rdp(release: Release) -> tuple[float, ...]:
    """RDP of one release at every order (cached: pure, and releases repeat each round)."""
    if release.mechanism not in KNOWN_MECHANISMS:
        raise UnknownMechanismError(
            f"no privacy analysis for mechanism {release.mechanism!r}; "
            f"known: {', '.join(sorted(KNOWN_MECHANISMS))}"
        )
    problem = out_of_range(release)
    if problem is not None:
        raise OutOfRangeError(f"{release.mechanism}: {problem}")
    if not (release.noise_multiplier > 0.0 and 0.0 < release.sample_rate <= 1.0):
        return tuple(float("inf") for _ in RDP_ORDERS)
    if release.steps <= 0:
        return tuple(0.0 for _ in RDP_ORDERS)
    if release.mechanism in SKELLAM_MECHANISMS:
        return _skellam_release_rdp(release)
    event: dp_accounting.DpEvent = dp_accounting.GaussianDpEvent(release.noise_multiplier)
    if release.sample_rate < 1.0:
        event = dp_accounting.PoissonSampledDpEvent(release.sample_rate, event)
    accountant = dp_accounting.rdp.RdpAccountant(list(RDP_ORDERS))
    try:
        with _quiet_absl():
            accountant.compose(dp_accounting.SelfComposedDpEvent(event, release.steps))
    except (ArithmeticError, ValueError) as err:
        raise OutOfRangeError(f"dp-accounting cannot evaluate {release}: {err}") from None
    return tuple(float(v) for v in accountant.rdp)


def _skellam_release_rdp(release: Release) -> tuple[float, ...]:
    """A Skellam release from its recorded share (:mod:`auditor.skellam`); it is never
    subsampled, and its share parameters must be sane."""
    if release.sample_rate != 1.0:
        raise OutOfRangeError(f"{release.mechanism}: a Skellam release is not subsampled")
    share = SkellamShare(
        shares=release.noise_shares,
        share_std=release.share_std,
        l2=release.sensitivity,
        l1=release.l1_sensitivity,
        scale=release.integer_scale,
    )
    problem = share_problem(share)
    if problem is not None:
        raise OutOfRangeError(f"{release.mechanism}: {problem}: not a release to recompute")
    return tuple(float(v) * release.steps for v in skellam_rdp(RDP_ORDERS, share))


@contextmanager
def _quiet_absl() -> Iterator[None]:
    """Silence dp-accounting's per-order "failed to converge" warnings (the order is
    excluded, which only loosens the bound; see the module docstring)."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
