"""`make demo`: synthetic factories -> a whole federation on Flower -> judged against truth
-> audited -> an enterprise's view of its premiums -> the product sheet for insurers.

Prints, per segment, the federated DP curve's max |F(t) error| against the truth and
against the pooled non-private life table; Harrell's C on the risk score F(t_J) (the
C-index), Antolini's C_td on the curves and the IBS of the federated DP model next to a
centrally trained non-private model; and epsilon per node.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from common.atomic import atomic_write_json
from common.errors import ConfigError, StateError
from coordinator.config import CoordinatorConfig
from coordinator.curve_plot import plot_curves
from coordinator.outputs import load_global_model
from coordinator.progress import ProgressPrinter
from coordinator.run_summary import SUMMARY_FILE, require_summary
from enterprise_node.approval import approve_at_nodes
from harness.demo_product import SHEET_DIR, enterprise_view, product_sheet, shipped_product
from harness.evaluation import (
    curve_errors,
    load_curves,
    pooled_curves,
    pooled_frame,
    score_arrays,
    score_model,
)
from harness.federation import run_local_federation
from harness.synthetic import SyntheticConfig, generate_federation
from models.central import train_central
from models.metrics import FIGURE_NAMES
from privacy.epsilon_wording import DIFFERENT_DELTAS, epsilon_at, epsilon_number

__all__ = ["CENTRAL_EPOCHS", "run_demo", "evaluate_run"]

#: Training of the non-private central baseline: a strong reference (near the oracle's
#: C-index on the demo federation), not a matched budget. Tuned on pooled synthetic data:
#: 20 epochs of Adam at lr 0.1 with batch 256 beat 10 epochs and smaller learning rates.
CENTRAL_EPOCHS = 20
CENTRAL_BATCH_SIZE = 256
CENTRAL_LEARNING_RATE = 0.1


def _fresh_factories(path: Path) -> None:
    """Remove a previous demo's synthetic factories (only if they are ours)."""
    if path.exists():
        if not (path / "ground_truth.json").exists():
            raise ConfigError(
                f"{path} exists and is not a fedrisk synthetic federation; not deleting it",
                advice="Choose another --out directory.",
            )
        shutil.rmtree(path)


def _fresh_coordinator(path: Path) -> None:
    """Remove a previous demo's coordinator ledger and key (only if they are ours): the
    demo builds a new world each time, whose node ledgers would not match the old one."""
    if path.exists():
        if {p.name for p in path.iterdir()} - {"ledger", "keys"}:
            raise ConfigError(
                f"{path} holds more than a demo coordinator's ledger and keys; not deleting it",
                advice="Choose another --out directory.",
            )
        shutil.rmtree(path)


def run_demo(
    out: Path,
    config: CoordinatorConfig,
    *,
    enterprises: int,
    seed: int,
    flwr_home: Path,
    console: Console,
) -> dict:
    """Generate, federate, evaluate, print; returns the evaluation written to evaluation.json."""
    out = Path(out).resolve()
    factories = out / "factories"
    _fresh_factories(factories)
    _fresh_coordinator(out / "coordinator")
    console.rule("1. synthetic factories")
    manifest = generate_federation(
        factories,
        config.plan.model_spec,
        SyntheticConfig(n_enterprises=enterprises, seed=seed, parquet_every=4),
    )
    console.print(f"{len(manifest.node_configs)} enterprises under {factories}")
    approve_at_nodes(manifest.node_configs, config.plan, by="demo: enterprise IT")
    console.print(
        f"Approved plan {config.plan.digest[:12]} at each enterprise, acting as its IT "
        "(in a deployment each site runs `fedrisk-node approve`)"
    )
    console.rule("2. federation on Flower (Simulation Engine)")
    printer = ProgressPrinter(console, config.plan.training.rounds + int(config.plan.curve_release))
    result = run_local_federation(
        list(manifest.node_configs), config, out / "run", flwr_home=flwr_home, progress=printer
    )
    console.rule("3. judged against the truth")
    evaluation = evaluate_run(
        result.run_dir,
        list(manifest.node_configs),
        manifest.truth_path,
        manifest.holdout_path,
        config,
    )
    _plot_against_truth(result.run_dir, manifest.truth_path)
    _print(console, evaluation)
    console.rule("4. audited from the ledgers")
    evaluation["audit"] = _audit(out, list(manifest.node_configs), console)
    product, pool = shipped_product()
    console.rule("5. an enterprise's view: its risk and premiums (fedrisk-node risk)")
    enterprise_view(result.run_dir, list(manifest.node_configs), product, console)
    console.rule("6. the product sheet for insurers (fedrisk-coordinator pool)")
    evaluation["product"] = product_sheet(result.run_dir, out, product, pool, console)
    atomic_write_json(result.run_dir / "evaluation.json", evaluation)
    console.print(
        f"Outputs: {result.run_dir} (curves.json/csv/png, curves_vs_truth.png, "
        "global_model.npz, summary.json, evaluation.json); audit report in "
        f"{out / 'audit'}; product sheet in {out / SHEET_DIR}"
    )
    if evaluation["audit"]["verdict"] != "PASS":
        raise StateError(
            f"the audit of the demo's ledgers failed: {evaluation['audit']['errors']} error(s); "
            f"see {out / 'audit' / 'audit.md'}"
        )
    return evaluation


