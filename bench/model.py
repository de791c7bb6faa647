"""Real-data model benchmark: is the private risk model as good as a pooled one?

For each data set (real ones that registry packages ship, and the synthetic factories)
and each partition of its training units into enterprises (by its natural category, 4-8
unequal ones; and 50 small random ones), each fit (the secure-sum Newton fit and per-node
DP-SGD) and each record-level epsilon per node per run (model and curves together), the
shipped plan runs several times with fresh noise through the real Coordinator and
ClientApp with secure aggregation (:mod:`bench.inprocess`: only the transport is stood
in). Each run is scored on the held-back test units (never used to choose anything):
Harrell's C of the risk score; the curves' largest |F - F_pooled|; rounds; seconds. The
central non-private C of the same GLM (and a Cox model) is beside it.

Writes ``bench/out/model.json`` and prints a table and the acceptance checks of issue 10.

    .venv/bin/python -m bench.model                 # everything (make bench)
    .venv/bin/python -m bench.model --datasets flchain --repetitions 2   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.baselines import central_baselines
from bench.datasets import DATASETS, load_dataset
from bench.entry import REPO, fresh_work_dir, run_bench
from bench.model_runs import (
    BenchFederation,
    Fit,
    RunScore,
    central_glm_c,
    plan_config,
    prepare_federation,
    run_and_score,
)
from bench.report import machine_info
from bench.splits import partition_by_group, partition_random, split_units
from common.atomic import atomic_write_json
from coordinator.config import load_config_or_default

__all__ = ["Cell", "CELLS", "run_model_bench", "main"]

EPSILONS: tuple[float | None, ...] = (0.5, 1.0, 2.0, None)
PARTITIONS = ("group", "random50")
FITS = ("newton", "dp_sgd")
#: Data sets with at least this many units carry the acceptance thresholds.
LARGE = 5_000


@dataclass(frozen=True)
class Cell:
    """One configuration: a fit at one epsilon (None: non-private) on one partition."""

    partition: str
    fit: Fit
    epsilon: float | None


def _cells() -> tuple[Cell, ...]:
    """The Newton fit everywhere; per-node DP-SGD (the slow one, reported beside it) at
    epsilon 0.5, 2 and none on the natural enterprises and 0.5 and 1 on the 50 small ones."""
    cells = [Cell(p, "newton", e) for p in PARTITIONS for e in EPSILONS]
    cells += [Cell("group", "dp_sgd", e) for e in (0.5, 2.0, None)]
    cells += [Cell("random50", "dp_sgd", e) for e in (0.5, 1.0)]
    return tuple(cells)


CELLS = _cells()


#: Noise repetitions of a DP-SGD cell: fewer than the Newton fit's (its runs take minutes
#: at 50 enterprises on 2 cores); still a spread, never one run.
DP_SGD_REPETITIONS = 3


def _repetitions(cell: Cell, repetitions: int) -> int:
    """Non-private runs have no noise: one is enough (DP-SGD's batches aside)."""
    if cell.epsilon is None:
        return 1
    return min(repetitions, DP_SGD_REPETITIONS) if cell.fit == "dp_sgd" else repetitions


def _summary(scores: list[RunScore]) -> dict[str, Any]:
    cs = [s.harrell_c for s in scores]
    curves = [s.curve_error for s in scores if s.curve_error is not None]
    return {
        "runs": len(scores),
        "c_mean": round(statistics.fmean(cs), 4),
        "c_min": round(min(cs), 4),
        "c_max": round(max(cs), 4),
        "c_spread": round(max(cs) - min(cs), 4),
        "curve_error_mean": round(statistics.fmean(curves), 4) if curves else None,
        "curve_error_max": round(max(curves), 4) if curves else None,
        "rounds": max(s.rounds for s in scores),
        "seconds_mean": round(statistics.fmean(s.seconds for s in scores), 2),
        "epsilon_run_max": round(max(s.epsilon_run for s in scores), 4),
        "warnings": sorted({w for s in scores for w in s.warnings})[:3],
        "c": [round(c, 4) for c in cs],
    }


def _federations(name: str, work: Path, seed: int) -> tuple[list[BenchFederation], dict]:
    """The data set's two partitions as site folders, and its central baselines."""
    dataset = load_dataset(name)
    splits = split_units(dataset.units, seed=seed)
    base = load_config_or_default(None)
    partitions = {
        "group": partition_by_group(splits.train),
        "random50": partition_random(splits.train, seed=seed),
    }
    federations = [
        prepare_federation(name, key, parts, splits.test, dataset.spec, base, work / name / key)
        for key, parts in partitions.items()
    ]
    ridge = base.plan.newton.ridge
    central = {
        "glm_same_ridge": round(
            central_glm_c(splits.train, splits.test, dataset.spec, ridge=ridge), 4
        ),
        **central_baselines(splits.train, splits.test, dataset.spec),
    }
    facts = {
        "units": len(dataset.units),
        "event_rate": round(dataset.event_rate, 4),
        "train_units": len(splits.train),
        "test_units": len(splits.test),
        "source": dataset.source,
        "group_rule": dataset.group_rule,
        "notes": dataset.notes,
        "time_unit": dataset.spec.time_grid.unit,
        "intervals": dataset.spec.time_grid.n_intervals,
        "enterprises": {f.partition: f.enterprise_sizes for f in federations},
        "central": central,
    }
    return federations, facts


def run_dataset(
    name: str, work: Path, repetitions: int, seed: int, fits: Sequence[str] = FITS
) -> dict[str, Any]:
    """Every cell of one data set with one of ``fits`` (run in one worker process)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    federations, facts = _federations(name, work, seed)
    by_partition = {f.partition: f for f in federations}
    base = load_config_or_default(None)
    cells = []
    for cell in (c for c in CELLS if c.fit in fits):
        fed = by_partition[cell.partition]
        config = plan_config(base, fed.spec, fit=cell.fit, epsilon=cell.epsilon)
        scores = [
            run_and_score(fed, config, f"{cell.fit}-{cell.epsilon}-{rep}")
            for rep in range(_repetitions(cell, repetitions))
        ]
        row = {**asdict(cell), **_summary(scores)}
        cells.append(row)
        print(
            f"[{name}] {cell.partition} {cell.fit} eps={cell.epsilon}: "
            f"C {row['c_mean']} ({row['c_min']}-{row['c_max']}) in {row['seconds_mean']} s/run",
            flush=True,
        )
    return {"dataset": name, **facts, "cells": cells}


#: Issue 10's tolerances by partition: (mean C below central C, max C - min C).
TOLERANCES: dict[str, tuple[float, float]] = {"group": (0.01, 0.02), "random50": (0.02, 0.03)}


def acceptance(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 10's acceptance figures, each with its threshold and verdict."""
    checks = []
    for data in results:
        central = data["central"]["glm_same_ridge"]
        large = data["units"] >= LARGE
        cells = {(c["partition"], c["fit"], c["epsilon"]): c for c in data["cells"]}

        def cell(partition: str, fit: str, epsilon: float | None, cells=cells) -> dict | None:
            return cells.get((partition, fit, epsilon))

        rules = [
            ("group", 2.0, *TOLERANCES["group"], "4-8 enterprises, eps 2"),
            ("random50", 1.0, *TOLERANCES["random50"], "50 small enterprises, eps 1"),
        ]
        for partition, epsilon, margin, spread, what in rules:
            row = cell(partition, "newton", epsilon)
            if row is None:
                continue
            ok = row["c_mean"] >= central - margin and row["c_spread"] <= spread
            checks.append(
                {
                    "dataset": data["dataset"],
                    "check": f"{what}: mean C >= central - {margin}, spread <= {spread}",
                    "binding": large,
                    "value": f"mean {row['c_mean']} vs central {central}, spread {row['c_spread']}",
                    "pass": ok,
                }
            )
        plain = cell("group", "newton", None)
        if plain is not None:
            checks.append(
                {
                    "dataset": data["dataset"],
                    "check": "non-private federated == central within 0.002",
                    "binding": True,
                    "value": f"{plain['c_mean']} vs {central}",
                    "pass": abs(plain["c_mean"] - central) <= 0.002,
                }
            )
        curve = cell("group", "newton", 2.0)
        if data["dataset"] == "synthetic" and curve and curve["curve_error_max"] is not None:
            checks.append(
                {
                    "dataset": "synthetic",
                    "check": "curves at eps 2: max |F - F_pooled| <= 0.005 (informative: the "
                    "synthetic curve bench of record is bench/spine, 8 larger factories)",
                    "binding": False,
                    "value": f"{curve['curve_error_max']}",
                    "pass": curve["curve_error_max"] <= 0.005,
                }
            )
    return checks


def merge(earlier: list[dict[str, Any]], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``results`` over ``earlier`` (a previous report's data sets): a cell measured now
    replaces the same cell (data set, partition, fit, epsilon) measured before."""
    by_name = {d["dataset"]: d for d in earlier}
    for data in results:
        before = by_name.get(data["dataset"])
        if before is not None:
            now = {(c["partition"], c["fit"], c["epsilon"]) for c in data["cells"]}
            keep = [
                c for c in before["cells"] if (c["partition"], c["fit"], c["epsilon"]) not in now
            ]
            data = {**data, "cells": keep + data["cells"]}
        by_name[data["dataset"]] = data
    return list(by_name.values())


def run_model_bench(
    datasets: Sequence[str],
    out: Path,
    work: Path,
    repetitions: int,
    seed: int,
    workers: int,
    fits: Sequence[str] = FITS,
    update: bool = False,
) -> dict[str, Any]:
    """Run the cells of ``fits`` on ``datasets`` and write the report to ``out``; with
    ``update``, the cells measured now replace their like in the report already there."""
    fresh_work_dir(work)
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(run_dataset, name, work, repetitions, seed, tuple(fits))
            for name in datasets
        ]
        results = [f.result() for f in futures]
    if update and out.exists():
        results = merge(json.loads(out.read_text(encoding="utf-8"))["datasets"], results)
    base = load_config_or_default(None).plan
    report = {
        "benchmark": "model",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "engine": "in-process grid: the real Coordinator and ClientApp, Flower messages, "
        "secure aggregation and noise; no Ray or network transport",
        "repetitions": repetitions,
        "split_seed": seed,
        "plan": {
            "training": base.training.model_dump(mode="json"),
            "newton": base.newton.model_dump(mode="json"),
            "record": base.privacy.record.model_dump(mode="json"),
        },
        "seconds": round(time.monotonic() - started, 1),
        "datasets": results,
    }
    report["acceptance"] = acceptance(results)
    atomic_write_json(out, report)
    return report


def render(report: dict[str, Any], console: Console) -> None:
    table = Table(title="Harrell C on held-back units: mean (min-max) over noise repetitions")
    for column in (
        "data set",
        "partition",
        "fit",
        "epsilon",
        "C",
        "central GLM",
        "Cox",
        "curve err",
        "rounds",
        "s/run",
    ):
        table.add_column(column)
    for data in report["datasets"]:
        central = data["central"]
        for c in data["cells"]:
            table.add_row(
                data["dataset"],
                c["partition"],
                c["fit"],
                "none" if c["epsilon"] is None else f"{c['epsilon']:g}",
                f"{c['c_mean']:.4f} ({c['c_min']:.4f}-{c['c_max']:.4f}) x{c['runs']}",
                f"{central['glm_same_ridge']:.4f}",
                f"{central.get('cox', float('nan')):.4f}",
                "-" if c["curve_error_max"] is None else f"{c['curve_error_max']:.4f}",
                str(c["rounds"]),
                f"{c['seconds_mean']:.1f}",
            )
    console.print(table)
    for check in report["acceptance"]:
        verdict = "PASS" if check["pass"] else ("FAIL" if check["binding"] else "info")
        console.print(f"{verdict:4}  {check['dataset']}: {check['check']}: {check['value']}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.model", description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--repetitions", type=int, default=5, help="noise repetitions per cell")
    parser.add_argument("--seed", type=int, default=0, help="seed of the test split and partitions")
    parser.add_argument("--workers", type=int, default=2, help="data sets run in parallel")
    parser.add_argument("--fits", nargs="+", default=list(FITS), choices=list(FITS))
    parser.add_argument(
        "--update",
        action="store_true",
        help="replace only the cells run now in the report already at --out",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "model.json")
    parser.add_argument("--work", type=Path, default=REPO / ".fedrisk" / "bench-model")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console()

    def call() -> None:
        report = run_model_bench(
            args.datasets,
            args.out,
            args.work,
            args.repetitions,
            args.seed,
            args.workers,
            fits=args.fits,
            update=args.update,
        )
        render(report, console)
        console.print(f"written {args.out} in {report['seconds']:.0f} s")

    return run_bench("model", call)


if __name__ == "__main__":
    raise SystemExit(main())
