"""Cost of secure aggregation (with and without DP) and accuracy of the curves under it.

One invocation measures, on the same synthetic data and machine, through real Flower:
seconds per model round and per curve round (:mod:`bench.round_costs`) for a plain run (no
secure aggregation, no DP), secure aggregation without DP, secure aggregation with record
DP (the packaged plan) and that plus enterprise-level DP, for 8 and for 50 enterprises (the
50 timed in process, curve round only, through ``secagg.server.simulate_round`` when
``--large inprocess`` or when their Flower run fails); the bytes each node sent per model
round and in the curve round (from its ``state/outbox.jsonl``); and, by simulation
(bench/coverage.py's pieces, with the distributed noise shares a secure run adds), the
curves' max |F error| against the truth and the bands' coverage per epsilon. Writes
``bench/out/secagg.json``.

    python -m bench.secagg [--replicates 200] [--large flower|inprocess] [--seed 0] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from bench.coverage import (
    DELTA,
    SimulationSetup,
    share_sigma,
)
from bench.entry import BENCH_APPROVER, REPO, bench_flwr_home, fresh_work_dir, run_bench
from bench.node_copies import copy_nodes, outbox_rows
from bench.report import machine_info
from bench.round_costs import (
    VariantFigures,
    bytes_per_node_round,
    ratios_over_plain,
    round_seconds,
)
from bench.secagg_accuracy import accuracy_scale
from bench.spine import non_private_config
from common.atomic import atomic_write_json
from common.errors import RunFailedError
from coordinator.config import CoordinatorConfig, EnterpriseBudget, load_config_or_default
from coordinator.progress import ProgressPrinter
from coordinator.run_store import RunStore
from coordinator.secure_round import MODULUS_BITS, VALUE_BOUND
from enterprise_node.approval import approve_at_nodes
from enterprise_node.curve_release import discrete_gaussian
from harness.federation import run_local_federation
from harness.synthetic import FederationManifest, SyntheticConfig, generate_federation
from models.spec import ModelSpec
from protocols.plan import EnterprisePrivacy
from protocols.secure_curve import curve_vector_length
from secagg.messages import SecAggConfig
from secagg.quantization import IntegerCodec
from secagg.server import simulate_round

__all__ = [
    "MODEL_ROUNDS",
    "ENTERPRISE_DP",
    "ENTERPRISE_BUDGET",
    "Variant",
    "VARIANTS",
    "variant_config",
    "flower_scale",
    "inprocess_scale",
    "run_secagg_bench",
    "main",
]

#: model rounds per run: round 1 carries Ray start-up, rounds 2..3 give the mean
MODEL_ROUNDS = 3
#: the enterprise-level DP of the fourth variant (DP-FedAvg, clip 1, z = 1)
ENTERPRISE_DP = EnterprisePrivacy(clip_norm=1.0, noise_multiplier=1.0)
#: a cap no benchmark run reaches, so the enterprise variant never stops early
ENTERPRISE_BUDGET = EnterpriseBudget(epsilon_cap=1000.0, delta=1e-5)


@dataclass(frozen=True)
class Variant:
    """One configuration of a run: secure aggregation, record DP, enterprise DP."""

    label: str
    secure: bool
    dp: bool
    enterprise_dp: bool = False


VARIANTS: tuple[Variant, ...] = (
    Variant("plain", secure=False, dp=False),
    Variant("secagg", secure=True, dp=False),
    Variant("secagg_dp", secure=True, dp=True),
    Variant("secagg_dp_enterprise", secure=True, dp=True, enterprise_dp=True),
)


def variant_config(config: CoordinatorConfig, variant: Variant, rounds: int) -> CoordinatorConfig:
    """``config`` with ``rounds`` DP-SGD model rounds and secure aggregation, record DP
    and enterprise DP as ``variant`` says (validated, so a bad combination fails here).
    The variants compare the cost of secure aggregation on model updates, so they all
    train with DP-SGD: the Newton fit has no clear variant to compare with."""
    if not variant.dp:
        config = non_private_config(config)
    plan = config.plan
    training = plan.training.model_copy(update={"rounds": rounds, "method": "dp_sgd"})
    enterprise = ENTERPRISE_DP if variant.enterprise_dp else None
    privacy = plan.privacy.model_copy(update={"enterprise": enterprise})
    plan = plan.model_copy(
        update={"training": training, "secure_aggregation": variant.secure, "privacy": privacy}
    )
    budget = ENTERPRISE_BUDGET if variant.enterprise_dp else None
    updated = config.model_copy(update={"plan": plan, "enterprise_budget": budget})
    return CoordinatorConfig.model_validate(updated.model_dump())


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
    target = work / f"nodes-{variant.label}"
    nodes = copy_nodes(manifest.enterprise_dirs, target, non_private=not variant.dp)
    run_config = variant_config(config, variant, MODEL_ROUNDS)
    approve_at_nodes(nodes, run_config.plan, by=BENCH_APPROVER)
    result = run_local_federation(
        nodes,
        run_config,
        work / f"run-{variant.label}",
        flwr_home=flwr_home,
        progress=ProgressPrinter(console, MODEL_ROUNDS + 1),
    )
    summary = result.summary
    if summary.refusals or summary.failures:
        raise RunFailedError(
            f"{variant.label}: {summary.refusals} refusal(s), "
            f"{summary.failures} failure(s); see {result.run_dir}"
        )
    outboxes = [outbox_rows(n) for n in nodes]
    return VariantFigures(
        seconds=round_seconds(RunStore(result.run_dir).read_events(), MODEL_ROUNDS),
        model_round_bytes=bytes_per_node_round(outboxes, range(1, MODEL_ROUNDS + 1)),
        curve_round_bytes=bytes_per_node_round(outboxes, [MODEL_ROUNDS + 1]),
        run_seconds=summary.seconds,
    )


def _scale_figures(figures: Mapping[str, VariantFigures]) -> dict[str, Any]:
    """The scale's JSON: seconds per round by variant, their ratios to plain, bytes."""
    model = {k: f.seconds.model_round for k, f in figures.items()}
    curve = {k: f.seconds.curve_round for k, f in figures.items()}
    model_x = {k: f.seconds.model_round_exchange for k, f in figures.items()}
    curve_x = {k: f.seconds.curve_round_exchange for k, f in figures.items()}
    return {
        "seconds_per_model_round": model,
        "seconds_per_curve_round": curve,
        "ratio_over_plain": {
            "model_round": ratios_over_plain(model),
            "curve_round": ratios_over_plain(curve),
        },
        "exchange_seconds_per_model_round": model_x,
        "exchange_seconds_per_curve_round": curve_x,
        "first_model_round_seconds": {k: f.seconds.first_model_round for k, f in figures.items()},
        "model_rounds_counted": {k: f.seconds.model_rounds_counted for k, f in figures.items()},
        "bytes_per_node_per_model_round": {k: f.model_round_bytes for k, f in figures.items()},
        "bytes_per_node_per_curve_round": {k: f.curve_round_bytes for k, f in figures.items()},
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
    """Every variant through Flower on one synthetic federation of ``enterprises``."""
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
        "model_rounds": MODEL_ROUNDS,
        **_scale_figures(figures),
    }


