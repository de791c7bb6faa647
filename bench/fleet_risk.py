"""Does an enterprise's relative-risk factor mean anything? Out of sample, on real data.

``fedrisk-node risk`` gives a site its fleet's relative-risk factor (the global model's
expected failures over the segment curves', :mod:`enterprise_node.fleet_risk`) and can
share it DP-noised (:mod:`enterprise_node.risk_share`). Here each enterprise's units are
split (stratified by event, seeded) into the part that joins the federation (70 %) and a
held-out part, its "next period". The federation runs on the joined parts (the Newton fit,
in process, as :mod:`bench.model_runs`); then, per enterprise:

- the factor of its site over every published segment, the term one year in the data's
  time unit (12 months; 365 days);
- its held-out O/E: the held-out units' failures over their expected failures under the
  published curves over each unit's exposure (:mod:`bench.exposure`);
- its in-sample O/E on the joined units: experience rating, what an insurer can do with
  no model at all (the same-run baseline);
- the factor as a share at epsilon 0.5 (the CLI default) would release it, drawn
  :data:`SHARE_DRAWS` times (drawn only: nothing is sent or charged).

Enterprises: a data set's natural groups if it has at least :data:`MIN_ENTERPRISES`
(the synthetic factories, generated as 10), else each group cut at random into unequal
parts in proportion to its size (:func:`make_enterprises`). ``--splits`` draws that cut
and the held-out parts afresh from seeds ``--seed``, ``--seed`` + 1, ...; on each split
DP off gets one run (the fit has no randomness) and DP at the shipped plan's record-level
epsilon ``--seeds`` runs, each a fresh, unseeded noise draw.

Per run, across enterprises: Spearman's rho of (factor, held-out O/E), of (in-sample O/E,
held-out O/E) and of (one shared draw, held-out O/E); the mean |log a - log held-out O/E|
over enterprises with a held-out failure, for a = the factor, the factor over the
geometric mean of the run's factors (its spread without its level, which rests on the
global model's calibration against the curves), the in-sample
O/E and 1 (the curve alone); the shared factor's sd over its draws and its stated sd,
relative to the factor (mean and max over enterprises), and the share of draws with no
factor (noised W <= 0); the pooled held-out O/E (near 1 when the curves fit). Each figure
is reported as mean, min and max over runs. Nothing is tuned on the held-out parts.
Writes ``bench/out/fleet_risk.json`` and ``fleet_risk_<data set>.png`` (factor and in-sample
O/E against held-out O/E, every enterprise in every run).

    .venv/bin/python -m bench.fleet_risk --seeds 3                 # everything (make bench)
    .venv/bin/python -m bench.fleet_risk --seeds 1 --splits 1 --datasets gbsg2   # a quick look
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from scipy.stats import spearmanr

from bench.datasets import DATASETS, GROUP_COLUMN, Dataset, load_dataset, load_synthetic
from bench.entry import REPO, fresh_work_dir, run_bench
from bench.exposure import observed_over_expected
from bench.fleet_risk_report import plot_dataset, render
from bench.inprocess import run_in_process
from bench.model_runs import BenchFederation, plan_config, prepare_federation
from bench.report import machine_info
from bench.splits import partition_by_group, partition_random, split_units
from bench.spread import spread
from common.atomic import atomic_write_json
from coordinator.config import CoordinatorConfig, load_config_or_default
from enterprise_node.config import load_node_config
from enterprise_node.fleet_risk import (
    RunOutputs,
    fleet_risk,
    load_run_outputs,
    reference_failure,
)
from enterprise_node.risk_share import noised_factor, offer

__all__ = [
    "HELD_OUT_FRACTION",
    "MIN_ENTERPRISES",
    "SHARE_DRAWS",
    "SHARE_EPSILON",
    "Enterprise",
    "EnterpriseScore",
    "make_enterprises",
    "run_summary",
    "run_fleet_risk",
    "main",
]

#: Share of each enterprise's units held out as its "next period" (stratified by event).
HELD_OUT_FRACTION = 0.3
#: Fewest enterprises: a data set with fewer natural groups has them cut into parts.
MIN_ENTERPRISES = 8
#: About how many enterprises a data set with too few natural groups is cut into.
TARGET_ENTERPRISES = {"hdfail": 12, "flchain": 12, "gbsg2": 8}
#: Enterprises the synthetic factories are generated as (their natural groups).
SYNTHETIC_ENTERPRISES = 10
#: Fewest units of an enterprise cut from a natural group (fewer if the group is small).
MIN_UNITS = 30
#: The CLI's default epsilon of a share, and how many noised factors are drawn at it.
SHARE_EPSILON = 0.5
SHARE_DRAWS = 5
#: The term: one year in the data's time unit.
_YEAR = {"months": 12.0, "days": 365.0}


@dataclass(frozen=True, eq=False)
class Enterprise:
    """One enterprise: its units that join the federation and its held-out units."""

    name: str
    joined: pd.DataFrame
    held_out: pd.DataFrame


@dataclass(frozen=True)
class EnterpriseScore:
    """One enterprise in one run: units joined, held out and in service (the factor's
    fleet); the factor with its 95 % interval; held-out O/E with its O and E; in-sample
    O/E; the shared factor's :data:`SHARE_DRAWS` draws at :data:`SHARE_EPSILON` and the
    noise sd the share states."""

    enterprise: str
    joined_units: int
    held_out_units: int
    in_service: int
    factor: float
    factor_low: float
    factor_high: float
    held_out_oe: float
    held_out_failures: int
    held_out_expected: float
    in_sample_oe: float
    shared: tuple[float, ...]
    shared_sd_stated: float


def load_bench_dataset(name: str, seed: int) -> Dataset:
    """The data set; the synthetic factories as :data:`SYNTHETIC_ENTERPRISES` enterprises."""
    if name == "synthetic":
        return load_synthetic(seed=seed, enterprises=SYNTHETIC_ENTERPRISES)
    return load_dataset(name)


def make_enterprises(dataset: Dataset, *, seed: int, target: int) -> list[Enterprise]:
    """The natural groups as enterprises if there are at least :data:`MIN_ENTERPRISES`;
    else each group cut at random (:func:`partition_random`: lognormal, unequal sizes)
    into max(1, round(target x its share of the units)) parts. Each enterprise is then
    split into joined and held-out units (:data:`HELD_OUT_FRACTION`, by event)."""
    groups = partition_by_group(dataset.units)
    total = len(dataset.units)
    enterprises: list[Enterprise] = []
    for g, group in enumerate(groups):
        label = str(group[GROUP_COLUMN].iloc[0])
        k = 1 if len(groups) >= MIN_ENTERPRISES else max(1, round(target * len(group) / total))
        pieces = [group] if k == 1 else partition_random(
            group, k, seed=seed * 1000 + g, min_units=min(MIN_UNITS, len(group) // k)
        )  # fmt: skip
        for j, piece in enumerate(pieces):
            split = split_units(
                piece, seed=seed * 1000 + len(enterprises), test_fraction=HELD_OUT_FRACTION
            )
            name = label if k == 1 else f"{label}/{j + 1}"
            enterprises.append(Enterprise(name, split.train, split.test))
    return enterprises


def _score(
    node_yaml: Path, enterprise: Enterprise, outputs: RunOutputs, term: float
) -> EnterpriseScore:
    """The enterprise's factor on its site, its O/Es and its shared draws (nothing is
    sent or charged: the share is only drawn, as ``noised_factor`` does)."""
    curves = {s: c for s, c in outputs.curves.items() if c.published}
    config = load_node_config(node_yaml)
    risk = fleet_risk(config, outputs, sorted(curves), term)
    reference_q = reference_failure(list(curves.values()), term)
    terms = offer(config, risk, reference_q, SHARE_EPSILON)
    shared = tuple(
        noised_factor(risk, reference_q, terms.noise_multiplier)[0] for _ in range(SHARE_DRAWS)
    )
    held_oe, held_o, held_e = observed_over_expected(enterprise.held_out, curves)
    return EnterpriseScore(
        enterprise=enterprise.name, joined_units=len(enterprise.joined),
        held_out_units=len(enterprise.held_out), in_service=risk.units, factor=risk.factor,
        factor_low=risk.factor_low, factor_high=risk.factor_high, held_out_oe=held_oe,
        held_out_failures=held_o, held_out_expected=held_e,
        in_sample_oe=observed_over_expected(enterprise.joined, curves)[0], shared=shared,
        shared_sd_stated=terms.factor_noise_sd,
    )  # fmt: skip


def _one_run(
    fed: BenchFederation, enterprises: Sequence[Enterprise], config: CoordinatorConfig, term: float
) -> list[EnterpriseScore]:
    """One federation run over the joined parts, scored at every enterprise."""
    run_dir = fed.work / "runs" / uuid.uuid4().hex[:12]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="serving a NON-PRIVATE task")
        run_in_process(fed.node_yamls, config, run_dir, run_id=run_dir.name)
    outputs = load_run_outputs(run_dir)
    scores = [_score(y, e, outputs, term) for y, e in zip(fed.node_yamls, enterprises, strict=True)]
    shutil.rmtree(run_dir, ignore_errors=True)
    return scores


def _spearman(a: Sequence[float], b: Sequence[float]) -> float:
    x, y = np.asarray(a, float), np.asarray(b, float)
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return math.nan
    return float(spearmanr(x[keep], y[keep]).statistic)


def _log_error(a: Sequence[float], b: Sequence[float]) -> float:
    """Mean |log a - log b| over the pairs where both are positive and finite."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    return float(np.mean(np.abs(np.log(x[keep]) - np.log(y[keep])))) if keep.any() else math.nan


