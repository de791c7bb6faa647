"""The vector a node masks in a securely aggregated model round, and its decoding.

A node sends its model update (local model minus global model), flattened in parameter
order and quantised at the plan's fixed-point scale: ``round(update * 2^scale_bits)``.
With enterprise-level DP it first clips the update to L2 norm C, quantises it, then adds
its noise share to the integers, as ``plan.share_noise`` says: Skellam (Agarwal, Kairouz,
Liu 2021; the shares sum to exactly one Skellam release, :mod:`privacy.skellam`) or
discrete Gaussian (Kairouz, Liu, Steinke 2021). Rounding can lengthen the vector by at
most sqrt(d)/2, which the sensitivity includes.

The coordinator divides the unmasked integer sum by the scale and by the number of
survivors: the unweighted mean of the enterprises' updates. A unit-count weight would
reveal each enterprise's size, and DP-FedAvg needs each contribution bounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from privacy import distributed_noise, skellam
from privacy.mechanisms import Mechanism
from protocols.plan import TrainingPlan
from secagg.quantization import QuantizationRangeError

__all__ = [
    "flatten",
    "unflatten",
    "clip_l2",
    "quantise",
    "quantised_sensitivity",
    "EnterpriseShare",
    "enterprise_share",
    "check_update_range",
    "decode_mean_update",
]


def flatten(arrays: list[np.ndarray]) -> np.ndarray:
    """One float64 vector of all parameters, in order."""
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])


def unflatten(vector: np.ndarray, like: list[np.ndarray]) -> list[np.ndarray]:
    """Split ``vector`` into arrays shaped (and typed) like ``like``."""
    out, start = [], 0
    for ref in like:
        stop = start + ref.size
        out.append(vector[start:stop].reshape(ref.shape).astype(ref.dtype))
        start = stop
    if start != vector.size:
        raise ValueError(f"vector has {vector.size} values, the model {start}")
    return out


def clip_l2(vector: np.ndarray, clip: float) -> np.ndarray:
    """``vector`` scaled down to L2 norm ``clip`` if longer (DP-FedAvg's client clipping)."""
    norm = float(np.linalg.norm(vector))
    return vector if norm <= clip else vector * (clip / norm)


def quantise(vector: np.ndarray, scale: float) -> np.ndarray:
    """round(vector * scale) as int64; non-finite values are an error."""
    if not np.all(np.isfinite(vector)):
        raise QuantizationRangeError("model update has non-finite values")
    return np.rint(vector * scale).astype(np.int64)


def quantised_sensitivity(clip: float, scale: float, dimension: int) -> tuple[float, float]:
    """(L2, L1) bounds of a clipped update after rounding: C*scale + sqrt(d)/2, and sqrt(d) x L2."""
    l2 = clip * scale + math.sqrt(dimension) / 2.0
    return l2, math.sqrt(dimension) * l2


@dataclass(frozen=True)
class EnterpriseShare:
    """A node's enterprise-level noise share, in integer units: the ``mechanism`` it is
    recorded under, one share's ``share_variance``, the ``n_shares`` it was planned for and
    the Gaussian ``effective_noise_multiplier`` those shares are charged as; the
    quantised update's L2 and L1 sensitivities and the fixed-point ``scale``."""

    mechanism: Mechanism
    share_variance: float
    n_shares: int
    effective_noise_multiplier: float
    l2_sensitivity: float
    l1_sensitivity: float
    dimension: int
    scale: float

    @property
    def skellam(self) -> bool:
        return self.mechanism == Mechanism.ENTERPRISE_SKELLAM

    @property
    def share_sigma(self) -> float:
        """One share's std in integers."""
        return math.sqrt(self.share_variance)

    @property
    def share_std(self) -> float:
        """One share's std in model units (not integers)."""
        return self.share_sigma / self.scale

    def noise_multiplier_with(self, shares: int) -> float:
        """The Gaussian multiplier a sum of ``shares`` such shares is charged as (the
        survivors of a round, at least the planned ``n_shares``)."""
        if self.skellam:
            return skellam.gaussian_equivalent(
                self.share_variance * shares,
                l2_sensitivity=self.l2_sensitivity,
                l1_sensitivity=self.l1_sensitivity,
            )
        return distributed_noise.effective_noise_multiplier(
            self.share_sigma,
            n_shares=shares,
            l2_sensitivity=self.l2_sensitivity,
            l1_sensitivity=self.l1_sensitivity,
            dimension=self.dimension,
        )


def enterprise_share(
    plan: TrainingPlan, *, n_shares: int, dimension: int, clip_norm: float | None = None
) -> EnterpriseShare:
    """The share each node adds so that ``n_shares`` shares meet the plan's noise
    multiplier, for updates clipped to ``clip_norm`` (the plan's when None)."""
    enterprise = plan.privacy.enterprise
    if enterprise is None:
        raise ValueError("the plan has no enterprise-level DP")
    scale = plan.secure_update.scale
    clip = enterprise.clip_norm if clip_norm is None else clip_norm
    l2, l1 = quantised_sensitivity(clip, scale, dimension)
    z = enterprise.noise_multiplier
    if plan.share_noise == "skellam":
        sk = skellam.share_for_noise_multiplier(
            z, n_shares=n_shares, l2_sensitivity=l2, l1_sensitivity=l1
        )
        mechanism, variance, z_eff = (
            Mechanism.ENTERPRISE_SKELLAM,
            sk.share_variance,
            sk.effective_noise_multiplier,
        )
    else:
        dg = distributed_noise.share_for_noise_multiplier(
            z, n_shares=n_shares, l2_sensitivity=l2, l1_sensitivity=l1, dimension=dimension
        )
        mechanism, variance, z_eff = (
            Mechanism.ENTERPRISE_SHARES,
            dg.share_sigma**2,
            dg.effective_noise_multiplier,
        )
    return EnterpriseShare(mechanism, variance, n_shares, z_eff, l2, l1, dimension, scale)


def check_update_range(values: np.ndarray, bound: int, scale: float) -> None:
    """Refuse an integer update vector with a coordinate beyond +-bound (never clip, never wrap)."""
    over = np.flatnonzero(np.abs(values) > bound)
    if over.size:
        i = int(over[0])
        raise QuantizationRangeError(
            f"model update coordinate {i} is {values[i] / scale:.4g}, outside the declared "
            f"range +-{bound / scale:g} ({over.size} coordinate(s) out of range)",
            advice="Raise plan.secure_update.update_bound (or lower the learning rate).",
        )


def decode_mean_update(total: np.ndarray, survivors: int, scale: float) -> np.ndarray:
    """The mean update of ``survivors`` enterprises from the unmasked integer sum."""
    if survivors < 1:
        raise ValueError("no survivors: nothing to average")
    return total.astype(np.float64) / scale / survivors
