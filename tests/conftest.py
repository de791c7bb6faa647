"""Shared fixtures: a Flower task identity for tests that build Flower messages outside a
running Flower app, and the demo model spec on a fixed grid."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flwr.supercore.task_identity import TaskIdentity


@pytest.fixture
def flower_identity() -> Iterator[None]:
    """Give this process a Flower task identity (run 7, node 0, task 1), then restore it.

    flwr 1.42's ``Message(content, dst_node_id=..., message_type=...)`` reads the run, node
    and task ids of the current process; ServerApp/ClientApp set them, unit tests must.
    """
    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 7, 0, 1
    yield
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = saved


@pytest.fixture(scope="session")
def grid20_spec():
    """The demo model spec on a fixed grid of 20 six-month intervals to 120 months.

    Tests that hard-code grid facts (interval indices, per-interval hazards) use this,
    so that tuning the published grid in configs/coordinator.yaml cannot break them.
    """
    from pathlib import Path

    from coordinator.config import load_coordinator_config
    from models.spec import TimeGrid

    config = Path(__file__).resolve().parents[1] / "configs" / "coordinator.yaml"
    spec = load_coordinator_config(config).plan.model_spec
    grid = TimeGrid(unit="months", edges=tuple(float(6 * k) for k in range(21)))
    return spec.model_copy(update={"time_grid": grid})
