"""The coordinator's side of a secure Newton round: decode the secure sum of the nodes'
GLM statistics, take the Newton step, and say how much of it is noise.

The sum holds every survivor's noise share; their std (in units of the clip bounds, as
each node reports it) gives the noise on the summed gradient and, in the plan's
information rounds, on the information matrix. A released matrix's eigenvalues are raised
to ``plan.newton.eigen_floor`` x its noise's spectral edge (:func:`models.glm.noise_floor`),
so a noisy matrix cannot flip the step's direction; that floored matrix (a
:class:`Curvature`) serves every step until the next information round. Under
record-level DP each step adds ``plan.newton.momentum`` x the previous move (heavy ball),
which wins back the speed the floor takes. Both live in a :class:`NewtonState` that the
checkpoint keeps for a resumed run.

A step whose noise is as large as its signal is reported, never silently taken as
progress: :attr:`NewtonStep.warning` says so in plain words (the run's log and summary).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models.glm import (
    decode_statistics,
    floored_curvature,
    floored_information,
    newton_step,
    noise_floor,
    parameter_count,
)
from models.spec import ModelSpec
from protocols.plan import TrainingPlan
from protocols.secure_glm import glm_bounds, round_information_weight

__all__ = ["Curvature", "NewtonState", "NewtonFigures", "NewtonStep", "take_newton_step"]


@dataclass(frozen=True, eq=False)
class Curvature:
    """The floored information matrix Newton steps invert, released in round ``round``
    with noise std ``noise_std`` per entry and floored at ``floor``."""

    round: int
    matrix: np.ndarray
    noise_std: float
    floor: float


@dataclass(frozen=True, eq=False)
class NewtonState:
    """What the next Newton round needs besides theta: the curvature in use and the
    last move theta_k - theta_{k-1} (for momentum)."""

    curvature: Curvature
    velocity: np.ndarray


@dataclass(frozen=True)
class NewtonFigures:
    """A Newton step's size next to its noise, as the progress event and the run summary
    state it (rounded to 6 decimals): fields as in :class:`NewtonStep`;
    ``information_round`` the round whose information matrix it used,
    ``hessian_noise_std`` that matrix's noise std per entry, ``eigen_floor`` its floor."""

    round: int
    information_round: int
    step_norm: float
    gradient_norm: float
    gradient_noise_norm: float
    hessian_noise_std: float
    eigen_floor: float
    score_noise_std: float
    score_spread: float


@dataclass(frozen=True, eq=False)
class NewtonStep:
    """One Newton round: the new theta, the curvature it used, and the step's size next
    to its noise.

    ``gradient_norm`` is ||G|| of the noised sum; ``gradient_noise_norm`` the expected
    norm of its noise (std x sqrt(p)). ``score_noise_std`` is how far the step's noise
    moves a unit's risk score (logit units, RMS over the at-risk cells the information
    matrix sums), ``score_spread`` how far the new theta's scores spread over those cells
    (:func:`_score_figures`): a step whose noise moves the scores as much as they differ
    ranks units little better than chance.
    """

    round: int
    theta: np.ndarray
    state: NewtonState
    step_norm: float
    gradient_norm: float
    gradient_noise_norm: float
    score_noise_std: float
    score_spread: float

    @property
    def warning(self) -> str | None:
        if self.score_noise_std > self.score_spread:
            return (
                f"Newton round {self.round}: the DP noise moves each unit's risk score by "
                f"about {self.score_noise_std:.2g} per step (logit units), more than the "
                f"scores differ across units ({self.score_spread:.2g}): the model will rank "
                "little better than chance. More units, a larger epsilon or fewer rounds "
                "would help."
            )
        if self.round == 1 and self.gradient_norm < 2.0 * self.gradient_noise_norm:
            return (
                f"Newton round 1: the summed gradient (norm {self.gradient_norm:.3g}) is "
                f"within twice its noise (norm {self.gradient_noise_norm:.3g}): the data "
                "say little beyond the noise."
            )
        return None

    def figures(self) -> NewtonFigures:
        """The step's figures for the progress event and the run summary."""
        return NewtonFigures(
            round=self.round,
            information_round=self.state.curvature.round,
            step_norm=round(self.step_norm, 6),
            gradient_norm=round(self.gradient_norm, 6),
            gradient_noise_norm=round(self.gradient_noise_norm, 6),
            hessian_noise_std=round(self.state.curvature.noise_std, 6),
            eigen_floor=round(self.state.curvature.floor, 6),
            score_noise_std=round(self.score_noise_std, 6),
            score_spread=round(self.score_spread, 6),
        )


