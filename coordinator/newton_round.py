"""The Newton (GLM) fit's model round: a Newton step on securely summed, noised
statistics (:mod:`coordinator.newton_fit`), stated next to its noise."""

from __future__ import annotations

import logging

from flwr.app import Array, ArrayRecord

from common.codec import encode
from coordinator.model_rounds import TrainedRound
from coordinator.newton_fit import NewtonState, NewtonStep, take_newton_step
from coordinator.progress_events import ModelNoiseWarning, NewtonStepped
from coordinator.round_context import RoundContext
from coordinator.secure_sums import reported_noise_std
from models.glm import hazard_arrays, theta_from_arrays
from protocols.secure_glm import round_statistics_length
from protocols.secure_round import THETA_KEY, VALUE_BOUND

__all__ = ["NewtonRound"]

_log = logging.getLogger("fedrisk.coordinator")


class NewtonRound:
    """Newton rounds of the GLM hazard model; theta and the curvature in use carry from
    round to round (a resumed run's from its checkpoint)."""

    def __init__(
        self, context: RoundContext, initial: ArrayRecord, state: NewtonState | None
    ) -> None:
        self.context, self.state = context, state
        spec = context.plan.model_spec
        self.theta = theta_from_arrays([initial[name].numpy() for name in initial], spec)

    def train(self, round_number: int, arrays: ArrayRecord) -> TrainedRound:
        """The next model from this round's secure sum of GLM statistics (from theta,
        which ``arrays`` hold only to rounding)."""
        plan = self.context.plan
        summed = self.context.sums.sum(
            round_number,
            "model",
            self.context.node_ids,
            vector_length=round_statistics_length(plan, round_number),
            bound=VALUE_BOUND,
            arrays=ArrayRecord({THETA_KEY: Array(self.theta)}),
        )
        step = take_newton_step(
            self.theta,
            summed.total.total,
            [reported_noise_std(r) for r in summed.survivors],
            plan,
            round_number=round_number,
            state=self.state,
        )
        self._note(step)
        self.theta, self.state = step.theta, step.state
        parameters = hazard_arrays(self.theta, plan.model_spec)
        new = ArrayRecord({f"param_{i:03d}": Array(a) for i, a in enumerate(parameters)})
        return TrainedRound(new, newton=self.state)

    def _note(self, step: NewtonStep) -> None:
        """The step next to its noise: progress event, summary and, the first time the
        noise dominates, a warning."""
        figures = step.figures()
        store = self.context.log.store
        store.event(NewtonStepped.of(figures))
        warning = self.context.log.notes.add_newton_step(encode(figures), step.warning)
        if warning is not None:
            _log.warning("%s", warning)
            store.event(ModelNoiseWarning(step.round, warning))
