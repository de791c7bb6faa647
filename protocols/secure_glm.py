"""The vector a node masks in a secure Newton round, as both sides must read it.

A node releases u = (sum of clipped gradients / C_g, sqrt(w) vech(sum of clipped
information matrices) / C_H) in the plan's information rounds and the gradient part alone
in the others (:mod:`models.glm`), as integers ``rint(u * 2^scale_bits)`` plus its noise
share. Which rounds carry the matrix, w, and the absolute bounds C_g and C_H all follow
from the plan and the round number, so node and coordinator derive the same numbers and
the coordinator cannot ask a node for more than the plan allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models.features import EncodedUnits
from models.glm import (
    design_norm_bound,
    encode_statistics,
    release_sensitivity,
    statistics_length,
    unit_statistics,
)
from protocols.plan import TrainingPlan

__all__ = [
    "GlmBounds",
    "glm_bounds",
    "round_information_weight",
    "round_statistics_length",
    "glm_share_sensitivity",
    "round_statistics",
]


@dataclass(frozen=True)
class GlmBounds:
    """The absolute clip bounds of a plan: C_g on a unit's gradient (L2), C_H on its
    information matrix (Frobenius), and the fixed-point scale of the released vector."""

    gradient_clip: float
    hessian_clip: float
    scale: float


def glm_bounds(plan: TrainingPlan) -> GlmBounds:
    """The plan's clip bounds in absolute terms (relative ones x z_max, z_max^2)."""
    z_max = design_norm_bound(plan.model_spec)
    newton = plan.newton
    return GlmBounds(newton.gradient_clip * z_max, newton.hessian_clip * z_max**2, newton.scale)


def round_information_weight(plan: TrainingPlan, round_number: int) -> int | None:
    """The information matrix's weight w in round ``round_number``'s release, or None
    when the round releases the gradient alone."""
    return plan.newton.information_weight if plan.releases_information(round_number) else None


def round_statistics_length(plan: TrainingPlan, round_number: int) -> int:
    """Length of the vector released in round ``round_number``."""
    with_information = plan.releases_information(round_number)
    return statistics_length(plan.model_spec, with_information=with_information)


def glm_share_sensitivity(plan: TrainingPlan, round_number: int) -> tuple[float, float, int]:
    """(L2, L1, d) of the integer vector one unit can change in round ``round_number``:
    the release's sensitivity x scale for the clipped statistics plus sqrt(d) for rounding
    the node's sum (each coordinate's rounding can move by at most 1); L1 <= sqrt(d) L2."""
    d = round_statistics_length(plan, round_number)
    sensitivity = release_sensitivity(round_information_weight(plan, round_number))
    l2 = sensitivity * plan.newton.scale + math.sqrt(d)
    return l2, math.sqrt(d) * l2, d


def round_statistics(
    units: EncodedUnits, theta: np.ndarray, plan: TrainingPlan, round_number: int
) -> np.ndarray:
    """u: what ``units`` release in round ``round_number`` at ``theta``, their clipped
    statistics in units of the plan's bounds (before rounding and noise)."""
    bounds = glm_bounds(plan)
    stats = unit_statistics(
        units,
        theta,
        plan.model_spec,
        gradient_clip=bounds.gradient_clip,
        hessian_clip=bounds.hessian_clip,
    )
    return encode_statistics(
        stats,
        gradient_clip=bounds.gradient_clip,
        hessian_clip=bounds.hessian_clip,
        information_weight=round_information_weight(plan, round_number),
    )
