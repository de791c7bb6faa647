"""One benchmark federation: enterprise sites from a partition, runs of a plan through
the real Coordinator and ClientApp (:mod:`bench.inprocess`), and their scores.

A run is scored on units no enterprise holds (the held-back test split, or the
validation split when defaults are being chosen): Harrell's C of the risk score
F(t_J | x) (:func:`models.hazard.risk_score`), and the curves' largest
|F - F_pooled| against the pooled life table of the enterprises' own data.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from bench.baselines import harrell_c
from bench.inprocess import run_in_process
from bench.model_sites import write_sites
from bench.node_copies import allow_non_private
from coordinator.config import CoordinatorConfig
from coordinator.run_summary import RunSummary
from harness.evaluation import load_curves, pooled_curves
from models.features import encode_units
from models.glm import initial_theta, newton_step, unit_statistics
from models.hazard import HazardNet, arrays_to_state, horizon_cumulative_hazard
from models.spec import ModelSpec
from protocols.plan import TrainingPlan

__all__ = [
    "Fit",
    "BenchFederation",
    "RunScore",
    "prepare_federation",
    "plan_config",
    "run_and_score",
    "test_harrell_c",
    "central_glm_c",
]

Fit = Literal["newton", "dp_sgd"]


@dataclass(frozen=True, eq=False)
class BenchFederation:
    """Sites of one partition of a data set's training units, and the units to score on."""

    dataset: str
    partition: str
    spec: ModelSpec
    node_yamls: tuple[Path, ...]
    train: pd.DataFrame
    test: pd.DataFrame
    work: Path
    #: True F(t) per segment (synthetic data only), for the curves' error against truth.
    truth: Mapping[str, np.ndarray] | None = None

    @property
    def enterprise_sizes(self) -> list[int]:
        return [int(n) for n in self.train.groupby("_site", sort=True).size()]


@dataclass(frozen=True)
class RunScore:
    """One run: Harrell C on the scoring units, the curves' largest |F - F_pooled|
    (None without published curves), model rounds run, wall seconds, the largest
    per-node epsilon of the run at the plan's delta, and the run's noise warnings."""

    harrell_c: float
    curve_error: float | None
    rounds: int
    seconds: float
    epsilon_run: float
    warnings: tuple[str, ...] = field(default_factory=tuple)
    curve_error_vs_truth: float | None = None


def prepare_federation(
    dataset: str,
    partition: str,
    parts: Sequence[pd.DataFrame],
    test: pd.DataFrame,
    spec: ModelSpec,
    base: CoordinatorConfig,
    work: Path,
    truth: Mapping[str, np.ndarray] | None = None,
) -> BenchFederation:
    """Write one site per table of ``parts`` under ``work`` (each may serve non-private
    plans too: these are benchmark sites)."""
    plan = plan_config(base, spec, fit="newton", epsilon=2.0).plan
    node_yamls = write_sites(parts, Path(work) / "sites", plan, approve_by=None)
    for path in node_yamls:
        allow_non_private(path)
    train = pd.concat([p.assign(_site=i) for i, p in enumerate(parts)], ignore_index=True)
    return BenchFederation(
        dataset, partition, spec, tuple(node_yamls), train, test, Path(work), truth
    )


def plan_config(
    base: CoordinatorConfig,
    spec: ModelSpec,
    *,
    fit: Fit,
    epsilon: float | None,
    training: dict[str, Any] | None = None,
    newton: dict[str, Any] | None = None,
    record: dict[str, Any] | None = None,
    federation: dict[str, Any] | None = None,
) -> CoordinatorConfig:
    """``base`` with ``spec``, the fit, record-level epsilon per node per run (None: DP
    off) and any overrides; the plan re-validated, so a bad combination fails here."""
    data = base.model_dump(mode="json")
    plan = data["plan"]
    plan["model_spec"] = spec.model_dump(mode="json")
    plan["secure_aggregation"] = True
    plan["training"].update({"method": fit, **(training or {})})
    plan["newton"].update(newton or {})
    plan["privacy"]["record"].update(
        {"enabled": epsilon is not None, **({"epsilon": epsilon} if epsilon else {})}
    )
    plan["privacy"]["record"].update(record or {})
    data["federation"].update(federation or {})
    data["federation"]["min_nodes"] = min(data["federation"]["min_nodes"], 3)
    TrainingPlan.model_validate(plan)
    return CoordinatorConfig.model_validate(data)


