"""Cost of secure aggregation and accuracy of the curves under record-level DP.

One invocation measures, on the same synthetic data and machine: the curve round's wall
seconds through Flower for a plain run (no secure aggregation, no DP), secure aggregation
without DP and secure aggregation with DP (the packaged plan), for 8 and for 50
enterprises (the 50 in process, through ``protocols.secagg_server.simulate_round``, when
``--large inprocess`` or when the Flower run fails); the bytes each node sent in the curve
round (from its ``state/outbox.jsonl``); and, by simulation (bench/coverage.py's pieces),
the curves' max |F error| against the truth and the bands' coverage per epsilon. Writes
``bench/out/secagg.json``.

    python -m bench.secagg [--replicates 200] [--large flower|inprocess] [--seed 0] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import fmean
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from bench.coverage import DELTA, SimulationSetup, draw_replicate, node_sigma, noised_curves
from bench.entry import REPO, bench_flwr_home, fresh_work_dir, run_bench
from bench.report import machine_info
from bench.spine import allow_non_private, non_private_config
from bench.timing import ratio
from coordinator.cli import load_config_or_default
from coordinator.config import CoordinatorConfig
from coordinator.federation import run_local_federation
from coordinator.progress import ProgressPrinter
from coordinator.run_store import RunStore
from coordinator.secure_round import MODULUS_BITS, VALUE_BOUND
from enterprise_node.curve_release import discrete_gaussian
from models.synthetic import FederationManifest, SyntheticConfig, generate_federation
from protocols.atomic import atomic_write_json
from protocols.errors import RunFailedError
from protocols.model_spec import ModelSpec
from protocols.quantization import IntegerCodec
from protocols.secagg_messages import SecAggConfig
from protocols.secagg_server import simulate_round
from protocols.secure_curve import curve_vector_length

__all__ = [
    "EPSILONS",
    "CURVE_STAGES",
    "Variant",
    "VARIANTS",
    "VariantFigures",
    "curve_round_seconds",
    "curve_round_wall_seconds",
    "curve_bytes_by_purpose",
    "mean_bytes_per_node",
    "variant_config",
    "flower_scale",
    "inprocess_scale",
    "accuracy_study",
    "run_secagg_bench",
    "main",
]

EPSILONS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, math.inf)
#: round_end tasks of a curve round: the plain round is "curve", a secure one all four.
CURVE_STAGES: tuple[str, ...] = ("secagg-keys", "secagg-shares", "curve", "secagg-unmask")
_MODEL_ROUNDS = 2


@dataclass(frozen=True)
class Variant:
    """One configuration of the curve round."""

    label: str
    secure: bool
    dp: bool


VARIANTS: tuple[Variant, ...] = (
    Variant("plain", secure=False, dp=False),
    Variant("secagg", secure=True, dp=False),
    Variant("secagg_dp", secure=True, dp=True),
)


@dataclass(frozen=True)
class VariantFigures:
    """A variant's curve-round seconds and the mean bytes a node sent in it, by purpose."""

    curve_round_seconds: float | None
    curve_round_wall_seconds: float | None
    bytes_per_node: dict[str, float]
    run_seconds: float | None


def curve_round_seconds(events: Iterable[Mapping[str, Any]], curve_round: int) -> float | None:
    """Sum of the ``round_end`` seconds of round ``curve_round``'s curve stages (None: none)."""
    seconds = [
        float(e["seconds"])
        for e in events
        if e.get("event") == "round_end"
        and e.get("round") == curve_round
        and e.get("task") in CURVE_STAGES
    ]
    return sum(seconds) if seconds else None


def curve_round_wall_seconds(events: Iterable[Mapping[str, Any]], curve_round: int) -> float | None:
    """Wall seconds from the curve round's first ``round_start`` to its sum: the
    ``secure_sum`` event when there is one (so the coordinator's unmasking between and after
    the stages counts), else the last curve stage's ``round_end``. None: no such round."""
    stages = [
        e
        for e in events
        if e.get("event") in ("round_start", "round_end")
        and e.get("round") == curve_round
        and e.get("task") in CURVE_STAGES
    ]
    starts = [float(e["time"]) for e in stages if e["event"] == "round_start"]
    ends = [float(e["time"]) for e in stages if e["event"] == "round_end"]
    ends += [float(e["time"]) for e in events if e.get("event") == "secure_sum"]
    if not starts or not ends:
        return None
    return max(ends) - min(starts)