def take_newton_step(
    theta: np.ndarray,
    total: np.ndarray,
    share_stds: list[float],
    plan: TrainingPlan,
    *,
    round_number: int,
    state: NewtonState | None,
) -> NewtonStep:
    """The Newton step from round ``round_number``'s unmasked integer ``total``, the
    survivors' noise share stds (in units of the clip bounds; 0 without DP) and the
    state after the previous round (None before the first)."""
    spec, newton = plan.model_spec, plan.newton
    bounds = glm_bounds(plan)
    weight = round_information_weight(plan, round_number)
    stats = decode_statistics(
        np.asarray(total, dtype=np.float64) / newton.scale,
        spec,
        gradient_clip=bounds.gradient_clip,
        hessian_clip=bounds.hessian_clip,
        information_weight=weight,
    )
    noise_std = math.sqrt(math.fsum(s * s for s in share_stds))
    p = parameter_count(spec)
    if weight is not None:
        hessian_noise = noise_std * bounds.hessian_clip / math.sqrt(weight)
        floor = newton.eigen_floor * noise_floor(hessian_noise, p)
        curvature = Curvature(
            round_number, floored_curvature(stats.hessian, floor), hessian_noise, floor
        )
    elif state is None:
        raise ValueError(
            f"Newton round {round_number} reuses the information matrix, but no earlier "
            "round released one"
        )
    else:
        curvature = state.curvature
    information = floored_information(curvature.matrix, ridge=newton.ridge)
    new_theta = newton_step(theta, stats, ridge=newton.ridge, information=information)
    if state is not None:
        new_theta = new_theta + plan.newton_momentum * state.velocity
    gradient_noise = noise_std * bounds.gradient_clip
    score_noise, spread = _score_figures(new_theta, curvature.matrix, information, spec)
    return NewtonStep(
        round=round_number,
        theta=new_theta,
        state=NewtonState(curvature, new_theta - theta),
        step_norm=float(np.linalg.norm(new_theta - theta)),
        gradient_norm=float(np.linalg.norm(stats.gradient)),
        gradient_noise_norm=gradient_noise * math.sqrt(p),
        score_noise_std=gradient_noise * score_noise,
        score_spread=spread,
    )


def _score_figures(
    theta: np.ndarray,
    curvature: np.ndarray,
    information: tuple[np.ndarray, np.ndarray],
    spec: ModelSpec,
) -> tuple[float, float]:
    """(noise gain, spread) of the risk score (x - c) . beta over the at-risk cells,
    weighted by w = h(1 - h) as the information matrix H = sum w z z^T weights them
    (W = sum w = the trace of its interval block): a step's noise (H' + ridge I)^-1 e,
    e white of std 1, moves the linear predictor by sqrt(trace(H A^-2) / W) RMS; the
    scores spread by sqrt(beta' S beta / W), S the covariate block of H with the
    interval effects partialled out (its Schur complement). Post-processing of released
    sums only."""
    n = spec.time_grid.n_intervals
    values, vectors = information
    total = float(np.trace(curvature[:n, :n]))
    if total <= 0:
        return math.inf, 0.0
    inverse_squared = (vectors / values**2) @ vectors.T
    gain = math.sqrt(max(float(np.sum(curvature * inverse_squared)), 0.0) / total)
    intervals = np.diag(curvature)[:n]
    cross = curvature[:n, n:]
    safe = np.where(intervals > 0, intervals, np.inf)  # an interval no unit reaches
    within = curvature[n:, n:] - cross.T @ (cross / safe[:, None])
    beta = theta[n:]
    return gain, math.sqrt(max(float(beta @ within @ beta), 0.0) / total)
