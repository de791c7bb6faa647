"""Record-level privacy accounting shared by nodes and coordinator: RDP over Gaussians.

Every fedrisk release is a (Poisson-subsampled) Gaussian mechanism: DP-SGD steps and
(discrete) Gaussian histogram releases. Their Renyi DP is composed with Opacus's RDP
analysis (Mironov 2017; Mironov, Talwar, Zhang 2019) over :data:`RDP_ORDERS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["RDP_ORDERS", "Spend", "rdp_epsilon", "calibrate_noise_multiplier"]

#: RDP orders used by every fedrisk accountant: Opacus's defaults
#: (``RDPAccountant.DEFAULT_ALPHAS``: 1.1 to 10.9 by 0.1, then 12 to 63; a test checks they
#: still agree) extended upwards, so single Gaussian releases (q = 1) at small epsilon are
#: not limited by the largest order. Written out so that checking an approval or a budget
#: does not import Opacus and torch (seconds in every task process).
RDP_ORDERS: tuple[float, ...] = tuple(
    [round(1 + x / 10.0, 1) for x in range(1, 100)]
    + [float(order) for order in range(12, 64)]
    + [80.0, 96.0, 128.0, 192.0, 256.0, 384.0, 512.0, 1024.0]
)


@dataclass(frozen=True)
class Spend:
    """One release: a (subsampled) Gaussian mechanism run ``steps`` times.

    ``noise_multiplier`` is noise std / L2 sensitivity; ``sample_rate`` is the Poisson
    sampling probability q (1.0 for a release over all units).
    """

    noise_multiplier: float
    sample_rate: float
    steps: int
    mechanism: str
    run_id: str = ""
    round: int = 0
    purpose: str = ""


def rdp_epsilon(spends: list[Spend], delta: float) -> float:
    """Epsilon at ``delta`` of composing ``spends`` under RDP (0.0 for none)."""
    if not spends:
        return 0.0
    total = np.zeros(len(RDP_ORDERS))
    for s in spends:
        total += s.steps * np.asarray(
            _rdp_per_step(float(s.sample_rate), float(s.noise_multiplier))
        )
    from opacus.accountants.analysis.rdp import get_privacy_spent

    epsilon, _ = get_privacy_spent(orders=RDP_ORDERS, rdp=total, delta=delta)
    return float(epsilon)


@lru_cache(maxsize=4096)
def _rdp_per_step(sample_rate: float, noise_multiplier: float) -> tuple[float, ...]:
    """RDP of one step of the subsampled Gaussian at every order (cached: it is pure)."""
    from opacus.accountants.analysis.rdp import compute_rdp

    rdp = compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=RDP_ORDERS)
    return tuple(float(v) for v in np.atleast_1d(rdp))


def calibrate_noise_multiplier(
    *,
    target_epsilon: float,
    target_delta: float,
    sample_rate: float,
    steps: int,
    composed_with: tuple[Spend, ...] = (),
) -> float:
    """Smallest noise multiplier (to 0.1 %) whose RDP epsilon is <= ``target_epsilon``.

    ``composed_with`` are other releases the target must also cover (their RDP is added),
    so a budget can be filled exactly under RDP composition instead of split loosely.
    Uses the same orders as the guard, so a task calibrated here never surprises it.
    """

    def eps(sigma: float) -> float:
        spend = Spend(sigma, sample_rate, steps, "calibration")
        return rdp_epsilon([*composed_with, spend], target_delta)

    if rdp_epsilon(list(composed_with), target_delta) >= target_epsilon:
        raise ValueError("the fixed releases alone already reach the target epsilon")
    low, high = 0.05, 1.0
    while eps(high) > target_epsilon:
        low, high = high, high * 2.0
        if high > 1e6:
            raise ValueError(f"cannot reach epsilon {target_epsilon} with sigma <= 1e6")
    while (high - low) / high > 1e-3:
        mid = (low + high) / 2.0
        if eps(mid) > target_epsilon:
            low = mid
        else:
            high = mid
    return high
