"""`fedrisk-lab`: every party of a federation played on one machine.

Commands: ``synth`` (synthetic factories with known truth), ``federate`` (run enterprise
folders through Flower's Simulation Engine on this machine), ``demo`` (both, then judge
the result against the truth) and ``demo-deploy`` (the same with every party a separate
process over TLS). A real deployment uses ``fedrisk-node`` at each site and
``fedrisk-coordinator`` at the broker instead. Errors are mapped to exit codes in one
place, :func:`common.cli.run_cli`.

    >>> from harness.cli import build_app
    >>> " ".join(sorted(c.name for c in build_app().registered_commands))
    'demo demo-deploy federate synth'
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from common.cli import run_cli
from coordinator.config import load_config_or_default
from coordinator.progress import ProgressPrinter, print_node_epsilons
from harness.federation import run_local_federation
from protocols.app_identity import release

__all__ = ["FEDERATE_APPROVER", "build_app", "main"]

_console = Console()

#: Who ``federate --approve`` records as the approver ("... of <node name>").
FEDERATE_APPROVER = "fedrisk-lab federate --approve: the broker acting as enterprise IT"

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="coordinator.yaml (default: packaged demo)", readable=False
    ),
]


def _synth(
    out: Annotated[
        Path, typer.Argument(help="Directory for the enterprise folders.", readable=False)
    ],
    enterprises: Annotated[int, typer.Option(help="Number of enterprises.", min=1)] = 8,
    min_units: Annotated[int, typer.Option(help="Fewest units per enterprise.")] = 2000,
    max_units: Annotated[int, typer.Option(help="Most units per enterprise.")] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    delayed_entry: Annotated[bool, typer.Option(help="Left-truncated units.")] = False,
    parquet_every: Annotated[int, typer.Option(help="Every k-th site exports Parquet.")] = 0,
    config: ConfigOption = None,
    canary_audit: Annotated[
        Path | None,
        typer.Option(
            "--canary-audit",
            help="An audit directory of `fedrisk-audit canary plant`: factories for its "
            "test federation (the federation's spec, every unit marked no_canary).",
            readable=False,
        ),
    ] = None,
) -> None:
    """Write synthetic factories (CSV/Parquet + node.yaml each) and ground_truth.json."""
    from harness.audit_sites import audit_spec_of, synthetic_for_audit
    from harness.synthetic import SyntheticConfig, generate_federation

    synthetic = SyntheticConfig(
        n_enterprises=enterprises,
        min_units=min_units,
        max_units=max_units,
        seed=seed,
        delayed_entry=delayed_entry,
        parquet_every=parquet_every,
    )
    if canary_audit is not None:
        manifest = synthetic_for_audit(out, audit_spec_of(canary_audit), synthetic)
    else:
        spec = load_config_or_default(config).plan.model_spec
        manifest = generate_federation(out, spec, synthetic)
    _console.print(f"Wrote {len(manifest.node_configs)} enterprises under {out}")
    _console.print(f"Truth: {manifest.truth_path}; holdout: {manifest.holdout_path}")


def _federate(
    node_configs: Annotated[
        list[Path], typer.Argument(help="node.yaml of each enterprise.", readable=False)
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Run directory for outputs.", readable=False)
    ],
    config: ConfigOption = None,
    state: Annotated[
        Path | None,
        typer.Option(
            help="Coordinator ledger and key (default: 'coordinator' beside --out).", readable=False
        ),
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
    for node, verdict in (result.summary.inclusion_checks or {}).items():
        _console.print(f"  ledger inclusion check, {node}: {verdict}")


def _demo(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for data and outputs.", readable=False)
    ] = Path("demo-out"),
    enterprises: Annotated[int, typer.Option(help="Number of enterprises.", min=1)] = 8,
    seed: Annotated[int, typer.Option(help="Random seed of the synthetic factories.")] = 0,
    config: ConfigOption = None,
) -> None:
    """Synthetic factories -> federation on Flower -> curves and model judged against truth."""
    from harness.demo import run_demo

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
        Path, typer.Option("--out", "-o", help="Directory for every party's files.", readable=False)
    ] = Path("demo-deploy-out"),
    enterprises: Annotated[int, typer.Option(help="Number of enterprises (nodes).")] = 4,
    rounds: Annotated[int | None, typer.Option(help="Model rounds (default: the plan's).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the synthetic factories.")] = 0,
    config: ConfigOption = None,
) -> None:
    """Coordinator and N nodes as separate processes over TLS with node authentication."""
    from harness.deploy_demo import run_deploy_demo

    cfg = load_config_or_default(config)
    if rounds is not None:
        training = cfg.plan.training.model_copy(update={"rounds": rounds})
        cfg = cfg.model_copy(update={"plan": cfg.plan.model_copy(update={"training": training})})
    run_deploy_demo(out, cfg, enterprises=enterprises, seed=seed, console=_console)


def _flwr_home() -> Path:
    """Flower's home for local federations: $FLWR_HOME, else .fedrisk/flwr-home here."""
    return Path(os.environ.get("FLWR_HOME") or Path.cwd() / ".fedrisk" / "flwr-home")


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="fedrisk-lab",
        help="fedrisk lab: synthetic factories and whole federations on this machine.",
        no_args_is_help=True,
        add_completion=False,
        suggest_commands=False,  # click suggests already: once is enough
        pretty_exceptions_show_locals=False,
    )
    app.command("synth")(_synth)
    app.command("federate")(_federate)
    app.command("demo")(_demo)
    app.command("demo-deploy")(_demo_deploy)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (errors mapped to exit codes in ``common.cli.run_cli``)."""
    run_cli(build_app(), "fedrisk-lab", argv, release=release)


if __name__ == "__main__":
    main()