def _audit(
    out: Path, node_configs: list[Path], console: Console, *, coordinator: Path | None = None
) -> dict:
    """`fedrisk-audit verify` on the demo's ledgers (the coordinator's, in ``coordinator``
    (default ``out``/coordinator), and every node's), from the public keys only; the
    reports go to ``out``/audit."""
    from auditor.report import write_reports
    from auditor.verify import audit
    from coordinator.coordinator_ledger import coordinator_key_paths
    from enterprise_node.config import load_node_config
    from enterprise_node.node_ledger import LEDGER_DIR
    from ledger.signing import public_key_path

    coordinator = coordinator or out / "coordinator"
    ledgers, keys = [coordinator / "ledger"], [coordinator_key_paths(coordinator)[1]]
    for path in node_configs:
        config = load_node_config(path)
        ledgers.append(config.state_dir / LEDGER_DIR)
        keys.append(public_key_path(config.resolve(config.node.ledger_key_file)))
    result = audit(ledgers, keys, coordinator_key=keys[0])
    reports = write_reports(result, out / "audit")
    colour = "green" if result.verdict == "PASS" else "red"
    console.print(
        f"[{colour}]Audit {result.verdict}[/]: {len(ledgers)} ledgers verified from public keys; "
        f"{len(result.errors)} error(s), {len(result.warnings)} warning(s); claimed vs "
        f"recomputed (dp-accounting) epsilon, largest relative difference "
        f"{result.largest_relative_difference:.2e}. Same as: fedrisk-audit verify "
        f"{coordinator / 'ledger'} {out}/factories/*/state/ledger --coordinator-key "
        f"{keys[0]} --keys ..."
    )
    return {
        "verdict": result.verdict,
        "exit_code": int(result.exit_code),
        "errors": len(result.errors),
        "warnings": len(result.warnings),
        "largest_relative_difference": result.largest_relative_difference,
        "reports": [str(p) for p in reports],
    }


def evaluate_run(
    run_dir: Path,
    node_configs: list[Path],
    truth_path: Path,
    holdout_path: Path,
    config: CoordinatorConfig,
) -> dict:
    """Curve errors, model scores (federated DP vs central non-private) and epsilon per node."""

    spec = config.plan.model_spec
    frame = pooled_frame(node_configs, spec)
    pooled = pooled_curves(frame, spec, censor_weight=config.curves.censor_weight)
    errors = curve_errors(load_curves(run_dir / "curves.json"), pooled, truth_path)
    holdout = pd.read_csv(holdout_path)
    federated = score_arrays(load_global_model(run_dir), holdout, spec)
    start = time.monotonic()
    central_settings = config.plan.training.model_copy(
        update={"batch_size": CENTRAL_BATCH_SIZE, "learning_rate": CENTRAL_LEARNING_RATE}
    )
    central_model = train_central(
        frame, spec, central_settings, epochs=CENTRAL_EPOCHS, seed=config.plan.training.seed
    )
    central = score_model(central_model, holdout, spec)
    summary = require_summary(run_dir / SUMMARY_FILE)
    nodes = summary.privacy.nodes
    return {
        "curve_errors": [asdict(e) for e in errors],
        "federated_dp": asdict(federated),
        "central_nonprivate": asdict(central),
        "central_seconds": round(time.monotonic() - start, 2),
        "epsilon_per_node": {n: v.epsilon_run for n, v in nodes.items()},
        "epsilon_total_per_node": {n: v.epsilon_total for n, v in nodes.items()},
        "delta_total_per_node": {n: v.delta_total for n, v in nodes.items()},
        "delta": config.plan.privacy.record.delta,
        "refusals": summary.refusals,
        "run_seconds": summary.seconds,
        "secure_aggregation": config.plan.secure_aggregation,
        "curve_noise": summary.privacy.curve_noise,
    }


