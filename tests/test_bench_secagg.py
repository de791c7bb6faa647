"""The secure-aggregation benchmark's pure parts: curve-round seconds from progress events,
bytes per node from outboxes, variant configs, the in-process timing and the accuracy study.

No federation is run here (that is ``python -m bench.secagg``).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.coverage import SimulationSetup
from bench.secagg import (
    VARIANTS,
    accuracy_study,
    curve_bytes_by_purpose,
    curve_round_seconds,
    curve_round_wall_seconds,
    inprocess_scale,
    mean_bytes_per_node,
    variant_config,
)
from coordinator.cli import load_config_or_default
from coordinator.config import load_coordinator_config

SPEC = load_coordinator_config(Path("configs/coordinator.yaml")).plan.model_spec


def secure_events() -> list[dict]:
    """Factory: two model rounds, then a secure curve round 3 in four stages."""
    events: list[dict] = [{"event": "run_start"}]
    for number in (1, 2):
        events.append({"event": "round_end", "round": number, "task": "model", "seconds": 9.0})
    clock = 1000.0
    for task, seconds in [
        ("secagg-keys", 0.5),
        ("secagg-shares", 0.25),
        ("curve", 1.0),
        ("secagg-unmask", 0.125),
    ]:
        events.append({"event": "round_start", "round": 3, "task": task, "time": clock})
        clock += seconds
        events.append(
            {"event": "round_end", "round": 3, "task": task, "seconds": seconds, "time": clock}
        )
        clock += 2.0  # the coordinator's work between stages
    events.append({"event": "secure_sum", "survivors": 8, "dropped": 0, "time": clock + 4.0})
    events.append({"event": "run_end", "status": "completed", "seconds": 30.0})
    return events


def outbox_row(round_: int, purpose: str, size: int, status: str = "ok") -> dict:
    """Factory: one outbox.jsonl row."""
    return {"round": round_, "purpose": purpose, "bytes": size, "status": status, "task": "curve"}


def test_curve_round_seconds_sums_the_four_secure_stages_only() -> None:
    # Prepare
    events = secure_events()
    # Execute
    seconds = curve_round_seconds(events, curve_round=3)
    # Assert: 0.5 + 0.25 + 1.0 + 0.125, model rounds and round_start ignored
    assert seconds == pytest.approx(1.875)


def test_curve_round_wall_seconds_runs_from_the_first_stage_to_the_secure_sum() -> None:
    # Prepare: stages 1.875 s, 3 gaps of 2 s, last gap 2 s + 4 s to the secure sum
    events = secure_events()
    # Execute
    wall = curve_round_wall_seconds(events, curve_round=3)
    # Assert
    assert wall == pytest.approx(1.875 + 4 * 2.0 + 4.0)


def test_curve_round_wall_seconds_of_a_plain_run_ends_at_its_round_end() -> None:
    # Prepare
    events = [
        {"event": "round_end", "round": 1, "task": "model", "seconds": 4.0, "time": 10.0},
        {"event": "round_start", "round": 2, "task": "curve", "time": 11.0},
        {"event": "round_end", "round": 2, "task": "curve", "seconds": 0.75, "time": 11.75},
        {"event": "run_end", "status": "completed", "time": 20.0},
    ]
    # Execute / Assert
    assert curve_round_wall_seconds(events, curve_round=2) == pytest.approx(0.75)
    assert curve_round_wall_seconds(events, curve_round=3) is None


def test_curve_round_seconds_of_a_plain_run_and_of_a_missing_round() -> None:
    # Prepare
    events = [
        {"event": "round_end", "round": 1, "task": "model", "seconds": 4.0},
        {"event": "round_end", "round": 2, "task": "curve", "seconds": 0.75},
    ]
    # Execute / Assert
    assert curve_round_seconds(events, curve_round=2) == pytest.approx(0.75)
    assert curve_round_seconds(events, curve_round=3) is None


def test_curve_bytes_by_purpose_counts_only_ok_replies_of_the_curve_round() -> None:
    # Prepare
    rows = [
        outbox_row(1, "model-update", 5000),
        outbox_row(3, "secagg-keys", 200),
        outbox_row(3, "secagg-shares", 1000),
        outbox_row(3, "curve-histogram", 800),
        outbox_row(3, "secagg-unmask", 300),
        outbox_row(3, "status-only", 60, status="refused"),
    ]
    # Execute
    by_purpose = curve_bytes_by_purpose(rows, curve_round=3)
    # Assert
    assert by_purpose == {
        "secagg-keys": 200,
        "secagg-shares": 1000,
        "curve-histogram": 800,
        "secagg-unmask": 300,
        "total": 2300,
    }


def test_mean_bytes_per_node_counts_a_missing_purpose_as_zero() -> None:
    # Prepare
    per_node = [{"secagg-unmask": 300, "total": 300}, {"total": 100}]
    # Execute
    mean = mean_bytes_per_node(per_node)
    # Assert
    assert mean == {"secagg-unmask": 150.0, "total": 200.0}
    assert mean_bytes_per_node([]) == {}


def test_variant_configs_set_rounds_secure_aggregation_and_record_dp() -> None:
    # Prepare
    config = load_config_or_default(None)
    # Execute
    configs = {v.label: variant_config(config, v, rounds=2) for v in VARIANTS}
    # Assert
    flags = {
        label: (c.plan.training.rounds, c.plan.secure_aggregation, c.plan.privacy.record.enabled)
        for label, c in configs.items()
    }
    assert flags == {
        "plain": (2, False, False),
        "secagg": (2, True, False),
        "secagg_dp": (2, True, True),
    }
    assert all(c.plan.model_spec == config.plan.model_spec for c in configs.values())


def test_inprocess_scale_times_an_exact_secure_sum() -> None:
    # Prepare / Execute (simulate_round's result is checked against the plain sum inside)
    figures = inprocess_scale(SPEC, enterprises=5, seed=1)
    # Assert
    expected_length = len(SPEC.segments) * (2 * SPEC.time_grid.n_intervals + 2)
    assert figures["vector_length"] == expected_length
    assert figures["threshold"] == 3
    assert "NOT Flower" in figures["mode"]
    assert set(figures["curve_round_seconds"]) == {"plain", "secagg", "secagg_dp"}
    assert figures["ratio_secagg_over_plain"] > 1.0


def test_accuracy_study_noise_raises_the_error_and_is_reproducible() -> None:
    # Prepare
    setup = SimulationSetup(n_enterprises=3, min_units=300, max_units=400)
    # Execute
    first = accuracy_study(SPEC, replicates=6, setup=setup, epsilons=(0.5, math.inf), seed=3)
    again = accuracy_study(SPEC, replicates=6, setup=setup, epsilons=(0.5, math.inf), seed=3)
    # Assert
    assert first == again
    assert set(first) == {"0.5", "inf"}
    assert first["inf"]["node_sigma"] == 0.0
    assert first["0.5"]["max_abs_error_mean"] > first["inf"]["max_abs_error_mean"]
    for figures in first.values():
        assert 0.0 <= figures["coverage_mean"] <= 1.0
        assert figures["max_abs_error_mean"] <= figures["max_abs_error_max"]
