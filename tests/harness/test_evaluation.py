"""Evaluation scores the one risk score, F(t_J), and every report names the figures plainly."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from rich.console import Console

from coordinator.run_report import _figure_rows
from harness.demo import _print
from harness.evaluation import ModelScore, score_arrays, score_model
from models.features import encode_units
from models.hazard import HazardNet, risk_score, state_to_arrays, survival_curves
from models.metrics import FIGURE_NAMES, concordance_td, harrell_c
from models.spec import ModelSpec


@pytest.fixture(scope="module")
def spec(grid20_spec: ModelSpec) -> ModelSpec:
    """The demo spec on the fixed 20-interval grid (conftest), whatever the published grid."""
    return grid20_spec


def holdout_table(spec: ModelSpec, n: int, *, seed: int) -> pd.DataFrame:
    """Factory: a canonical holdout with in-bounds covariates and whole-month (tied) exits."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "unit_id": [f"H{k}" for k in range(n)],
            "segment": rng.choice(spec.segments, n),
            "equipment_class": rng.choice(spec.equipment_classes, n),
            "duration": np.round(rng.uniform(1.0, 130.0, n)),
            "failed": rng.integers(0, 2, n),
            "entry_age": [math.nan] * n,
        }
    )
    for feature in spec.features:
        if feature.kind == "category":
            frame[feature.name] = rng.choice(feature.levels, n)
        else:
            frame[feature.name] = rng.uniform(feature.lower, feature.upper, n)
    return frame


def test_evaluation_c_index_is_harrell_c_on_the_risk_score(spec: ModelSpec) -> None:
    # Prepare
    torch.manual_seed(5)
    model = HazardNet(spec)
    holdout = holdout_table(spec, 600, seed=5)
    x = encode_units(holdout, spec).x
    durations, events = holdout["duration"].to_numpy(), holdout["failed"].to_numpy()
    # Execute
    score = score_model(model, holdout, spec)
    # Assert: Harrell's C on F(t_J); Antolini's C_td on the curves beside it
    assert score.harrell_c == harrell_c(durations, events, risk_score(model, x))
    edges = np.asarray(spec.time_grid.edges)
    assert score.c_td == concordance_td(durations, events, survival_curves(model, x), edges)
    assert score_arrays(state_to_arrays(model), holdout, spec) == score


def test_demo_table_names_the_figures_plainly() -> None:
    # Prepare
    console = Console(record=True, width=250)
    scores = {"harrell_c": 0.7312, "c_td": 0.7208, "ibs": 0.1101}
    evaluation = {
        "curve_errors": [],
        "federated_dp": scores,
        "central_nonprivate": scores,
        "delta": 1e-6,
        "epsilon_per_node": {},
        "epsilon_total_per_node": {},
    }
    # Execute
    _print(console, evaluation)
    text = console.export_text()
    # Assert
    assert "Harrell C on F(t_J), the risk score" in text and "0.7312" in text
    assert "Antolini C_td on the curves" in text and "0.7208" in text


def test_run_report_names_the_figures_plainly_harrell_first() -> None:
    # Prepare: evaluation.json as written now, and as written before harrell_c existed
    current = {"ibs": 0.11, "c_td": 0.72, "harrell_c": 0.73}
    older = {"c_index": 0.72, "ibs": 0.11}
    # Execute
    rows, old_rows = _figure_rows(current), _figure_rows(older)
    # Assert
    assert [label for label, _ in rows] == [
        FIGURE_NAMES["harrell_c"],
        FIGURE_NAMES["c_td"],
        FIGURE_NAMES["ibs"],
    ]
    assert old_rows[0] == ("Antolini C_td on the curves", "0.72")


def test_model_score_holds_both_concordances() -> None:
    assert list(ModelScore.__dataclass_fields__) == ["harrell_c", "c_td", "ibs"]
