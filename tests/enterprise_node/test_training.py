"""Tests of local DP-SGD / plain training and noise calibration (enterprise_node/training)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from opacus.accountants import RDPAccountant
from torch.optim.optimizer import register_optimizer_step_post_hook

import enterprise_node.training as training
from common.errors import ConfigError, DataError
from enterprise_node.training import (
    OPACUS_SECURE_RNG,
    dp_sgd_schedule,
    train_dp,
    train_plain,
)
from models.central import train_central
from models.features import EncodedUnits, encode_units
from models.hazard import HazardNet, arrays_to_state, hazard_nll, init_arrays, survival_curves
from models.spec import ModelSpec, TrainingSettings
from privacy.accounting import calibrate_noise_multiplier


def dp_sgd_settings(**overrides: object) -> TrainingSettings:
    """The DP-SGD settings these tests were written for (Adam at 0.01, 1 local epoch, 5
    rounds), whatever the plan's defaults: they test the training machinery, not them."""
    base: dict[str, object] = {
        "method": "dp_sgd",
        "optimizer": "adam",
        "learning_rate": 0.01,
        "local_epochs": 1.0,
        "rounds": 5,
    }
    return TrainingSettings.model_validate({**base, **overrides})


CONFIG = Path(__file__).resolve().parents[2] / "configs" / "coordinator.yaml"
pytestmark = pytest.mark.filterwarnings("ignore:Opacus DP-SGD noise")


@pytest.fixture(scope="module")
def spec(grid20_spec: ModelSpec) -> ModelSpec:
    """The demo spec on the fixed 20-interval grid (conftest), whatever the published grid."""
    return grid20_spec


def synthetic_units(spec: ModelSpec, n: int, *, effect: float, seed: int) -> pd.DataFrame:
    """Canonical unit table whose per-interval hazard is sigmoid(-3 + effect * (load - 0.5)),
    load scaled to [0, 1]; random censoring and administrative censoring at the horizon."""
    rng = np.random.default_rng(seed)
    edges = np.asarray(spec.time_grid.edges)
    n_int = spec.time_grid.n_intervals
    load = rng.uniform(0.0, 100.0, n)
    hazard = 1.0 / (1.0 + np.exp(3.0 - effect * (load / 100.0 - 0.5)))
    fail_at = rng.geometric(hazard) - 1  # 0-based interval of failure
    censor_at = rng.integers(0, n_int + 10, n)  # >= n_int: still running at the horizon
    failed = (fail_at <= censor_at) & (fail_at < n_int)
    exit_at = np.minimum(np.where(failed, fail_at, censor_at), n_int)
    mid = np.append((edges[:-1] + edges[1:]) / 2.0, edges[-1] + 5.0)
    return pd.DataFrame(
        {
            "unit_id": [f"u{i}" for i in range(n)],
            "segment": rng.choice(spec.segments, n),
            "equipment_class": rng.choice(spec.equipment_classes, n),
            "duration": mid[exit_at],
            "failed": failed.astype(int),
            "entry_age": np.nan,
            "load_pct": load,
            "ambient_temp_c": rng.uniform(0.0, 50.0, n),
            "maintenance_interval_days": rng.uniform(0.0, 365.0, n),
            "vendor_origin": rng.choice(["domestic", "imported"], n),
        }
    )


def mean_nll(arrays: list[np.ndarray], units: EncodedUnits, spec: ModelSpec) -> float:
    net = HazardNet(spec)
    arrays_to_state(net, arrays)
    with torch.no_grad():
        per_unit = hazard_nll(
            net(torch.from_numpy(units.x)),
            torch.from_numpy(units.interval),
            torch.from_numpy(units.event),
            torch.from_numpy(units.entry_interval),
        )
    return float(per_unit.mean())


def horizon_survival(model: torch.nn.Module, spec: ModelSpec, loads: list[float]) -> np.ndarray:
    profiles = synthetic_units(spec, len(loads), effect=0.0, seed=0).assign(
        load_pct=loads,
        segment="nev_battery",
        equipment_class="cell_former",
        ambient_temp_c=25.0,
        maintenance_interval_days=90.0,
        vendor_origin="domestic",
    )
    return survival_curves(model, encode_units(profiles, spec).x)[:, -1]


