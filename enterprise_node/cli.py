"""`fedrisk-node`: the enterprise's command line (init, check, approve, join, status, ledger,
verify-inclusion).

Commands stay thin and call the modules that do the work. :func:`main` hands the app to
:func:`common.cli.run_cli`, the only place that catches :class:`FedriskError`: it prints
the message and advice to stderr and exits with the error's code; Ctrl-C exits with 130.

Example (doctest)::

    >>> from enterprise_node.cli import build_app
    >>> sorted(command.name for command in build_app().registered_commands)
    ['approve', 'check', 'init', 'join', 'ledger', 'status', 'verify-inclusion']
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from common.atomic import atomic_write_text
from common.cli import run_cli
from common.errors import ConfigError
from common.tls import auth_key_fingerprint, make_auth_key
from enterprise_node.check import load_model_spec, load_plan_or_none, run_check
from enterprise_node.config import NodeConfig, load_node_config
from enterprise_node.ledger_view import show_ledger
from enterprise_node.node_ledger import node_key, node_key_id
from enterprise_node.pseudonym import load_or_create_site_secret
from enterprise_node.status import show_status
from ledger.signing import public_key_path
from protocols.app_identity import release

__all__ = ["build_app", "main", "init_node", "node_template"]


def node_template() -> str:
    """The node.yaml template shipped inside the package."""
    return resources.files("enterprise_node.templates").joinpath("node.yaml").read_text("utf-8")


def node_template_named(name: str) -> str:
    """The template with ``node.name`` set to ``name`` (init names a site after its folder,
    so that two sites never share the template's name on their own screens)."""
    lines = node_template().splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("  name: "):
            value, comment = line.split("#", 1)
            lines[i] = f"  name: {json.dumps(name or 'site')}".ljust(len(value)) + "#" + comment
            return "".join(lines)
    raise AssertionError("the node.yaml template lost its node.name line")


def init_node(directory: Path, *, force: bool = False, keys_only: bool = False) -> NodeConfig:
    """Create ``directory``/node.yaml, the site secret (0600) and the state dir (0700).

    An existing node.yaml is kept unless ``force``; an existing site secret is always kept
    (replacing it would change every pseudonym). ``keys_only`` keeps an existing node.yaml
    and makes only what is missing of the secret, state and keys (a site made by `synth`
    or by hand, to be deployed).
    """
    node_yaml = Path(directory) / "node.yaml"
    if keys_only:
        if not node_yaml.exists():
            raise ConfigError(f"{node_yaml}: not found; --keys-only needs an existing node.yaml")
    elif node_yaml.exists() and not force:
        raise ConfigError(
            f"{node_yaml}: already exists; not overwritten",
            advice="Pass --keys-only to add the missing secret and keys and keep node.yaml, "
            "or --force to replace node.yaml (the site secret and state are kept).",
        )
    else:
        atomic_write_text(node_yaml, node_template_named(Path(directory).resolve().name))
    config = load_node_config(node_yaml)
    config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    load_or_create_site_secret(config.site_secret_path)
    node_key(config)  # the ledger signing key (kept if it exists)
    make_auth_key(config.resolve(config.node.auth_key_file))  # kept if it exists
    return config


def _init_command(
    directory: Annotated[
        Path, typer.Argument(help="Directory for node.yaml, secrets and state.", readable=False)
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing node.yaml.")
    ] = False,
    keys_only: Annotated[
        bool,
        typer.Option(
            "--keys-only",
            help="Keep an existing node.yaml; add only the missing secret, state and keys.",
        ),
    ] = False,
) -> None:
    """Create node.yaml from the template, the site secret and the state directory."""
    config = init_node(directory, force=force, keys_only=keys_only)
    console = Console()
    if not keys_only:
        console.print(f"Wrote {Path(config.base_dir) / 'node.yaml'}")
    console.print(f"Site secret: {config.site_secret_path} (mode 0600; back it up, never share it)")
    console.print(f"State directory: {config.state_dir}")
    ledger_key = config.resolve(config.node.ledger_key_file)
    console.print(
        f"Ledger key: {ledger_key} (0600); give auditors {public_key_path(ledger_key)}; "
        f"node id {node_key_id(config)}"
    )
    auth_key = config.resolve(config.node.auth_key_file)
    public = Path(f"{auth_key}.pub").read_text(encoding="utf-8")
    console.print(
        f"Flower authentication key: {auth_key} (0600); give the broker {auth_key}.pub and "
        f"confirm its fingerprint with them out of band: {auth_key_fingerprint(public)}"
    )
    console.print(
        "Next: set data.path and data.columns in node.yaml, then run "
        "`fedrisk-node check --config node.yaml --spec coordinator.yaml`."
    )


def _check_command(
    data: Annotated[
        Path | None,
        typer.Argument(help="Data file (CSV/Parquet); overrides data.path.", readable=False),
    ] = None,
    config: Annotated[
        Path, typer.Option("--config", "-c", help="The node's node.yaml.", readable=False)
    ] = Path("node.yaml"),
    json_path: Annotated[
        Path | None,
        typer.Option("--json", help="Also write the report as JSON here.", readable=False),
    ] = None,
    spec: Annotated[
        Path | None,
        typer.Option(
            "--spec",
            "-s",
            help="The federation's coordinator.yaml or model spec (default: packaged demo spec).",
            readable=False,
        ),
    ] = None,
) -> None:
    """Validate and rate the site's data against the model spec. Sends nothing."""
    node_config = load_node_config(config)
    if data is not None:
        source = node_config.data.model_copy(update={"path": str(data.resolve())})
        node_config = node_config.model_copy(update={"data": source})
    console = Console()
    if spec is None:
        console.print(
            "[yellow]No --spec given: checking against the packaged demo model spec; pass "
            "your federation's coordinator.yaml or published spec with --spec.[/]"
        )
        with resources.as_file(
            resources.files("coordinator.templates").joinpath("coordinator.yaml")
        ) as default:
            model_spec, plan = load_model_spec(default), load_plan_or_none(default)
    else:
        model_spec, plan = load_model_spec(spec), load_plan_or_none(spec)
    run_check(node_config, model_spec, console=console, json_path=json_path, plan=plan)


def _status_command(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="The node's node.yaml.", readable=False)
    ] = Path("node.yaml"),
) -> None:
    """Show the privacy budget spent and left, and what has left the site."""
    show_status(load_node_config(config), Console())