def inprocess_scale(
    spec: ModelSpec, *, enterprises: int, seed: int, curve_epsilon: float = 1.0
) -> dict[str, Any]:
    """Curve-round compute in one process (no Flower, no network): plain int64 sum,
    ``simulate_round``, and ``simulate_round`` with each node's discrete Gaussian share
    (the share for ``curve_epsilon``)."""
    length = curve_vector_length(spec, with_entries=False)
    config = SecAggConfig(enterprises, enterprises // 2 + 1, length, MODULUS_BITS)
    codec = IntegerCodec(MODULUS_BITS, enterprises, VALUE_BOUND)
    rng = np.random.default_rng(seed)
    vectors = {i: rng.integers(0, 1000, length) for i in range(1, enterprises + 1)}
    sigma = share_sigma(curve_epsilon, spec, n_nodes=enterprises)

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

    seconds: dict[str, float | None] = {
        "plain": _timed(plain),
        "secagg": _timed(lambda: secure(False)),
        "secagg_dp": _timed(lambda: secure(True)),
    }
    return {
        "mode": "in-process (secagg.server.simulate_round), NOT Flower",
        "enterprises": enterprises,
        "vector_length": length,
        "threshold": config.threshold,
        "share_sigma": sigma,
        "seconds_per_curve_round": seconds,
        "ratio_over_plain": {"curve_round": ratios_over_plain(seconds)},
    }


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _table(report: dict[str, Any]) -> Table:
    table = Table(title="secure aggregation: round cost and curve accuracy")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name in ("enterprises_8", "enterprises_50"):
        scale = report[name]
        for kind in ("model", "curve"):
            ratios = scale["ratio_over_plain"].get(f"{kind}_round", {})
            for label, seconds in scale.get(f"seconds_per_{kind}_round", {}).items():
                versus = f" (x{_fmt(ratios[label])} plain)" if label in ratios else ""
                table.add_row(f"{name} {label} s/{kind} round", _fmt(seconds) + versus)
            for label, by_purpose in scale.get(f"bytes_per_node_per_{kind}_round", {}).items():
                table.add_row(
                    f"{name} {label} bytes/node/{kind} round", _fmt(by_purpose.get("total"))
                )
    for name, study in report["accuracy"]["by_scale"].items():
        for eps, fig in study["epsilons"].items():
            table.add_row(
                f"{name} eps {eps}: noise std, max|F err| mean, coverage",
                f"{fig['total_noise_std']:.2f}, {fig['max_abs_error_mean']:.4f},"
                f" {fig['coverage_mean']:.3f}",
            )
    return table


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.3f}"


