"""A one-run privacy audit of a plan on a test federation, run in this process.

Background enterprises (a synthetic federation, each unit with ``audit_canary:
no_canary``) and the canary enterprises of :func:`auditor.canary_audit.canary_sites`
(the included canaries round-robin, with censored filler units in every canary segment).
The run goes through the real Coordinator and ClientApp (:mod:`bench.inprocess`), so
the audit sees exactly what a federation releases; then every canary is scored from the
released curves and model alone and the one-run bound is computed for each
(:mod:`auditor.canary_bound`).

Variants: ``dp`` (the plan as given), ``no_dp`` (record-level DP off: the control that
shows the audit has power) and ``forgotten_noise`` (the plan as given, but every node's
noise shares are zero while its receipts still claim them: a mutation that the audit
must catch). The mutation exists only here, as a patch of this process.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal
from unittest import mock

import numpy as np

from auditor.canaries import plant_canaries, with_no_canary
from auditor.canary_audit import CanaryAuditResult, canary_sites, run_from_ledger, score_run
from bench.datasets import load_synthetic
from bench.inprocess import run_in_process
from bench.model_runs import plan_config
from bench.model_sites import write_sites
from bench.node_copies import allow_non_private
from bench.splits import partition_by_group
from coordinator.config import CoordinatorConfig
from coordinator.coordinator_ledger import coordinator_key_paths
from ledger.signing import generate_key_pair

__all__ = ["Variant", "run_canary_audit", "forgotten_noise"]

Variant = Literal["dp", "no_dp", "forgotten_noise"]


@contextlib.contextmanager
def forgotten_noise() -> Iterator[None]:
    """Every node's Skellam noise share is zero (its receipts unchanged): the mutation."""

    def zeros(shape: tuple[int, ...], variance: float) -> np.ndarray:
        return np.zeros(shape, dtype=np.int64)

    with mock.patch("privacy.skellam.skellam_noise", zeros):
        yield


def run_canary_audit(
    base: CoordinatorConfig,
    work: Path,
    *,
    variant: Variant,
    m: int = 300,
    seed: int = 0,
    enterprises: int = 4,
    epsilon: float | None = None,
) -> CanaryAuditResult:
    """Plant ``m`` canaries (coins from ``seed``), run ``base``'s plan (as ``variant``;
    at record-level ``epsilon`` per run if given) over a synthetic federation of
    ``enterprises`` plus the canary enterprises, and bound epsilon from the released
    curves and model."""
    if base.plan.share_noise != "skellam" and variant == "forgotten_noise":
        raise ValueError("the forgotten-noise mutation patches Skellam shares")
    background = load_synthetic(seed=seed, enterprises=enterprises, min_units=400, max_units=900)
    plant = plant_canaries(background.spec, m, seed=seed)
    record = base.plan.privacy.record
    config = plan_config(
        base,
        plant.spec,
        fit=base.plan.training.method,
        epsilon=None if variant == "no_dp" else (epsilon or record.epsilon),
    )
    config = config.model_copy(
        update={"curves": config.curves.model_copy(update={"min_failures": 0})}
    )
    sites = [with_no_canary(part) for part in partition_by_group(background.units)]
    sites += canary_sites(plant)
    node_yamls = write_sites(sites, Path(work) / "sites", config.plan, approve_by=None)
    for path in node_yamls:
        allow_non_private(path)
    coordinator = Path(work) / "coordinator"
    private, public = coordinator_key_paths(coordinator)
    generate_key_pair(private, public)
    patch = forgotten_noise() if variant == "forgotten_noise" else contextlib.nullcontext()
    with patch:
        run = run_in_process(
            node_yamls,
            config,
            Path(work) / "run",
            coordinator_dir=coordinator,
            run_id=uuid.uuid4().hex[:12],
        )
    # the auditor's way: the run and its claims from the coordinator's signed ledger
    recorded = run_from_ledger(coordinator / "ledger", public, plant.spec)
    return score_run(run.run_dir, plant, recorded)
