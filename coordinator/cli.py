"""`fedrisk-coordinator`: the broker's command line.

Commands: ``synth`` (synthetic factories with known truth), ``federate`` (run enterprise
folders through Flower on this machine), ``demo`` (both, then judge the result),
``demo-deploy`` (the same as separate processes over TLS),
``serve-ledger`` (the coordinator's signed ledger over gRPC, for auditors and nodes),
``init`` (the broker's CA, server certificate and ledger key), ``register-node`` /
``list-nodes`` / ``revoke-node`` (the register of admitted node keys), ``start`` /
``stop`` (the TLS SuperLink) and ``run`` (submit a plan to it; ``--resume``).
``status`` (SuperLink, nodes, ledger, runs), ``curves`` and ``report`` (a run's
exports). Errors are mapped to exit codes in one place, :func:`common.cli.run_cli`.

    >>> from coordinator.cli import build_app
    >>> names = sorted(c.name for c in build_app().registered_commands)
    >>> " ".join(names[:8])
    'curves demo demo-deploy federate init list-nodes register-node report'
    >>> " ".join(names[8:])
    'revoke-node run serve-ledger start status stop synth'
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from common.cli import run_cli
from coordinator.config import CoordinatorConfig, load_coordinator_config
from coordinator.deploy_cli import run_command, start_command, stop_command
from coordinator.federation import run_local_federation
from coordinator.inspect_cli import curves_command, report_command, status_command
from coordinator.progress import ProgressPrinter, print_node_epsilons

__all__ = ["build_app", "main", "load_config_or_default"]

_console = Console()


def load_config_or_default(path: Path | None) -> CoordinatorConfig:
    """coordinator.yaml from ``path``, or the packaged default (configs/coordinator.yaml)."""
    if path is not None:
        return load_coordinator_config(path)
    default = resources.files("coordinator.templates").joinpath("coordinator.yaml")
    with resources.as_file(default) as file:
        return load_coordinator_config(file)


#: Who ``federate --approve`` records as the approver ("... of <node name>").
FEDERATE_APPROVER = "fedrisk-coordinator federate --approve: the broker acting as enterprise IT"

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="coordinator.yaml (default: packaged demo)")
]


def _synth(
    out: Annotated[Path, typer.Argument(help="Directory for the enterprise folders.")],
    enterprises: Annotated[int, typer.Option(help="Number of enterprises.")] = 8,
    min_units: Annotated[int, typer.Option(help="Fewest units per enterprise.")] = 2000,
    max_units: Annotated[int, typer.Option(help="Most units per enterprise.")] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    delayed_entry: Annotated[bool, typer.Option(help="Left-truncated units.")] = False,
    parquet_every: Annotated[int, typer.Option(help="Every k-th site exports Parquet.")] = 0,
    config: ConfigOption = None,
) -> None:
    """Write synthetic factories (CSV/Parquet + node.yaml each) and ground_truth.json."""
    from models.synthetic import SyntheticConfig, generate_federation

    spec = load_config_or_default(config).plan.model_spec
    manifest = generate_federation(
        out,
        spec,
        SyntheticConfig(
            n_enterprises=enterprises,
            min_units=min_units,
            max_units=max_units,
            seed=seed,
            delayed_entry=delayed_entry,
            parquet_every=parquet_every,
        ),
    )
    _console.print(f"Wrote {len(manifest.node_configs)} enterprises under {out}")
    _console.print(f"Truth: {manifest.truth_path}; holdout: {manifest.holdout_path}")


def _federate(
    node_configs: Annotated[list[Path], typer.Argument(help="node.yaml of each enterprise.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory for outputs.")],
    config: ConfigOption = None,
    state: Annotated[
        Path | None,
        typer.Option(help="Coordinator ledger and key (default: 'coordinator' beside --out)."),
    ] = None,
    approve: Annotated[
        bool,
        typer.Option(
            "--approve",
            help="Approve the plan at every node given; you act as each node's IT.",
        ),
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the crashed run in --out from its last completed round "
            "(same run id and configuration, from its run_request.json).",
        ),
    ] = False,
) -> None:
    """Run a federation of local enterprise folders through Flower on this machine.

    Every node must have approved the plan (`fedrisk-node approve`), or ``--approve``.
    With ``--resume`` the run in ``--out`` continues after a crash; no round is counted
    twice."""
    if resume and config is None:
        from coordinator.run_request import read_run_request

        request_path = out / "run_request.json"
        if not request_path.exists():
            from common.errors import StateError

            raise StateError(f"{request_path} is missing: there is no run to resume in {out}")
        cfg = read_run_request(request_path).config
    else:
        cfg = load_config_or_default(config)
    if approve:
        from enterprise_node.approval import approve_at_nodes

        names = approve_at_nodes(node_configs, cfg.plan, by=FEDERATE_APPROVER)
        _console.print(
            f"Approved plan {cfg.plan.digest[:12]} as enterprise IT at "
            f"{len(names)} node(s) ({', '.join(names) or 'all had approved it'})"
        )
    printer = ProgressPrinter(_console, cfg.plan.training.rounds + int(cfg.plan.curve_release))
    result = run_local_federation(
        node_configs,
        cfg,
        out,
        flwr_home=_flwr_home(),
        progress=printer,
        coordinator_dir=state,
        resume=resume,
    )
    _console.print(f"[green]Run completed[/]: outputs in {result.run_dir}")
    print_node_epsilons(_console, result.summary)
    for node, verdict in result.summary.get("inclusion_checks", {}).items():
        _console.print(f"  ledger inclusion check, {node}: {verdict}")


def _init(
    state: Annotated[Path, typer.Argument(help="The coordinator state dir to create.")],
    host: Annotated[
        list[str] | None,
        typer.Option(help="Host name or IP nodes dial (repeatable); localhost is always in."),
    ] = None,
) -> None:
    """Create the broker's CA, the server certificate and the ledger signing key (kept if
    they exist; private files 0600)."""
    from common.tls import init_tls
    from coordinator.coordinator_ledger import coordinator_key_paths
    from ledger.signing import generate_key_pair

    files, made = init_tls(state / "tls", list(host or []))
    private, public = coordinator_key_paths(state)
    if not private.exists():
        generate_key_pair(private, public)
        made.append("ledger key")
    _console.print(f"Created: {', '.join(made) or 'nothing (all present, kept)'}")
    _console.print(f"CA certificate for nodes: {files.ca_cert} (keep {files.ca_key} offline)")
    _console.print(f"Server certificate: {files.server_cert}; key {files.server_key} (0600)")
    _console.print(f"Ledger key: {private} (0600); give auditors and nodes {public}")


StateArg = Annotated[Path, typer.Argument(help="The coordinator state dir (from `init`).")]


def _register_node(
    state: StateArg,
    key: Annotated[Path, typer.Argument(help="The node's authentication public key (.pub).")],
    name: Annotated[str, typer.Option(help="The broker's label for this enterprise.")],
) -> None:
    """Admit a node's ECDSA P-384 authentication key."""
    from coordinator.node_registry import NodeRegistry

    node = NodeRegistry(state).register(key, name)
    _console.print(f"Registered {node.name}: {node.fingerprint}")