def run_and_score(fed: BenchFederation, config: CoordinatorConfig, name: str) -> RunScore:
    """Run ``config`` over the federation's sites in this process and score it; the run
    directory is removed afterwards (its summary's figures are kept in the score)."""
    run_dir = fed.work / "runs" / name
    started = time.monotonic()
    run = run_in_process(fed.node_yamls, config, run_dir, run_id=uuid.uuid4().hex[:12])
    seconds = time.monotonic() - started
    summary = run.summary
    score = RunScore(
        harrell_c=test_harrell_c(run.arrays, fed.test, fed.spec),
        curve_error=_curve_error(run_dir, fed),
        rounds=sum(1 for r in summary.rounds if r.task == "model"),
        seconds=seconds,
        epsilon_run=_epsilon_run(summary),
        warnings=_warnings(summary),
        curve_error_vs_truth=_curve_error_vs_truth(run_dir, fed),
    )
    shutil.rmtree(run_dir, ignore_errors=True)
    return score


def test_harrell_c(arrays: list[np.ndarray], units: pd.DataFrame, spec: ModelSpec) -> float:
    """Harrell C of the model's risk score on ``units`` (their own durations and events)."""
    model = HazardNet(spec)
    arrays_to_state(model, arrays)
    return harrell_c(units, horizon_cumulative_hazard(model, encode_units(units, spec).x))


def central_glm_c(
    train: pd.DataFrame, test: pd.DataFrame, spec: ModelSpec, *, ridge: float
) -> float:
    """Harrell C of the pooled, non-private GLM with the plan's ridge (the model the Newton
    fit estimates), fitted by Newton's method to convergence."""
    units = encode_units(train, spec)
    theta = initial_theta(spec)
    for _ in range(50):
        updated = newton_step(theta, unit_statistics(units, theta, spec), ridge=ridge)
        done = float(np.max(np.abs(updated - theta))) < 1e-10
        theta = updated
        if done:
            break
    x = encode_units(test, spec).x.astype(np.float64)
    return harrell_c(test, x @ theta[spec.time_grid.n_intervals :])


def _curve_error(run_dir: Path, fed: BenchFederation) -> float | None:
    path = run_dir / "curves.json"
    if not path.exists():
        return None
    published = [c for c in load_curves(path) if c.published]
    if not published:
        return None
    pooled = {c.segment: c for c in pooled_curves(fed.train, fed.spec, censor_weight=0.5)}
    return max(float(np.max(np.abs(c.failure - pooled[c.segment].failure))) for c in published)


def _curve_error_vs_truth(run_dir: Path, fed: BenchFederation) -> float | None:
    """The published curves' largest |F - F_true| (None without truth or curves)."""
    path = run_dir / "curves.json"
    if fed.truth is None or not path.exists():
        return None
    published = [c for c in load_curves(path) if c.published and c.segment in fed.truth]
    if not published:
        return None
    return max(float(np.max(np.abs(c.failure - fed.truth[c.segment]))) for c in published)


def _epsilon_run(summary: RunSummary) -> float:
    """The largest per-node epsilon of this run at the plan's delta (0 without DP)."""
    return max((n.epsilon_run for n in summary.privacy.nodes.values()), default=0.0)


def _warnings(summary: RunSummary) -> tuple[str, ...]:
    """The warnings the run gave when a model round's noise dominated."""
    noise = summary.privacy.model_noise
    return () if noise is None else noise.warnings or ()