def curve_bytes_by_purpose(
    entries: Iterable[Mapping[str, Any]], curve_round: int
) -> dict[str, int]:
    """Bytes one node sent in round ``curve_round`` (its outbox rows), by purpose, plus total."""
    by_purpose: dict[str, int] = {}
    for entry in entries:
        if entry.get("round") == curve_round and entry.get("status") == "ok":
            purpose = str(entry["purpose"])
            by_purpose[purpose] = by_purpose.get(purpose, 0) + int(entry["bytes"])
    by_purpose["total"] = sum(by_purpose.values())
    return by_purpose


def mean_bytes_per_node(per_node: Sequence[Mapping[str, int]]) -> dict[str, float]:
    """Mean over nodes of each purpose's bytes (a node without a purpose counts 0)."""
    if not per_node:
        return {}
    keys = sorted({k for node in per_node for k in node})
    return {k: fmean(node.get(k, 0) for node in per_node) for k in keys}


def variant_config(config: CoordinatorConfig, variant: Variant, rounds: int) -> CoordinatorConfig:
    """``config`` with ``rounds`` model rounds, secure aggregation and record DP as ``variant``."""
    if not variant.dp:
        config = non_private_config(config)
    plan = config.plan
    training = plan.training.model_copy(update={"rounds": rounds})
    plan = plan.model_copy(update={"training": training, "secure_aggregation": variant.secure})
    return config.model_copy(update={"plan": plan})


def _copy_nodes(manifest: FederationManifest, target: Path, *, non_private: bool) -> list[Path]:
    """Copies of the enterprise folders without node state (fresh accountant and outbox)."""
    node_configs = []
    for folder in manifest.enterprise_dirs:
        copy = target / folder.name
        shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("state"))
        if non_private:
            allow_non_private(copy / "node.yaml")
        node_configs.append(copy / "node.yaml")
    return node_configs


def _outbox_rows(node_yaml: Path) -> list[dict[str, Any]]:
    path = node_yaml.parent / "state" / "outbox.jsonl"
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _run_variant(
    variant: Variant,
    manifest: FederationManifest,
    config: CoordinatorConfig,
    work: Path,
    flwr_home: Path,
    console: Console,
) -> VariantFigures:
    """One Flower run of ``variant`` on fresh copies of the enterprises."""
    console.rule(f"{len(manifest.enterprise_dirs)} enterprises: {variant.label}")
    nodes = _copy_nodes(manifest, work / f"nodes-{variant.label}", non_private=not variant.dp)
    run_config = variant_config(config, variant, _MODEL_ROUNDS)
    total = _MODEL_ROUNDS + 1
    result = run_local_federation(
        nodes,
        run_config,
        work / f"run-{variant.label}",
        flwr_home=flwr_home,
        progress=ProgressPrinter(console, total),
    )
    summary = result.summary
    if summary.get("refusals") or summary.get("failures"):
        raise RunFailedError(
            f"{variant.label}: {summary.get('refusals')} refusal(s), "
            f"{summary.get('failures')} failure(s); see {result.run_dir}"
        )
    curve_round = _MODEL_ROUNDS + 1
    events = RunStore(result.run_dir).read_events()
    per_node = [curve_bytes_by_purpose(_outbox_rows(n), curve_round) for n in nodes]
    return VariantFigures(
        curve_round_seconds=curve_round_seconds(events, curve_round),
        curve_round_wall_seconds=curve_round_wall_seconds(events, curve_round),
        bytes_per_node=mean_bytes_per_node(per_node),
        run_seconds=float(summary["seconds"]) if "seconds" in summary else None,
    )


def _scale_figures(figures: Mapping[str, VariantFigures]) -> dict[str, Any]:
    plain = figures["plain"].curve_round_seconds
    wall = figures["plain"].curve_round_wall_seconds
    return {
        "curve_round_seconds": {k: f.curve_round_seconds for k, f in figures.items()},
        "ratio_secagg_over_plain": ratio(figures["secagg"].curve_round_seconds, plain),
        "ratio_secagg_dp_over_plain": ratio(figures["secagg_dp"].curve_round_seconds, plain),
        "curve_round_wall_seconds": {k: f.curve_round_wall_seconds for k, f in figures.items()},
        "ratio_wall_secagg_over_plain": ratio(figures["secagg"].curve_round_wall_seconds, wall),
        "ratio_wall_secagg_dp_over_plain": ratio(
            figures["secagg_dp"].curve_round_wall_seconds, wall
        ),
        "bytes_per_node": {k: f.bytes_per_node for k, f in figures.items()},
        "run_seconds": {k: f.run_seconds for k, f in figures.items()},
    }


