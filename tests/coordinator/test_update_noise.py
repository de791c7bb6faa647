"""The coordinator's check that a DP-SGD round's mean update is more than noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coordinator.update_noise import expected_noise_norm, update_noise
from models.spec import TrainingSettings
from privacy.mechanisms import Mechanism
from protocols.messages import PrivacyReceipt


def receipt(*, sigma: float = 1.0, steps: int = 100, clip: float = 1.0) -> PrivacyReceipt:
    return PrivacyReceipt(
        unit="record",
        mechanism=Mechanism.DP_SGD,
        noise_multiplier=sigma,
        sample_rate=0.01,
        steps=steps,
        max_grad_norm=clip,
        sensitivity=1.0,
        epsilon_task=1.0,
        epsilon_total=1.0,
        epsilon_cap=10.0,
        delta=1e-6,
        accountant="rdp",
        secure_rng=False,
    )


def test_sgd_noise_norm_matches_a_simulated_noisy_walk() -> None:
    # Prepare: S steps of lr * N(0, (sigma C / B)^2) per coordinate, the mean of 4 nodes
    training = TrainingSettings(method="dp_sgd", optimizer="sgd", learning_rate=0.5, batch_size=64)
    steps, dimension, sigma, clip = 50, 400, 2.0, 1.5
    rng = np.random.default_rng(0)
    walks = [
        training.learning_rate
        * rng.normal(0, sigma * clip / training.batch_size, (steps, dimension)).sum(axis=0)
        for _ in range(4)
    ]
    simulated = float(np.linalg.norm(np.mean(walks, axis=0)))
    # Execute
    expected = expected_noise_norm(
        [receipt(sigma=sigma, steps=steps, clip=clip)] * 4, training, dimension
    )
    # Assert
    assert expected == pytest.approx(simulated, rel=0.1)


def test_adam_noise_is_about_lr_per_step_whatever_the_noise_multiplier() -> None:
    training = TrainingSettings(method="dp_sgd", optimizer="adam", learning_rate=0.1)
    low = expected_noise_norm([receipt(sigma=0.5)], training, 100)
    high = expected_noise_norm([receipt(sigma=50.0)], training, 100)
    assert low == high == pytest.approx(0.1 * math.sqrt(100 * 100))


def test_a_round_within_twice_its_noise_is_warned_and_a_clear_one_is_not() -> None:
    training = TrainingSettings(method="dp_sgd", optimizer="adam", learning_rate=0.1)
    receipts = [receipt(steps=100)] * 4  # noise norm 0.1 * sqrt(100 * 100) / 2 = 5
    noisy = update_noise(1, 6.0, receipts, training, 100)
    clear = update_noise(1, 50.0, receipts, training, 100)
    assert noisy.noise_norm == pytest.approx(5.0)
    assert "mostly noise" in (noisy.warning or "") and clear.warning is None


def test_no_dp_sgd_receipt_means_no_noise_to_compare() -> None:
    training = TrainingSettings(method="dp_sgd")
    assert expected_noise_norm([], training, 100) == 0.0