def _ledger_command(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="The node's node.yaml.", readable=False)
    ] = Path("node.yaml"),
    last: Annotated[int, typer.Option("--last", help="How many recent entries to show.")] = 20,
) -> None:
    """Verify the node's signed ledger and show what left the site, spends and refusals."""
    show_ledger(load_node_config(config), Console(), last=last)


def _approve_command(
    plan_path: Annotated[
        Path, typer.Argument(help="The plan: coordinator.yaml or plan JSON.", readable=False)
    ],
    config: Annotated[
        Path, typer.Option("--config", "-c", help="The node's node.yaml.", readable=False)
    ] = Path("node.yaml"),
    by: Annotated[str, typer.Option(help="Who approves (recorded in the ledger).")] = "site IT",
    note: Annotated[str, typer.Option(help="A note kept with the approval.")] = "",
    yes: Annotated[bool, typer.Option("--yes", help="Approve without asking.")] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show what the plan would do and spend; record nothing."),
    ] = False,
    app_hash: Annotated[
        str | None,
        typer.Option(
            help="The app (FAB hash) to approve it with (default: the app installed here)."
        ),
    ] = None,
) -> None:
    """Show what a training plan will do here, then record its approval by hash, together
    with the app (the fedrisk code) it may run with."""
    from rich.table import Table

    from enterprise_node.approval import Approvals, load_plan, plan_summary, units_or_none
    from protocols.app_identity import installed_app_hash

    node_config = load_node_config(config)
    plan = load_plan(plan_path)
    app = app_hash or installed_app_hash()
    console = Console()
    table = Table(title="training plan", show_header=False)
    for label, text in plan_summary(plan, node_config, units_or_none(node_config, plan)):
        table.add_row(label, text)
    console.print(table)
    where = "given with --app-hash" if app_hash else "the fedrisk code installed at this site"
    console.print(f"app: {app}\n  ({where}; a run that ships other code is refused)")
    console.print(f"this installation: {release()}")
    approvals = Approvals(node_config)
    if approvals.is_approved(plan.digest, app):
        console.print(f"Plan {plan.digest[:12]} with app {app[:12]} is already approved here.")
        return
    if dry_run:
        console.print("Dry run: nothing recorded.")
        return
    if not yes and not sys.stdin.isatty():
        raise ConfigError(
            "approve: not at a terminal, so it cannot ask; nothing recorded",
            advice="Pass --yes to approve without asking, or --dry-run to only look.",
        )
    if not yes and not typer.confirm("Approve this plan?", default=False):
        console.print("Not approved; nothing recorded.")  # your choice, not an error
        return
    approvals.approve(plan, by=by, note=note, app_hash=app)
    console.print(
        f"Approved plan {plan.digest} with app {app[:12]} (recorded in {approvals.path} "
        "and the ledger)"
    )