def flower_scale(
    config: CoordinatorConfig,
    work: Path,
    *,
    enterprises: int,
    units: tuple[int, int],
    seed: int,
    flwr_home: Path,
    console: Console,
) -> dict[str, Any]:
    """The three variants through Flower on one synthetic federation of ``enterprises``."""
    manifest = generate_federation(
        work / "factories",
        config.plan.model_spec,
        SyntheticConfig(
            n_enterprises=enterprises,
            min_units=units[0],
            max_units=units[1],
            seed=seed,
            holdout_units=0,
        ),
    )
    figures = {
        v.label: _run_variant(v, manifest, config, work, flwr_home, console) for v in VARIANTS
    }
    return {
        "mode": "flower",
        "enterprises": enterprises,
        "units_per_enterprise": list(units),
        "model_rounds": _MODEL_ROUNDS,
        **_scale_figures(figures),
    }


def inprocess_scale(spec: ModelSpec, *, enterprises: int, seed: int) -> dict[str, Any]:
    """Curve-round compute in one process (no Flower, no network): plain int64 sum,
    ``simulate_round``, and ``simulate_round`` with each node's discrete Gaussian noise."""
    length = curve_vector_length(spec, with_entries=False)
    config = SecAggConfig(enterprises, enterprises // 2 + 1, length, MODULUS_BITS)
    codec = IntegerCodec(MODULUS_BITS, enterprises, VALUE_BOUND)
    rng = np.random.default_rng(seed)
    vectors = {i: rng.integers(0, 1000, length) for i in range(1, enterprises + 1)}
    sigma = node_sigma(2.0)

    def plain() -> None:
        np.sum(np.stack(list(vectors.values())), axis=0)

    def secure(noise: bool) -> None:
        noised = {
            i: v + discrete_gaussian((length,), sigma) if noise else v for i, v in vectors.items()
        }
        field = simulate_round(
            config, {i: codec.encode(v) for i, v in noised.items()}, round_id="bench:1"
        )
        assert np.array_equal(codec.decode_sum(field), np.sum(np.stack(list(noised.values())), 0))

    seconds = {
        "plain": _timed(plain),
        "secagg": _timed(lambda: secure(False)),
        "secagg_dp": _timed(lambda: secure(True)),
    }
    return {
        "mode": "in-process (protocols.secagg_server.simulate_round), NOT Flower",
        "enterprises": enterprises,
        "vector_length": length,
        "threshold": config.threshold,
        "curve_round_seconds": seconds,
        "ratio_secagg_over_plain": ratio(seconds["secagg"], seconds["plain"]),
        "ratio_secagg_dp_over_plain": ratio(seconds["secagg_dp"], seconds["plain"]),
    }


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def accuracy_study(
    spec: ModelSpec,
    *,
    replicates: int,
    setup: SimulationSetup,
    epsilons: Sequence[float] = EPSILONS,
    seed: int = 0,
    censor_weight: float = 0.5,
) -> dict[str, dict[str, float]]:
    """Per epsilon: max |F_hat - F_federation| over segments and t_1..t_J (mean and max
    over replicates) and the share of those points inside the 95 % band."""
    max_errors: dict[float, list[float]] = {eps: [] for eps in epsilons}
    covered: dict[float, list[float]] = {eps: [] for eps in epsilons}
    for seq in np.random.SeedSequence(seed).spawn(replicates):
        rng = np.random.default_rng(seq)
        replicate = draw_replicate(rng, spec, setup)
        truth = replicate.true_failure[:, 1:]
        for eps in epsilons:
            curves = noised_curves(
                replicate, spec, sigma=node_sigma(eps), rng=rng, censor_weight=censor_weight
            )
            estimate, lower, upper = (band[:, 1:] for band in curves)
            max_errors[eps].append(float(np.abs(estimate - truth).max()))
            covered[eps].append(float(np.mean((lower <= truth) & (truth <= upper))))
    return {
        _eps_key(eps): {
            "node_sigma": node_sigma(eps),
            "max_abs_error_mean": fmean(max_errors[eps]),
            "max_abs_error_max": max(max_errors[eps]),
            "max_abs_error_p90": float(np.percentile(max_errors[eps], 90)),
            # the spine's acceptance bound (max |F error| <= 0.03 in every segment)
            "share_of_replicates_within_0_03": fmean(e <= 0.03 for e in max_errors[eps]),
            "coverage_mean": fmean(covered[eps]),
        }
        for eps in epsilons
    }


def _eps_key(epsilon: float) -> str:
    return "inf" if math.isinf(epsilon) else repr(float(epsilon))


def _table(report: dict[str, Any]) -> Table:
    table = Table(title="secure aggregation: curve round cost and accuracy")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name in ("enterprises_8", "enterprises_50"):
        scale = report[name]
        for label, seconds in scale["curve_round_seconds"].items():
            table.add_row(f"{name} ({scale['mode'][:10]}) {label} s", _fmt(seconds))
        table.add_row(f"{name} secagg / plain", _fmt(scale["ratio_secagg_over_plain"]))
        table.add_row(f"{name} secagg+DP / plain", _fmt(scale["ratio_secagg_dp_over_plain"]))
        for label, seconds in scale.get("curve_round_wall_seconds", {}).items():
            table.add_row(f"{name} {label} wall s (incl. unmask)", _fmt(seconds))
        for label, by_purpose in scale.get("bytes_per_node", {}).items():
            table.add_row(f"{name} {label} bytes/node", _fmt(by_purpose.get("total")))
    for eps, fig in report["accuracy"]["epsilons"].items():
        table.add_row(
            f"eps {eps}: max|F err| mean / coverage",
            f"{fig['max_abs_error_mean']:.4f} / {fig['coverage_mean']:.3f}",
        )
    return table


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.3f}"


