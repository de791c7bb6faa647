"""FedAvgM of model updates, after checking each reply has the global model's shape.

A reply whose arrays do not match the global model (names, shapes, finiteness) is
rejected, not averaged: a hostile or broken node must not corrupt the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvgM

from protocols.messages import ARRAYS_KEY, METRICS_KEY, MODEL_TASK

__all__ = ["WEIGHT_KEY", "check_update", "ServerOptimizer"]

WEIGHT_KEY = "num-examples"


def check_update(content: RecordDict, reference: ArrayRecord) -> str | None:
    """None if ``content`` is a well-formed update of ``reference``; else what is wrong."""
    if ARRAYS_KEY not in content.array_records or METRICS_KEY not in content.metric_records:
        return "reply lacks arrays or metrics"
    if len(content.array_records) != 1 or len(content.metric_records) != 1:
        # FedAvg needs exactly one of each; an extra record would abort the whole round
        return "reply holds extra array or metric records"
    arrays = content.array_records[ARRAYS_KEY]
    if list(arrays) != list(reference):
        # FedAvgM pairs arrays by position: names must come in the model's order
        return "reply arrays do not match the model's parameters (names and order)"
    for name in reference:
        got, want = arrays[name].numpy(), reference[name].numpy()
        if got.shape != want.shape:
            return f"parameter {name}: shape {got.shape}, expected {want.shape}"
        if not np.all(np.isfinite(got)):
            return f"parameter {name}: non-finite values"
    metrics = content.metric_records[METRICS_KEY]
    if list(metrics) != [WEIGHT_KEY]:
        # FedAvg needs the same metric keys in every reply; one odd key aborts the round
        return f"reply metrics must be exactly [{WEIGHT_KEY!r}], got {sorted(metrics)}"
    weight = metrics[WEIGHT_KEY]
    if not isinstance(weight, (int, float)) or not (weight > 0 and math.isfinite(weight)):
        return f"metric {WEIGHT_KEY} missing, not positive or not finite"
    return None


class ServerOptimizer:
    """Flower's FedAvgM applied to checked replies, round after round.

    The coordinator drives rounds itself (to count refusals and enforce quorum), so it
    uses the strategy only for aggregation: its momentum state lives across rounds here.
    """

    def __init__(self, initial: ArrayRecord, *, learning_rate: float, momentum: float) -> None:
        self._strategy = FedAvgM(
            server_learning_rate=learning_rate,
            server_momentum=momentum,
            weighted_by_key=WEIGHT_KEY,
            arrayrecord_key=ARRAYS_KEY,
        )
        self._strategy.current_arrays = initial

    def step_to_mean(self, round_number: int, mean_model: ArrayRecord) -> ArrayRecord:
        """The new global model when only the (securely aggregated) mean model is known:
        FedAvgM's server step with that mean as the one aggregate."""
        content = RecordDict({ARRAYS_KEY: mean_model, METRICS_KEY: MetricRecord({WEIGHT_KEY: 1.0})})
        return self.step(round_number, [Message(content, dst_node_id=0, message_type=MODEL_TASK)])

    def momentum(self) -> list[np.ndarray] | None:
        """FedAvgM's momentum vector (None before its first step or without momentum),
        for the coordinator's checkpoint."""
        vector = self._strategy.momentum_vector
        return None if vector is None else [np.array(v) for v in vector]

    def load_momentum(self, momentum: Sequence[np.ndarray] | None) -> None:
        """Restore :meth:`momentum` (a resumed run continues exactly where it stopped)."""
        self._strategy.momentum_vector = (
            None if momentum is None else [np.array(v) for v in momentum]
        )

    def step(self, round_number: int, replies: list[Message]) -> ArrayRecord:
        """The new global model from this round's (already checked) replies."""
        arrays, _ = self._strategy.aggregate_train(round_number, replies)
        if arrays is None:
            raise ValueError(f"round {round_number}: FedAvgM returned no model")
        return arrays
