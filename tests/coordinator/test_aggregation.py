"""Model updates: check_update refuses malformed replies; ServerOptimizer is FedAvg(M)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from coordinator.aggregation import WEIGHT_KEY, ServerOptimizer, check_update
from protocols.messages import ARRAYS_KEY, METRICS_KEY, MODEL_TASK, STATUS_KEY, ReplyStatus

pytestmark = pytest.mark.usefixtures("flower_identity")

SHAPES = {"param_000": (3, 4), "param_001": (4,), "param_002": (1,)}


def model(seed: int) -> dict[str, np.ndarray]:
    """Factory: model parameters of SHAPES, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=shape) for name, shape in SHAPES.items()}


def as_record(params: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({name: Array(np.asarray(value)) for name, value in params.items()})


def reply(
    params: dict[str, np.ndarray],
    weight: object = 100.0,
    *,
    node_id: int = 1,
    metrics: dict | None = None,
) -> Message:
    """A node's reply, built the way Flower builds it: Message(content, reply_to=task)."""
    task = Message(content=RecordDict(), dst_node_id=node_id, message_type=MODEL_TASK)
    content = RecordDict(
        {
            STATUS_KEY: ReplyStatus("ok").to_record(),
            ARRAYS_KEY: as_record(params),
            METRICS_KEY: MetricRecord(metrics if metrics is not None else {WEIGHT_KEY: weight}),
        }
    )
    return Message(content, reply_to=task)


def numpy(record: ArrayRecord) -> dict[str, np.ndarray]:
    return {name: record[name].numpy() for name in record}


# ---- check_update -----------------------------------------------------------------------


def test_good_update_passes_and_reply_comes_from_the_node() -> None:
    # Prepare
    message = reply(model(1), node_id=42)
    # Execute
    problem = check_update(message.content, as_record(model(0)))
    # Assert
    assert problem is None
    assert message.metadata.src_node_id == 42


def _renamed(params: dict) -> dict:
    return {("param_999" if k == "param_002" else k): v for k, v in params.items()}


def _missing(params: dict) -> dict:
    return {k: v for k, v in params.items() if k != "param_001"}


def _extra(params: dict) -> dict:
    return params | {"param_003": np.zeros(2)}


def _reordered(params: dict) -> dict:
    return dict(reversed(list(params.items())))


def _reshaped(params: dict) -> dict:
    return params | {"param_000": params["param_000"].T}


def _nan(params: dict) -> dict:
    bad = params["param_001"].copy()
    bad[2] = np.nan
    return params | {"param_001": bad}


def _inf(params: dict) -> dict:
    return params | {"param_002": np.array([-np.inf])}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_renamed, "do not match the model's parameters"),
        (_missing, "do not match the model's parameters"),
        (_extra, "do not match the model's parameters"),
        (_reordered, "names and order"),
        (_reshaped, r"parameter param_000: shape \(4, 3\), expected \(3, 4\)"),
        (_nan, "parameter param_001: non-finite values"),
        (_inf, "parameter param_002: non-finite values"),
    ],
    ids=["renamed", "missing", "extra", "reordered", "reshaped", "nan", "inf"],
)
def test_check_update_rejects_bad_arrays(mutate, message: str) -> None:
    # Prepare
    content = reply(mutate(model(1))).content
    # Execute
    problem = check_update(content, as_record(model(0)))
    # Assert
    assert problem is not None
    assert re.search(message, problem), problem


@pytest.mark.parametrize("weight", [0.0, -5.0, float("nan"), float("inf")])
def test_check_update_rejects_bad_weight(weight: float) -> None:
    # Prepare
    content = reply(model(1), weight).content
    # Execute
    problem = check_update(content, as_record(model(0)))
    # Assert
    assert problem is not None and WEIGHT_KEY in problem


@pytest.mark.parametrize(
    "metrics",
    [{}, {"examples": 100.0}, {WEIGHT_KEY: 100.0, "train-loss": 0.3}],
    ids=["empty", "misnamed", "extra-key"],
)
def test_check_update_rejects_missing_or_extra_metrics(metrics: dict) -> None:
    # Prepare: an extra key would make Flower's FedAvg abort the whole round
    content = reply(model(1), metrics=metrics).content
    # Execute
    problem = check_update(content, as_record(model(0)))
    # Assert
    assert problem is not None and WEIGHT_KEY in problem


