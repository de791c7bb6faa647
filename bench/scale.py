"""Pilot scale: 10 to 1,000 virtual enterprises through Flower's Simulation Engine.

For each size n: a synthetic federation of n enterprises (100-200 units each, three
segments, the truth known), run through ``fedrisk-lab federate``'s machinery
(:func:`harness.federation.run_local_federation`: a SuperLink in simulation mode, Ray
actors, the real ServerApp and ClientApp) as ``secure_dp``: the packaged plan (Newton fit,
secure aggregation, record DP, Skellam noise shares) with ``plan.secure_graph`` at its
defaults, so each round's SecAgg+ k and t follow from n, and ``release_fraction`` 0.8; 3
model rounds and the curve round. At the ratio sizes (10, 50, 100) the same enterprises
also run DP-SGD twice, ``plain_dp_sgd`` (no secure aggregation, no DP) and
``secure_dp_dp_sgd`` (as ``secure_dp``): the cost of privacy per round, which only DP-SGD
can show (the Newton fit exists only in secure sums).

Per run: seconds per model round (mean of rounds 2..3: round 1 carries Ray start-up and the
key set-up) and per curve round, from the coordinator's progress events, and each stage's
exchange seconds in model rounds 2..3; the peak memory of the whole process tree (this
process and all it started: PSS summed, RSS as an upper bound, :mod:`bench.tree_memory`);
the mean bytes a node sent per model round (rounds 2..3; round 1 by purpose apart), as its
outbox counts them (canonical JSON, bytes as hex); the published curves' max |F error|
against the generator's truth; Harrell's C of the model on a 5,000-unit holdout (one run
per size: a check that the fit holds at scale, not a utility figure; ``bench/model.py`` has
C over noise seeds on real data). Curve error is a distribution, so each size also has a
replicate study on the run's own data: the exact summed histograms noised ``--replicates``
times as the secure run noises them (n Skellam shares planned for max(t, ceil(0.8 n))) and
as a central Gaussian release of the same epsilon would, at eps 0.5 / 1 / 2 / 4: mean, p10
and p90 of the max |F error| against the truth (sampling error and noise) and against the
data's non-private estimate (the noise alone), and the ratio of means with its standard
error (:mod:`bench.share_noise`'s pieces; a draw costs milliseconds, so 400 of them).
Writes ``bench/out/scale.json`` and ``bench/out/scale.png``.

    python -m bench.scale [--enterprises 10 50 100 500 1000] [--replicates 400] [--seed 0]
        [--out bench/out] [--work .fedrisk/bench-scale]
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import fmean
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from bench.entry import BENCH_APPROVER, REPO, bench_flwr_home, fresh_work_dir, run_bench
from bench.node_copies import copy_nodes, outbox_rows
from bench.report import machine_info
from bench.round_costs import bytes_per_node_round, round_seconds, stage_seconds
from bench.scale_plot import plot_scale
from bench.share_noise import (
    EPSILONS,
    Key,
    failure_of,
    noise_plan,
    pooled_counts,
    ratio_se,
    replicate_errors,
)
from bench.spine import non_private_config
from bench.timing import ratio
from bench.tree_memory import TreeMemory
from common.atomic import atomic_write_json
from common.errors import RunFailedError
from coordinator.config import CoordinatorConfig, load_config_or_default
from coordinator.outputs import load_global_model
from coordinator.progress import ProgressPrinter
from coordinator.run_store import RunStore
from enterprise_node.approval import approve_at_nodes
from harness.evaluation import load_curves, pooled_frame, score_arrays
from harness.federation import run_local_federation
from harness.synthetic import FederationManifest, SyntheticConfig, generate_federation
from models.histogram import unit_histograms
from protocols.plan import SecureGraph
from protocols.secure_round import noise_shares, plan_graph

__all__ = [
    "SIZES",
    "RATIO_SIZES",
    "MODEL_ROUNDS",
    "RELEASE_FRACTION",
    "ScaleSettings",
    "scale_config",
    "scale_bench",
    "main",
]

SIZES: tuple[int, ...] = (10, 50, 100, 500, 1000)
#: sizes that also run DP-SGD plain and secure + DP (the cost of privacy per round)
RATIO_SIZES: tuple[int, ...] = (10, 50, 100)
MODEL_ROUNDS = 3
RELEASE_FRACTION = 0.8
_MECHANISMS = ("central", "skellam")


@dataclass(frozen=True)
class ScaleSettings:
    """What to run: the sizes, replicates of the curve study, seed, DP-SGD ratio sizes."""

    enterprises: tuple[int, ...] = SIZES
    replicates: int = 400
    seed: int = 0
    ratio_sizes: tuple[int, ...] = RATIO_SIZES


def scale_config(base: CoordinatorConfig, *, secure: bool, method: str) -> CoordinatorConfig:
    """``base`` with 3 model rounds of ``method``; ``secure``: secure aggregation and
    record DP with the default secure graph and release fraction 0.8; else neither (the
    plain baseline, which only DP-SGD has: the Newton fit exists only in secure sums)."""
    plan = base.plan
    training = plan.training.model_copy(update={"rounds": MODEL_ROUNDS, "method": method})
    if secure:
        update: dict[str, Any] = {
            "secure_aggregation": True,
            "secure_graph": SecureGraph(),
            "release_fraction": RELEASE_FRACTION,
        }
    else:
        base = non_private_config(base)
        plan = base.plan
        update = {"secure_aggregation": False, "secure_graph": None, "release_fraction": None}
    plan = plan.model_copy(update={"training": training, **update})
    federation = base.federation.model_copy(update={"num_shares": None})
    updated = base.model_copy(update={"plan": plan, "federation": federation})
    return CoordinatorConfig.model_validate(updated.model_dump())


def _run(
    label: str,
    manifest: FederationManifest,
    config: CoordinatorConfig,
    work: Path,
    flwr_home: Path,
    console: Console,
) -> dict[str, Any]:
    """One Flower run on fresh copies of the enterprises: its costs, curves and model."""
    n = len(manifest.enterprise_dirs)
    console.rule(f"{n} enterprises: {label}")
    private = config.plan.privacy.record.enabled
    nodes = copy_nodes(manifest.enterprise_dirs, work / f"nodes-{label}", non_private=not private)
    approve_at_nodes(nodes, config.plan, by=BENCH_APPROVER)
    gc.collect()
    started = time.monotonic()
    with TreeMemory() as memory:
        result = run_local_federation(
            nodes,
            config,
            work / f"run-{label}",
            flwr_home=flwr_home,
            progress=ProgressPrinter(console, MODEL_ROUNDS + 1),
        )
    wall = time.monotonic() - started
    summary = result.summary
    if summary.refusals or summary.failures:
        raise RunFailedError(
            f"{label} at n={n}: {summary.refusals} refusal(s), {summary.failures} failure(s); "
            f"the benchmark needs every node in every round (see {result.run_dir})"
        )
    spec = config.plan.model_spec
    events = RunStore(result.run_dir).read_events()
    seconds = round_seconds(events, MODEL_ROUNDS)
    outboxes = [outbox_rows(node) for node in nodes]
    truth = dict(zip(spec.segments, _truth(manifest, spec.segments), strict=True))
    curves = load_curves(result.run_dir / "curves.json")
    curve_error = max(float(np.abs(c.failure[1:] - truth[c.segment]).max()) for c in curves)
    holdout = pd.read_csv(manifest.holdout_path)
    score = score_arrays(load_global_model(result.run_dir), holdout, spec)
    return {
        "run_seconds": summary.seconds,
        "federation_wall_seconds": round(wall, 1),  # + SuperLink start, inclusion checks
        "first_model_round_seconds": seconds.first_model_round,
        "seconds_per_model_round": seconds.model_round,
        "seconds_per_curve_round": seconds.curve_round,
        "model_round_stage_seconds": stage_seconds(events, range(2, MODEL_ROUNDS + 1)),
        "peak_tree_pss_mb": round(memory.peak.pss_mb, 1),
        "peak_tree_rss_mb": round(memory.peak.rss_mb, 1),
        "peak_processes": memory.peak.processes,
        "bytes_per_node_per_model_round": bytes_per_node_round(
            outboxes, range(2, MODEL_ROUNDS + 1)
        )["total"],
        "bytes_per_node_first_model_round": bytes_per_node_round(outboxes, [1]),
        "bytes_per_node_per_curve_round": bytes_per_node_round(outboxes, [MODEL_ROUNDS + 1])[
            "total"
        ],
        "curve_max_abs_error_vs_truth": curve_error,
        "published_segments": len(curves),
        "harrell_c": score.harrell_c,
        "curve_noise": None if summary.privacy is None else summary.privacy.curve_noise,
    }


def _replicates(
    manifest: FederationManifest, config: CoordinatorConfig, replicates: int, seed: int
) -> dict[str, Any]:
    """The replicate study on the run's data: each mechanism's error per epsilon against
    the truth and against the data's non-private pooled estimate (the noise's own error);
    the same noise draws for both."""
    spec = config.plan.model_spec
    n = len(manifest.enterprise_dirs)
    graph = plan_graph(config.plan.secure_graph, n)
    threshold = graph[1] if graph is not None else n // 2 + 1
    planned = noise_shares(config.plan.release_fraction, n, threshold)
    frame = pooled_frame(list(manifest.node_configs), spec)
    pooled = pooled_counts([unit_histograms(frame, spec)])
    truth = _truth(manifest, spec.segments)
    plans = {
        (str(planned), mechanism, eps): noise_plan(mechanism, eps, spec, n=n, t=planned)
        for mechanism in _MECHANISMS
        for eps in EPSILONS
    }
    non_private = failure_of(pooled, spec, 0.0)
    by_reference = {
        "by_epsilon": truth,  # the data's sampling error and the noise's
        "vs_non_private_by_epsilon": non_private,  # the noise's alone
    }
    return {
        "threshold": threshold,
        "num_shares": graph[0] if graph is not None else None,
        "noise_shares_planned": planned,
        **{
            key: _by_epsilon(
                replicate_errors(pooled, reference, spec, plans, replicates, seed=[seed, n, 2])
            )
            for key, reference in by_reference.items()
        },
        "no_noise_error": float(np.abs(non_private - truth).max()),
    }


def _truth(manifest: FederationManifest, segments: Sequence[str]) -> np.ndarray:
    """The federation's true F at t_1..t_J per segment (S, J), from ground_truth.json."""
    data = json.loads(manifest.truth_path.read_text(encoding="utf-8"))["segments"]
    return np.array([data[s]["F_federation"][1:] for s in segments], dtype=float)


