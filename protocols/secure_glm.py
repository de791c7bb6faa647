"""The vector a node masks in a secure Newton round, as both sides must read it.

A node releases u = (sum of clipped gradients / C_g, vech(sum of clipped information
matrices) / C_H) (:mod:`models.glm`) as integers ``rint(u * 2^scale_bits)`` plus its
noise share. The absolute bounds C_g and C_H come from the plan's relative ones and the
spec's public design-norm bound, so node and coordinator derive the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from models.glm import SENSITIVITY, design_norm_bound, statistics_length
from protocols.plan import TrainingPlan

__all__ = ["GlmBounds", "glm_bounds", "glm_share_sensitivity"]


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


def glm_share_sensitivity(plan: TrainingPlan) -> tuple[float, float, int]:
    """(L2, L1, d) of the integer vector one unit can change: sqrt(2) x scale for the
    clipped statistics plus sqrt(d) for rounding the node's sum (each coordinate's
    rounding can move by at most 1); L1 <= sqrt(d) L2."""
    d = statistics_length(plan.model_spec)
    l2 = SENSITIVITY * plan.newton.scale + math.sqrt(d)
    return l2, math.sqrt(d) * l2, d
