"""How much noise a node adds in one run, calibrated from the plan and its own size.

The plan gives the run's record-level budget (epsilon, delta). The curve release gets
``curve_share`` of epsilon on its own; the model's noise multiplier is then the smallest
whose composition with the curve release over all rounds stays within epsilon (RDP):
DP-SGD's Poisson-sampled steps, or one Gaussian release of the summed GLM statistics per
Newton round (``training.method: newton``). A Newton round's release has noise std s on
every coordinate and sensitivity sqrt(1 + w) with the information matrix (weight w),
1 without; its RDP is (1 + w) resp. 1 times that of a sensitivity-1 release at s, so the
run is worth rounds + w x (information rounds) such releases, and s is calibrated for
that many (``NoisePlan.round_noise_multiplier`` gives each round's multiplier).
Everything here is a function of public plan settings and the node's unit count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from common.errors import DataError
from models.spec import TrainingSettings
from privacy.accounting import Spend, calibrate_noise_multiplier, rdp_epsilon
from privacy.mechanisms import Mechanism
from protocols.plan import TrainingPlan

__all__ = [
    "NoisePlan",
    "dp_sgd_schedule",
    "meets_targets",
    "noise_plan_with",
    "plan_noise",
]


def dp_sgd_schedule(n_units: int, settings: TrainingSettings) -> tuple[float, int]:
    """Poisson sample rate q = min(1, batch_size / n) and steps = ceil(local_epochs / q)."""
    if n_units < 1:
        raise DataError("no equipment units to train on")
    sample_rate = min(1.0, settings.batch_size / n_units)
    # Round away float noise (0.1 * 1280 / 128 must give 1 step, not 2).
    steps = max(1, math.ceil(round(settings.local_epochs / sample_rate, 9)))
    return sample_rate, steps


@dataclass(frozen=True)
class NoisePlan:
    """Per-run noise of one node: the model's (sigma, q, steps per round) and the curve
    sigma. For a Newton fit q = 1 and one step (release) per round; sigma is the noise
    std per unit of a gradient-only release's sensitivity, and ``information_rounds``
    also release the information matrix at ``information_weight``."""

    model_noise_multiplier: float
    sample_rate: float
    steps_per_round: int
    rounds: int
    curve_noise_multiplier: float | None
    delta: float
    model_mechanism: str = Mechanism.DP_SGD
    information_rounds: tuple[int, ...] = ()
    information_weight: int = 0

    def round_noise_multiplier(self, round_number: int) -> float:
        """The model release's noise multiplier in round ``round_number``: the same noise
        std over a sqrt(1 + w) times larger sensitivity in an information round."""
        if round_number in self.information_rounds:
            return self.model_noise_multiplier / math.sqrt(1.0 + self.information_weight)
        return self.model_noise_multiplier

    def model_spend(self, run_id: str = "", round_number: int = 0) -> Spend:
        return Spend(
            self.round_noise_multiplier(round_number),
            self.sample_rate,
            self.steps_per_round,
            self.model_mechanism,
            run_id,
            round_number,
            "model",
        )

    def curve_spend(self, run_id: str = "", round_number: int = 0) -> Spend:
        if self.curve_noise_multiplier is None:
            raise ValueError("this plan releases no curves")
        return Spend(
            self.curve_noise_multiplier,
            1.0,
            1,
            Mechanism.CURVE_HISTOGRAM,
            run_id,
            round_number,
            "curve",
        )

    def run_spends(self) -> list[Spend]:
        """Every release of the whole run at this node: its rounds, then the curve."""
        spends = [self.model_spend(round_number=r) for r in range(1, self.rounds + 1)]
        if self.curve_noise_multiplier is not None:
            spends.append(self.curve_spend())
        return spends

    def run_epsilon(self, delta: float | None = None) -> float:
        """Epsilon of the whole run at this node (all rounds + curve) at ``delta`` (default:
        the plan's delta)."""
        return rdp_epsilon(self.run_spends(), self.delta if delta is None else delta)


def plan_noise(plan: TrainingPlan, n_units: int) -> NoisePlan:
    """Calibrate a node's noise for ``plan`` given its ``n_units`` valid units.

    Noise multipliers are per unit of L2 sensitivity (noise std = multiplier x
    sensitivity), so the same plan covers releases with and without entry histograms.
    A task takes it through :func:`enterprise_node.noise_calibration.calibrated_noise`,
    which keeps it.
    """
    record = plan.privacy.record
    sample_rate, steps, information = _schedule(plan, n_units)
    fixed: tuple[Spend, ...] = ()
    curve_sigma = None
    if plan.curve_release:
        curve_sigma = calibrate_noise_multiplier(
            target_epsilon=record.curve_epsilon,
            target_delta=record.delta,
            sample_rate=1.0,
            steps=1,
        )
        fixed = (Spend(curve_sigma, 1.0, 1, Mechanism.CURVE_HISTOGRAM),)
    model_sigma = calibrate_noise_multiplier(
        target_epsilon=record.epsilon,
        target_delta=record.delta,
        sample_rate=sample_rate,
        steps=steps * plan.training.rounds + plan.newton.information_weight * len(information),
        composed_with=fixed,
    )
    return noise_plan_with(plan, n_units, model_sigma, curve_sigma)


def noise_plan_with(
    plan: TrainingPlan, n_units: int, model_sigma: float, curve_sigma: float | None
) -> NoisePlan:
    """The noise plan of ``plan`` for ``n_units`` with the given multipliers (calibrated
    by :func:`plan_noise`, or kept from an earlier calibration)."""
    if (curve_sigma is None) == plan.curve_release:
        raise ValueError("a curve noise multiplier is needed exactly when curves are released")
    sample_rate, steps, information = _schedule(plan, n_units)
    newton = plan.training.method == "newton"
    return NoisePlan(
        model_noise_multiplier=model_sigma,
        sample_rate=sample_rate,
        steps_per_round=steps,
        rounds=plan.training.rounds,
        curve_noise_multiplier=curve_sigma,
        delta=plan.privacy.record.delta,
        model_mechanism=_newton_mechanism(plan) if newton else Mechanism.DP_SGD,
        information_rounds=information,
        information_weight=plan.newton.information_weight if newton else 0,
    )


def meets_targets(noise: NoisePlan, plan: TrainingPlan) -> bool:
    """Whether ``noise`` keeps the run within the plan's epsilon and the curve release
    within its share, at the plan's delta (the check a kept calibration must pass)."""
    record = plan.privacy.record
    slack = 1.0 + 1e-9  # the calibration's own composition, summed in another order
    if noise.curve_noise_multiplier is not None:
        curve = rdp_epsilon([noise.curve_spend()], record.delta)
        if not curve <= record.curve_epsilon * slack:
            return False
    return noise.run_epsilon() <= record.epsilon * slack


def _schedule(plan: TrainingPlan, n_units: int) -> tuple[float, int, tuple[int, ...]]:
    """(sample rate, steps per round, information rounds) of the model release."""
    if plan.training.method == "newton":
        if n_units < 1:
            raise DataError("no equipment units to train on")
        return 1.0, 1, plan.newton.information_rounds
    sample_rate, steps = dp_sgd_schedule(n_units, plan.training)
    return sample_rate, steps, ()


def _newton_mechanism(plan: TrainingPlan) -> Mechanism:
    """The mechanism a Newton round's GLM release is charged under (``plan.share_noise``)."""
    if plan.share_noise == "skellam":
        return Mechanism.SKELLAM_GLM
    return Mechanism.DISTRIBUTED_GLM