def run_summary(scores: Sequence[EnterpriseScore]) -> dict[str, float]:
    """One run's figures across its enterprises (see the module docstring). The shared
    factor: its sd over the finite draws relative to the factor, the sd the share states
    relative to the factor, and the share of draws that gave no factor (noised W <= 0)."""
    factor = [s.factor for s in scores]
    held = [s.held_out_oe for s in scores]
    in_sample = [s.in_sample_oe for s in scores]
    drawn_sd, stated_sd = [], []
    for s in scores:
        finite = [v for v in s.shared if math.isfinite(v)]
        if s.factor > 0 and len(finite) > 1:
            drawn_sd.append(statistics.stdev(finite) / s.factor)
        if s.factor > 0:
            stated_sd.append(s.shared_sd_stated / s.factor)
    draws = [v for s in scores for v in s.shared]
    return {
        "rho_factor": _spearman(factor, held),
        "rho_in_sample": _spearman(in_sample, held),
        "rho_shared": _spearman([s.shared[0] for s in scores], held),
        "log_error_factor": _log_error(factor, held),
        "log_error_factor_recentred": _log_error(_recentred(factor), held),
        "log_error_in_sample": _log_error(in_sample, held),
        "log_error_one": _log_error([1.0] * len(held), held),
        "factor_median": float(np.nanmedian(factor)),
        "share_sd_drawn_mean": _mean(drawn_sd),
        "share_sd_drawn_max": max(drawn_sd, default=math.nan),
        "share_sd_stated_mean": _mean(stated_sd),
        "share_sd_stated_max": max(stated_sd, default=math.nan),
        "share_no_factor": sum(1 for v in draws if not math.isfinite(v)) / max(len(draws), 1),
        "pooled_held_out_oe": sum(s.held_out_failures for s in scores)
        / sum(s.held_out_expected for s in scores),
        "enterprises_scored": sum(1 for h in held if math.isfinite(h) and h > 0),
    }


