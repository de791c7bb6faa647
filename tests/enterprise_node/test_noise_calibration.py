"""A node's calibrated noise is kept (memory and state dir) and reused only while it meets
the plan's targets: a kept file never lowers the noise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import enterprise_node.noise_calibration as calibration
from coordinator.config import load_config_or_default
from enterprise_node.noise_calibration import CACHE_DIR, calibrated_noise
from enterprise_node.noise_plan import meets_targets, noise_plan_with, plan_noise
from protocols.plan import TrainingPlan

N_UNITS = 150


@pytest.fixture
def plan() -> TrainingPlan:
    base = load_config_or_default(None).plan
    training = base.training.model_copy(update={"method": "dp_sgd"})
    return TrainingPlan.model_validate(
        {**base.model_dump(mode="json"), "training": training.model_dump(mode="json")}
    )


@pytest.fixture(autouse=True)
def empty_memo():
    calibration._MEMO.clear()
    yield
    calibration._MEMO.clear()


def _kept_file(state: Path) -> Path:
    [path] = (state / CACHE_DIR).iterdir()
    return path


def _no_calibration(monkeypatch) -> None:
    def refuse(*_args, **_kwargs):
        raise AssertionError("calibrated again")

    monkeypatch.setattr(calibration, "plan_noise", refuse)


def test_a_kept_calibration_is_reused_by_a_fresh_process(tmp_path, plan, monkeypatch) -> None:
    first = calibrated_noise(tmp_path, plan, N_UNITS)
    assert first == plan_noise(plan, N_UNITS)
    calibration._MEMO.clear()  # as a fresh task process
    _no_calibration(monkeypatch)
    assert calibrated_noise(tmp_path, plan, N_UNITS) == first


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: {**d, "model_noise_multiplier": d["model_noise_multiplier"] * 0.99},
        lambda d: {**d, "curve_noise_multiplier": d["curve_noise_multiplier"] * 0.99},
        lambda d: {"model_noise_multiplier": "lots"},
        lambda d: "not a plan",
    ],
    ids=["weaker-model-noise", "weaker-curve-noise", "mistyped", "not-an-object"],
)
def test_a_kept_file_that_misses_the_targets_is_calibrated_again(tmp_path, plan, edit) -> None:
    honest = calibrated_noise(tmp_path, plan, N_UNITS)
    path = _kept_file(tmp_path)
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    calibration._MEMO.clear()
    assert calibrated_noise(tmp_path, plan, N_UNITS) == honest
    assert json.loads(path.read_text())["model_noise_multiplier"] == honest.model_noise_multiplier


def test_the_targets_check_holds_for_the_calibration_and_fails_just_below(plan) -> None:
    noise = plan_noise(plan, N_UNITS)
    assert meets_targets(noise, plan)
    weaker = noise_plan_with(
        plan, N_UNITS, noise.model_noise_multiplier * 0.995, noise.curve_noise_multiplier
    )
    assert not meets_targets(weaker, plan)
    with pytest.raises(ValueError, match="curve noise"):
        noise_plan_with(plan, N_UNITS, noise.model_noise_multiplier, None)
