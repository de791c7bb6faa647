"""The curve round: the nodes' noised exit histograms, summed into industry curves.

In the clear the coordinator checks and sums each node's histograms; through secure
aggregation it sees only their noised sum. Either way the curves carry bands for the
noise in the sum, and the publication rules withhold segments with too few
contributors (:mod:`coordinator.publication`).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from flwr.app import RecordDict

from coordinator.publication import apply_publication_rules, segment_contributors
from coordinator.round_context import RoundContext
from coordinator.rounds import NodeReply
from coordinator.secure_round import VALUE_BOUND
from coordinator.secure_summary import curve_noise_summary
from coordinator.secure_sums import reported_noise_std
from models.curve_estimator import check_counts, estimate_curves, sum_counts
from models.curves import RiskCurve
from models.histogram import ExitCounts
from models.spec import ModelSpec
from protocols.messages import ARRAYS_KEY, CURVE_TASK, TASK_KEY
from protocols.secure_curve import count_scale, curve_vector_length, decode_curve_vector

__all__ = ["CurveRound", "PlainCurveRound", "SecureCurveRound"]


class CurveRound(Protocol):
    """One kind of curve round: the run's industry curves, published or withheld."""

    def curves(self) -> list[RiskCurve]: ...


class PlainCurveRound:
    """The curve round in the clear: each node's histograms checked, then summed."""

    def __init__(self, context: RoundContext) -> None:
        self.context = context

    def curves(self) -> list[RiskCurve]:
        context = self.context
        round_number = context.plan.training.rounds + 1
        header = context.exchanges.header(round_number, "curve")

        def content_for(_node: int) -> RecordDict:
            return RecordDict({TASK_KEY: header.to_record()})

        spec = context.plan.model_spec
        outcome, good = context.exchanges.run(
            context.node_ids,
            round_number,
            "curve",
            CURVE_TASK,
            content_for,
            lambda content: _check_reply_counts(spec, content),
        )
        context.exchanges.require_quorum(outcome, good)
        parts = [p for p in (_reply_counts(reply.content) for reply in good) if p is not None]
        settings = context.config.curves
        cell_var, entry_var, implicit_var = _noise_variances(good, parts)
        curves = estimate_curves(
            sum_counts(spec, parts),
            censor_weight=settings.censor_weight,
            cell_noise_var=cell_var,
            entry_noise_var=entry_var,
            implicit_entry_noise_var=implicit_var,
        )
        contributors = segment_contributors(parts, min_units=settings.min_units_per_enterprise)
        return _published(context, curves, contributors)


class SecureCurveRound:
    """The curve round through secure aggregation: only the noised sum is unmasked."""

    def __init__(self, context: RoundContext) -> None:
        self.context = context

    def curves(self) -> list[RiskCurve]:
        context, plan = self.context, self.context.plan
        spec, with_entries = plan.model_spec, plan.delayed_entry
        summed = context.sums.sum(
            plan.training.rounds + 1,
            "curve",
            context.node_ids,
            vector_length=curve_vector_length(spec, with_entries=with_entries),
            bound=VALUE_BOUND,
        )
        counts, contributors = decode_curve_vector(
            summed.total.total,
            spec,
            with_entries=with_entries,
            scale=count_scale(plan.share_noise),
        )
        # only the survivors' noise shares are in the sum (a dropout's input was discarded)
        noise_var = sum(reported_noise_std(r) ** 2 for r in summed.survivors)
        receipts = [r.receipt for r in summed.survivors if r.receipt is not None]
        context.log.notes.note_curve_noise(curve_noise_summary(plan, receipts, summed.total))
        curves = estimate_curves(
            sum_counts(spec, [counts]),
            censor_weight=context.config.curves.censor_weight,
            cell_noise_var=noise_var,
            entry_noise_var=noise_var if with_entries else None,
        )
        return _published(context, curves, contributors)


def _published(
    context: RoundContext, curves: list[RiskCurve], contributors: np.ndarray
) -> list[RiskCurve]:
    """The curves with the publication rules applied (too few contributors: withheld)."""
    settings = context.config.curves
    return apply_publication_rules(
        curves,
        contributors,
        min_enterprises=settings.min_enterprises,
        min_failures=settings.min_failures,
    )


def _noise_std(reply: NodeReply) -> float:
    """Std of the noise a node added to each released cell (0 without DP)."""
    receipt = reply.receipt
    return 0.0 if receipt is None else receipt.noise_multiplier * receipt.sensitivity


def _noise_variances(
    good: list[NodeReply], parts: list[ExitCounts]
) -> tuple[float, float | None, float]:
    """Per-cell noise variances of the summed histograms, for the curves' bands:
    (exit/survivor cells, entry cells or None, implicit entries of nodes without them)."""
    pairs = list(zip(good, parts, strict=True))
    cell_var = sum(_noise_std(r) ** 2 for r in good)
    if not any(p.entries is not None for _, p in pairs):
        return cell_var, None, 0.0
    entry_var = sum(_noise_std(r) ** 2 for r, p in pairs if p.entries is not None)
    implicit_var = sum(_noise_std(r) ** 2 for r, p in pairs if p.entries is None)
    return cell_var, entry_var, implicit_var


def _reply_counts(content: RecordDict) -> ExitCounts | None:
    """The histograms in a curve reply, or None when they are missing."""
    record = content.array_records.get(ARRAYS_KEY)
    if record is None or "exits" not in record or "survivors" not in record:
        return None
    entries = record["entries"].numpy() if "entries" in record else None
    return ExitCounts(
        exits=record["exits"].numpy(), entries=entries, survivors=record["survivors"].numpy()
    )


def _check_reply_counts(spec: ModelSpec, content: RecordDict) -> str | None:
    """Why a curve reply's histograms cannot be used (None: they can)."""
    counts = _reply_counts(content)
    return (
        "reply lacks exit or survivor histograms" if counts is None else check_counts(spec, counts)
    )
