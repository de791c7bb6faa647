"""Test helpers over bench/inprocess.py, which hands each message to fedrisk's ClientApp
in this process: fast tests of the coordinator's round logic and the nodes' secure tasks
together.

It is a test double for the transport only; the real federation (SuperLink, SuperNodes,
Simulation Engine) is exercised by the slow tests/*/test_*_e2e.py.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from node_site import approve_plan

from bench.inprocess import InProcessGrid
from bench.inprocess import run_coordinator as _run_coordinator
from coordinator.config import CoordinatorConfig
from harness.synthetic import SyntheticConfig, generate_federation
from models.spec import ModelSpec

__all__ = ["InProcessGrid", "run_coordinator", "small_federation"]


def run_coordinator(
    grid: InProcessGrid,
    config: CoordinatorConfig,
    run_dir: Path,
    *,
    coordinator_dir: Path | None = None,
    run_id: str = "inproc",
    approve: bool = True,
    resume: bool = False,
) -> None:
    """One whole run of the real Coordinator over ``grid`` (with its signed ledger in
    ``coordinator_dir`` when given); with ``approve``, every node approves the plan first;
    with ``resume``, run ``run_id`` continues from its checkpoint after a crash."""
    if approve:
        approve_plan(grid.node_yamls, config.plan)
    _run_coordinator(
        grid, config, run_dir, coordinator_dir=coordinator_dir, run_id=run_id, resume=resume
    )


def small_federation(
    root: Path,
    spec: ModelSpec,
    *,
    n: int = 4,
    seed: int = 3,
    non_private: bool = False,
    delayed_entry: bool = False,
) -> list[Path]:
    """``n`` synthetic sites of 300-600 units; their node.yaml paths."""
    manifest = generate_federation(
        root,
        spec,
        SyntheticConfig(
            n_enterprises=n,
            seed=seed,
            min_units=300,
            max_units=600,
            holdout_units=10,
            delayed_entry=delayed_entry,
        ),
    )
    if non_private:
        for path in manifest.node_configs:
            data = yaml.safe_load(path.read_text())
            data["privacy"]["allow_non_private"] = True
            path.write_text(yaml.safe_dump(data, sort_keys=False))
    return list(manifest.node_configs)
