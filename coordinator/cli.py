"""`fedrisk-coordinator`: the broker's command line.

Commands: ``init`` (the broker's CA, server certificate and ledger key),
``register-node`` / ``list-nodes`` / ``revoke-node`` (the register of admitted node keys),
``start`` / ``stop`` (the TLS SuperLink) and ``run`` (submit a plan to it; ``--resume``),
``status`` (SuperLink, nodes, ledger, runs), ``curves`` and ``report`` (a run's exports),
``serve-ledger`` (the coordinator's signed ledger over gRPC, for auditors and nodes).
Federations played on one machine (synthetic factories, demos) are ``fedrisk-lab``'s
(:mod:`harness.cli`). Errors are mapped to exit codes in one place,
:func:`common.cli.run_cli`.

    >>> from coordinator.cli import build_app
    >>> " ".join(sorted(c.name for c in build_app().registered_commands))
    'curves init list-nodes register-node report revoke-node run serve-ledger start status stop'
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from common.cli import run_cli
from coordinator.deploy_cli import run_command, start_command, stop_command
from coordinator.inspect_cli import curves_command, report_command, status_command
from protocols.app_identity import release

__all__ = ["build_app", "main"]

_console = Console()


def _init(
    state: Annotated[
        Path, typer.Argument(help="The coordinator state dir to create.", readable=False)
    ],
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


StateArg = Annotated[
    Path, typer.Argument(help="The coordinator state dir (from `init`).", readable=False)
]


def _register_node(
    state: StateArg,
    key: Annotated[
        Path, typer.Argument(help="The node's authentication public key (.pub).", readable=False)
    ],
    name: Annotated[str, typer.Option(help="The broker's label for this enterprise.")],
) -> None:
    """Admit a node's ECDSA P-384 authentication key."""
    from coordinator.node_registry import NodeRegistry

    node = NodeRegistry(state).register(key, name)
    _console.print(f"Registered {node.name}: {node.fingerprint}")


def _list_nodes(state: StateArg) -> None:
    """Show admitted and revoked nodes, each with its whole key fingerprint (to compare
    with the one the node's `init` printed)."""
    import datetime as dt

    from rich.markup import escape

    from coordinator.node_registry import NodeRegistry

    nodes = NodeRegistry(state).nodes()
    _console.print(escape(f"nodes registered in {state}: {len(nodes)}"))
    for node in nodes:
        when = dt.datetime.fromtimestamp(node.registered_at, dt.UTC).strftime("%Y-%m-%d %H:%M")
        status = "active" if node.active else "revoked"
        _console.print(escape(f"  {node.name}  {status}, registered {when} UTC"))
        _console.print(escape(f"    {node.fingerprint}"), soft_wrap=True)


def _revoke_node(
    state: StateArg,
    node: Annotated[str, typer.Argument(help="Name or fingerprint of the node to revoke.")],
) -> None:
    """Withdraw a node's admission (its entry is kept, marked revoked)."""
    from coordinator.node_registry import NodeRegistry

    revoked = NodeRegistry(state).revoke(node)
    _console.print(f"Revoked {revoked.name}: {revoked.fingerprint}")


def _serve_ledger(
    state: Annotated[
        Path, typer.Argument(help="The coordinator state dir (ledger/, keys/).", readable=False)
    ],
    port: Annotated[int, typer.Option(help="Port (0: any free port).")] = 0,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    tls: Annotated[
        bool,
        typer.Option(help="Serve over TLS with the broker's server certificate (state/tls)."),
    ] = False,
) -> None:
    """Serve the coordinator's signed ledger over gRPC until Ctrl-C or SIGTERM, from before
    the first run on (nodes check inclusion against it, in `join` or `verify-inclusion`;
    auditors read it)."""
    import signal
    import threading

    import grpc

    from common.errors import ConfigError
    from common.tls import TlsFiles
    from coordinator.coordinator_ledger import coordinator_key_paths
    from ledger.service import serve_ledger

    ledger = state / "ledger"
    if not coordinator_key_paths(state)[1].exists():
        raise ConfigError(
            f"{state}: no coordinator ledger key here",
            advice="Give the coordinator's state dir (made by `fedrisk-coordinator init`).",
        )
    credentials = None
    if tls:
        files = TlsFiles(state / "tls")
        credentials = grpc.ssl_server_credentials(
            [(files.server_key.read_bytes(), files.server_cert.read_bytes())]
        )
    # Ctrl-C and SIGTERM (systemd's stop) end the service cleanly; set explicitly, since a
    # process started with SIGINT ignored (as a child of one that ignores it) keeps that
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    server = serve_ledger(ledger, host=host, port=port, credentials=credentials)
    how = "TLS" if tls else "plaintext"
    typer.echo(f"ledger service at {server.address} ({how}): {ledger} (Ctrl-C to stop)")
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="fedrisk-coordinator",
        help="fedrisk coordinator: federated industry risk curves and models.",
        no_args_is_help=True,
        add_completion=False,
        suggest_commands=False,  # click suggests already: once is enough
        pretty_exceptions_show_locals=False,
    )
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
    run_cli(build_app(), "fedrisk-coordinator", argv, release=release)


if __name__ == "__main__":
    main()