class StepCounter:
    """Counts optimizer steps through torch's global post-step hook."""

    def __enter__(self) -> StepCounter:
        self.count = 0
        self._handle = register_optimizer_step_post_hook(self._hook)
        return self

    def _hook(self, optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        self.count += 1

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()


# ---------------------------------------------------------------- schedule and calibration


@pytest.mark.parametrize(
    ("n_units", "batch_size", "epochs", "expected"),
    [
        (5000, 128, 1.0, (128 / 5000, 40)),
        (1280, 128, 0.1, (0.1, 1)),
        (100, 128, 2.0, (1.0, 2)),
        (1000, 100, 3.0, (0.1, 30)),
    ],
)
def test_dp_sgd_schedule_known_answers(
    n_units: int, batch_size: int, epochs: float, expected: tuple[float, int]
) -> None:
    # Prepare
    settings = dp_sgd_settings(batch_size=batch_size, local_epochs=epochs)
    # Execute
    sample_rate, steps = dp_sgd_schedule(n_units, settings)
    # Assert
    assert sample_rate == pytest.approx(expected[0])
    assert steps == expected[1]


def test_dp_sgd_schedule_refuses_empty_data() -> None:
    with pytest.raises(DataError, match="no equipment units"):
        dp_sgd_schedule(0, dp_sgd_settings())


@pytest.mark.parametrize(
    ("epsilon", "q", "steps"), [(1.0, 0.02, 500), (0.3, 0.05, 100), (4.0, 128 / 5000, 200)]
)
def test_calibrated_noise_hits_target_epsilon(epsilon: float, q: float, steps: int) -> None:
    # Execute
    sigma = calibrate_noise_multiplier(
        target_epsilon=epsilon, target_delta=1e-5, sample_rate=q, steps=steps
    )
    # Assert: an independent Opacus RDP accountant, fed the same mechanism
    accountant = RDPAccountant()
    accountant.history = [(sigma, q, steps)]
    spent = accountant.get_epsilon(delta=1e-5)
    assert 0.98 * epsilon <= spent <= epsilon


def test_calibration_refuses_unreachable_target() -> None:
    with pytest.raises(ValueError, match="cannot reach epsilon"):
        calibrate_noise_multiplier(
            target_epsilon=1e-9, target_delta=1e-12, sample_rate=1.0, steps=10_000
        )


# ---------------------------------------------------------------- DP-SGD


@pytest.mark.filterwarnings("ignore:Full backward hook")
def test_train_dp_learns_the_effect_and_reduces_loss(
    spec: ModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: deterministic noise for this test only; high load = higher hazard
    monkeypatch.setattr(training, "_private_seed", lambda: 12345)
    units = encode_units(synthetic_units(spec, 2000, effect=4.0, seed=1), spec)
    start = init_arrays(spec, seed=0)
    settings = dp_sgd_settings(local_epochs=4, batch_size=128, learning_rate=0.05)
    # Execute
    update = train_dp(start, units, spec, settings, noise_multiplier=0.8, max_grad_norm=1.0, seed=0)
    # Assert: true S(120 months) is 0.82 at load 10 and 0.012 at load 90
    # (the initial baseline hazard is already a sensible prior: the gain comes from the effect)
    assert mean_nll(update.arrays, units, spec) < 0.9 * mean_nll(start, units, spec)
    net = HazardNet(spec)
    arrays_to_state(net, update.arrays)
    low, high = horizon_survival(net, spec, [10.0, 90.0])
    assert high < low - 0.5
    assert update.num_examples == 2000 and update.noise_multiplier == 0.8
    assert (update.sample_rate, update.steps) == dp_sgd_schedule(2000, settings)
    assert math.isfinite(update.mean_loss) and update.seconds > 0


def test_train_dp_does_exactly_the_scheduled_steps(spec: ModelSpec) -> None:
    # Prepare: batch size 1 on 40 units gives many empty Poisson batches
    units = encode_units(synthetic_units(spec, 40, effect=1.0, seed=2), spec)
    settings = dp_sgd_settings(local_epochs=1.5, batch_size=1)
    # Execute
    with StepCounter() as counter:
        update = train_dp(
            init_arrays(spec, seed=0),
            units,
            spec,
            settings,
            noise_multiplier=1.0,
            max_grad_norm=1.0,
            seed=0,
        )
    # Assert
    assert update.steps == 60
    assert counter.count == 60
    assert all(np.all(np.isfinite(a)) for a in update.arrays)


def test_train_dp_samples_at_exactly_the_accounted_rate(
    spec: ModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: q = 400/1000 = 0.4; Opacus's default would sample at 1/ceil(1000/400) = 1/3
    batch_sizes: list[int] = []

    def recording_nll(logits, interval, event, entry=None):  # type: ignore[no-untyped-def]
        batch_sizes.append(len(interval))
        return hazard_nll(logits, interval, event, entry)

    monkeypatch.setattr(training, "hazard_nll", recording_nll)
    units = encode_units(synthetic_units(spec, 1000, effect=1.0, seed=3), spec)
    settings = dp_sgd_settings(local_epochs=12, batch_size=400)
    # Execute
    update = train_dp(
        init_arrays(spec, seed=0),
        units,
        spec,
        settings,
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        seed=0,
    )
    # Assert: total sampled ~ Binomial(steps * n, q), within 4 standard deviations
    assert update.steps == len(batch_sizes) == 30
    expected = update.steps * 1000 * 0.4
    sd = math.sqrt(update.steps * 1000 * 0.4 * 0.6)
    assert abs(sum(batch_sizes) - expected) < 4 * sd


def test_dp_noise_is_not_derived_from_the_public_seed(spec: ModelSpec) -> None:
    # Prepare
    units = encode_units(synthetic_units(spec, 200, effect=1.0, seed=4), spec)
    start = init_arrays(spec, seed=0)
    settings = dp_sgd_settings(local_epochs=1, batch_size=50)
    # Execute
    first, second = (
        train_dp(start, units, spec, settings, noise_multiplier=1.0, max_grad_norm=1.0, seed=0)
        for _ in range(2)
    )
    # Assert
    assert not np.array_equal(first.arrays[0], second.arrays[0])
    assert OPACUS_SECURE_RNG is False


def test_train_dp_warns_about_the_insecure_rng(spec: ModelSpec) -> None:
    # Prepare
    units = encode_units(synthetic_units(spec, 50, effect=1.0, seed=5), spec)
    # Execute / Assert
    with pytest.warns(UserWarning, match="non-cryptographic RNG"):
        train_dp(
            init_arrays(spec, seed=0),
            units,
            spec,
            dp_sgd_settings(batch_size=50),
            noise_multiplier=1.0,
            max_grad_norm=1.0,
            seed=0,
        )


def test_train_dp_leaves_the_input_arrays_alone(spec: ModelSpec) -> None:
    # Prepare
    units = encode_units(synthetic_units(spec, 100, effect=1.0, seed=6), spec)
    start = init_arrays(spec, seed=0)
    before = [a.copy() for a in start]
    # Execute
    train_dp(
        start,
        units,
        spec,
        dp_sgd_settings(batch_size=50),
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        seed=0,
    )
    # Assert
    for a, b in zip(start, before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_train_dp_refuses_bad_mechanism_parameters(spec: ModelSpec) -> None:
    units = encode_units(synthetic_units(spec, 20, effect=1.0, seed=7), spec)
    with pytest.raises(ConfigError, match="max_grad_norm > 0"):
        train_dp(
            init_arrays(spec, seed=0),
            units,
            spec,
            dp_sgd_settings(),
            noise_multiplier=1.0,
            max_grad_norm=0.0,
            seed=0,
        )


# ---------------------------------------------------------------- plain and central baselines


def test_train_plain_is_reproducible_and_learns(spec: ModelSpec) -> None:
    # Prepare
    units = encode_units(synthetic_units(spec, 1000, effect=4.0, seed=8), spec)
    start = init_arrays(spec, seed=0)
    settings = dp_sgd_settings(local_epochs=3, batch_size=64, learning_rate=0.02)
    # Execute
    with StepCounter() as counter:
        first = train_plain(start, units, spec, settings, seed=3)
    second = train_plain(start, units, spec, settings, seed=3)
    # Assert
    assert counter.count == first.steps == dp_sgd_schedule(1000, settings)[1]
    for a, b in zip(first.arrays, second.arrays, strict=True):
        np.testing.assert_array_equal(a, b)
    assert mean_nll(first.arrays, units, spec) < 0.9 * mean_nll(start, units, spec)
    assert first.noise_multiplier == 0.0


def test_train_central_learns_the_sign_of_the_effect(spec: ModelSpec) -> None:
    # Prepare
    frame = synthetic_units(spec, 1500, effect=4.0, seed=9)
    # Execute
    model = train_central(
        frame, spec, dp_sgd_settings(batch_size=64, learning_rate=0.05), epochs=3, seed=0
    )
    # Assert: true S(120 months) is 0.82 at load 10 and 0.012 at load 90
    low, high = horizon_survival(model, spec, [10.0, 90.0])
    assert low == pytest.approx(0.82, abs=0.15)
    assert high < 0.15
