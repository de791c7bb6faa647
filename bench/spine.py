"""`make bench`: the spine benchmark, DP federation against a non-private one, one invocation.

Generates a fresh synthetic federation, runs it through Flower twice on the same data and
plan (record-level DP on, then off on a copy whose nodes allow non-private plans), judges
both against the truth, the pooled data and a central non-private model, and writes
``bench/out/spine.json``. Both runs share one invocation so that their speed ratio
compares like with like on a noisy machine.

    python -m bench.spine [--enterprises 8] [--seed 0] [--out bench/out] [--config FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from rich.console import Console

from bench.entry import BENCH_APPROVER, REPO, bench_flwr_home, fresh_work_dir, run_bench
from bench.node_copies import copy_nodes
from bench.report import BenchSetup, RunFigures, machine_info, render_table, spine_report
from bench.timing import read_round_timing
from common.atomic import atomic_write_json
from common.errors import ConfigError, RunFailedError
from coordinator.config import CoordinatorConfig, load_config_or_default
from coordinator.flower_run import FederationResult
from coordinator.outputs import load_global_model
from coordinator.progress import ProgressPrinter
from enterprise_node.approval import approve_at_nodes
from harness.demo import evaluate_run
from harness.evaluation import (
    curve_errors,
    load_curves,
    pooled_curves,
    pooled_frame,
    score_arrays,
)
from harness.federation import run_local_federation
from harness.synthetic import FederationManifest, SyntheticConfig, generate_federation

__all__ = ["REPO", "non_private_config", "run_spine", "main"]


def non_private_config(config: CoordinatorConfig) -> CoordinatorConfig:
    """The same config with record-level DP off (everything else, digest aside, equal)."""
    plan = config.plan
    record = plan.privacy.record.model_copy(update={"enabled": False})
    privacy = plan.privacy.model_copy(update={"record": record})
    return config.model_copy(update={"plan": plan.model_copy(update={"privacy": privacy})})


def _federate(
    label: str,
    node_configs: list[Path],
    config: CoordinatorConfig,
    run_dir: Path,
    flwr_home: Path,
    console: Console,
) -> FederationResult:
    """One run through Flower; every node must answer every round for a fair comparison."""
    console.rule(f"federation: {label}")
    total = config.plan.training.rounds + int(config.plan.curve_release)
    approve_at_nodes(node_configs, config.plan, by=BENCH_APPROVER)
    result = run_local_federation(
        node_configs, config, run_dir, flwr_home=flwr_home, progress=ProgressPrinter(console, total)
    )
    summary = result.summary
    if summary.refusals or summary.failures:
        raise RunFailedError(
            f"{label} run: {summary.refusals} refusal(s) and {summary.failures} "
            f"failure(s); the benchmark needs every node in every round (see {run_dir})"
        )
    if summary.record_dp != config.plan.privacy.record.enabled:
        raise RunFailedError(f"{label} run: summary says record_dp={summary.record_dp}")
    return result


def _plain_figures(
    run: FederationResult, manifest: FederationManifest, config: CoordinatorConfig
) -> RunFigures:
    """Scores and curve errors of the non-private run (pooled life table recomputed)."""
    spec = config.plan.model_spec
    frame = pooled_frame(list(manifest.node_configs), spec)
    pooled = pooled_curves(frame, spec, censor_weight=config.curves.censor_weight)
    errors = curve_errors(load_curves(run.run_dir / "curves.json"), pooled, manifest.truth_path)
    score = score_arrays(load_global_model(run.run_dir), pd.read_csv(manifest.holdout_path), spec)
    return RunFigures(
        timing=read_round_timing(run.run_dir),
        harrell_c=score.harrell_c,
        c_index=score.c_td,
        ibs=score.ibs,
        curve_vs_truth={e.segment: e.vs_truth for e in errors},
        curve_vs_pooled={e.segment: e.vs_pooled for e in errors},
        epsilon_per_node={},
        run_seconds=run.summary.seconds,
    )


def _dp_figures(run: FederationResult, evaluation: dict) -> RunFigures:
    rows = evaluation["curve_errors"]
    return RunFigures(
        timing=read_round_timing(run.run_dir),
        harrell_c=evaluation["federated_dp"]["harrell_c"],
        c_index=evaluation["federated_dp"]["c_td"],
        ibs=evaluation["federated_dp"]["ibs"],
        curve_vs_truth={r["segment"]: r["vs_truth"] for r in rows},
        curve_vs_pooled={r["segment"]: r["vs_pooled"] for r in rows},
        epsilon_per_node=evaluation["epsilon_per_node"],
        run_seconds=run.summary.seconds,
    )


def _setup(manifest: FederationManifest, config: CoordinatorConfig, seed: int) -> BenchSetup:
    truth = json.loads(manifest.truth_path.read_text(encoding="utf-8"))
    units = {site["name"]: int(site["n_units"]) for site in truth["enterprises"]}
    plan = config.plan
    return BenchSetup(
        enterprises=len(units),
        units_per_enterprise=units,
        seed=seed,
        rounds=plan.training.rounds,
        local_epochs=plan.training.local_epochs,
        batch_size=plan.training.batch_size,
        epsilon_target=plan.privacy.record.epsilon,
        delta=plan.privacy.record.delta,
    )


def run_spine(
    out: Path,
    config: CoordinatorConfig,
    *,
    enterprises: int,
    seed: int,
    flwr_home: Path,
    console: Console,
) -> dict:
    """Generate, run DP and non-private federations, evaluate; write and return spine.json."""
    if not (config.plan.privacy.record.enabled and config.plan.curve_release):
        raise ConfigError("the spine benchmark needs a plan with record-level DP and curve_release")
    start = time.monotonic()
    out = Path(out).resolve()
    work = out / "spine-work"
    fresh_work_dir(work)
    console.rule("synthetic federation")
    manifest = generate_federation(
        work / "factories",
        config.plan.model_spec,
        SyntheticConfig(n_enterprises=enterprises, seed=seed, parquet_every=4),
    )
    plain_nodes = copy_nodes(manifest.enterprise_dirs, work / "factories-plain", non_private=True)
    console.print(f"{len(manifest.node_configs)} enterprises under {work}")
    dp_run = _federate(
        "record-level DP", list(manifest.node_configs), config, work / "run-dp", flwr_home, console
    )
    plain_config = non_private_config(config)
    plain_run = _federate(
        "non-private", plain_nodes, plain_config, work / "run-plain", flwr_home, console
    )
    console.rule("evaluation")
    evaluation = evaluate_run(
        dp_run.run_dir,
        list(manifest.node_configs),
        manifest.truth_path,
        manifest.holdout_path,
        config,
    )
    report = spine_report(
        _setup(manifest, config, seed),
        _dp_figures(dp_run, evaluation),
        _plain_figures(plain_run, manifest, config),
        central_harrell_c=evaluation["central_nonprivate"]["harrell_c"],
        central_c_index=evaluation["central_nonprivate"]["c_td"],
        central_ibs=evaluation["central_nonprivate"]["ibs"],
        central_seconds=evaluation["central_seconds"],
        machine=machine_info(),
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
        wall_seconds=time.monotonic() - start,
    )
    atomic_write_json(out / "spine.json", report)
    console.print(render_table(report))
    console.print(f"Wrote {out / 'spine.json'} (runs and data under {work})")
    return report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.spine", description="DP vs non-private federation, one run each."
    )
    parser.add_argument("--enterprises", type=int, default=8, help="enterprises (8)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic federation seed (0)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out", help="output dir")
    parser.add_argument("--config", type=Path, default=None, help="coordinator.yaml (packaged)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; a FedriskError becomes its message, advice and exit code."""
    args = _parser().parse_args(argv)
    return run_bench(
        "spine",
        lambda: run_spine(
            args.out,
            load_config_or_default(args.config),
            enterprises=args.enterprises,
            seed=args.seed,
            flwr_home=bench_flwr_home(),
            console=Console(),
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
