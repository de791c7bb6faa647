"""Record-level privacy accounting shared by nodes and coordinator: RDP over Gaussians.

Every fedrisk release is a (Poisson-subsampled) Gaussian mechanism: DP-SGD steps and
(discrete) Gaussian histogram releases. Their Renyi DP is composed with Opacus's RDP
analysis (Mironov 2017; Mironov, Talwar, Zhang 2019) over :data:`RDP_ORDERS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from opacus.accountants import RDPAccountant
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

__all__ = ["RDP_ORDERS", "Spend", "rdp_epsilon", "calibrate_noise_multiplier"]

#: RDP orders used by every fedrisk accountant: Opacus's defaults extended upwards, so
#: single Gaussian releases (q = 1) at small epsilon are not limited by the largest order.
RDP_ORDERS: tuple[float, ...] = tuple(
    list(RDPAccountant.DEFAULT_ALPHAS) + [80.0, 96.0, 128.0, 192.0, 256.0, 384.0, 512.0, 1024.0]
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
    total = sum(
        compute_rdp(
            q=s.sample_rate, noise_multiplier=s.noise_multiplier, steps=s.steps, orders=RDP_ORDERS
        )
        for s in spends
    )
    epsilon, _ = get_privacy_spent(orders=RDP_ORDERS, rdp=total, delta=delta)
    return float(epsilon)


def calibrate_noise_multiplier(
    *, target_epsilon: float, target_delta: float, sample_rate: float, steps: int
) -> float:
    """Smallest noise multiplier (to 0.1 %) whose RDP epsilon is <= ``target_epsilon``.

    Uses the same orders as the guard, so a task calibrated here never surprises it.
    """

    def eps(sigma: float) -> float:
        return rdp_epsilon([Spend(sigma, sample_rate, steps, "calibration")], target_delta)

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
