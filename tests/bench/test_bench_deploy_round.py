"""The deployed-against-simulated round comparison: stage seconds per round, and a clear
error when there is no finished demo-deploy to compare."""

from __future__ import annotations

import pytest

from bench.deploy_round import deploy_round_bench
from bench.round_costs import stage_seconds
from common.errors import ConfigError
from coordinator.progress_events import RoundEnd


def _end(number: int, task: str, seconds: float) -> RoundEnd:
    return RoundEnd(number, task, ("a",), (), (), seconds, epsilon_max=0.0, time=0.0)


def test_stage_seconds_average_each_stage_over_the_rounds_asked_for() -> None:
    events = [
        _end(1, "secagg-keys", 9.0),  # round 1 only: not asked for
        _end(2, "secagg-shares", 1.0),
        _end(2, "model", 4.0),
        _end(3, "secagg-shares", 3.0),
        _end(3, "model", 6.0),
        _end(3, "secagg-unmask", 2.0),  # absent from round 2: counts 0 there
    ]
    assert stage_seconds(events, [2, 3]) == {
        "model": 5.0,
        "secagg-shares": 2.0,
        "secagg-unmask": 1.0,
    }


def test_without_a_finished_demo_deploy_it_says_what_to_run(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not a finished demo-deploy"):
        deploy_round_bench(tmp_path / "nothing", tmp_path / "out")
