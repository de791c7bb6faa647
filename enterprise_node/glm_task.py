"""The node's contribution to one secure Newton round of the GLM hazard model.

At the coordinator's theta the node sums its units' clipped gradients and, in the plan's
information rounds, information matrices (:mod:`models.glm`; the clip bounds are public,
from the plan and the spec; which rounds carry the matrix follows from the plan and the
round number alone), scales them to integers (multiples of 2^-scale_bits of the bounds),
adds its noise share (``plan.share_noise``: Skellam, :mod:`privacy.skellam`, or a discrete
Gaussian from OpenDP; both from a CSPRNG) and hands the vector to secure aggregation: the
coordinator only ever sees the sum over nodes, noised once.

Privacy: one unit moves the released vector by at most sqrt(1 + w) x 2^scale_bits (w the
information weight; 1 x in a gradient-only round), plus sqrt(d) for the node's rounding
of its sum, in L2. The share is sized, like the curve
shares, so that the ``threshold`` shares any released sum must hold are as private as a
Gaussian mechanism with the plan's noise multiplier (Skellam: Agarwal, Kairouz, Liu 2021;
discrete Gaussian: Kairouz, Liu, Steinke 2021, :mod:`privacy.distributed_noise`); the
node charges its lifetime accountant for that
worst case. A node that will not count on its peers (``privacy.distributed_noise: false``)
adds the whole noise itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.errors import ConfigError
from enterprise_node.curve_release import discrete_gaussian
from enterprise_node.release import ReceiptTerms, charged_release
from enterprise_node.runtime import NodeRuntime
from enterprise_node.share_plan import planned_noise_shares
from enterprise_node.tasks import TaskResult, record_dp_required
from models.features import encode_units
from privacy import skellam
from privacy.accounting import Spend
from privacy.distributed_noise import share_for_noise_multiplier
from privacy.mechanisms import Mechanism
from protocols.messages import TaskHeader
from protocols.plan import TrainingPlan
from protocols.secure_glm import glm_bounds, glm_share_sensitivity, round_statistics
from protocols.secure_round import SecureRoundSettings
from secagg.quantization import QuantizationRangeError

__all__ = ["glm_contribution"]


def glm_contribution(
    runtime: NodeRuntime,
    header: TaskHeader,
    plan: TrainingPlan,
    settings: SecureRoundSettings,
    theta: np.ndarray,
) -> TaskResult:
    """The node's integer statistics vector at ``theta`` with its noise share, the budget
    charged first (exact statistics, no receipt, when the plan turns DP off and node.yaml
    allows it); range-checked, not masked."""
    spec = plan.model_spec
    units = encode_units(runtime.units(spec).frame, spec)
    if len(units) == 0:
        raise ConfigError("task refused: no valid units to train on")
    bounds = glm_bounds(plan)
    encoded = round_statistics(units, theta, plan, header.round)
    vector = np.rint(encoded * bounds.scale).astype(np.int64)
    if not record_dp_required(runtime, plan):
        _check_range(vector, settings.bound)
        return TaskResult(arrays={"vector": vector}, metrics={"noise-std": 0.0})
    target = runtime.noise(plan, len(units)).round_noise_multiplier(header.round)
    n_shares = planned_noise_shares(runtime, plan, settings)
    share = _share(plan, header.round, target, n_shares)
    spend = Spend(
        share.noise_multiplier,
        1.0,
        1,
        share.mechanism,
        header.run_id,
        header.round,
        "model",
    )
    l2, l1, _dimension = glm_share_sensitivity(plan, header.round)
    terms = ReceiptTerms(
        sensitivity=l2 / bounds.scale,
        clip=bounds.gradient_clip,
        secure_rng=True,
        noise_shares=n_shares,
        share_std=share.std / bounds.scale,
        l1_sensitivity=l1 / bounds.scale if share.skellam else 0.0,
        integer_scale=int(bounds.scale) if share.skellam else 1,
    )

    def noised() -> np.ndarray:
        released = vector + share.draw(vector.shape)
        _check_range(released, settings.bound)
        return released

    noisy, receipt = charged_release(
        runtime, spend, terms, noised, plan_delta=plan.privacy.record.delta
    )
    # the share's std in units of the clip bounds: the coordinator's noise floor needs it
    return TaskResult(
        arrays={"vector": noisy},
        metrics={"noise-std": share.std / bounds.scale},
        receipt=receipt,
    )


@dataclass(frozen=True)
class _GlmShare:
    """One node's noise share of a GLM release, in integer units: its ``std``, the
    Gaussian ``noise_multiplier`` it is charged as, and how it is drawn."""

    mechanism: Mechanism
    std: float
    noise_multiplier: float

    @property
    def skellam(self) -> bool:
        return self.mechanism == Mechanism.SKELLAM_GLM

    def draw(self, shape: tuple[int, ...]) -> np.ndarray:
        if self.skellam:
            return skellam.skellam_noise(shape, self.std**2)
        return discrete_gaussian(shape, self.std)


def _share(plan: TrainingPlan, round_number: int, target: float, n_shares: int) -> _GlmShare:
    """The share whose ``n_shares`` shares are as private as a Gaussian of ``target``:
    Skellam or discrete Gaussian as the plan says (the integers are already scaled by
    2^scale_bits, so the Skellam bound's tail term is negligible)."""
    l2, l1, dimension = glm_share_sensitivity(plan, round_number)
    if plan.share_noise == "skellam":
        sk = skellam.share_for_noise_multiplier(
            target, n_shares=n_shares, l2_sensitivity=l2, l1_sensitivity=l1
        )
        return _GlmShare(Mechanism.SKELLAM_GLM, sk.share_std, sk.effective_noise_multiplier)
    dg = share_for_noise_multiplier(
        target, n_shares=n_shares, l2_sensitivity=l2, l1_sensitivity=l1, dimension=dimension
    )
    return _GlmShare(Mechanism.DISTRIBUTED_GLM, dg.share_sigma, dg.effective_noise_multiplier)


def _check_range(vector: np.ndarray, bound: int) -> None:
    """Refuse a vector the secure sum cannot carry (never clip, never wrap)."""
    over = int(np.sum(np.abs(vector) > bound))
    if over:
        raise QuantizationRangeError(
            f"GLM statistics: {over} value(s) beyond the secure sum's range +-{bound}",
            advice="Lower plan.newton.scale_bits (the site has very many units).",
        )
