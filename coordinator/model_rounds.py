"""FedAvg model rounds of DP-SGD updates: in the clear, or through secure aggregation.

A model round takes the global model and returns the next one (:class:`TrainedRound`),
or None when training must stop (the enterprise budget,
:class:`coordinator.enterprise_dp.EnterpriseDP`). The clear round averages the nodes'
checked updates with FedAvgM; the secure round sees only the sum of the updates and
steps FedAvgM to their mean. Either states the mean update next to the DP noise expected
in it (:mod:`coordinator.update_noise`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from flwr.app import Array, ArrayRecord, RecordDict

from coordinator.aggregation import ServerOptimizer, check_update
from coordinator.newton_fit import NewtonState
from coordinator.progress_events import ModelNoiseWarning
from coordinator.round_context import RoundContext
from coordinator.rounds import NodeReply
from coordinator.secure_sums import SecureSum
from coordinator.update_noise import update_noise
from protocols.messages import ARRAYS_KEY, MODEL_TASK, TASK_KEY
from protocols.secure_update import decode_mean_update, flatten, unflatten

__all__ = ["TrainedRound", "ModelRound", "FedAvgRound", "SecureFedAvgRound"]

_log = logging.getLogger("fedrisk.coordinator")


@dataclass(frozen=True, eq=False)
class TrainedRound:
    """A model round's new global model, and what a Newton fit's next round needs."""

    arrays: ArrayRecord
    newton: NewtonState | None = None


class ModelRound(Protocol):
    """One kind of model round: the next global model, or None to stop training."""

    def train(self, round_number: int, arrays: ArrayRecord) -> TrainedRound | None: ...


class FedAvgRound:
    """A model round in the clear: FedAvgM of the nodes' checked DP-SGD models."""

    def __init__(self, context: RoundContext, optimizer: ServerOptimizer) -> None:
        self.context, self.optimizer = context, optimizer

    def train(self, round_number: int, arrays: ArrayRecord) -> TrainedRound:
        exchanges = self.context.exchanges
        header = exchanges.header(round_number, "model")

        def content_for(_node: int) -> RecordDict:
            return RecordDict({TASK_KEY: header.to_record(), ARRAYS_KEY: arrays})

        outcome, good = exchanges.run(
            self.context.node_ids,
            round_number,
            "model",
            MODEL_TASK,
            content_for,
            lambda content: check_update(content, arrays),
        )
        exchanges.require_quorum(outcome, good)
        before = flatten([arrays[name].numpy() for name in arrays])
        updates = [
            flatten([a.numpy() for a in reply.content.array_records[ARRAYS_KEY].values()]) - before
            for reply in good
        ]
        norm = float(np.linalg.norm(np.mean(updates, axis=0)))
        note_update_noise(self.context, round_number, norm, good, before.size)
        new = self.optimizer.step(round_number, [reply.message for reply in good])
        return TrainedRound(new)


class SecureFedAvgRound:
    """A model round through secure aggregation: FedAvgM's step to the mean of the
    survivors' updates, the only thing the coordinator sees.

    :meth:`collect` and :meth:`aggregate` are its two halves, for a wrapper that acts
    between them; ``note_noise`` False leaves the update's noise to that wrapper."""

    def __init__(
        self, context: RoundContext, optimizer: ServerOptimizer, *, note_noise: bool = True
    ) -> None:
        self.context, self.optimizer, self.note_noise = context, optimizer, note_noise

    def train(self, round_number: int, arrays: ArrayRecord) -> TrainedRound:
        return self.aggregate(round_number, arrays, self.collect(round_number, arrays))

    def collect(self, round_number: int, arrays: ArrayRecord) -> SecureSum:
        """The secure sum of the nodes' quantised updates (quorum checked)."""
        return self.context.sums.sum(
            round_number,
            "model",
            self.context.node_ids,
            vector_length=dimension(arrays),
            bound=self.context.plan.secure_update.integer_bound,
            arrays=arrays,
        )

    def aggregate(self, round_number: int, arrays: ArrayRecord, summed: SecureSum) -> TrainedRound:
        """The next global model: FedAvgM's server step to the mean model."""
        total = summed.total
        mean_update = decode_mean_update(
            total.total, total.survivors, self.context.plan.secure_update.scale
        )
        reference = [arrays[name].numpy() for name in arrays]
        if self.note_noise:
            norm = float(np.linalg.norm(mean_update))
            note_update_noise(self.context, round_number, norm, summed.survivors, dimension(arrays))
        mean = unflatten(flatten(reference) + mean_update, reference)
        mean_model = ArrayRecord({name: Array(a) for name, a in zip(arrays, mean, strict=True)})
        return TrainedRound(self.optimizer.step_to_mean(round_number, mean_model))


def dimension(arrays: ArrayRecord) -> int:
    """The number of the model's parameters (the length of a flattened update)."""
    return sum(arrays[name].numpy().size for name in arrays)


def note_update_noise(
    context: RoundContext,
    round_number: int,
    norm: float,
    replies: Sequence[NodeReply],
    size: int,
) -> None:
    """The round's mean-update norm next to the DP noise expected in it; a round-1
    update that is mostly noise is warned of (log, progress event, summary)."""
    receipts = [r.receipt for r in replies if r.receipt is not None]
    check = update_noise(round_number, norm, receipts, context.plan.training, size)
    warning = context.log.notes.add_update_noise(check)
    if warning is not None:
        _log.warning("%s", warning)
        context.log.store.event(ModelNoiseWarning(round_number, warning))
