"""The auditor's own Skellam bound: a distributed Skellam release recomputed from its
recorded share, never from the multiplier its parties claimed.

Written apart from the accountants' :mod:`privacy.skellam` (vectorised over orders, in
the auditor's terms) so that a mistake in one is not silently repeated in the other. A
``distributed_skellam_histogram`` record holds the L2 sensitivity s_2 of the counts
(1, or sqrt(2) with entries), the threshold t of shares the release holds at least and
one share's std sigma in counts; by the mechanism's definition the counts were
multiplied by :data:`SCALE` = 16 and one unit moves s_2^2 cells. In integer units the
sum is Sk(mu), mu = t (16 sigma)^2, with sensitivities D2 = 16 s_2 and D1 = 16 s_2^2,
and its Renyi DP at order a is at most (Agarwal, Kairouz, Liu 2021, Theorem 3.5)

    a D2^2 / (2 mu) + min(((2 a - 1) D2^2 + 6 D1) / (4 mu^2), 3 D1 / (2 mu)).

    >>> round(float(skellam_rdp([2.0], shares=1, share_std=100 / 16, l2=1.0)[0]), 8)
    0.02560216
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["SCALE", "skellam_rdp"]

#: The integer scale of the counts in a distributed Skellam histogram (by definition of
#: the mechanism name; protocols.secure_curve.SKELLAM_SCALE must equal it).
SCALE = 16


def skellam_rdp(
    orders: Sequence[float], *, shares: int, share_std: float, l2: float
) -> np.ndarray:
    """The bound above at every order (inf where there is no noise)."""
    a = np.asarray(orders, dtype=np.float64)
    mu = shares * (SCALE * share_std) ** 2
    if not mu > 0.0:
        return np.full(a.shape, np.inf)
    d2, d1 = SCALE * l2, SCALE * l2 * l2
    tail = np.minimum(((2.0 * a - 1.0) * d2**2 + 6.0 * d1) / (4.0 * mu**2), 3.0 * d1 / (2.0 * mu))
    return a * d2**2 / (2.0 * mu) + tail