def test_check_update_rejects_replies_without_arrays_or_metrics() -> None:
    # Prepare
    no_arrays = RecordDict({METRICS_KEY: MetricRecord({WEIGHT_KEY: 1.0})})
    no_metrics = RecordDict({ARRAYS_KEY: as_record(model(1))})
    arrays_as_config = RecordDict(
        {
            ARRAYS_KEY: ConfigRecord({"param_000": 1.0}),
            METRICS_KEY: MetricRecord({WEIGHT_KEY: 1.0}),
        }
    )
    reference = as_record(model(0))
    # Execute
    problems = [check_update(c, reference) for c in (no_arrays, no_metrics, arrays_as_config)]
    # Assert
    assert problems == ["reply lacks arrays or metrics"] * 3


def test_check_update_rejects_an_extra_array_record() -> None:
    # Prepare: Flower's FedAvg needs exactly one ArrayRecord per reply
    content = reply(model(1)).content
    content["smuggled"] = as_record({"x": np.ones(3)})
    # Execute
    problem = check_update(content, as_record(model(0)))
    # Assert
    assert problem is not None and "extra" in problem


# ---- ServerOptimizer --------------------------------------------------------------------


def weighted_mean(updates: list[dict], weights: list[float]) -> dict[str, np.ndarray]:
    total = sum(weights)
    return {
        name: sum(w * u[name] for u, w in zip(updates, weights, strict=True)) / total
        for name in SHAPES
    }


def test_momentum_zero_is_the_example_weighted_mean() -> None:
    # Prepare
    initial = model(0)
    updates, weights = [model(1), model(2), model(3)], [100.0, 300.0, 50.0]
    optimizer = ServerOptimizer(as_record(initial), learning_rate=1.0, momentum=0.0)
    # Execute
    new = numpy(
        optimizer.step(
            1,
            [
                reply(u, w, node_id=i + 1)
                for i, (u, w) in enumerate(zip(updates, weights, strict=True))
            ],
        )
    )
    # Assert: not the unweighted mean, exactly the weighted one
    expected = weighted_mean(updates, weights)
    assert list(new) == list(SHAPES)
    for name in SHAPES:
        np.testing.assert_allclose(new[name], expected[name], rtol=0, atol=1e-12)
    unweighted = weighted_mean(updates, [1.0, 1.0, 1.0])
    assert not np.allclose(new["param_000"], unweighted["param_000"])


def test_fedavgm_matches_a_hand_computation_over_two_rounds() -> None:
    # Prepare: v_1 = (x_0 - a_1); v_2 = m v_1 + (x_1 - a_2); x_r = x_{r-1} - lr v_r
    m, lr = 0.6, 0.8
    x0 = model(0)
    round1 = ([model(1), model(2)], [200.0, 100.0])
    round2 = ([model(3), model(4)], [50.0, 150.0])
    optimizer = ServerOptimizer(as_record(x0), learning_rate=lr, momentum=m)
    # Execute
    x1 = numpy(optimizer.step(1, [reply(u, w) for u, w in zip(*round1, strict=True)]))
    x2 = numpy(optimizer.step(2, [reply(u, w) for u, w in zip(*round2, strict=True)]))
    # Assert
    a1, a2 = weighted_mean(*round1), weighted_mean(*round2)
    for name in SHAPES:
        v1 = x0[name] - a1[name]
        hand_x1 = x0[name] - lr * v1
        v2 = m * v1 + (hand_x1 - a2[name])
        hand_x2 = hand_x1 - lr * v2
        np.testing.assert_allclose(x1[name], hand_x1, rtol=0, atol=1e-12)
        np.testing.assert_allclose(x2[name], hand_x2, rtol=0, atol=1e-12)
    # and momentum made a difference in round 2
    without_momentum = x1["param_000"] - lr * (x1["param_000"] - a2["param_000"])
    assert not np.allclose(x2["param_000"], without_momentum)


def test_checked_replies_always_aggregate() -> None:
    # Prepare: replies that passed check_update must never make FedAvg abort the round
    reference = as_record(model(0))
    replies = [reply(model(1), 10), reply(model(2), 20.0)]
    assert all(check_update(r.content, reference) is None for r in replies)
    optimizer = ServerOptimizer(reference, learning_rate=1.0, momentum=0.5)
    # Execute
    new = optimizer.step(1, replies)
    # Assert
    assert sorted(new) == sorted(SHAPES)
    assert all(np.all(np.isfinite(new[name].numpy())) for name in SHAPES)
