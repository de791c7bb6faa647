"""Does the privacy hold? A one-run canary audit of the shipped plan, and privacy-utility
curves with the empirical lower bound on the same axis as the claimed epsilon.

1. The shipped plan (record DP, secure aggregation) audited with m canaries
   (:mod:`bench.canary_audit`) over several seeds (fresh coins and noise each), beside the
   DP-off control (the audit's power) and the forgotten-noise mutation (must be caught).
2. The same audit at record-level epsilon 0.25, 0.5, 1, 2, 4 and 8 per run: the empirical
   lower bound against the claimed epsilon.
3. Utility at the same epsilons and without DP: Harrell's C of the model and the curves'
   largest |F - F_pooled| (and |F - F_true| for the synthetic factories, whose truth is
   known) on the bench's data sets (synthetic and the real ones that
   registry packages ship), natural enterprises, the Newton fit, several noise seeds;
   scored on held-back test units.

Every figure is a mean with its min and max over seeds. Writes
``bench/out/privacy_audit.json``, ``privacy_audit.png`` (utility and bounds against
epsilon) and ``privacy_audit_scores.png`` (canary score histograms, included vs excluded).

    .venv/bin/python -m bench.privacy_audit                      # everything (make bench)
    .venv/bin/python -m bench.privacy_audit --seeds 1 --datasets synthetic   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from auditor.canary_audit import CanaryAuditResult
from bench.canary_audit import Variant, run_canary_audit
from bench.datasets import DATASETS, load_dataset
from bench.entry import REPO, fresh_work_dir, run_bench
from bench.model_runs import plan_config, prepare_federation, run_and_score
from bench.splits import partition_by_group, split_units
from bench.spread import spread
from coordinator.config import CoordinatorConfig, load_config_or_default

__all__ = ["EPSILONS", "run_privacy_audit", "main"]

#: Record-level epsilon per node per run of the sweep (None: DP off).
EPSILONS: tuple[float | None, ...] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, None)


def _audits(
    base: CoordinatorConfig,
    work: Path,
    variant: Variant,
    seeds: int,
    m: int,
    epsilon: float | None,
) -> list[CanaryAuditResult]:
    return [
        run_canary_audit(
            base, work / f"{variant}-{epsilon}-{seed}", variant=variant, m=m, seed=seed,
            epsilon=epsilon,
        )  # fmt: skip
        for seed in range(seeds)
    ]


def _audit_summary(results: list[CanaryAuditResult]) -> dict[str, Any]:
    """Bounds and claims over the seeds of one audited configuration."""
    row: dict[str, Any] = {"seeds": len(results), "m": results[0].curve.m}
    for part in ("curve", "model"):
        row[f"{part}_bound"] = spread([getattr(r, part).epsilon for r in results])
        claims = [getattr(r, f"{part}_claimed") for r in results]
        row[f"{part}_claimed"] = None if claims[0] is None else spread(claims)
    return row


def _utility(name: str, work: Path, seeds: int, seed: int) -> dict[str, Any]:
    """Harrell C and curve error at every epsilon on the data set's natural enterprises."""
    dataset = load_dataset(name)
    splits = split_units(dataset.units, seed=seed)
    base = load_config_or_default(None)
    fed = prepare_federation(
        name, "group", partition_by_group(splits.train), splits.test, dataset.spec, base,
        work / name, truth=dataset.truth,
    )  # fmt: skip
    rows = []
    for epsilon in EPSILONS:
        config = plan_config(base, fed.spec, fit="newton", epsilon=epsilon)
        runs = 1 if epsilon is None else seeds  # no noise without DP: one run says it all
        scores = [run_and_score(fed, config, f"eps-{epsilon}-{rep}") for rep in range(runs)]
        pooled = [s.curve_error for s in scores if s.curve_error is not None]
        truth = [s.curve_error_vs_truth for s in scores if s.curve_error_vs_truth is not None]
        rows.append(
            {
                "epsilon": epsilon,
                "runs": runs,
                "harrell_c": spread([s.harrell_c for s in scores]),
                "curve_error_vs_pooled": spread(pooled) if pooled else None,
                "curve_error_vs_truth": spread(truth) if truth else None,
            }
        )
        print(f"[{name}] eps={epsilon}: C {rows[-1]['harrell_c']}", flush=True)
    return {"dataset": name, "enterprises": fed.enterprise_sizes, "points": rows}