def _recentred(factors: Sequence[float]) -> list[float]:
    """The factors over their geometric mean across the run's enterprises (the held-out
    parts play no part): the factor's spread without its level."""
    logs = [math.log(f) for f in factors if math.isfinite(f) and f > 0]
    centre = math.exp(statistics.fmean(logs)) if logs else math.nan
    return [f / centre for f in factors]


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else math.nan


#: A setting's name -> its plan and how many runs it gets on a split.
Settings = dict[str, tuple[CoordinatorConfig, int]]
#: A setting's name -> its runs, each the scores of every enterprise.
Runs = dict[str, list[list[EnterpriseScore]]]


def _split_runs(
    dataset: Dataset, work: Path, split_seed: int, settings: Settings, term: float
) -> tuple[dict[str, Any], Runs]:
    """One split of the data set into enterprises and joined / held-out parts, and every
    setting's runs on it: the split's record and the scores by setting."""
    target = TARGET_ENTERPRISES.get(dataset.name, 0)
    enterprises = make_enterprises(dataset, seed=split_seed, target=target)
    fed = prepare_federation(
        dataset.name, "groups-cut", [e.joined for e in enterprises],
        pd.concat([e.held_out for e in enterprises], ignore_index=True), dataset.spec,
        load_config_or_default(None), work / dataset.name / f"split-{split_seed}",
    )  # fmt: skip
    runs = {
        label: [_one_run(fed, enterprises, config, term) for _ in range(n)]
        for label, (config, n) in settings.items()
    }
    record = {
        "split_seed": split_seed,
        "enterprises": [
            {
                "name": e.name, "joined": len(e.joined), "held_out": len(e.held_out),
                "joined_failures": int(e.joined["failed"].sum()),
                "held_out_failures": int(e.held_out["failed"].sum()),
            }
            for e in enterprises
        ],
        "runs": {label: [[asdict(s) for s in run] for run in r] for label, r in runs.items()},
    }  # fmt: skip
    return record, runs