def _list_nodes(state: StateArg) -> None:
    """Show admitted and revoked nodes."""
    import datetime as dt

    from rich.table import Table

    from coordinator.node_registry import NodeRegistry

    table = Table(title=f"nodes registered in {state}")
    for column in ("name", "fingerprint", "registered", "status"):
        table.add_column(column)
    for node in NodeRegistry(state).nodes():
        when = dt.datetime.fromtimestamp(node.registered_at, dt.UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(node.name, node.fingerprint, when, "active" if node.active else "revoked")
    _console.print(table)


def _revoke_node(
    state: StateArg,
    node: Annotated[str, typer.Argument(help="Name or fingerprint of the node to revoke.")],
) -> None:
    """Withdraw a node's admission (its entry is kept, marked revoked)."""
    from coordinator.node_registry import NodeRegistry

    revoked = NodeRegistry(state).revoke(node)
    _console.print(f"Revoked {revoked.name}: {revoked.fingerprint}")


def _serve_ledger(
    state: Annotated[Path, typer.Argument(help="The coordinator state dir (ledger/, keys/).")],
    port: Annotated[int, typer.Option(help="Loopback port (0: any free port).")] = 0,
) -> None:
    """Serve the coordinator's signed ledger over gRPC on loopback until Ctrl-C."""
    import time

    from common.errors import ConfigError
    from ledger.service import serve_ledger

    ledger = state / "ledger"
    if not (ledger / "tree_heads.jsonl").exists():
        raise ConfigError(f"{ledger}: no signed ledger here")
    server = serve_ledger(ledger, port=port)
    typer.echo(f"ledger service at {server.address}: {ledger} (Ctrl-C to stop)")
    try:
        while True:
            time.sleep(3600)
    finally:
        server.stop()


def _demo(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for data and outputs.")
    ] = Path("demo-out"),
    enterprises: Annotated[int, typer.Option(help="Number of enterprises.")] = 8,
    seed: Annotated[int, typer.Option(help="Random seed of the synthetic factories.")] = 0,
    config: ConfigOption = None,
) -> None:
    """Synthetic factories -> federation on Flower -> curves and model judged against truth."""
    from coordinator.demo import run_demo

    run_demo(
        out,
        load_config_or_default(config),
        enterprises=enterprises,
        seed=seed,
        flwr_home=_flwr_home(),
        console=_console,
    )


def _demo_deploy(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for every party's files.")
    ] = Path("demo-deploy-out"),
    enterprises: Annotated[int, typer.Option(help="Number of enterprises (nodes).")] = 4,
    rounds: Annotated[int | None, typer.Option(help="Model rounds (default: the plan's).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the synthetic factories.")] = 0,
    config: ConfigOption = None,
) -> None:
    """Coordinator and N nodes as separate processes over TLS with node authentication."""
    from coordinator.deploy_demo import run_deploy_demo

    cfg = load_config_or_default(config)
    if rounds is not None:
        training = cfg.plan.training.model_copy(update={"rounds": rounds})
        cfg = cfg.model_copy(update={"plan": cfg.plan.model_copy(update={"training": training})})
    run_deploy_demo(out, cfg, enterprises=enterprises, seed=seed, console=_console)


def _flwr_home() -> Path:
    import os

    return Path(os.environ.get("FLWR_HOME") or Path.cwd() / ".fedrisk" / "flwr-home")


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="fedrisk-coordinator",
        help="fedrisk coordinator: federated industry risk curves and models.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_show_locals=False,
    )
    app.command("synth")(_synth)
    app.command("federate")(_federate)
    app.command("demo")(_demo)
    app.command("demo-deploy")(_demo_deploy)
    app.command("serve-ledger")(_serve_ledger)
    app.command("init")(_init)
    app.command("register-node")(_register_node)
    app.command("list-nodes")(_list_nodes)
    app.command("revoke-node")(_revoke_node)
    app.command("status")(status_command)
    app.command("curves")(curves_command)
    app.command("report")(report_command)
    app.command("start")(start_command)
    app.command("stop")(stop_command)
    app.command("run")(run_command)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (errors mapped to exit codes in ``common.cli.run_cli``)."""
    run_cli(build_app(), "fedrisk-coordinator", argv)


if __name__ == "__main__":
    main()
