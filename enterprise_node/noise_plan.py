"""How much noise a node adds in one run, calibrated from the plan and its own size.

The plan gives the run's record-level budget (epsilon, delta). The curve release gets
``curve_share`` of epsilon on its own; DP-SGD's noise multiplier is then the smallest
whose composition with the curve release over all rounds stays within epsilon (RDP).
Everything here is a function of public plan settings and the node's unit count.
"""

from __future__ import annotations

from dataclasses import dataclass

from enterprise_node.training import dp_sgd_schedule
from protocols.accounting import Spend, calibrate_noise_multiplier, rdp_epsilon
from protocols.plan import TrainingPlan

__all__ = ["NoisePlan", "plan_noise"]

CURVE_MECHANISM = "discrete_gaussian_histogram"
MODEL_MECHANISM = "dp_sgd"


@dataclass(frozen=True)
class NoisePlan:
    """Per-run noise of one node: DP-SGD (sigma, q, steps per round) and the curve sigma."""

    model_noise_multiplier: float
    sample_rate: float
    steps_per_round: int
    rounds: int
    curve_noise_multiplier: float | None
    delta: float

    def model_spend(self, run_id: str = "", round_number: int = 0) -> Spend:
        return Spend(
            self.model_noise_multiplier,
            self.sample_rate,
            self.steps_per_round,
            MODEL_MECHANISM,
            run_id,
            round_number,
            "model",
        )

    def curve_spend(self, run_id: str = "", round_number: int = 0) -> Spend:
        if self.curve_noise_multiplier is None:
            raise ValueError("this plan releases no curves")
        return Spend(
            self.curve_noise_multiplier, 1.0, 1, CURVE_MECHANISM, run_id, round_number, "curve"
        )

    def run_epsilon(self, delta: float | None = None) -> float:
        """Epsilon of the whole run at this node (all rounds + curve) at ``delta`` (default:
        the plan's delta)."""
        spends = [self.model_spend()] * self.rounds
        if self.curve_noise_multiplier is not None:
            spends.append(self.curve_spend())
        return rdp_epsilon(spends, self.delta if delta is None else delta)


def plan_noise(plan: TrainingPlan, n_units: int) -> NoisePlan:
    """Calibrate a node's noise for ``plan`` given its ``n_units`` valid units.

    Noise multipliers are per unit of L2 sensitivity (noise std = multiplier x
    sensitivity), so the same plan covers releases with and without entry histograms.
    """
    record = plan.privacy.record
    sample_rate, steps = dp_sgd_schedule(n_units, plan.training)
    fixed: tuple[Spend, ...] = ()
    curve_sigma = None
    if plan.curve_release:
        curve_sigma = calibrate_noise_multiplier(
            target_epsilon=record.curve_epsilon,
            target_delta=record.delta,
            sample_rate=1.0,
            steps=1,
        )
        fixed = (Spend(curve_sigma, 1.0, 1, CURVE_MECHANISM),)
    model_sigma = calibrate_noise_multiplier(
        target_epsilon=record.epsilon,
        target_delta=record.delta,
        sample_rate=sample_rate,
        steps=steps * plan.training.rounds,
        composed_with=fixed,
    )
    return NoisePlan(
        model_noise_multiplier=model_sigma,
        sample_rate=sample_rate,
        steps_per_round=steps,
        rounds=plan.training.rounds,
        curve_noise_multiplier=curve_sigma,
        delta=record.delta,
    )
