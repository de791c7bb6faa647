"""The auditor's own Skellam bound: a distributed Skellam release recomputed from its
recorded share, never from the multiplier its parties claimed.

Written apart from the accountants' :mod:`privacy.skellam` (vectorised over orders, in
the auditor's terms) so that a mistake in one is not silently repeated in the other. A
Skellam record holds, in the release's units, the L2 and L1 sensitivities s_2 and s_1,
the threshold t of shares the release holds at least and one share's std sigma, and the
``integer_scale`` c: the noised integers are the values x c. In integer units the sum is
Sk(mu), mu = t (c sigma)^2, with sensitivities D2 = c s_2 and D1 = c s_1, and its Renyi DP
at order a is at most (Agarwal, Kairouz, Liu 2021, Theorem 3.5)

    a D2^2 / (2 mu) + min(((2 a - 1) D2^2 + 6 D1) / (4 mu^2), 3 D1 / (2 mu)).

    >>> share = SkellamShare(shares=1, share_std=100 / 16, l2=1.0, l1=1.0, scale=16)
    >>> round(float(skellam_rdp([2.0], share)[0]), 8)
    0.02560216
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["SkellamShare", "skellam_rdp", "share_problem"]


@dataclass(frozen=True)
class SkellamShare:
    """A recorded Skellam release's parameters (see the module docstring)."""

    shares: int
    share_std: float
    l2: float
    l1: float
    scale: int


def share_problem(share: SkellamShare) -> str | None:
    """Why ``share`` is not a release the bound covers, or None."""
    finite = all(math.isfinite(v) for v in (share.share_std, share.l2, share.l1))
    if not (finite and 0.0 < share.l2 <= share.l1 <= 1e12):
        return f"sensitivities L2 {share.l2:g}, L1 {share.l1:g} (need 0 < L2 <= L1)"
    if not (1 <= share.shares <= 10**7 and 1 <= share.scale <= 2**40):
        return f"{share.shares} shares at integer scale {share.scale}"
    if not 0.0 <= share.share_std <= 1e12:
        return f"share std {share.share_std:g}"
    return None


def skellam_rdp(orders: Sequence[float], share: SkellamShare) -> np.ndarray:
    """The bound above at every order (inf where there is no noise)."""
    a = np.asarray(orders, dtype=np.float64)
    mu = share.shares * (share.scale * share.share_std) ** 2
    if not mu > 0.0:
        return np.full(a.shape, np.inf)
    d2, d1 = share.scale * share.l2, share.scale * share.l1
    tail = np.minimum(((2.0 * a - 1.0) * d2**2 + 6.0 * d1) / (4.0 * mu**2), 3.0 * d1 / (2.0 * mu))
    return a * d2**2 / (2.0 * mu) + tail
