"""The broker's deployment commands: ``start`` / ``stop`` the SuperLink, ``run`` a plan.

Registered on the ``fedrisk-coordinator`` app by :func:`coordinator.cli.build_app`; errors
map to exit codes in :func:`common.cli.run_cli` like every other command.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from coordinator.config import CoordinatorConfig
from coordinator.flower_nodes import NodeSync

__all__ = ["start_command", "stop_command", "run_command"]

_console = Console()

StateArg = Annotated[
    Path, typer.Argument(help="The coordinator state dir (from `init`).", readable=False)
]


def _report_sync(sync: NodeSync) -> None:
    if sync.registered:
        _console.print(f"SuperLink admits newly registered: {', '.join(sync.registered)}")
    if sync.unregistered:
        _console.print(
            f"SuperLink no longer admits revoked node(s): {', '.join(sync.unregistered)}"
        )
    for stranger in sync.strangers:
        _console.print(
            f"[bold red]WARNING[/]: the SuperLink held node key {stranger} that is not in the "
            "register (registered through Flower's open Control API?); it was removed"
        )


def start_command(
    state: StateArg,
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The one HTTPS port of the SuperLink.")] = 9092,
    detach: Annotated[
        bool, typer.Option("--detach", help="Return once it is up (stop it with `stop`).")
    ] = False,
) -> None:
    """Start the SuperLink: TLS, registered node keys only, no runtime installs."""
    from common.processes import stop_tree
    from coordinator.flower_nodes import sync_nodes
    from coordinator.superlink import record_ready, start_superlink

    process, info = start_superlink(state, host=host, port=port)
    try:
        _report_sync(sync_nodes(state))
        record_ready(state, info)
    except BaseException:
        stop_tree(process)
        raise
    _console.print(
        f"SuperLink up at https://{info.address} (PID {info.pid}); state and log in "
        f"{Path(info.log).parent}"
    )
    if detach:
        return
    _console.print("Serving until Ctrl-C or SIGTERM.")
    stopping = False

    def _stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stopping and process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        from coordinator.superlink import stop_superlink

        stop_superlink(state)
    if not stopping and process.returncode not in (None, 0):
        raise typer.Exit(process.returncode)


def stop_command(state: StateArg) -> None:
    """Stop the SuperLink that `start --detach` left running (by its recorded PID)."""
    from coordinator.superlink import stop_superlink

    info = stop_superlink(state)
    _console.print(f"Stopped the SuperLink (PID {info.pid})" if info else "No SuperLink running.")


def _resumed_config(state: Path, run_id: str | None) -> CoordinatorConfig | None:
    """The configuration of run ``run_id`` under ``state`` (None if it cannot be read:
    the resume itself then says why)."""
    from common.errors import FedriskError
    from coordinator.deployed_run import runs_dir
    from coordinator.run_request import read_run_request

    if run_id is None:
        return None
    try:
        return read_run_request(runs_dir(state) / run_id / "run_request.json").config
    except (FedriskError, OSError):
        return None


def run_command(
    state: StateArg,
    plan: Annotated[
        Path | None,
        typer.Argument(help="coordinator.yaml with the plan (not with --resume).", readable=False),
    ] = None,
    nodes: Annotated[
        int | None, typer.Option(help="Nodes to wait for (default: every registered node).")
    ] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the nodes.")] = 120.0,
    resume: Annotated[
        str | None, typer.Option(help="Resume this run id from its last completed round.")
    ] = None,
) -> None:
    """Submit a run to the running SuperLink and follow it, round by round."""
    from common.errors import ConfigError
    from coordinator.config import load_config_or_default
    from coordinator.deployed_run import submit_run
    from coordinator.progress import ProgressPrinter, print_node_epsilons

    if plan is not None and resume is not None:
        raise ConfigError("give either a PLAN or --resume RUN_ID, not both")
    config = None if resume else load_config_or_default(plan)
    shown = config or _resumed_config(state, resume)
    total = shown.plan.training.rounds + int(shown.plan.curve_release) if shown else 0
    result = submit_run(
        state,
        config,
        expected_nodes=nodes,
        node_wait_s=wait,
        resume=resume,
        progress=ProgressPrinter(_console, total),
        on_sync=_report_sync,
    )
    summary = result.summary
    _console.print(f"Run {summary.run_id} {summary.status}: {result.run_dir}")
    print_node_epsilons(_console, summary)
