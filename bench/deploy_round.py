"""A deployed round against a simulated one, on the same data, split by stage.

Reads a finished ``make demo-deploy`` (its ``--out``, default ``demo-deploy-out``): the
factories, the plan it ran (``coordinator.yaml``) and the broker's run directory. Runs
the same plan on fresh copies of the same factories through Flower's Simulation Engine
(:func:`harness.federation.run_local_federation`), then compares, for model rounds 2..R
(round 1 carries start-up and the run's key set-up) and for the curve round: the wall
seconds of a round and each stage's exchange seconds (tasks sent -> last reply). Writes
``bench/out/deploy_round.json``.

    python -m bench.deploy_round [--deploy demo-deploy-out] [--out bench/out]
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.entry import BENCH_APPROVER, REPO, bench_flwr_home, run_bench
from bench.node_copies import copy_nodes
from bench.report import machine_info
from bench.round_costs import round_seconds, stage_seconds
from bench.timing import ratio
from common.atomic import atomic_write_json
from common.errors import ConfigError
from coordinator.config import CoordinatorConfig
from coordinator.progress import ProgressPrinter
from coordinator.run_store import RunStore
from enterprise_node.approval import approve_at_nodes
from harness.deploy_demo import latest_run
from harness.federation import run_local_federation

__all__ = ["deploy_round_bench", "main"]


def _figures(run_dir: Path, model_rounds: int) -> dict[str, Any]:
    events = RunStore(run_dir).read_events()
    seconds = round_seconds(events, model_rounds)
    return {
        "seconds_per_model_round": seconds.model_round,
        "seconds_per_curve_round": seconds.curve_round,
        "first_model_round_seconds": seconds.first_model_round,
        "model_round_stage_seconds": stage_seconds(events, range(2, model_rounds + 1)),
        "curve_round_stage_seconds": stage_seconds(events, [model_rounds + 1]),
    }


def deploy_round_bench(deploy: Path, out: Path) -> dict[str, Any]:
    """Simulate the deployed run's plan on its data; write and return the comparison."""
    deploy = Path(deploy).resolve()
    plan_path = deploy / "coordinator.yaml"
    if not plan_path.exists():
        raise ConfigError(
            f"{plan_path} is missing: {deploy} is not a finished demo-deploy",
            advice="Run `make demo-deploy` first.",
        )
    config = CoordinatorConfig.model_validate(json.loads(plan_path.read_text(encoding="utf-8")))
    rounds = config.plan.training.rounds
    deployed = latest_run(deploy / "broker")
    work = deploy / "bench-simulation"
    shutil.rmtree(work, ignore_errors=True)
    folders = sorted(path.parent for path in (deploy / "factories").glob("*/node.yaml"))
    nodes = copy_nodes(folders, work / "factories", non_private=False)
    approve_at_nodes(nodes, config.plan, by=BENCH_APPROVER)
    console = Console()
    console.rule(f"simulation of the deployed plan on its {len(nodes)} factories")
    simulated = run_local_federation(
        nodes,
        config,
        work / "run",
        flwr_home=bench_flwr_home(),
        progress=ProgressPrinter(console, rounds + int(config.plan.curve_release)),
    )
    report: dict[str, Any] = {
        "benchmark": "deploy_round",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "method": __doc__.split("\n\n    python")[0] if __doc__ else "",
        "enterprises": len(nodes),
        "model_rounds": rounds,
        "deployment": _figures(deployed, rounds),
        "simulation": _figures(simulated.run_dir, rounds),
    }
    report["deployment_over_simulation"] = {
        key: ratio(report["deployment"][key], report["simulation"][key])
        for key in ("seconds_per_model_round", "seconds_per_curve_round")
    }
    atomic_write_json(Path(out) / "deploy_round.json", report)
    for side in ("deployment", "simulation"):
        split = ", ".join(
            f"{stage} {seconds:.1f} s"
            for stage, seconds in report[side]["model_round_stage_seconds"].items()
        )
        console.print(
            f"{side:10}: model round {report[side]['seconds_per_model_round']:.1f} s ({split})"
        )
    console.print(f"deployment / simulation: {report['deployment_over_simulation']}")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.deploy_round", description=__doc__)
    parser.add_argument("--deploy", type=Path, default=REPO / "demo-deploy-out")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    args = parser.parse_args(argv)
    return run_bench("deploy_round", lambda: deploy_round_bench(args.deploy, args.out))


if __name__ == "__main__":
    raise SystemExit(main())
