"""The curve task in a secure round: this node's histograms with its noise share.

The node counts its units' exits per (segment, interval, failed|censored) and survivors
(and entries under ``plan.delayed_entry``), adds its share of the record-level noise,
sized for the fewest inputs a released sum may hold (:mod:`enterprise_node.share_plan`),
and charges its budget first: a Skellam share on the counts x
:data:`protocols.secure_curve.SKELLAM_SCALE` (``plan.share_noise: skellam``,
:mod:`privacy.skellam`) or a discrete Gaussian share (Kairouz, Liu, Steinke 2021,
:mod:`privacy.distributed_noise`). Which segments the enterprise declares
(:func:`declared_presence`) is public and carries no noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from common.errors import ConfigError
from enterprise_node.curve_release import NoisyCounts, add_noise, add_skellam_noise
from enterprise_node.release import ReceiptTerms, charged_release
from enterprise_node.runtime import NodeRuntime
from enterprise_node.share_plan import planned_noise_shares
from enterprise_node.tasks import record_dp_required
from models.histogram import ExitCounts, unit_histograms, with_explicit_entries
from privacy import skellam
from privacy.accounting import Spend
from privacy.distributed_noise import share_for_noise_multiplier
from privacy.mechanisms import Mechanism
from protocols.messages import PrivacyReceipt, TaskHeader
from protocols.plan import TrainingPlan
from protocols.secure_curve import SKELLAM_SCALE, count_scale, noised_length
from protocols.secure_round import SecureRoundSettings

__all__ = ["declared_presence", "distributed_curve_counts"]


def declared_presence(runtime: NodeRuntime, plan: TrainingPlan) -> np.ndarray:
    """1 for each plan segment this enterprise declares in node.yaml, else 0."""
    declared = runtime.config.node.segments
    if declared is None:
        raise ConfigError(
            "task refused: node.yaml declares no segments (node.segments); under secure "
            "aggregation an enterprise counts as a contributor only to the segments it declares"
        )
    unknown = sorted(set(declared) - set(plan.model_spec.segments))
    if unknown:
        raise ConfigError(f"task refused: node.segments {unknown} are not in the plan's segments")
    return np.array([int(s in declared) for s in plan.model_spec.segments], dtype=np.int64)


def distributed_curve_counts(
    runtime: NodeRuntime,
    header: TaskHeader,
    plan: TrainingPlan,
    settings: SecureRoundSettings,
) -> tuple[NoisyCounts, PrivacyReceipt | None]:
    """The histograms with this node's noise share, its budget charged first for the
    fewest shares a released sum may hold (:func:`planned_noise_shares`)."""
    if not plan.curve_release:
        raise ConfigError("task refused: the plan does not include a curve release")
    frame = runtime.units(plan.model_spec).frame
    counts = unit_histograms(frame, plan.model_spec)
    if plan.delayed_entry:
        counts = with_explicit_entries(counts)
    elif counts.entries is not None:
        raise ConfigError(
            "task refused: this node's data has delayed entry (entry_age) and the plan does "
            "not carry entries (plan.delayed_entry: false)"
        )
    if not record_dp_required(runtime, plan):
        scale = count_scale(plan.share_noise)  # the vector's unit, noise or not
        entries = None if counts.entries is None else counts.entries * scale
        exact = NoisyCounts(counts.exits * scale, counts.survivors * scale, entries, 0.0)
        return exact, None
    l2 = math.sqrt(2.0) if plan.delayed_entry else 1.0
    target = runtime.noise(plan, len(frame)).curve_noise_multiplier
    assert target is not None  # curve_release checked above
    # a node that does not count on its peers' shares adds the whole noise itself
    n_shares = planned_noise_shares(runtime, plan, settings)
    share = _curve_share(counts, plan, target, n_shares, l2)
    spend = Spend(
        share.noise_multiplier, 1.0, 1, share.mechanism, header.run_id, header.round, "curve"
    )
    return charged_release(
        runtime, spend, share.terms, share.compute, plan_delta=plan.privacy.record.delta
    )


@dataclass(frozen=True)
class _CurveShare:
    """A node's curve noise share: the mechanism and Gaussian multiplier it is charged
    under, what its receipt states, and how the noised counts are drawn."""

    mechanism: Mechanism
    noise_multiplier: float
    terms: ReceiptTerms
    compute: Callable[[], NoisyCounts]


def _curve_share(
    counts: ExitCounts, plan: TrainingPlan, target: float, n_shares: int, l2: float
) -> _CurveShare:
    """The share whose ``n_shares`` shares are as private as a Gaussian of ``target``:
    Skellam on the counts x SKELLAM_SCALE, or a discrete Gaussian, as the plan says. One
    unit moves 1 cell, or 2 with entries: L1 sensitivity l2^2."""
    if plan.share_noise == "skellam":
        scale = SKELLAM_SCALE
        sk = skellam.share_for_noise_multiplier(
            target, n_shares=n_shares, l2_sensitivity=scale * l2, l1_sensitivity=scale * l2 * l2
        )
        terms = ReceiptTerms(
            sensitivity=l2,
            clip=0.0,
            secure_rng=True,
            noise_shares=n_shares,
            share_std=sk.share_std / scale,  # in counts
            l1_sensitivity=l2 * l2,
            integer_scale=scale,
        )
        return _CurveShare(
            Mechanism.SKELLAM_CURVE_HISTOGRAM,
            sk.effective_noise_multiplier,
            terms,
            lambda: add_skellam_noise(counts, scale=scale, variance=sk.share_variance),
        )
    dg = share_for_noise_multiplier(
        target,
        n_shares=n_shares,
        l2_sensitivity=l2,
        l1_sensitivity=l2 * l2,
        dimension=noised_length(plan.model_spec, with_entries=plan.delayed_entry),
    )
    terms = ReceiptTerms(
        sensitivity=l2, clip=0.0, secure_rng=True, noise_shares=n_shares, share_std=dg.share_sigma
    )
    return _CurveShare(
        Mechanism.DISTRIBUTED_CURVE_HISTOGRAM,
        dg.effective_noise_multiplier,
        terms,
        lambda: add_noise(counts, std=dg.share_sigma),
    )