def _join_command(
    superlink: Annotated[str, typer.Option(help="The broker's SuperLink, HOST:PORT.")],
    ca: Annotated[Path, typer.Option(help="The broker's CA certificate (ca.crt).", readable=False)],
    config: Annotated[
        Path, typer.Option("--config", "-c", help="The node's node.yaml.", readable=False)
    ] = Path("node.yaml"),
    runtime_port: Annotated[
        int | None,
        typer.Option(
            help="Loopback port between the SuperNode and its task processes (default: 9094, "
            "or the next free one when another node on this host has it)."
        ),
    ] = None,
    max_wait: Annotated[
        float | None,
        typer.Option(
            help="Give up after this many seconds without the SuperLink (default: never)."
        ),
    ] = None,
    ledger_service: Annotated[
        str | None,
        typer.Option(
            help="The coordinator's ledger service, HOST:PORT (TLS): check inclusion of this "
            "node's messages after every run it took part in."
        ),
    ] = None,
    coordinator_key: Annotated[
        Path | None,
        typer.Option(
            help="The coordinator's ledger public key (PEM), with --ledger-service.", readable=False
        ),
    ] = None,
    check_every: Annotated[
        float, typer.Option(help="Seconds between looks at the ledger service for ended runs.")
    ] = 10.0,
) -> None:
    """Start this site's SuperNode over TLS with its key; serve approved plans only; with
    --ledger-service, check inclusion of this node's messages whenever a run ends."""
    from common.errors import RunFailedError
    from enterprise_node.inclusion_watch import InclusionWatch, watch_settings
    from enterprise_node.supernode import REFUSED_EXIT, JoinSettings, join
    from enterprise_node.supernode import runtime_port as free_runtime_port

    node_config = load_node_config(config)
    port = free_runtime_port(runtime_port)
    settings = JoinSettings(superlink, ca, runtime_port=port, max_wait_s=max_wait)
    watching = watch_settings(ledger_service, coordinator_key, ca, check_every)
    console = Console()
    console.print(
        f"{node_config.node.name}: joining {superlink} (TLS, trusting {ca}); tasks run the "
        "fedrisk app installed here, for approved plans only; task processes talk to the "
        f"SuperNode on 127.0.0.1:{port}"
    )
    if watching is None:
        console.print(
            f"{node_config.node.name}: inclusion checks after runs: OFF (give --ledger-service "
            "and --coordinator-key, or run `fedrisk-node verify-inclusion` after each run)"
        )
        watch = None
    else:
        console.print(
            f"{node_config.node.name}: inclusion checks after runs: on, against "
            f"{watching.ledger_service} every {watching.every_s:g} s"
        )
        watch = InclusionWatch(
            node_config,
            watching.connect,
            every_s=watching.every_s,
            where=watching.ledger_service,
            say=lambda line: console.print(line, markup=False),
        ).start()
    try:
        outcome = join(config, settings, activation_wait_s=max_wait if max_wait else 180.0)
    finally:
        if watch is not None:
            watch.stop()
    if outcome.stopped:
        return
    if outcome.flower_code == REFUSED_EXIT:
        key = node_config.resolve(node_config.node.auth_key_file)
        raise RunFailedError(
            f"the SuperLink at {superlink} refused this node or could not be reached over TLS "
            f"(Flower code {outcome.flower_code})",
            advice=f"Ask the broker to register {key}.pub (`fedrisk-coordinator register-node`)"
            " and check that --ca is the broker's CA certificate.",
        )
    if outcome.code != 0:
        where = f", Flower code {outcome.flower_code}" if outcome.flower_code else ""
        raise RunFailedError(f"the SuperNode ended with exit code {outcome.code}{where}")


