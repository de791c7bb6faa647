"""Canary scores read from released outputs only: the hazard of the canary's own cell, and
how far the model's coefficient for the canary is from the level nobody has."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from node_site import load_spec

from auditor.canaries import CANARY_FEATURE, plant_canaries
from auditor.canary_audit import _published, _read
from auditor.canary_scores import curve_scores, model_scores
from common.errors import StateError
from models.curves import RiskCurve, curves_from_json
from models.glm import hazard_arrays, initial_theta, parameter_count


def _curve(segment: str, hazard: list[float | None], *, published: bool = True) -> dict:
    n = len(hazard)
    zeros = [0.0] * (n + 1)
    return RiskCurve(
        segment=segment,
        edges=np.arange(n + 1, dtype=float),
        survival=np.ones(n + 1),
        hazard=np.array([np.nan if h is None else h for h in hazard]),
        failure=np.array(zeros),
        failure_lower=np.array(zeros),
        failure_upper=np.array(zeros),
        n_units=10.0,
        n_failures=1.0,
        published=published,
    ).to_dict()


def test_a_canary_scores_the_released_hazard_of_its_own_cell(tmp_path: Path) -> None:
    # Prepare: 30 canaries = canary_00 and canary_01 over 15 intervals; canary_01 withheld
    plant = plant_canaries(load_spec(), 30, seed=0)
    hazards = [0.01 * j for j in range(15)]
    hazards[4] = None  # an undefined hazard (nobody at risk)
    curves = {
        "curves": [
            _curve("canary_00", hazards),
            _curve("canary_01", [0.5] * 15, published=False),
        ]
    }
    path = tmp_path / "curves.json"
    path.write_text(json.dumps(curves))
    # Execute
    scores = curve_scores(curves_from_json(path.read_bytes()), plant)
    # Assert
    assert scores[0] == 0.0 and scores[3] == 0.03 and scores[14] == 0.14
    assert scores[4] == -np.inf  # undefined: no information
    assert (scores[15:] == -np.inf).all()  # withheld segment: nothing released


def test_a_model_scores_the_canarys_own_coefficient_against_the_unused_level() -> None:
    # Prepare: the GLM at its start, then canary 7's level moved by 0.8
    plant = plant_canaries(load_spec(), 30, seed=0)
    spec = plant.spec
    theta = initial_theta(spec)
    levels = spec.features[-1].levels
    assert spec.features[-1].name == CANARY_FEATURE
    column = parameter_count(spec) - len(levels) + levels.index("c00007")
    theta[column] = 0.8
    # Execute
    scores = model_scores(hazard_arrays(theta, spec), plant)
    # Assert: only canary 7 scores, by exactly its coefficient's shift (logit units)
    assert abs(scores[7] - 0.8) < 1e-5
    assert np.abs(np.delete(scores, 7)).max() < 1e-5


def test_a_damaged_run_output_is_a_state_error_naming_the_file(tmp_path: Path) -> None:
    plant = plant_canaries(load_spec(), 30, seed=0)
    path = tmp_path / "curves.json"
    path.write_text("{not json")
    data = _published(path, hashlib.sha256(b"{not json").hexdigest())
    with pytest.raises(StateError, match=r"curves.json: cannot be read as the run's output"):
        _read(path, lambda: curve_scores(curves_from_json(data), plant))
    with pytest.raises(StateError, match=r"missing.json: not found"):
        _published(tmp_path / "missing.json", "ab" * 32)
    with pytest.raises(StateError, match=r"SHA-256 is not the one the coordinator's ledger"):
        _published(path, "ab" * 32)  # not the file the run published
