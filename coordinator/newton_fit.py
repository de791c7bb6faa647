"""The coordinator's side of a secure Newton round: decode the secure sum of the nodes'
GLM statistics, take the Newton step, and say how much of it is noise.

The sum holds every survivor's noise share; their std (in units of the clip bounds, as
each node reports it) gives the noise on the summed gradient and information matrix. The
information matrix's eigenvalues are raised to ``plan.newton.eigen_floor`` x the noise's
spectral edge before the step (:func:`models.glm.noise_floor`), so a noisy matrix cannot
flip the step's direction.

A step whose noise is as large as its signal is reported, never silently taken as
progress: :attr:`NewtonStep.warning` says so in plain words (the run's log and summary).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models.glm import (
    decode_statistics,
    floored_information,
    newton_step,
    noise_floor,
    parameter_count,
)
from protocols.plan import TrainingPlan

__all__ = ["NewtonStep", "take_newton_step", "NOISY_COEFFICIENT_STD"]

#: Expected noise per coefficient per step (logit units) above which a run is warned: a
#: coefficient that moves by 0.25 at random per step ranks units little better than chance
#: when real effects are of that size.
NOISY_COEFFICIENT_STD = 0.25


@dataclass(frozen=True, eq=False)
class NewtonStep:
    """One Newton round: the new theta, and the step's size next to its noise.

    ``gradient_norm`` is ||G|| of the noised sum; ``gradient_noise_norm`` the expected
    norm of its noise (std x sqrt(p)); ``coefficient_noise_std`` the expected std of the
    step's noise per coefficient, sqrt(mean 1/lambda_k^2) x gradient noise std over the
    floored eigenvalues lambda_k.
    """

    round: int
    theta: np.ndarray
    step_norm: float
    gradient_norm: float
    gradient_noise_norm: float
    hessian_noise_std: float
    eigen_floor: float
    coefficient_noise_std: float

    @property
    def warning(self) -> str | None:
        if self.coefficient_noise_std > NOISY_COEFFICIENT_STD:
            return (
                f"Newton round {self.round}: the DP noise moves each coefficient by about "
                f"{self.coefficient_noise_std:.2g} per step (logit units): the model will "
                "rank little better than chance. More units, a larger epsilon or fewer "
                "rounds would help."
            )
        if self.round == 1 and self.gradient_norm < 2.0 * self.gradient_noise_norm:
            return (
                f"Newton round 1: the summed gradient (norm {self.gradient_norm:.3g}) is "
                f"within twice its noise (norm {self.gradient_noise_norm:.3g}): the data "
                "say little beyond the noise."
            )
        return None

    def summary(self) -> dict[str, float | int]:
        return {
            "round": self.round,
            "step_norm": round(self.step_norm, 6),
            "gradient_norm": round(self.gradient_norm, 6),
            "gradient_noise_norm": round(self.gradient_noise_norm, 6),
            "hessian_noise_std": round(self.hessian_noise_std, 6),
            "eigen_floor": round(self.eigen_floor, 6),
            "coefficient_noise_std": round(self.coefficient_noise_std, 6),
        }


def take_newton_step(
    theta: np.ndarray,
    total: np.ndarray,
    share_stds: list[float],
    plan: TrainingPlan,
    *,
    round_number: int,
    gradient_clip: float,
    hessian_clip: float,
) -> NewtonStep:
    """The Newton step from a round's unmasked integer ``total`` and the survivors' noise
    share stds (in units of the clip bounds; 0 without DP)."""
    spec, newton = plan.model_spec, plan.newton
    vector = np.asarray(total, dtype=np.float64) / newton.scale
    stats = decode_statistics(
        vector, spec, gradient_clip=gradient_clip, hessian_clip=hessian_clip
    )
    noise_std = math.sqrt(math.fsum(s * s for s in share_stds))
    p = parameter_count(spec)
    hessian_noise = noise_std * hessian_clip
    floor = newton.eigen_floor * noise_floor(hessian_noise, p)
    information = floored_information(stats.hessian, ridge=newton.ridge, eigen_floor=floor)
    new_theta = newton_step(theta, stats, ridge=newton.ridge, information=information)
    eigenvalues = information[0]
    gradient_noise = noise_std * gradient_clip
    return NewtonStep(
        round=round_number,
        theta=new_theta,
        step_norm=float(np.linalg.norm(new_theta - theta)),
        gradient_norm=float(np.linalg.norm(stats.gradient)),
        gradient_noise_norm=gradient_noise * math.sqrt(p),
        hessian_noise_std=hessian_noise,
        eigen_floor=floor,
        coefficient_noise_std=gradient_noise * float(np.sqrt(np.mean(eigenvalues**-2.0))),
    )
