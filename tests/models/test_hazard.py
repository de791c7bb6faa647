"""Tests of the unit encoding and the discrete-time hazard network (models/features, hazard)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from opacus import GradSampleModule

from common.errors import DataError
from models.features import encode_units
from models.hazard import (
    HazardNet,
    arrays_to_state,
    hazard_nll,
    horizon_cumulative_hazard,
    init_arrays,
    model_digest,
    risk_score,
    state_to_arrays,
    survival_curves,
)
from models.spec import ModelSpec

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "coordinator.yaml"


@pytest.fixture(scope="module")
def spec(grid20_spec: ModelSpec) -> ModelSpec:
    """The demo spec on the fixed 20-interval grid (conftest), whatever the published grid."""
    return grid20_spec


def unit_table(**columns: list) -> pd.DataFrame:
    """A canonical unit table; unspecified columns get plain in-range values."""
    n = len(next(iter(columns.values())))
    base = {
        "unit_id": [f"u{i}" for i in range(n)],
        "segment": ["nev_battery"] * n,
        "equipment_class": ["cell_former"] * n,
        "duration": [30.0] * n,
        "failed": [0] * n,
        "entry_age": [math.nan] * n,
        "load_pct": [50.0] * n,
        "ambient_temp_c": [25.0] * n,
        "maintenance_interval_days": [90.0] * n,
        "vendor_origin": ["domestic"] * n,
    }
    base.update(columns)
    return pd.DataFrame(base)


def reference_nll(logits: list[float], interval: int, event: int, entry: int = 0) -> float:
    """Hand-written Bernoulli likelihood, one interval at a time."""
    total = 0.0
    for j in range(entry, interval + 1):
        hazard = 1.0 / (1.0 + math.exp(-logits[j]))
        failed_here = j == interval and event == 1
        total -= math.log(hazard) if failed_here else math.log(1.0 - hazard)
    return total


# ---------------------------------------------------------------- encoding


def test_encoding_layout_is_segment_class_then_features(spec: ModelSpec) -> None:
    # Prepare
    frame = unit_table(
        segment=["industrial_robot"],
        equipment_class=["agv"],
        load_pct=[25.0],
        ambient_temp_c=[10.0],
        maintenance_interval_days=[365.0],
        vendor_origin=["imported"],
    )
    # Execute
    x = encode_units(frame, spec).x[0]
    # Assert
    expected = np.zeros(spec.input_width, dtype=np.float32)
    expected[spec.segments.index("industrial_robot")] = 1.0
    expected[3 + spec.equipment_classes.index("agv")] = 1.0
    expected[12:15] = [0.25, 0.2, 1.0]
    expected[15:17] = [0.0, 1.0]
    assert x.dtype == np.float32 and x.shape == (spec.input_width,)
    np.testing.assert_array_equal(x, expected)


def test_numeric_feature_is_clipped_to_public_bounds(spec: ModelSpec) -> None:
    # Prepare
    frame = unit_table(load_pct=[150.0, -5.0, 100.0])
    # Execute
    load = encode_units(frame, spec).x[:, 12]
    # Assert
    np.testing.assert_array_equal(load, [1.0, 0.0, 1.0])


def test_encoding_ignores_local_ranges(spec: ModelSpec) -> None:
    # Prepare: two sites with very different local ranges share the value 40.
    narrow = unit_table(load_pct=[38.0, 40.0, 42.0])
    wide = unit_table(load_pct=[0.0, 40.0, 99.0])
    # Execute
    narrow_x = encode_units(narrow, spec).x
    wide_x = encode_units(wide, spec).x
    # Assert
    np.testing.assert_array_equal(narrow_x[1], wide_x[1])
    assert narrow_x[1, 12] == pytest.approx(0.4)


def test_interval_event_and_entry_encoding(spec: ModelSpec) -> None:
    # Prepare: grid edges 0, 6, ..., 120
    frame = unit_table(
        duration=[0.0, 6.0, 6.5, 120.0, 130.0, 40.0],
        failed=[1, 1, 0, 1, 1, 1],
        entry_age=[math.nan, math.nan, 3.0, 6.0, 12.5, 40.0 - 1e-9],
    )
    # Execute
    units = encode_units(frame, spec)
    # Assert
    np.testing.assert_array_equal(units.interval, [0, 0, 1, 19, 19, 6])
    np.testing.assert_array_equal(units.event, [1, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(units.entry_interval, [0, 0, 0, 1, 2, 6])
    assert units.interval.dtype == np.int64 and units.entry_interval.dtype == np.int64


def test_unknown_levels_are_refused_all_at_once(spec: ModelSpec) -> None:
    # Prepare
    frame = unit_table(segment=["nev_battery", "bakery", "mill"])
    # Execute / Assert
    with pytest.raises(DataError, match=r"column segment: .*\['bakery', 'mill'\]"):
        encode_units(frame, spec)


def test_missing_numeric_value_is_refused(spec: ModelSpec) -> None:
    # Prepare
    frame = unit_table(load_pct=[10.0, math.nan])
    # Execute / Assert
    with pytest.raises(DataError, match=r"column load_pct: .*rows \[1\]"):
        encode_units(frame, spec)


# ---------------------------------------------------------------- likelihood


def test_hazard_nll_equals_hand_written_bernoulli_likelihood() -> None:
    # Prepare
    logits = [[-1.0, 0.5, 2.0], [0.3, -0.7, 1.1], [-2.0, -2.5, 0.0]]
    interval, event = [1, 2, 0], [1, 0, 1]
    # Execute
    got = hazard_nll(torch.tensor(logits), torch.tensor(interval), torch.tensor(event))
    # Assert
    expected = [reference_nll(lg, i, e) for lg, i, e in zip(logits, interval, event, strict=True)]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)
    assert got.shape == (3,)


def test_hazard_nll_skips_intervals_before_entry() -> None:
    # Prepare
    logits = torch.tensor([[0.4, -1.2, 0.8, 3.0]], requires_grad=True)
    interval, event, entry = torch.tensor([2]), torch.tensor([0]), torch.tensor([1])
    # Execute
    loss = hazard_nll(logits, interval, event, entry)
    loss.sum().backward()
    # Assert
    assert loss.item() == pytest.approx(reference_nll([0.4, -1.2, 0.8, 3.0], 2, 0, entry=1))
    assert logits.grad is not None
    grad = logits.grad.numpy()[0]
    np.testing.assert_array_equal(grad[[0, 3]], [0.0, 0.0])
    assert np.all(grad[1:3] != 0.0)


def test_hazard_nll_is_stable_for_extreme_logits() -> None:
    # Execute
    loss = hazard_nll(torch.tensor([[80.0, -80.0]]), torch.tensor([1]), torch.tensor([1]))
    # Assert: -log(1 - sigmoid(80)) - log(sigmoid(-80)) = 80 + 80 (to float precision)
    assert loss.item() == pytest.approx(160.0, rel=1e-6)


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_opacus_per_sample_gradients_equal_per_unit_gradients(spec: ModelSpec) -> None:
    # Prepare
    torch.manual_seed(3)
    n = 12
    x = torch.rand(n, spec.input_width)
    interval = torch.randint(0, spec.time_grid.n_intervals, (n,))
    event = torch.randint(0, 2, (n,))
    entry = torch.minimum(torch.randint(0, 5, (n,)), interval)
    net = HazardNet(spec)
    gsm = GradSampleModule(net, loss_reduction="mean")
    # Execute: Opacus per-sample gradients of the batch-mean loss
    hazard_nll(gsm(x), interval, event, entry).mean().backward()
    per_sample = [p.grad_sample.detach().clone() for p in net.parameters()]  # type: ignore[attr-defined]
    # Execute: reference, one unit at a time with a plain copy of the model
    plain = HazardNet(spec)
    plain.load_state_dict(net.state_dict())
    for i in range(n):
        plain.zero_grad()
        hazard_nll(
            plain(x[i : i + 1]), interval[i : i + 1], event[i : i + 1], entry[i : i + 1]
        ).sum().backward()
        expected = torch.cat([p.grad.flatten() for p in plain.parameters() if p.grad is not None])
        got = torch.cat([g[i].flatten() for g in per_sample])
        # Assert
        assert got.shape == expected.shape
        assert ((got - expected).norm() / expected.norm()).item() < 1e-5


# ---------------------------------------------------------------- curves


def test_survival_curves_are_monotone_probabilities(spec: ModelSpec) -> None:
    # Prepare
    torch.manual_seed(0)
    net = HazardNet(spec)
    x = np.random.default_rng(0).random((50, spec.input_width), dtype=np.float32)
    # Execute
    survival = survival_curves(net, x)
    # Assert
    assert survival.shape == (50, spec.time_grid.n_intervals + 1)
    np.testing.assert_array_equal(survival[:, 0], 1.0)
    assert np.all(np.diff(survival, axis=1) <= 0.0)
    assert np.all((survival >= 0.0) & (survival <= 1.0))


def test_survival_curve_is_product_of_one_minus_hazard(spec: ModelSpec) -> None:
    # Prepare
    torch.manual_seed(1)
    net = HazardNet(spec)
    x = np.random.default_rng(1).random((3, spec.input_width), dtype=np.float32)
    hazards = torch.sigmoid(net(torch.from_numpy(x))).detach().double().numpy()
    # Execute
    survival = survival_curves(net, x)
    # Assert
    np.testing.assert_allclose(survival[:, 1:], np.cumprod(1.0 - hazards, axis=1), rtol=1e-6)


# ---------------------------------------------------------------- risk score


def test_risk_score_is_failure_by_the_end_of_the_grid(spec: ModelSpec) -> None:
    # Prepare
    torch.manual_seed(2)
    net = HazardNet(spec)
    x = np.random.default_rng(2).random((40, spec.input_width), dtype=np.float32)
    # Execute
    score = risk_score(net, x)
    hazard = horizon_cumulative_hazard(net, x)
    # Assert: F(t_J) = 1 - S(t_J) = 1 - exp(-H); the curves run in float32, the score in float64
    assert score.shape == (40,) and score.dtype == np.float64
    np.testing.assert_allclose(score, 1.0 - survival_curves(net, x)[:, -1], rtol=1e-6)
    np.testing.assert_allclose(score, -np.expm1(-hazard), rtol=1e-15)
    assert next(net.parameters()).dtype == torch.float32  # the model is left as it was


def test_risk_score_ranks_units_whose_failure_probability_rounds_alike() -> None:
    # Prepare: the inputs are the interval logits themselves (3 intervals)
    logits = np.array([[40.0] * 3, [41.0] * 3, [-41.0] * 3, [-40.0] * 3])
    model = torch.nn.Identity()
    # Execute
    score = risk_score(model, logits)
    hazard = horizon_cumulative_hazard(model, logits)
    # Assert: near 1, F rounds to 1.0 for both, H still orders them
    assert score[0] == score[1] == 1.0
    assert hazard[1] > hazard[0] > hazard[3] > hazard[2] > 0.0
    # near 0, F is accurate (1 - S would round to 0): F = sum_j h_j to first order
    expected = 3.0 / (1.0 + np.exp(-logits[2:, 0]))
    np.testing.assert_allclose(score[2:], expected, rtol=1e-12)
    assert 0.0 < score[2] < score[3]


def test_risk_score_runs_the_model_in_float64() -> None:
    # Prepare: two inputs that float32 cannot tell apart
    torch.manual_seed(3)
    model = torch.nn.Linear(1, 4)
    x = np.array([[1.0], [1.0 + 1e-12]])
    assert np.float32(x[0, 0]) == np.float32(x[1, 0])
    # Execute
    hazard = horizon_cumulative_hazard(model, x)
    # Assert: ranked by the model's exact function, not tied by float32 rounding
    slope = float(model.weight.detach().sum())
    assert np.sign(hazard[1] - hazard[0]) == np.sign(slope) != 0


def test_risk_score_of_the_glm_ranks_units_as_its_linear_predictor(spec: ModelSpec) -> None:
    # Prepare: the GLM hazard model, logit h_j = alpha_j + x . beta (no time-varying effects)
    glm_spec = spec.model_copy(update={"hidden_units": ()})
    torch.manual_seed(4)
    net = HazardNet(glm_spec)
    with torch.no_grad():
        net.baseline.weight.zero_()
        net.baseline.bias.copy_(torch.linspace(-5.0, -1.0, glm_spec.time_grid.n_intervals))
    x = np.random.default_rng(4).random((300, glm_spec.input_width), dtype=np.float32)
    beta = net.risk[0].weight.detach().double().numpy().ravel()
    eta = x.astype(np.float64) @ beta
    # Execute
    score = horizon_cumulative_hazard(net, x)
    # Assert: strictly increasing along the linear predictor
    order = np.argsort(eta)
    assert len(np.unique(eta)) == len(eta)
    assert np.all(np.diff(score[order]) > 0.0)
    assert np.all(np.diff(risk_score(net, x)[order]) > 0.0)


# ---------------------------------------------------------------- arrays


def test_arrays_round_trip_through_a_fresh_model(spec: ModelSpec) -> None:
    # Prepare
    arrays = init_arrays(spec, seed=7)
    fresh = HazardNet(spec)
    x = np.random.default_rng(2).random((4, spec.input_width), dtype=np.float32)
    # Execute
    arrays_to_state(fresh, arrays)
    back = state_to_arrays(fresh)
    # Assert
    assert [a.shape for a in back] == [a.shape for a in arrays]
    for a, b in zip(arrays, back, strict=True):
        np.testing.assert_array_equal(a, b)
    assert model_digest(back) == model_digest(arrays)
    reference = HazardNet(spec)
    arrays_to_state(reference, init_arrays(spec, seed=7))
    np.testing.assert_array_equal(survival_curves(fresh, x), survival_curves(reference, x))


def test_init_arrays_depend_on_seed_only(spec: ModelSpec) -> None:
    # Execute
    first, again, other = (init_arrays(spec, seed=s) for s in (1, 1, 2))
    # Assert
    assert model_digest(first) == model_digest(again)
    assert model_digest(first) != model_digest(other)


def test_digest_changes_with_one_value_and_with_dtype(spec: ModelSpec) -> None:
    # Prepare
    arrays = init_arrays(spec, seed=0)
    changed = [a.copy() for a in arrays]
    changed[-1][0] += 1e-6
    # Execute / Assert
    assert model_digest(changed) != model_digest(arrays)
    assert model_digest([a.astype(np.float64) for a in arrays]) != model_digest(arrays)
    assert len(model_digest(arrays)) == 64


def test_arrays_with_wrong_shape_are_refused(spec: ModelSpec) -> None:
    # Prepare
    arrays = init_arrays(spec, seed=0)
    arrays[0] = arrays[0][:, :-1]
    # Execute / Assert
    with pytest.raises(ValueError, match=r"baseline\.weight expected shape \(\d+, 17\), got"):
        arrays_to_state(HazardNet(spec), arrays)


def test_arrays_with_wrong_count_are_refused(spec: ModelSpec) -> None:
    # Execute / Assert
    arrays = init_arrays(spec, seed=0)
    with pytest.raises(ValueError, match=f"expected {len(arrays)} arrays, got 3"):
        arrays_to_state(HazardNet(spec), arrays[:3])
