"""FedAvg of model updates, after checking each reply has the global model's shape.

A reply whose arrays do not match the global model (names, shapes, finiteness) is
rejected, not averaged: a hostile or broken node must not corrupt the model.
"""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, RecordDict
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

from protocols.messages import ARRAYS_KEY, METRICS_KEY

__all__ = ["WEIGHT_KEY", "check_update", "fedavg"]

WEIGHT_KEY = "num-examples"


def check_update(content: RecordDict, reference: ArrayRecord) -> str | None:
    """None if ``content`` is a well-formed update of ``reference``; else what is wrong."""
    if ARRAYS_KEY not in content.array_records or METRICS_KEY not in content.metric_records:
        return "reply lacks arrays or metrics"
    arrays = content[ARRAYS_KEY]
    if sorted(arrays) != sorted(reference):
        return "reply arrays do not match the model's parameters"
    for name in reference:
        got, want = arrays[name].numpy(), reference[name].numpy()
        if got.shape != want.shape:
            return f"parameter {name}: shape {got.shape}, expected {want.shape}"
        if not np.all(np.isfinite(got)):
            return f"parameter {name}: non-finite values"
    weight = content[METRICS_KEY].get(WEIGHT_KEY)
    if not isinstance(weight, (int, float)) or not weight > 0:
        return f"metric {WEIGHT_KEY} missing or not positive"
    return None


def fedavg(contents: list[RecordDict]) -> ArrayRecord:
    """Example-weighted average of the updates (Flower's own aggregation)."""
    records = [
        RecordDict({ARRAYS_KEY: c[ARRAYS_KEY], METRICS_KEY: c[METRICS_KEY]}) for c in contents
    ]
    return aggregate_arrayrecords(records, WEIGHT_KEY)