def _large_scale(
    config: CoordinatorConfig,
    work: Path,
    *,
    large: str,
    seed: int,
    flwr_home: Path,
    console: Console,
) -> dict[str, Any]:
    """50 enterprises through Flower, or in process when asked or when Flower fails."""
    try:
        if large != "flower":
            raise RunFailedError("in-process requested")
        return flower_scale(
            config,
            work,
            enterprises=50,
            units=(100, 200),
            seed=seed,
            flwr_home=flwr_home,
            console=console,
        )
    except RunFailedError as err:
        console.print(f"50 enterprises through Flower: {err}; timing in process instead")
        spec, epsilon = config.plan.model_spec, config.plan.privacy.record.curve_epsilon
        figures = inprocess_scale(spec, enterprises=50, seed=seed, curve_epsilon=epsilon)
        return {**figures, "flower_error": str(err)}


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
    big = _large_scale(
        config, work / "n50", large=large, seed=seed, flwr_home=flwr_home, console=console
    )
    console.rule("accuracy by simulation")
    setups = {
        "enterprises_8": SimulationSetup(8, 2000, 5000),
        "enterprises_50": SimulationSetup(50, 100, 200),
    }
    report = {
        "benchmark": "secagg",
        "schema_version": 2,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": seed,
        "machine": machine_info(),
        "variants": {v.label: asdict(v) for v in VARIANTS},
        "enterprise_dp": {**ENTERPRISE_DP.model_dump(), **ENTERPRISE_BUDGET.model_dump()},
        "round_seconds": (
            "seconds_per_*_round: wall seconds from the round's first round_start to its"
            " secure_sum (secure: keys in round 1, shares, masked input, unmask and the"
            " coordinator's unmasking) or its round_end (plain: one exchange); model rounds:"
            f" mean of rounds 2..{MODEL_ROUNDS} (round 1 carries Ray start-up);"
            " exchange_seconds_*: the sum of the round's round_end seconds (tasks sent ->"
            " last reply per stage)"
        ),
        "bytes": (
            "mean per node of state/outbox.jsonl bytes (ok replies) in one round, by purpose;"
            f" model rounds averaged over rounds 1..{MODEL_ROUNDS}"
        ),
        "enterprises_8": small,
        "enterprises_50": big,
        "accuracy": {
            "method": (
                "bench.coverage replicates; distributed noise as a secure run adds it: each"
                " node adds a share of scale share_sigma = share_for_noise_multiplier("
                "central_noise_multiplier, n_shares = n // 2 + 1), floored at 2, per cell"
                " (numpy rounded normal); total noise std sqrt(n) share_sigma; band noise"
                " variance n share_sigma^2"
            ),
            "replicates": replicates,
            "delta": DELTA,
            "target": "F_federation at t_1..t_J, all segments",
            "by_scale": {
                name: accuracy_scale(spec, setup, replicates=replicates, seed=seed)
                for name, setup in setups.items()
            },
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
