"""A design study of the secure-sum Newton fit: the mechanism's exact noise, on one table.

Why it may stand in for the federation: everything a Newton round releases is a sum over
units, and secure aggregation reveals only the sum over nodes, so a run's output depends on
the enterprises only through (a) the pooled units and (b) the noise in the released sum.
That noise is the survivors' discrete Gaussian shares, each sized so that any
``threshold`` of them reach the plan's noise multiplier (:mod:`privacy.distributed_noise`),
so with all n of n nodes present the sum carries variance n / threshold times the
planned one. This module draws that Gaussian directly and then runs the coordinator's
own code (:func:`coordinator.newton_fit.take_newton_step`) on the node's own statistics
(:mod:`models.glm`) under the plan's own accounting (:func:`plan_noise`); what it leaves
out (discrete vs continuous Gaussian, rounding to 2^-scale_bits, the effective multiplier
being at most 0.1 % above the planned one) moves C by far less than the noise does.

It runs a candidate plan in a fraction of a second instead of the seconds to minutes of
a real run (:mod:`bench.model_runs`), so the Newton settings can be searched over many
noise seeds, including the 50-enterprise split. Only the search uses it: the chosen
defaults are then run for real by ``bench/tuning.py`` (confirmation) and ``bench/model.py``
(the acceptance figures). Never a substitute for either.

Procedure (``python -m bench.newton_study``), on TUNE-TRAIN, scored on VALIDATION (the
test split is never read): for each data set of :data:`bench.tuning.TUNING_DATASETS`, its
natural enterprises at epsilon 2 and 1 and 50 small ones at epsilon 1; ``repetitions``
noise seeds per cell. A cell's margin is its acceptance slack: min(mean C - central C +
tolerance, spread tolerance - (max C - min C)), with issue 10's tolerances
(:data:`bench.model.TOLERANCES`). A candidate's score is its worst margin.
Coordinate descent over :data:`GRID` in order, from the shipped plan, keeping a change
only if it raises the score by more than ``min_gain``. Writes
``bench/out/newton-study.json``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.baselines import harrell_c
from bench.datasets import load_dataset
from bench.entry import REPO, run_bench
from bench.model import TOLERANCES
from bench.model_runs import central_glm_c, plan_config
from bench.splits import RANDOM_ENTERPRISES, partition_by_group, split_units
from bench.tuning import TUNING_DATASETS
from common.atomic import atomic_write_json
from coordinator.config import CoordinatorConfig, load_config_or_default
from coordinator.newton_fit import NewtonState, take_newton_step
from coordinator.secure_round import round_threshold
from enterprise_node.noise_plan import plan_noise
from models.features import EncodedUnits, encode_units
from models.glm import initial_theta, release_sensitivity
from models.spec import ModelSpec
from protocols.plan import TrainingPlan
from protocols.secure_glm import (
    glm_bounds,
    round_information_weight,
    round_statistics,
    round_statistics_length,
)

__all__ = ["GRID", "StudyCell", "simulate_fit", "study"]

#: The Newton settings searched, in order (section, key, values).
GRID: tuple[tuple[str, str, tuple[Any, ...]], ...] = (
    ("newton", "momentum", (0.0, 0.3, 0.5, 0.7)),
    ("newton", "information_rounds", ((1,), (1, 2), (1, 3), tuple(range(1, 11)))),
    ("newton", "information_weight", (1, 2, 4)),
    ("newton", "eigen_floor", (0.2, 0.3, 0.5, 1.0)),
    ("training", "rounds", (6, 8, 10)),
    ("newton", "gradient_clip", (0.35, 0.5, 1.0)),
    ("newton", "hessian_clip", (0.15, 0.25, 0.5)),
    ("newton", "ridge", (0.3, 1.0, 3.0)),
)



@dataclass(frozen=True, eq=False)
class StudyCell:
    """One data set's tune-train units as one table, the enterprises they would be split
    into, the epsilon, and the validation units with the central C."""

    dataset: str
    spec: ModelSpec
    partition: str
    n_enterprises: int
    epsilon: float
    units: EncodedUnits
    validation_x: np.ndarray
    validation: pd.DataFrame
    central: float


def simulate_fit(cell: StudyCell, plan: TrainingPlan, rng: np.random.Generator) -> np.ndarray:
    """theta after the plan's Newton rounds with the secure sum's noise drawn at once."""
    spec, bounds = plan.model_spec, glm_bounds(plan)
    noise = plan_noise(plan, len(cell.units))
    k = cell.n_enterprises
    inflation = math.sqrt(k / round_threshold(k, threshold=None, num_shares=None))
    theta: np.ndarray = initial_theta(spec)
    state: NewtonState | None = None
    for round_number in range(1, plan.training.rounds + 1):
        weight = round_information_weight(plan, round_number)
        u = round_statistics(cell.units, theta, plan, round_number)
        # the node's L2 sensitivity in units of u: the release's, plus its rounding
        rounding = math.sqrt(round_statistics_length(plan, round_number)) / bounds.scale
        std = (
            noise.round_noise_multiplier(round_number)
            * (release_sensitivity(weight) + rounding)
            * inflation
        )
        total = (u + rng.normal(0.0, std, u.shape)) * bounds.scale
        step = take_newton_step(theta, total, [std], plan, round_number=round_number, state=state)
        theta, state = step.theta, step.state
    return theta


def _cells(base: CoordinatorConfig, seed: int, datasets: Sequence[str]) -> list[StudyCell]:
    cells = []
    for name in datasets:
        dataset = load_dataset(name)
        splits = split_units(dataset.units, seed=seed)
        units = encode_units(splits.tune_train, dataset.spec)
        x = encode_units(splits.validation, dataset.spec).x.astype(np.float64)
        central = central_glm_c(
            splits.tune_train, splits.validation, dataset.spec, ridge=base.plan.newton.ridge
        )
        natural = len(partition_by_group(splits.tune_train))
        for partition, k, epsilon in (
            ("group", natural, 2.0),
            ("group", natural, 1.0),
            ("random50", RANDOM_ENTERPRISES, 1.0),
        ):
            cells.append(
                StudyCell(
                    name, dataset.spec, partition, k, epsilon, units, x, splits.validation, central
                )
            )
    return cells


def _score_cell(
    cell: StudyCell,
    candidate: dict[str, dict[str, Any]],
    repetitions: int,
    base: CoordinatorConfig,
) -> dict[str, Any]:
    plan = plan_config(
        base,
        cell.spec,
        fit="newton",
        epsilon=cell.epsilon,
        training=candidate.get("training"),
        newton=candidate.get("newton"),
    ).plan
    n_intervals = plan.model_spec.time_grid.n_intervals
    cs = []
    for repetition in range(repetitions):
        theta = simulate_fit(cell, plan, np.random.default_rng(10_000 + repetition))
        cs.append(harrell_c(cell.validation, cell.validation_x @ theta[n_intervals:]))
    below, spread = TOLERANCES[cell.partition]
    mean = statistics.fmean(cs)
    margin = min(mean - cell.central + below, spread - (max(cs) - min(cs)))
    return {
        "dataset": cell.dataset,
        "partition": cell.partition,
        "epsilon": cell.epsilon,
        "c_mean": round(mean, 4),
        "c_min": round(min(cs), 4),
        "c_max": round(max(cs), 4),
        "central": round(cell.central, 4),
        "margin": round(margin, 4),
    }


def _score(
    candidate: dict[str, dict[str, Any]],
    cells: list[StudyCell],
    repetitions: int,
    base: CoordinatorConfig,
    log: list,
) -> float:
    figures = [_score_cell(cell, candidate, repetitions, base) for cell in cells]
    score = min(f["margin"] for f in figures)
    log.append({"candidate": candidate, "score": round(score, 4), "cells": figures})
    print(f"[newton study] {candidate}: score {score:+.4f}", flush=True)
    return score


def study(
    *, repetitions: int, seed: int, min_gain: float, datasets: Sequence[str]
) -> dict[str, Any]:
    """Coordinate descent over :data:`GRID` from the shipped plan (see module)."""
    base = load_config_or_default(None)
    cells = _cells(base, seed, datasets)
    log: list[dict[str, Any]] = []
    choice: dict[str, dict[str, Any]] = {"training": {}, "newton": {}}
    best = _score(choice, cells, repetitions, base, log)
    shipped = base.plan
    for section, key, values in GRID:
        current = getattr(shipped.training if section == "training" else shipped.newton, key)
        for value in values:
            if choice[section].get(key, current) == value:
                continue
            candidate = {s: dict(v) for s, v in choice.items()}
            candidate[section][key] = value
            if section == "training" and key == "rounds":
                rounds = candidate["newton"].get(
                    "information_rounds", shipped.newton.information_rounds
                )
                if max(rounds) > value:
                    continue
            score = _score(candidate, cells, repetitions, base, log)
            if score > best + min_gain:
                best, choice = score, candidate
    return {"choice": choice, "score": round(best, 4), "evaluated": log}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.newton_study", description=__doc__)
    parser.add_argument("--repetitions", type=int, default=8)
    parser.add_argument("--datasets", nargs="+", default=list(TUNING_DATASETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-gain", type=float, default=0.001)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "newton-study.json")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def call() -> None:
        started = time.monotonic()
        result = study(
            repetitions=args.repetitions,
            seed=args.seed,
            min_gain=args.min_gain,
            datasets=args.datasets,
        )
        report = {
            "benchmark": "newton_study",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "datasets": list(args.datasets),
            "repetitions": args.repetitions,
            "procedure": "bench/newton_study.py module docstring",
            "seconds": round(time.monotonic() - started, 1),
            **result,
        }
        atomic_write_json(args.out, report)
        print(f"[newton study] choice {result['choice']} (score {result['score']:+.4f})")
        print(f"[newton study] wrote {args.out}")

    return run_bench("newton study", call)


if __name__ == "__main__":
    raise SystemExit(main())