def _plot_against_truth(run_dir: Path, truth_path: Path) -> None:
    """curves_vs_truth.png: the released curves with the federation's true F(t) overlaid."""
    import json

    truth = json.loads(truth_path.read_text(encoding="utf-8"))["segments"]
    overlay = {name: np.asarray(seg["F_federation"], dtype=float) for name, seg in truth.items()}
    plot_curves(
        run_dir / "curves_vs_truth.png", load_curves(run_dir / "curves.json"), truth=overlay
    )


def _print(console: Console, evaluation: dict) -> None:
    curves = Table(title="Industry curves: max |F(t) error| over the grid")
    for column in ("segment", "vs truth", "vs pooled non-private"):
        curves.add_column(column)
    for row in evaluation["curve_errors"]:
        curves.add_row(row["segment"], f"{row['vs_truth']:.4f}", f"{row['vs_pooled']:.4f}")
    console.print(curves)
    models = Table(title="Failure-risk model on a held-out population")
    figures = ("harrell_c", "c_td", "ibs")
    for column in ("model", *(FIGURE_NAMES[f] for f in figures)):
        models.add_column(column)
    for name, key in (
        ("federated, DP", "federated_dp"),
        ("central, non-private", "central_nonprivate"),
    ):
        score = evaluation[key]
        models.add_row(name, *(f"{score[f]:.4f}" for f in figures))
    console.print(models)
    console.print(_epsilon_table(evaluation))
    console.print(DIFFERENT_DELTAS)
    noise = evaluation.get("curve_noise") or {}
    if evaluation.get("secure_aggregation") and "epsilon_realised" in noise:
        console.print(
            "Secure aggregation: the coordinator saw only sums of model updates and "
            f"histograms. Curve noise: {noise['shares_present']} shares of std "
            f"{noise['share_std']:.2f} (total std {noise['total_noise_std']:.2f}); the curve "
            f"release's epsilon is {noise['epsilon_charged_per_node']:.3f} as charged (planned "
            f"for {noise['shares_planned']} shares) and {noise['epsilon_realised']:.3f} with "
            f"the shares present, both at the plan's delta {noise['delta']:g}."
        )


def _epsilon_table(evaluation: dict) -> Table:
    """Each node's epsilon this run and lifetime; a column's delta in its header when its
    nodes share one (the cells stay numbers), else in each cell."""
    epsilons = evaluation["epsilon_per_node"]
    lifetimes = evaluation["epsilon_total_per_node"]
    deltas = evaluation.get("delta_total_per_node", {})
    shared = set(deltas.values()) if len(deltas) == len(lifetimes) else set()
    (cap_delta,) = shared if len(shared) == 1 else (None,)
    lifetime_header = "lifetime, at each node's cap delta"
    if cap_delta is not None:
        lifetime_header = f"lifetime epsilon at delta {cap_delta:g} (the caps')"
    table = Table(title="Record-level epsilon per node")
    table.add_column("node")
    table.add_column(f"this run: epsilon at delta {evaluation['delta']:g} (the plan's)")
    table.add_column(lifetime_header)
    for node, value in epsilons.items():
        lifetime, delta = lifetimes[node], deltas.get(node)
        shown = epsilon_number(lifetime)
        if cap_delta is None and delta is not None:
            shown = epsilon_at(lifetime, delta)
        table.add_row(node, epsilon_number(value), shown)
    return table
