"""The broker's read-only commands: ``status`` of a coordinator, a run's ``curves`` and its
``report``.

Registered on the ``fedrisk-coordinator`` app by :func:`coordinator.cli.build_app`; errors
map to exit codes in :func:`common.cli.run_cli` like every other command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["status_command", "curves_command", "report_command"]

_console = Console()

RunArg = Annotated[
    Path,
    typer.Argument(
        help="A run directory, or a coordinator state dir (then --run).", readable=False
    ),
]
RunOption = Annotated[
    str | None,
    typer.Option("--run", help="Run id under STATE/runs (default: the newest completed run)."),
]


def status_command(
    state: Annotated[
        Path, typer.Argument(help="The coordinator state dir (from `init`).", readable=False)
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """SuperLink, registered nodes, the ledger and the runs (newest first)."""
    from coordinator.status import print_status, read_status

    status = read_status(state)
    if as_json:
        typer.echo(json.dumps(status.to_json(), indent=2, sort_keys=True))
    else:
        print_status(_console, status)


def curves_command(
    run: RunArg,
    run_id: RunOption = None,
    fmt: Annotated[str, typer.Option("--format", help="json, csv or png.")] = "json",
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output file (default: JSON/CSV to stdout, PNG to curves-RUN.png).", readable=False
        ),
    ] = None,
    segment: Annotated[
        list[str] | None, typer.Option(help="Only this segment (repeatable).")
    ] = None,
    include_withheld: Annotated[
        bool,
        typer.Option(
            "--include-withheld",
            help="Also segments the publication rules withheld, marked as not published.",
        ),
    ] = False,
) -> None:
    """Export a completed run's risk curves: F over equipment age with its 95 % band."""
    from coordinator.curve_export import (
        WITHHELD_WARNING,
        export_curves,
        run_curves,
        select_segments,
    )
    from coordinator.run_view import find_run

    view = find_run(run, run_id)
    curves = select_segments(
        view, run_curves(view, include_withheld=include_withheld), segment or []
    )
    path, text = export_curves(view, curves, fmt, out)
    if any(not c.published for c in curves):
        print(f"warning: {WITHHELD_WARNING}", file=sys.stderr)
    if path is None:
        sys.stdout.write(text)
    else:
        print(f"run {view.run_id}: {len(curves)} curve(s) written to {path}", file=sys.stderr)


def report_command(
    run: RunArg,
    run_id: RunOption = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Directory for the report (default: RUN/report).", readable=False),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="md, html or both.")] = "both",
) -> None:
    """Write a run's report (Markdown and/or standalone HTML), completed or failed."""
    from coordinator.run_report import write_run_report
    from coordinator.run_view import find_run

    view = find_run(run, run_id)
    for path in write_run_report(view, out, fmt):
        _console.print(f"run {view.run_id} ({view.status}): report written to {path}")