def run_privacy_audit(
    *, seeds: int, m: int, datasets: Sequence[str], out: Path, work: Path, seed: int = 0
) -> dict[str, Any]:
    """Everything above; writes the JSON and the PNGs next to ``out``."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    fresh_work_dir(work)
    base = load_config_or_default(None)
    variants: tuple[Variant, ...] = ("dp", "no_dp", "forgotten_noise")
    shipped: dict[str, list[CanaryAuditResult]] = {
        v: _audits(base, work / "shipped", v, seeds, m, None) for v in variants
    }
    for variant, results in shipped.items():
        print(f"[audit] shipped plan, {variant}: {_audit_summary(results)}", flush=True)
    sweep = []
    for epsilon in (e for e in EPSILONS if e is not None):
        results = _audits(base, work / "sweep", "dp", seeds, m, epsilon)
        sweep.append({"epsilon": epsilon, **_audit_summary(results)})
        print(f"[audit] epsilon {epsilon}: {sweep[-1]}", flush=True)
    utility = [_utility(name, work / "utility", seeds, seed) for name in datasets]
    report = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "method": "one-run audit (Steinke, Nasr, Jagielski 2023) via jax_privacy; "
        "95 % confidence; bounds at the plan's delta",
        "shipped_plan": {v: _audit_summary(r) for v, r in shipped.items()},
        "acceptance": _acceptance(shipped),
        "audit_sweep": sweep,
        "utility": utility,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _plot(report, out.with_suffix(".png"))
    _plot_scores(shipped, out.with_name(out.stem + "_scores.png"))
    return report


def _acceptance(shipped: Mapping[str, list[CanaryAuditResult]]) -> dict[str, bool]:
    """Issue 15's checks on every seed: the DP bound <= the claim; the control >= 3x the
    DP bound (and above the claim); the mutation above the claim."""
    checks = {}
    for part in ("curve", "model"):
        dp = shipped["dp"]
        claims = [getattr(r, f"{part}_claimed") for r in dp]
        bounds = [getattr(r, part).epsilon for r in dp]
        control = [getattr(r, part).epsilon for r in shipped["no_dp"]]
        mutant = [
            (getattr(r, part).epsilon, getattr(r, f"{part}_claimed"))
            for r in shipped["forgotten_noise"]
        ]
        checks[f"{part}_dp_bound_at_most_claimed"] = all(
            b <= c for b, c in zip(bounds, claims, strict=True)
        )
        checks[f"{part}_control_at_least_3x_dp"] = min(control) >= 3 * max(bounds) and min(
            control
        ) > max(claims)
        checks[f"{part}_mutation_caught"] = all(b > c for b, c in mutant)
    return checks


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = [e for e in EPSILONS if e is not None]
    no_dp_x = max(finite) * 2  # where "no DP" is drawn on the log axis
    figure, (c_axis, curve_axis, bound_axis) = plt.subplots(1, 3, figsize=(16, 4.8))
    for data in report["utility"]:
        xs = [p["epsilon"] or no_dp_x for p in data["points"]]
        for axis, key, style in (
            (c_axis, "harrell_c", "-"),
            (curve_axis, "curve_error_vs_pooled", "-"),
            (curve_axis, "curve_error_vs_truth", "--"),
        ):
            points = [(x, p[key]) for x, p in zip(xs, data["points"], strict=True) if p.get(key)]
            if not points:
                continue
            x = [a for a, _ in points]
            mean = [b["mean"] for _, b in points]
            low = [b["mean"] - b["min"] for _, b in points]
            high = [b["max"] - b["mean"] for _, b in points]
            label = data["dataset"] + (" vs truth" if key.endswith("truth") else "")
            axis.errorbar(
                x, mean, yerr=[low, high], marker="o", capsize=3, linestyle=style, label=label
            )
    c_axis.set_ylabel("Harrell C of the model (test units)")
    curve_axis.set_ylabel("curves: max |F - F_pooled| (dashed: |F - F_true|)")
    sweep = report["audit_sweep"]
    for part, marker in (("curve", "o"), ("model", "s")):
        claimed = [row[f"{part}_claimed"]["mean"] for row in sweep]
        bound = [row[f"{part}_bound"] for row in sweep]
        bound_axis.errorbar(
            claimed,
            [b["mean"] for b in bound],
            yerr=[[b["mean"] - b["min"] for b in bound], [b["max"] - b["mean"] for b in bound]],
            marker=marker,
            capsize=3,
            label=f"{part}: empirical lower bound",
        )
    top = max(row[f"{p}_claimed"]["max"] for row in sweep for p in ("curve", "model"))
    bound_axis.plot([0, top], [0, top], "k--", label="claimed epsilon (bound must stay below)")
    bound_axis.set_xlabel("claimed epsilon (from the receipts, at the plan's delta)")
    bound_axis.set_ylabel("empirical epsilon lower bound (95 %)")
    for axis in (c_axis, curve_axis):
        axis.set_xscale("log")
        axis.set_xlabel(f"record-level epsilon per run (rightmost: DP off, drawn at {no_dp_x:g})")
    for axis in (c_axis, curve_axis, bound_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("Privacy and utility: mean and min-max over noise seeds")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_scores(shipped: Mapping[str, list[CanaryAuditResult]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(11, 7))
    for row, variant in enumerate(("dp", "no_dp")):
        result = shipped[variant][0]
        included = np.array(result.included)
        for column, part in enumerate(("curve", "model")):
            scores = np.array(getattr(result, f"{part}_scores"))
            finite = np.isfinite(scores)
            axis = axes[row][column]
            bins = np.histogram_bin_edges(scores[finite], bins=30)
            axis.hist(scores[finite & included], bins=bins, alpha=0.6, label="included")
            axis.hist(scores[finite & ~included], bins=bins, alpha=0.6, label="excluded")
            bound = getattr(result, part).epsilon
            axis.set_title(f"{variant}, {part} scores: lower bound {bound:.2f}", fontsize=10)
            axis.legend(fontsize=8)
    figure.suptitle("Canary scores from the released outputs (seed 0)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.privacy_audit", description=__doc__)
    parser.add_argument("--seeds", type=int, default=3, help="coins and noise seeds per point")
    parser.add_argument("--canaries", type=int, default=300, help="m, canaries per audit")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "privacy_audit.json")
    parser.add_argument("--work", type=Path, default=REPO / ".fedrisk" / "bench-privacy-audit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_bench(
        "privacy audit",
        lambda: run_privacy_audit(
            seeds=args.seeds,
            m=args.canaries,
            datasets=args.datasets,
            out=args.out,
            work=args.work,
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
