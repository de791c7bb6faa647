"""Run-summary figures of distributed noise: what was planned, what was really added.

A secure sum holds the noise shares of the nodes that survived to unmasking. Nodes plan
(and charge) their shares for the fewest a released sum can hold, the threshold t; when
more survive, the sum carries more noise and the realised epsilon is lower. Both are
reported, computed with the Kairouz-Liu-Steinke bound for discrete Gaussian shares
(:mod:`privacy.distributed_noise`) or the Skellam bound (:mod:`privacy.skellam`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from coordinator.secure_round import SecureTotal
from privacy.accounting import Spend, rdp_epsilon
from privacy.distributed_noise import effective_noise_multiplier, zcdp_to_epsilon
from privacy.mechanisms import SKELLAM_MECHANISMS
from privacy.skellam import gaussian_equivalent
from protocols.messages import PrivacyReceipt
from protocols.plan import TrainingPlan
from protocols.secure_curve import noised_length
from protocols.secure_update import EnterpriseShare

__all__ = ["EnterpriseFigures", "curve_noise_summary", "enterprise_dp_summary"]


@dataclass(frozen=True)
class EnterpriseFigures:
    """Enterprise-level DP's settings and the noise expected in the mean update (see
    :func:`enterprise_dp_summary`); ``warning`` says when it is large ("" when not)."""

    clip_norm: float
    noise_multiplier: float
    shares_planned: int
    share_std: float
    effective_noise_multiplier: float
    expected_noise_std_per_coordinate_of_mean: float
    expected_noise_norm_of_mean: float
    epsilon_one_round: float
    delta: float
    warning: str


def curve_noise_summary(
    plan: TrainingPlan, receipts: list[PrivacyReceipt], secure: SecureTotal
) -> dict[str, Any]:
    """Planned and realised record-level epsilon of the curve release (per node, at the
    plan's delta), from the survivors' receipts."""
    if not receipts:
        return {"distributed": False, "note": "no noise: record-level DP is off"}
    shares = sorted({r.share_std for r in receipts})
    summary: dict[str, Any] = {
        "distributed": True,
        "mechanism": receipts[0].mechanism,
        "share_std": shares[0] if len(shares) == 1 else shares,
        "shares_planned": secure.noise_shares,
        "shares_present": secure.survivors,
        "total_noise_std": round(math.sqrt(sum(r.share_std**2 for r in receipts)), 6),
        "epsilon_charged_per_node": round(
            max(_curve_epsilon(r.noise_multiplier, plan) for r in receipts), 6
        ),
        "delta": plan.privacy.record.delta,
    }
    if len(shares) > 1:
        summary["note"] = "unequal shares: the realised epsilon is not computed"
        return summary
    summary["epsilon_realised"] = round(
        _curve_epsilon(_realised_multiplier(plan, receipts[0], shares[0], secure.survivors), plan),
        6,
    )
    return summary


def _realised_multiplier(
    plan: TrainingPlan, receipt: PrivacyReceipt, share_std: float, survivors: int
) -> float:
    """The Gaussian-equivalent noise multiplier of the shares of ``survivors`` nodes."""
    l2 = receipt.sensitivity
    if receipt.mechanism in SKELLAM_MECHANISMS:
        scale = receipt.integer_scale  # shares are reported in counts; the bound is in integers
        return gaussian_equivalent(
            survivors * (share_std * scale) ** 2,
            l2_sensitivity=scale * l2,
            l1_sensitivity=scale * receipt.l1_sensitivity,
        )
    return effective_noise_multiplier(
        share_std,
        n_shares=survivors,
        l2_sensitivity=l2,
        l1_sensitivity=l2 * l2,
        dimension=noised_length(plan.model_spec, with_entries=plan.delayed_entry),
    )


def _curve_epsilon(noise_multiplier: float, plan: TrainingPlan) -> float:
    """Epsilon of the curve release alone at the plan's delta (the nodes' RDP accountant)."""
    return rdp_epsilon([Spend(noise_multiplier, 1.0, 1, "curve")], plan.privacy.record.delta)


def enterprise_dp_summary(
    plan: TrainingPlan, share: EnterpriseShare, *, n_nodes: int, dimension: int, delta: float
) -> EnterpriseFigures:
    """The enterprise-level DP settings and the expected noise next to the update norm.

    With n nodes each adding a share of std s, the mean update carries noise of std
    sqrt(n) s / n per coordinate, i.e. a noise vector of norm about sqrt(d n) s / n, to be
    compared with the clip norm C that bounds each enterprise's update."""
    enterprise = plan.privacy.enterprise
    assert enterprise is not None
    std_mean = math.sqrt(n_nodes) * share.share_std / n_nodes
    noise_norm = std_mean * math.sqrt(dimension)
    per_round = zcdp_to_epsilon(1.0 / (2.0 * share.effective_noise_multiplier**2), delta)
    warning = ""
    if noise_norm > enterprise.clip_norm:
        warning = (
            f"enterprise-level DP with {n_nodes} enterprises: the mean update's noise has "
            f"norm ~{noise_norm:.3g}, more than the clip norm {enterprise.clip_norm:g} that "
            "bounds any one update; expect a slow or noisy model. Enterprise-level DP needs "
            "many enterprises (noise shrinks as 1/sqrt(n))."
        )
    return EnterpriseFigures(
        clip_norm=enterprise.clip_norm,
        noise_multiplier=enterprise.noise_multiplier,
        shares_planned=share.n_shares,
        share_std=share.share_std,
        effective_noise_multiplier=round(share.effective_noise_multiplier, 6),
        expected_noise_std_per_coordinate_of_mean=std_mean,
        expected_noise_norm_of_mean=noise_norm,
        epsilon_one_round=round(per_round, 6),
        delta=delta,
        warning=warning,
    )