def _verify_inclusion_command(
    ledger_service: Annotated[
        str, typer.Option(help="The coordinator's ledger service, HOST:PORT (TLS).")
    ],
    ca: Annotated[Path, typer.Option(help="The broker's CA certificate (ca.crt).", readable=False)],
    coordinator_key: Annotated[
        Path,
        typer.Option(
            help="The coordinator's ledger public key (PEM), from the broker.", readable=False
        ),
    ],
    config: Annotated[
        Path, typer.Option("--config", "-c", help="The node's node.yaml.", readable=False)
    ] = Path("node.yaml"),
) -> None:
    """Check the coordinator's ledger includes every message this node sent in each run not
    yet checked, as a witness of its history; record each verdict in this node's ledger."""
    import grpc

    from common.errors import StateError
    from enterprise_node.inclusion import check_pending_runs
    from ledger.client import LedgerClient
    from ledger.signing import load_public_key

    node_config = load_node_config(config)
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
    key = load_public_key(coordinator_key)
    with LedgerClient(ledger_service, key, credentials=credentials) as client:
        verdicts = check_pending_runs(node_config, client)
    console = Console()
    if not verdicts:
        console.print(f"{node_config.node.name}: no run left to check")
    for run, verdict in verdicts.items():
        word = "ok" if verdict.ok else "FAILED"
        console.print(f"{node_config.node.name}: run {run}: {word}: {verdict.detail}")
    failed = [run for run, verdict in verdicts.items() if not verdict.ok]
    if failed:
        raise StateError(
            f"the coordinator's ledger failed this node's inclusion check for run(s) "
            f"{', '.join(failed)}",
            advice="Keep this node's ledger and state/witness: they are the evidence.",
        )


def build_app() -> typer.Typer:
    """The typer app with every command registered (no error handling here: see main)."""
    app = typer.Typer(
        name="fedrisk-node",
        help="fedrisk enterprise node: check data, take part in federated risk modelling.",
        no_args_is_help=True,
        add_completion=False,
        suggest_commands=False,  # click suggests already: once is enough
        pretty_exceptions_show_locals=False,  # locals may hold unit ids or the site secret
    )
    app.command("init")(_init_command)
    app.command("check")(_check_command)
    app.command("status")(_status_command)
    app.command("ledger")(_ledger_command)
    app.command("approve")(_approve_command)
    app.command("join")(_join_command)
    app.command("verify-inclusion")(_verify_inclusion_command)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (errors mapped to exit codes in ``common.cli.run_cli``)."""
    run_cli(build_app(), "fedrisk-node", argv, release=release)


if __name__ == "__main__":
    main()