def _by_epsilon(errors: dict[Key, list[float]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for (_planned, mechanism, eps), values in errors.items():
        out.setdefault(repr(eps), {})[mechanism] = {
            "max_abs_error_mean": fmean(values),
            "max_abs_error_p10": float(np.percentile(values, 10)),
            "max_abs_error_p90": float(np.percentile(values, 90)),
        }
    for figures in out.values():
        figures["ratio_to_central"] = ratio(
            figures["skellam"]["max_abs_error_mean"], figures["central"]["max_abs_error_mean"]
        )
    for (_planned, mechanism, eps), values in errors.items():
        if mechanism == "skellam":
            central = errors[(_planned, "central", eps)]
            out[repr(eps)]["ratio_to_central_se"] = ratio_se(values, central)
    return out


def _size(
    n: int,
    base: CoordinatorConfig,
    work: Path,
    settings: ScaleSettings,
    console: Console,
) -> dict[str, Any]:
    """The packaged plan's run at ``n`` enterprises, the replicate study on its data and,
    at the ratio sizes, DP-SGD plain and secure + DP runs on the same enterprises."""
    size_dir = work / f"n{n}"
    synthetic = SyntheticConfig(n_enterprises=n, min_units=100, max_units=200, seed=settings.seed)
    manifest = generate_federation(size_dir / "data", base.plan.model_spec, synthetic)
    secure = scale_config(base, secure=True, method="newton")
    home = bench_flwr_home()
    runs = {"secure_dp": _run("secure_dp", manifest, secure, size_dir, home, console)}
    report: dict[str, Any] = {"runs": runs}
    if n in settings.ratio_sizes:
        for label, is_secure in (("plain_dp_sgd", False), ("secure_dp_dp_sgd", True)):
            config = scale_config(base, secure=is_secure, method="dp_sgd")
            runs[label] = _run(label, manifest, config, size_dir, home, console)
        report["dp_sgd_secure_dp_over_plain"] = {
            key: ratio(runs["secure_dp_dp_sgd"][key], runs["plain_dp_sgd"][key])
            for key in ("seconds_per_model_round", "seconds_per_curve_round")
        }
    report["curve_replicates"] = _replicates(manifest, secure, settings.replicates, settings.seed)
    return report


def _acceptance(sizes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The issue's acceptance figures, where the sizes run allow them (else None)."""

    def get(n: int, *path: str) -> Any:
        value: Any = sizes.get(str(n))
        for key in path:
            value = None if value is None else value.get(key)
        return value

    def curve_ratio(n: int, against: str = "by_epsilon") -> float | None:
        return get(n, "curve_replicates", against, "1.0", "ratio_to_central")

    bytes_50 = get(50, "runs", "secure_dp", "bytes_per_node_per_model_round")
    bytes_1000 = get(1000, "runs", "secure_dp", "bytes_per_node_per_model_round")
    run_1000 = get(1000, "runs", "secure_dp")
    return {
        "curve_error_ratio_to_central_eps1": {"50": curve_ratio(50), "500": curve_ratio(500)},
        "curve_noise_error_ratio_to_central_eps1": {
            str(n): curve_ratio(n, "vs_non_private_by_epsilon") for n in (50, 500)
        },
        "run_1000_seconds": None if run_1000 is None else run_1000["run_seconds"],
        "run_1000_peak_tree_pss_mb": None if run_1000 is None else run_1000["peak_tree_pss_mb"],
        "bytes_per_node_model_round_1000_over_50": ratio(bytes_1000, bytes_50),
        "dp_sgd_secure_dp_over_plain_model_round_50": get(
            50, "dp_sgd_secure_dp_over_plain", "seconds_per_model_round"
        ),
    }


def scale_bench(out: Path, work: Path, settings: ScaleSettings) -> dict[str, Any]:
    """Run every size; write and return scale.json (and its plot)."""
    start = time.monotonic()
    console = Console()
    fresh_work_dir(work)
    base = load_config_or_default(None)
    report: dict[str, Any] = {
        "benchmark": "scale",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": settings.seed,
        "replicates": settings.replicates,
        "ratio_sizes": list(settings.ratio_sizes),
        "machine": machine_info(),
        "method": __doc__.split("\n\n    python")[0] if __doc__ else "",
        "secure_graph": SecureGraph().model_dump(),
        "release_fraction": RELEASE_FRACTION,
        "sizes": {},
    }
    for n in settings.enterprises:
        report["sizes"][str(n)] = _size(n, base, work, settings, console)
        report["acceptance"] = _acceptance(report["sizes"])
        atomic_write_json(Path(out) / "scale.json", report)  # a partial report per size
    report["wall_seconds"] = round(time.monotonic() - start, 1)
    atomic_write_json(Path(out) / "scale.json", report)
    plot_scale(report, Path(out) / "scale.png")
    _print(report, console)
    return report


def _print(report: dict[str, Any], console: Console) -> None:
    for n, size in report["sizes"].items():
        secure = size["runs"]["secure_dp"]
        eps1 = size["curve_replicates"]["by_epsilon"]["1.0"]
        noise = size["curve_replicates"]["vs_non_private_by_epsilon"]["1.0"]
        dp_sgd = size.get("dp_sgd_secure_dp_over_plain", {}).get("seconds_per_model_round")
        versus = "" if dp_sgd is None else f" (DP-SGD secure + DP / plain {dp_sgd:.2f}x)"
        console.print(
            f"n={n:>5}: model round {secure['seconds_per_model_round']:.2f} s{versus}, curve round "
            f"{secure['seconds_per_curve_round']:.2f} s, peak tree "
            f"{secure['peak_tree_pss_mb']:.0f} MB PSS, "
            f"{secure['bytes_per_node_per_model_round']:.0f} B/node/model round, "
            f"run {secure['run_seconds']:.0f} s, C {secure['harrell_c']:.3f}, "
            f"curve error eps 1 {eps1['skellam']['max_abs_error_mean']:.4f} vs central "
            f"{eps1['central']['max_abs_error_mean']:.4f} ({eps1['ratio_to_central']:.2f}x; "
            f"noise alone {noise['ratio_to_central']:.2f}x)"
        )
    console.print(f"acceptance: {report['acceptance']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--enterprises", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--replicates", type=int, default=400)
    parser.add_argument("--ratio-sizes", type=int, nargs="*", default=list(RATIO_SIZES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    parser.add_argument("--work", type=Path, default=REPO / ".fedrisk" / "bench-scale")
    args = parser.parse_args(argv)
    if min(args.enterprises) < 3 or args.replicates < 1:
        parser.error("--enterprises must be >= 3 (a round needs 3 nodes), --replicates >= 1")
    return run_bench(
        "scale",
        lambda: scale_bench(
            args.out,
            args.work,
            ScaleSettings(
                enterprises=tuple(args.enterprises),
                replicates=args.replicates,
                seed=args.seed,
                ratio_sizes=tuple(args.ratio_sizes),
            ),
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