def run_secagg_bench(
    out: Path,
    config: CoordinatorConfig,
    *,
    large: str,
    replicates: int,
    seed: int,
    flwr_home: Path,
    console: Console,
) -> dict[str, Any]:
    """Run every measurement; write and return secagg.json."""
    start = time.monotonic()
    out = Path(out).resolve()
    work = out / "secagg-work"
    fresh_work_dir(work)
    spec = config.plan.model_spec
    small = flower_scale(
        config,
        work / "n8",
        enterprises=8,
        units=(2000, 5000),
        seed=seed,
        flwr_home=flwr_home,
        console=console,
    )
    big: dict[str, Any]
    try:
        if large != "flower":
            raise RunFailedError("in-process requested")
        big = flower_scale(
            config,
            work / "n50",
            enterprises=50,
            units=(100, 200),
            seed=seed,
            flwr_home=flwr_home,
            console=console,
        )
    except RunFailedError as err:
        console.print(f"50 enterprises through Flower: {err}; timing in process instead")
        big = {**inprocess_scale(spec, enterprises=50, seed=seed), "flower_error": str(err)}
    console.rule("accuracy by simulation")
    setup = SimulationSetup()
    report = {
        "benchmark": "secagg",
        "schema_version": 1,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": seed,
        "machine": machine_info(),
        "curve_round": (
            "curve_round_seconds: sum of the curve stages' round_end seconds (tasks sent -> last"
            " reply); curve_round_wall_seconds: first stage sent -> sum known (secure_sum),"
            " which adds the coordinator's unmasking between and after the stages"
        ),
        "bytes": "mean per node of state/outbox.jsonl bytes in the curve round, by purpose",
        "enterprises_8": small,
        "enterprises_50": big,
        "accuracy": {
            "method": "bench.coverage replicates (numpy rounded-normal noise per node/cell)",
            "replicates": replicates,
            "setup": asdict(setup),
            "delta": DELTA,
            "target": "F_federation at t_1..t_J, all segments",
            "epsilons": accuracy_study(spec, replicates=replicates, setup=setup, seed=seed),
        },
        "wall_seconds_total": round(time.monotonic() - start, 1),
    }
    atomic_write_json(out / "secagg.json", report)
    console.print(_table(report))
    console.print(f"Wrote {out / 'secagg.json'}")
    return report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.secagg", description=__doc__)
    parser.add_argument("--replicates", type=int, default=200, help="accuracy replicates (200)")
    parser.add_argument("--large", choices=("flower", "inprocess"), default="flower")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    parser.add_argument("--config", type=Path, default=None, help="coordinator.yaml (packaged)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; a FedriskError becomes its message, advice and exit code."""
    args = _parser().parse_args(argv)
    return run_bench(
        "secagg",
        lambda: run_secagg_bench(
            args.out,
            load_config_or_default(args.config),
            large=args.large,
            replicates=args.replicates,
            seed=args.seed,
            flwr_home=bench_flwr_home(),
            console=Console(),
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
