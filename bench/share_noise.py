"""Curve error of a secure sum's noise shares against a central release, by mechanism.

For n enterprises and a curve release at record-level epsilon (delta 1e-6; one Gaussian
release of multiplier z = ``calibrate_noise_multiplier``), three ways to put the noise in
the summed histograms, all charged the same epsilon:

- ``central``: one discrete Gaussian of scale z on the sum, what a trusted aggregator
  would add: the baseline;
- ``skellam``: every node adds a Skellam share planned so that the threshold's t shares
  carry z (:mod:`privacy.skellam`, counts x 16); the n shares of a sum are Sk(n v)
  exactly, sampled as such, divided by 16 and rounded as the coordinator does;
- ``discrete_gaussian``: every node adds a discrete Gaussian share planned for t, floored
  at sigma 2 (:mod:`privacy.distributed_noise`); the n shares sum to variance n sigma^2,
  sampled as a rounded normal.

The error is max |F_dp - F_ref| over segments and t_1..t_J. Synthetic data: F_ref is the
federation's true F (known to the generator), each replicate a fresh federation of n
enterprises of 100-200 units. Real data (``hdfail``, 52,422 hard drives shipped by
SurvSet): the table split into n random unequal enterprises; F_ref is the same data's
non-private pooled estimate, so the error is the noise's alone. Each replicate draws fresh
noise; mean, p10 and p90 over replicates; ``ratio_to_central`` is the mean error over the
central release's (the same replicates), ``ratio_to_central_se`` its standard error. A
hdfail replicate costs milliseconds and its max error is heavy-tailed, so it gets 400 draws
(at 50 its ratio moved by +-0.2 between seeds); a synthetic one draws a whole federation.
Shares planned for: the secure sum's default majority n // 2 + 1, and 4/5 of n
(``plan.release_fraction: 0.8``: fewer dropouts tolerated, less noise per share).

    python -m bench.share_noise [--replicates 50] [--real-replicates 400]
        [--enterprises 8 50 500] [--seed 0]
        [--out bench/out]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from statistics import fmean
from typing import Any

import numpy as np

from bench.coverage import DELTA, SimulationSetup, draw_replicate, node_sigma
from bench.datasets import load_dataset
from bench.entry import REPO, run_bench
from bench.report import machine_info
from bench.splits import partition_random
from common.atomic import atomic_write_json
from coordinator.config import load_config_or_default
from models.curve_estimator import estimate_curves, sum_counts
from models.histogram import ExitCounts, unit_histograms
from models.spec import ModelSpec
from privacy import skellam
from privacy.distributed_noise import share_for_noise_multiplier
from protocols.secure_curve import SKELLAM_SCALE, noised_length

__all__ = [
    "EPSILONS",
    "MECHANISMS",
    "THRESHOLDS",
    "Key",
    "NoisePlan",
    "failure_of",
    "noise_plan",
    "pooled_counts",
    "ratio_se",
    "replicate_errors",
    "share_noise_bench",
]

EPSILONS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
MECHANISMS: tuple[str, ...] = ("central", "skellam", "discrete_gaussian")
THRESHOLDS = {"majority": lambda n: n // 2 + 1, "four_fifths": lambda n: math.ceil(0.8 * n)}
_CENSOR_WEIGHT = 0.5

#: (threshold rule, mechanism, epsilon): one noise plan of the study.
Key = tuple[str, str, float]


class NoisePlan:
    """How one mechanism's total noise per summed cell is drawn, and its variance in
    counts (the estimator's ``cell_noise_var``)."""

    def __init__(self, mechanism: str, std: float, *, skellam_variance: float = 0.0) -> None:
        self.mechanism, self.std, self.skellam_variance = mechanism, std, skellam_variance
        rounding = 1.0 / 12.0 if mechanism == "skellam" else 0.0
        self.variance = std**2 + rounding

    def draw(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        if self.mechanism == "skellam":
            half = self.skellam_variance / 2.0
            total = rng.poisson(half, shape) - rng.poisson(half, shape)
            return np.rint(total / SKELLAM_SCALE).astype(np.int64)
        return np.rint(rng.normal(0.0, self.std, shape)).astype(np.int64)


def noise_plan(mechanism: str, epsilon: float, spec: ModelSpec, *, n: int, t: int) -> NoisePlan:
    """The total noise of a sum of ``n`` shares planned for threshold ``t`` (see module)."""
    z = node_sigma(epsilon)
    if mechanism == "central":
        return NoisePlan(mechanism, z)
    if mechanism == "skellam":
        scale = float(SKELLAM_SCALE)
        share = skellam.share_for_noise_multiplier(
            z, n_shares=t, l2_sensitivity=scale, l1_sensitivity=scale
        )
        total = n * share.share_variance
        return NoisePlan(mechanism, math.sqrt(total) / scale, skellam_variance=total)
    ddg = share_for_noise_multiplier(
        z,
        n_shares=t,
        l2_sensitivity=1.0,
        l1_sensitivity=1.0,
        dimension=noised_length(spec, with_entries=False),
    )
    return NoisePlan(mechanism, math.sqrt(n) * ddg.share_sigma)


def failure_of(counts: ExitCounts, spec: ModelSpec, noise_var: float) -> np.ndarray:
    """F at t_1..t_J per segment (S, J) of summed ``counts`` noised with ``noise_var``."""
    curves = estimate_curves(
        sum_counts(spec, [counts]), censor_weight=_CENSOR_WEIGHT, cell_noise_var=noise_var
    )
    return np.array([c.failure for c in curves])[:, 1:]


def _noised(counts: ExitCounts, plan: NoisePlan, rng: np.random.Generator) -> ExitCounts:
    return ExitCounts(
        exits=counts.exits + plan.draw(counts.exits.shape, rng),
        entries=None,
        survivors=counts.survivors + plan.draw(counts.survivors.shape, rng),
    )


def pooled_counts(counts: Sequence[ExitCounts]) -> ExitCounts:
    """The cell-wise sum of enterprises' histograms (no entries)."""
    return ExitCounts(
        exits=sum(c.exits for c in counts),  # type: ignore[arg-type]
        entries=None,
        survivors=sum(c.survivors for c in counts),  # type: ignore[arg-type]
    )


def _errors_of(
    pooled: ExitCounts,
    reference: np.ndarray,
    spec: ModelSpec,
    plans: dict[tuple[str, str, float], NoisePlan],
    rng: np.random.Generator,
    into: dict[tuple[str, str, float], list[float]],
) -> None:
    for key, plan in plans.items():
        estimate = failure_of(_noised(pooled, plan, rng), spec, plan.variance)
        into[key].append(float(np.abs(estimate - reference).max()))


def _plans(spec: ModelSpec, n: int) -> dict[tuple[str, str, float], NoisePlan]:
    return {
        (threshold, mechanism, eps): noise_plan(mechanism, eps, spec, n=n, t=rule(n))
        for threshold, rule in THRESHOLDS.items()
        for mechanism in MECHANISMS
        for eps in EPSILONS
    }


def synthetic_errors(
    spec: ModelSpec, n: int, replicates: int, seed: int
) -> dict[tuple[str, str, float], list[float]]:
    """Max |F error| vs the truth per (threshold, mechanism, epsilon), per replicate."""
    plans = _plans(spec, n)
    errors: dict[tuple[str, str, float], list[float]] = {key: [] for key in plans}
    setup = SimulationSetup(n, 100, 200)
    for seq in np.random.SeedSequence([seed, n]).spawn(replicates):
        rng = np.random.default_rng(seq)
        replicate = draw_replicate(rng, spec, setup)
        truth = replicate.true_failure[:, 1:]
        _errors_of(pooled_counts(replicate.counts), truth, spec, plans, rng, errors)
    return errors


def real_errors(n: int, replicates: int, seed: int) -> dict[tuple[str, str, float], list[float]]:
    """Max |F error| vs the non-private pooled estimate on hdfail split into ``n``."""
    data = load_dataset("hdfail")
    parts = partition_random(data.units, n, seed=seed, min_units=min(50, len(data.units) // n))
    pooled = pooled_counts([unit_histograms(part, data.spec) for part in parts])
    reference = failure_of(pooled, data.spec, 0.0)
    return replicate_errors(
        pooled, reference, data.spec, _plans(data.spec, n), replicates, seed=[seed, n, 1]
    )


def replicate_errors(
    pooled: ExitCounts,
    reference: np.ndarray,
    spec: ModelSpec,
    plans: dict[Key, NoisePlan],
    replicates: int,
    *,
    seed: Sequence[int],
) -> dict[Key, list[float]]:
    """Max |F error| vs ``reference`` (S, J) of ``replicates`` fresh noisings of the same
    summed counts ``pooled``, per plan: the noise's own error on fixed data."""
    errors: dict[Key, list[float]] = {key: [] for key in plans}
    for seq in np.random.SeedSequence(list(seed)).spawn(replicates):
        _errors_of(pooled, reference, spec, plans, np.random.default_rng(seq), errors)
    return errors


def ratio_se(values: Sequence[float], central: Sequence[float]) -> float:
    """Standard error of mean(values) / mean(central) by the delta method, the two samples
    taken as independent: the max error is heavy-tailed on sparse real data, so 50 draws
    can move the ratio by a few tenths; this says by how much."""
    a, c = fmean(values), fmean(central)
    rel_a = float(np.std(values, ddof=1)) / a / math.sqrt(len(values))
    rel_c = float(np.std(central, ddof=1)) / c / math.sqrt(len(central))
    return (a / c) * math.sqrt(rel_a**2 + rel_c**2)


def _summary(errors: dict[Key, list[float]], plans: dict[Key, NoisePlan]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for (threshold, mechanism, eps), values in errors.items():
        central_values = errors[(threshold, "central", eps)]
        central = fmean(central_values)
        out.setdefault(threshold, {}).setdefault(mechanism, {})[repr(eps)] = {
            "total_noise_std_per_cell": round(plans[(threshold, mechanism, eps)].std, 4),
            "max_abs_error_mean": fmean(values),
            "max_abs_error_p10": float(np.percentile(values, 10)),
            "max_abs_error_p90": float(np.percentile(values, 90)),
            "ratio_to_central": fmean(values) / central,
            "ratio_to_central_se": ratio_se(values, central_values),
        }
    return out


def share_noise_bench(
    out: Path, *, enterprises: Sequence[int], replicates: int, seed: int, real_replicates: int
) -> dict[str, Any]:
    """Run both data sets at every size; write and return share_noise.json."""
    start = time.monotonic()
    spec = load_config_or_default(None).plan.model_spec
    real_spec = load_dataset("hdfail").spec
    report: dict[str, Any] = {
        "benchmark": "share_noise",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": seed,
        "replicates": replicates,
        "real_replicates": real_replicates,
        "delta": DELTA,
        "machine": machine_info(),
        "method": __doc__.split("\n\n    python")[0] if __doc__ else "",
        "synthetic": {},
        "hdfail": {},
    }
    for n in enterprises:
        print(f"n = {n}: synthetic ...", flush=True)
        report["synthetic"][str(n)] = _summary(
            synthetic_errors(spec, n, replicates, seed), _plans(spec, n)
        )
        print(f"n = {n}: hdfail ...", flush=True)
        report["hdfail"][str(n)] = _summary(
            real_errors(n, real_replicates, seed), _plans(real_spec, n)
        )
    report["wall_seconds"] = round(time.monotonic() - start, 1)
    atomic_write_json(Path(out) / "share_noise.json", report)
    _print(report)
    return report


def _print(report: dict[str, Any]) -> None:
    for data in ("synthetic", "hdfail"):
        for n, by_threshold in report[data].items():
            for threshold, by_mechanism in by_threshold.items():
                for mechanism in MECHANISMS[1:]:
                    ratios = "  ".join(
                        f"eps {eps}: {v['ratio_to_central']:.2f}x"
                        f" +- {v['ratio_to_central_se']:.2f} ({v['max_abs_error_mean']:.4f})"
                        for eps, v in by_mechanism[mechanism].items()
                    )
                    print(f"{data:9} n={n:>4} {threshold:11} {mechanism:17} {ratios}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.share_noise", description=__doc__)
    parser.add_argument("--replicates", type=int, default=50)
    parser.add_argument("--real-replicates", type=int, default=400)
    parser.add_argument("--enterprises", type=int, nargs="+", default=[8, 50, 500])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    args = parser.parse_args(argv)
    return run_bench(
        "share_noise",
        lambda: share_noise_bench(
            args.out,
            enterprises=args.enterprises,
            replicates=args.replicates,
            seed=args.seed,
            real_replicates=args.real_replicates,
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