def run_dataset(name: str, work: Path, *, seeds: int, splits: int, seed: int) -> dict[str, Any]:
    """On ``splits`` splits (seeds ``seed``, ``seed`` + 1, ...): DP off (one run each, the
    fit has no randomness) and DP at the shipped plan's epsilon (``seeds`` runs each, each
    a fresh noise draw)."""
    dataset = load_bench_dataset(name, seed)
    base = load_config_or_default(None)
    term = _YEAR[dataset.spec.time_grid.unit]
    shipped = base.plan.privacy.record.epsilon
    settings: Settings = {
        "DP off": (plan_config(base, dataset.spec, fit="newton", epsilon=None), 1),
        f"DP eps {shipped:g}": (
            plan_config(base, dataset.spec, fit="newton", epsilon=shipped), seeds
        ),
    }  # fmt: skip
    parts = [_split_runs(dataset, work, seed + k, settings, term) for k in range(splits)]
    summary = []
    for label, (config, _) in settings.items():
        rows = [run_summary(run) for _, runs in parts for run in runs[label]]
        figures = {key: spread([row[key] for row in rows]) for key in rows[0]}
        print(f"[{name}] {label}: rho(factor, held-out O/E) {figures['rho_factor']}", flush=True)
        epsilon = shipped if config.plan.privacy.record.enabled else None
        summary.append(
            {"setting": label, "epsilon": epsilon, "runs": len(rows), "figures": figures}
        )
    return {
        "dataset": name, "source": dataset.source, "time_unit": dataset.spec.time_grid.unit,
        "term": term, "group_rule": dataset.group_rule, "settings": summary,
        "splits": [record for record, _ in parts],
    }  # fmt: skip


def run_fleet_risk(
    datasets: Sequence[str], out: Path, work: Path, *, seeds: int, splits: int = 1, seed: int = 0
) -> dict[str, Any]:
    """Every data set; writes the JSON at ``out`` and a scatter PNG per data set beside it."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    fresh_work_dir(work)
    started = time.monotonic()
    results = [run_dataset(name, work, seeds=seeds, splits=splits, seed=seed) for name in datasets]
    report = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "seconds": round(time.monotonic() - started, 1),
        "held_out_fraction": HELD_OUT_FRACTION,
        "share_epsilon": SHARE_EPSILON,
        "share_draws": SHARE_DRAWS,
        "seeds": seeds,
        "splits": splits,
        "split_seeds": [seed + k for k in range(splits)],
        "datasets": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, report)
    for result in results:
        plot_dataset(result, out.with_name(f"{out.stem}_{result['dataset']}.png"))
    return report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_risk", description=__doc__)
    parser.add_argument("--seeds", type=int, default=3, help="DP runs (fresh noise) per data set")
    parser.add_argument("--splits", type=int, default=3, help="enterprise / held-out splits")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first split")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "fleet_risk.json")
    parser.add_argument("--work", type=Path, default=REPO / ".fedrisk" / "bench-fleet-risk")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(width=max(Console().width, 110))  # the tables' width, also in a log

    def call() -> None:
        report = run_fleet_risk(
            args.datasets, args.out, args.work, seeds=args.seeds, splits=args.splits,
            seed=args.seed,
        )  # fmt: skip
        render(report, console)
        console.print(f"written {args.out} in {report['seconds']:.0f} s")

    return run_bench("fleet risk", call)


if __name__ == "__main__":
    raise SystemExit(main())
