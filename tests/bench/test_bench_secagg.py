"""The secure-aggregation benchmark's pure parts: round seconds from progress events, bytes
per node and round from outboxes, variant configs, the in-process timing and the accuracy
study with distributed noise shares.

No federation is run here (that is ``python -m bench.secagg``).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from node_site import DP_SGD, config_with

from bench.coverage import SimulationSetup, node_sigma, share_sigma
from bench.round_costs import (
    bytes_per_node_round,
    mean_bytes_per_node,
    ratios_over_plain,
    round_bytes_by_purpose,
    round_exchange_seconds,
    round_seconds,
    round_wall_seconds,
)
from bench.secagg import (
    ENTERPRISE_BUDGET,
    ENTERPRISE_DP,
    VARIANTS,
    inprocess_scale,
    variant_config,
)
from bench.secagg_accuracy import accuracy_study
from coordinator.config import load_config_or_default, load_coordinator_config
from coordinator.progress_events import (
    EnterpriseEpsilon,
    ProgressEvent,
    RoundEnd,
    RoundStart,
    RunEnd,
    RunStart,
    SecureSumDone,
)

SPEC = load_coordinator_config(Path("configs/coordinator.yaml")).plan.model_spec
SECURE_STAGES = ("secagg-keys", "secagg-shares", "{task}", "secagg-unmask")


def round_end(number: int, time: float, task: str, seconds: float) -> RoundEnd:
    """Factory: the end of exchange ``task`` of round ``number`` (every node answered)."""
    return RoundEnd(number, task, ("a",), (), (), seconds, epsilon_max=0.0, time=time)


def secure_round(number: int, task: str, start: float, stage_seconds: float) -> list[ProgressEvent]:
    """Factory: one secure round's events from ``start``: four stages of ``stage_seconds``
    with 1 s of coordinator work after each, then the secure sum 2 s after the last gap."""
    events: list[ProgressEvent] = []
    clock = start
    for stage in SECURE_STAGES:
        name = stage.format(task=task)
        events.append(RoundStart(number, name, 8, time=clock))
        clock += stage_seconds
        events.append(round_end(number, clock, name, stage_seconds))
        clock += 1.0
    events.append(SecureSumDone(number, task, 8, 0, time=clock + 2.0))
    return events


def secure_run() -> list[ProgressEvent]:
    """Factory: 3 secure model rounds (stages of 5, 1, 2 s) and the secure curve round 4
    (stages of 0.5 s), with enterprise-epsilon events that carry a round too."""
    events: list[ProgressEvent] = [RunStart("r", "p", 3, 8, time=0.0)]
    for number, stage in [(1, 5.0), (2, 1.0), (3, 2.0)]:
        events += secure_round(number, "model", 100.0 * number, stage)
        events.append(EnterpriseEpsilon(number, 1.0, time=999.0))
    events += secure_round(4, "curve", 500.0, 0.5)
    events.append(RunEnd("completed", 600.0, time=600.0))
    return events


def plain_run() -> list[ProgressEvent]:
    """Factory: 3 plain model rounds (4, 3, 5 s) and a plain curve round 4 (0.75 s)."""
    events: list[ProgressEvent] = []
    for number, seconds in [(1, 4.0), (2, 3.0), (3, 5.0), (4, 0.75)]:
        task, start = ("curve" if number == 4 else "model"), 10.0 * number
        events.append(RoundStart(number, task, 8, time=start))
        events.append(round_end(number, start + seconds, task, seconds))
    return events


def outbox_row(round_: int, purpose: str, size: int, status: str = "ok") -> dict:
    """Factory: one outbox.jsonl row."""
    return {"round": round_, "purpose": purpose, "bytes": size, "status": status, "task": "x"}


def test_round_wall_seconds_of_a_secure_round_runs_to_its_secure_sum() -> None:
    # Prepare: 4 stages of 1 s, 4 gaps of 1 s, 2 s more to the sum
    events = secure_run()
    # Execute / Assert
    assert round_wall_seconds(events, 2) == pytest.approx(4 * 1.0 + 4 * 1.0 + 2.0)
    assert round_wall_seconds(events, 4) == pytest.approx(4 * 0.5 + 4 * 1.0 + 2.0)
    assert round_wall_seconds(events, 5) is None


def test_round_wall_seconds_of_a_plain_round_ends_at_its_round_end() -> None:
    # Prepare
    events = plain_run()
    # Execute / Assert
    assert round_wall_seconds(events, 3) == pytest.approx(5.0)
    assert round_wall_seconds(events, 4) == pytest.approx(0.75)


def test_round_exchange_seconds_sums_only_that_rounds_stages() -> None:
    # Prepare
    events = secure_run()
    # Execute / Assert
    assert round_exchange_seconds(events, 3) == pytest.approx(4 * 2.0)
    assert round_exchange_seconds(events, 4) == pytest.approx(4 * 0.5)
    assert round_exchange_seconds(events, 9) is None


def test_round_seconds_of_a_secure_run_leave_round_1_out_of_the_model_mean() -> None:
    # Prepare
    events = secure_run()
    # Execute
    seconds = round_seconds(events, model_rounds=3)
    # Assert: round 2 is 4 + 4 + 2 = 10 s, round 3 is 8 + 4 + 2 = 14 s; round 1 (26 s) apart
    assert seconds.model_round == pytest.approx(12.0)
    assert seconds.model_rounds_counted == 2
    assert seconds.first_model_round == pytest.approx(20.0 + 4.0 + 2.0)
    assert seconds.model_round_exchange == pytest.approx((4.0 + 8.0) / 2)
    assert seconds.curve_round == pytest.approx(8.0)
    assert seconds.curve_round_exchange == pytest.approx(2.0)


def test_round_seconds_of_a_plain_run_and_of_a_run_that_stopped_early() -> None:
    # Prepare: the plain run; a run with model round 1 only
    plain = plain_run()
    short = secure_round(1, "model", 0.0, 1.0)
    # Execute
    seconds = round_seconds(plain, model_rounds=3)
    stopped = round_seconds(short, model_rounds=3)
    # Assert
    assert seconds.model_round == pytest.approx(4.0)
    assert seconds.curve_round == pytest.approx(0.75)
    assert stopped.model_round is None
    assert stopped.model_rounds_counted == 0
    assert stopped.curve_round is None


def test_round_bytes_by_purpose_counts_only_ok_replies_of_the_round() -> None:
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
    by_purpose = round_bytes_by_purpose(rows, 3)
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


def test_bytes_per_node_round_averages_over_nodes_and_rounds() -> None:
    # Prepare: node A sends 100 + 10 in round 1 and 300 + 10 in round 2; node B 200 in
    # round 1 and nothing in round 2 (counts as 0); round 3 is the curve round
    node_a = [
        outbox_row(1, "model-update", 100),
        outbox_row(1, "secagg-keys", 10),
        outbox_row(2, "model-update", 300),
        outbox_row(2, "secagg-keys", 10),
        outbox_row(3, "curve-histogram", 7),
    ]
    node_b = [outbox_row(1, "model-update", 200)]
    # Execute
    model = bytes_per_node_round([node_a, node_b], [1, 2])
    curve = bytes_per_node_round([node_a, node_b], [3])
    # Assert
    assert model == {"model-update": 150.0, "secagg-keys": 5.0, "total": 155.0}
    assert curve == {"curve-histogram": 3.5, "total": 3.5}


def test_ratios_over_plain_divide_by_the_plain_value_and_keep_missing_ones() -> None:
    # Prepare
    values = {"plain": 2.0, "secagg": 5.0, "secagg_dp": None}
    # Execute / Assert
    assert ratios_over_plain(values) == {"secagg": 2.5, "secagg_dp": None}
    assert ratios_over_plain({"plain": None, "secagg": 5.0}) == {"secagg": None}


def test_variant_configs_set_rounds_secure_aggregation_record_and_enterprise_dp() -> None:
    # Prepare: DP-SGD, the method all four variants admit (the plain one is not secure,
    # the last has enterprise-level DP: neither is a Newton fit)
    config = config_with(load_config_or_default(None), plan=DP_SGD)
    # Execute
    configs = {v.label: variant_config(config, v, rounds=3) for v in VARIANTS}
    # Assert
    flags = {
        label: (
            c.plan.training.rounds,
            c.plan.secure_aggregation,
            c.plan.privacy.record.enabled,
            c.plan.privacy.enterprise is not None,
            c.enterprise_budget is not None,
        )
        for label, c in configs.items()
    }
    assert flags == {
        "plain": (3, False, False, False, False),
        "secagg": (3, True, False, False, False),
        "secagg_dp": (3, True, True, False, False),
        "secagg_dp_enterprise": (3, True, True, True, True),
    }
    enterprise = configs["secagg_dp_enterprise"]
    assert enterprise.plan.privacy.enterprise == ENTERPRISE_DP
    assert enterprise.enterprise_budget == ENTERPRISE_BUDGET
    assert all(c.plan.model_spec == config.plan.model_spec for c in configs.values())
    assert {c.plan.training.method for c in configs.values()} == {"dp_sgd"}


def test_inprocess_scale_times_an_exact_secure_sum() -> None:
    # Prepare / Execute (simulate_round's result is checked against the plain sum inside)
    figures = inprocess_scale(SPEC, enterprises=5, seed=1)
    # Assert
    expected_length = len(SPEC.segments) * (2 * SPEC.time_grid.n_intervals + 2)
    assert figures["vector_length"] == expected_length
    assert figures["threshold"] == 3
    assert figures["share_sigma"] == share_sigma(1.0, SPEC, n_nodes=5)
    assert "NOT Flower" in figures["mode"]
    assert set(figures["seconds_per_curve_round"]) == {"plain", "secagg", "secagg_dp"}
    assert figures["ratio_over_plain"]["curve_round"]["secagg"] > 1.0


def test_accuracy_study_uses_the_distributed_shares_and_is_reproducible() -> None:
    # Prepare: 3 nodes, threshold 2
    setup = SimulationSetup(n_enterprises=3, min_units=300, max_units=400)
    # Execute
    first = accuracy_study(SPEC, replicates=3, setup=setup, epsilons=(0.5, math.inf), seed=3)
    again = accuracy_study(SPEC, replicates=3, setup=setup, epsilons=(0.5, math.inf), seed=3)
    # Assert
    assert first == again
    assert set(first) == {"0.5", "inf"}
    noisy, exact = first["0.5"], first["inf"]
    assert noisy["central_noise_multiplier"] == node_sigma(0.5)
    assert noisy["share_sigma"] == share_sigma(0.5, SPEC, n_nodes=3)
    assert noisy["total_noise_std"] == pytest.approx(math.sqrt(3) * noisy["share_sigma"])
    assert (exact["share_sigma"], exact["total_noise_std"]) == (0.0, 0.0)
    assert noisy["max_abs_error_mean"] > exact["max_abs_error_mean"]
    for figures in first.values():
        assert 0.0 <= figures["coverage_mean"] <= 1.0
        assert figures["max_abs_error_mean"] <= figures["max_abs_error_max"]
        assert 0.0 <= figures["share_of_replicates_within_0_03"] <= 1.0
