"""``make demo-deploy``: a real multi-process federation on loopback, every party separate.

Makes N synthetic factories and a broker, then runs what each party would run on its own
machine, each as its own process under ``/usr/bin/time -v`` (:mod:`harness.loopback`):
``fedrisk-coordinator start`` (the TLS SuperLink with node authentication), one
``fedrisk-node join`` per enterprise (a SuperNode with its registered key, trusting only the
broker's CA, serving approved plans through the app guard, checking inclusion of its
messages in the coordinator's ledger, served by ``fedrisk-coordinator serve-ledger``, when
a run ends), and ``fedrisk-coordinator run``. Then it judges the curves against the truth,
waits for every node's inclusion check, audits all ledgers, stops everything it started
(by PID), and reports wall time and peak memory per process kind.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from common.atomic import atomic_write_json, atomic_write_text
from common.errors import ConfigError, RunFailedError
from coordinator.config import CoordinatorConfig
from coordinator.run_summary import SUMMARY_FILE
from enterprise_node.approval import Approvals
from enterprise_node.config import load_node_config
from harness.loopback import (
    TIME,
    LoopbackDeployment,
    Party,
    ProcessUsage,
    inclusion_checks,
    prepare_broker,
    serve_coordinator_ledger,
)
from harness.synthetic import FederationManifest, SyntheticConfig, generate_federation
from protocols.app_identity import installed_app_hash

__all__ = ["run_deploy_demo", "make_world", "write_plan", "follow_log", "latest_run"]

MARKER = ".fedrisk-deploy-demo"


def _fresh(out: Path) -> None:
    if out.exists():
        if not (out / MARKER).exists():
            raise ConfigError(
                f"{out} exists and is not a fedrisk deploy demo; not deleting it",
                advice="Choose another --out directory.",
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).touch()


def write_plan(path: Path, config: CoordinatorConfig) -> Path:
    """The broker's coordinator.yaml (JSON is YAML) as the nodes approve it."""
    atomic_write_text(path, json.dumps(config.model_dump(mode="json"), indent=2) + "\n")
    return path


def make_world(
    out: Path, config: CoordinatorConfig, *, enterprises: int, seed: int, units: int = 1500
) -> FederationManifest:
    """Synthetic factories under ``out``/factories, the broker in ``out``/broker with every
    node key registered, and the plan approved at every node with the installed app."""
    manifest = generate_federation(
        out / "factories",
        config.plan.model_spec,
        SyntheticConfig(n_enterprises=enterprises, seed=seed, min_units=units, max_units=2 * units),
    )
    prepare_broker(out / "broker", list(manifest.node_configs))
    app = installed_app_hash()
    for path in manifest.node_configs:
        node = load_node_config(path)
        by = f"IT of {node.node.name}"
        Approvals(node).approve(config.plan, by=by, app_hash=app)
    write_plan(out / "coordinator.yaml", config)
    return manifest


def run_deploy_demo(
    out: Path,
    config: CoordinatorConfig,
    *,
    enterprises: int,
    seed: int,
    console: Console,
) -> dict:
    """Run the whole deployment on loopback; returns (and writes) the measured figures."""
    if not TIME.exists():
        raise ConfigError(f"{TIME} not found: GNU time measures each process's peak memory")
    from harness.demo import _audit, _print, evaluate_run

    out = Path(out).resolve()
    _fresh(out)
    console.rule(f"1. {enterprises} synthetic factories, the broker, keys and approvals")
    manifest = make_world(out, config, enterprises=enterprises, seed=seed)
    nodes = list(manifest.node_configs)
    console.print(
        f"Broker CA, server certificate and ledger key in {out / 'broker'}; {len(nodes)} node "
        f"keys registered; plan {config.plan.digest[:12]} approved at every node with the "
        "fedrisk app installed here"
    )
    deployment = LoopbackDeployment(out, out / "broker")
    started = time.monotonic()
    try:
        console.rule("2. SuperLink (TLS, node authentication) and SuperNodes, one process each")
        deployment.start_superlink()
        _party, ledger_service = serve_coordinator_ledger(deployment)
        for path in nodes:
            deployment.join(path)
        console.print(
            f"SuperLink at https://{deployment.address}; {len(nodes)} nodes joining; the "
            f"coordinator's ledger served at {ledger_service} (TLS): each node checks "
            "inclusion of its messages when a run ends"
        )
        console.rule("3. the run, submitted with `fedrisk-coordinator run`")
        runner = deployment.submit(out / "coordinator.yaml")
        follow_log(runner, console)
        if runner.process.returncode != 0:
            raise RunFailedError(
                f"the run failed (exit {runner.process.returncode}); see {runner.log} and "
                f"{out / 'broker' / 'superlink' / 'superlink.log'}"
            )
        run_dir = latest_run(out / "broker")
        console.rule("4. judged against the truth; inclusion checks; audit")
        evaluation = evaluate_run(
            run_dir, nodes, manifest.truth_path, manifest.holdout_path, config
        )
        _print(console, evaluation)
        checks = {
            name: ("ok: " if check.ok else "FAILED: ") + check.detail
            for name, check in inclusion_checks(nodes, run_dir.name).items()
        }
        for name, verdict in checks.items():
            console.print(f"  ledger inclusion check (by join, at run end), {name}: {verdict}")
        evaluation["inclusion_checks"] = checks
        evaluation["audit"] = _audit(out, nodes, console, coordinator=out / "broker")
    finally:
        deployment.stop_all()
    wall = round(time.monotonic() - started, 1)
    usage = deployment.usage()
    _print_usage(console, usage, wall)
    figures = {"wall_s": wall, "processes": [asdict(u) for u in usage], **evaluation}
    atomic_write_json(out / "deploy.json", figures)
    if evaluation["audit"]["verdict"] != "PASS":
        raise RunFailedError(f"the audit failed; see {out / 'audit' / 'audit.md'}")
    return figures


def follow_log(party: Party, console: Console) -> None:
    """Echo a party's output as it comes, until it ends."""
    shown = 0
    while True:
        done = party.process.poll() is not None
        text = party.log.read_text(encoding="utf-8", errors="replace") if party.log.exists() else ""
        lines = text.splitlines()
        for line in lines[shown:]:
            console.print(f"  {line}", markup=False, highlight=False)
        shown = len(lines)
        if done:
            return
        time.sleep(0.5)


def latest_run(broker: Path) -> Path:
    """The run directory under ``broker``/runs with the newest summary."""
    runs = sorted((broker / "runs").glob(f"*/{SUMMARY_FILE}"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise RunFailedError(f"no run summary under {broker / 'runs'}")
    return runs[-1].parent


def _print_usage(console: Console, usage: list[ProcessUsage], wall: float) -> None:
    table = Table(title=f"processes, each under /usr/bin/time -v; whole federation {wall:g} s")
    for column in ("kind", "process", "wall s", "peak RSS MB (time -v)", "peak tree RSS MB"):
        table.add_column(column)
    for u in usage:
        table.add_row(
            u.kind, u.name, f"{u.wall_s:g}", f"{u.max_rss_mb:g}", f"{u.peak_tree_rss_mb:g}"
        )
    console.print(table)
    console.print(
        "time -v's peak RSS is that of the largest single process among the party and the "
        "children it waited for; Flower's per-task processes (ServerApp, ClientApps) are "
        "not waited for by their parents, so the last column samples the RSS summed over the "
        "party's whole process tree every 0.5 s."
    )
