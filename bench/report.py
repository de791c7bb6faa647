"""The spine benchmark's figures: the JSON record (bench/out/spine.json) and its table.

Compatibility rule: keys of the JSON record are never removed and their meaning never
changes, so records of different commits can be compared; add keys only. So the
``c_index_*`` keys stay Antolini's C_td on the curves, as they always were; fedrisk's
C-index, Harrell's C on the risk score F(t_J), is under ``harrell_c_*`` (added later;
absent from older records).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from rich.table import Table

from bench.timing import RoundTiming, ratio
from models.metrics import FIGURE_NAMES

__all__ = [
    "SCHEMA_VERSION",
    "BenchSetup",
    "RunFigures",
    "machine_info",
    "spine_report",
    "render_table",
]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class BenchSetup:
    """What was benchmarked: the synthetic federation and the plan both runs shared."""

    enterprises: int
    units_per_enterprise: dict[str, int]
    seed: int
    rounds: int
    local_epochs: float
    batch_size: int
    epsilon_target: float
    delta: float


@dataclass(frozen=True)
class RunFigures:
    """One federated run judged on the benchmark's data.

    Curve errors are max over the grid of |F(t) - F_ref(t)| per segment. On the held-out
    population: ``harrell_c`` is Harrell's C on the risk score F(t_J) (fedrisk's C-index;
    None when not measured), ``c_index`` Antolini's time-dependent C_td on the curves
    (named for spine.json's ``c_index_*`` keys), ``ibs`` the IPCW integrated Brier score.
    """

    timing: RoundTiming
    c_index: float
    ibs: float
    curve_vs_truth: dict[str, float]
    curve_vs_pooled: dict[str, float]
    epsilon_per_node: dict[str, float]
    run_seconds: float
    harrell_c: float | None = None


def machine_info() -> dict[str, Any]:
    """CPU count, platform and the versions that set the speed (Python, torch, Flower, Opacus)."""
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **{name: _version(name) for name in ("torch", "flwr", "opacus")},
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def _rounded(values: dict[str, float], digits: int = 6) -> dict[str, float]:
    return {key: round(float(v), digits) for key, v in values.items()}


def spine_report(
    setup: BenchSetup,
    dp: RunFigures,
    plain: RunFigures,
    *,
    central_c_index: float,
    central_ibs: float,
    central_seconds: float,
    machine: dict[str, Any],
    timestamp: str,
    wall_seconds: float,
    central_harrell_c: float | None = None,
) -> dict[str, Any]:
    """The JSON record of one benchmark invocation (both runs on the same data and machine).

    ``central_c_index`` is the central model's Antolini C_td, ``central_harrell_c`` its
    Harrell C on the risk score (see :class:`RunFigures`)."""
    return {
        "benchmark": "spine",
        "schema_version": SCHEMA_VERSION,
        "timestamp": timestamp,
        "wall_seconds_total": _r(wall_seconds, 1),
        "machine": machine,
        "enterprises": setup.enterprises,
        "units_per_enterprise": dict(setup.units_per_enterprise),
        "units_total": sum(setup.units_per_enterprise.values()),
        "seed": setup.seed,
        "rounds": setup.rounds,
        "local_epochs": setup.local_epochs,
        "batch_size": setup.batch_size,
        "epsilon_target": setup.epsilon_target,
        "delta": setup.delta,
        "curve_max_abs_error_vs_truth": _rounded(dp.curve_vs_truth),
        "curve_max_abs_error_vs_pooled": _rounded(dp.curve_vs_pooled),
        "curve_max_abs_error_vs_truth_plain": _rounded(plain.curve_vs_truth),
        "curve_max_abs_error_vs_pooled_plain": _rounded(plain.curve_vs_pooled),
        "harrell_c_federated_dp": _r(dp.harrell_c, 6),
        "harrell_c_federated_plain": _r(plain.harrell_c, 6),
        "harrell_c_central_nonprivate": _r(central_harrell_c, 6),
        "c_index_federated_dp": _r(dp.c_index, 6),
        "c_index_federated_plain": _r(plain.c_index, 6),
        "c_index_central_nonprivate": _r(central_c_index, 6),
        "ibs_federated_dp": _r(dp.ibs, 6),
        "ibs_federated_plain": _r(plain.ibs, 6),
        "ibs_central_nonprivate": _r(central_ibs, 6),
        "epsilon_per_node": _rounded(dp.epsilon_per_node),
        "seconds_per_round_dp": _r(dp.timing.later_model_rounds, 3),
        "seconds_per_round_plain": _r(plain.timing.later_model_rounds, 3),
        "seconds_per_round_ratio_dp_over_plain": _r(
            ratio(dp.timing.later_model_rounds, plain.timing.later_model_rounds), 3
        ),
        "seconds_per_round_rounds_averaged": dp.timing.later_count,
        "seconds_first_round_dp": _r(dp.timing.first_model_round, 3),
        "seconds_first_round_plain": _r(plain.timing.first_model_round, 3),
        "seconds_curve_round_dp": _r(dp.timing.curve_round, 3),
        "seconds_curve_round_plain": _r(plain.timing.curve_round, 3),
        "seconds_run_dp": _r(dp.run_seconds, 3),
        "seconds_run_plain": _r(plain.run_seconds, 3),
        "seconds_central_training": _r(central_seconds, 3),
    }


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def render_table(report: dict[str, Any]) -> Table:
    """The record as one rich table: DP federation, non-private federation, central model."""
    title = (
        f"fedrisk spine: {report['enterprises']} enterprises, {report['units_total']:,} units, "
        f"{report['rounds']} rounds, epsilon {report['epsilon_target']:g} / delta "
        f"{report['delta']:g} per node"
    )
    machine = report["machine"]
    table = Table(
        title=title,
        caption=(
            f"{machine['nproc']} CPUs, Python {machine['python']}, torch {machine['torch']}, "
            f"flwr {machine['flwr']}, opacus {machine['opacus']}; "
            f"{report['wall_seconds_total']:.0f} s in all, {report['timestamp']}"
        ),
    )
    for column in ("figure", "federated DP", "federated non-private", "central non-private"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    _model_rows(table, report)
    table.add_section()
    _curve_rows(table, report)
    table.add_section()
    _time_rows(table, report)
    table.add_section()
    eps = report["epsilon_per_node"]
    span = f"{min(eps.values()):.3f} - {max(eps.values()):.3f}" if eps else "-"
    table.add_row(f"epsilon per node, this run ({len(eps)} nodes)", span, "none (no DP)", "none")
    return table


def _model_rows(table: Table, report: dict[str, Any]) -> None:
    for figure, key in (("harrell_c", "harrell_c"), ("c_td", "c_index"), ("ibs", "ibs")):
        table.add_row(
            f"{FIGURE_NAMES[figure]}, holdout",
            *(
                _fmt(report.get(f"{key}_{run}"), ".4f")
                for run in ("federated_dp", "federated_plain", "central_nonprivate")
            ),
        )


def _curve_rows(table: Table, report: dict[str, Any]) -> None:
    for reference in ("truth", "pooled"):
        dp = report[f"curve_max_abs_error_vs_{reference}"]
        plain = report[f"curve_max_abs_error_vs_{reference}_plain"]
        for segment, value in dp.items():
            table.add_row(
                f"max |F(t) error| vs {reference}, {segment}",
                _fmt(value, ".4f"),
                _fmt(plain.get(segment), ".4f"),
                "",
            )


def _time_rows(table: Table, report: dict[str, Any]) -> None:
    averaged = report["seconds_per_round_rounds_averaged"]
    rounds = f"mean of rounds 2..{averaged + 1}" if averaged else "needs 2+ rounds"
    rows = (
        (f"s per model round ({rounds})", "seconds_per_round"),
        ("s of model round 1 (Ray start-up, imports)", "seconds_first_round"),
        ("s of the curve round", "seconds_curve_round"),
        ("s of the whole run", "seconds_run"),
    )
    for label, key in rows:
        table.add_row(
            label, _fmt(report[f"{key}_dp"], ".2f"), _fmt(report[f"{key}_plain"], ".2f"), ""
        )
    ratio_dp = report["seconds_per_round_ratio_dp_over_plain"]
    table.add_row(
        "s per model round, DP / non-private",
        "n/a" if ratio_dp is None else f"{ratio_dp:.2f} x",
        "",
        "",
    )
    table.add_row(
        "s to train the central model", "", "", _fmt(report["seconds_central_training"], ".2f")
    )
