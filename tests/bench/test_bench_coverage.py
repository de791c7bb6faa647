"""bench.coverage's noise models: each node's share under secure aggregation (distributed)
against the central per-node noise of a plain run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.coverage import node_sigma, per_node_sigma, share_sigma
from coordinator.config import load_coordinator_config
from privacy.distributed_noise import MIN_SHARE_SIGMA, effective_noise_multiplier
from protocols.secure_curve import noised_length

SPEC = load_coordinator_config(Path("configs/coordinator.yaml")).plan.model_spec


def test_share_sigma_of_the_majority_threshold_meets_the_central_multiplier() -> None:
    # Prepare: 8 nodes, threshold 5, epsilon 0.5 (central multiplier ~8.7, above the floor)
    z = node_sigma(0.5)
    # Execute
    share = share_sigma(0.5, SPEC, n_nodes=8)
    # Assert: 5 shares are as private as z, and not much more (about z / sqrt(5))
    z_eff = effective_noise_multiplier(
        share,
        n_shares=5,
        l2_sensitivity=1.0,
        l1_sensitivity=1.0,
        dimension=noised_length(SPEC, with_entries=False),
    )
    assert z <= z_eff <= z * 1.001
    assert share == pytest.approx(z / math.sqrt(5), rel=0.01)
    assert share_sigma(0.5, SPEC, n_nodes=8, threshold=5) == share


def test_share_sigma_is_floored_and_zero_without_noise() -> None:
    # Prepare / Execute / Assert: with 50 nodes (threshold 26) z / sqrt(26) < 2
    assert share_sigma(0.5, SPEC, n_nodes=50) == MIN_SHARE_SIGMA
    assert share_sigma(4.0, SPEC, n_nodes=8) == MIN_SHARE_SIGMA
    assert share_sigma(math.inf, SPEC, n_nodes=8) == 0.0


def test_per_node_sigma_by_noise_model() -> None:
    # Execute / Assert
    assert per_node_sigma(1.0, SPEC, n_nodes=8) == share_sigma(1.0, SPEC, n_nodes=8)
    assert per_node_sigma(1.0, SPEC, n_nodes=8, noise_model="central") == node_sigma(1.0)
    with pytest.raises(ValueError, match="unknown noise model 'local'"):
        per_node_sigma(1.0, SPEC, n_nodes=8, noise_model="local")
