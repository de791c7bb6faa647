"""`fedrisk-audit`: verify ledgers from public keys alone and write the audit report.

    fedrisk-audit verify LEDGER_DIR... --keys PEM... [--out DIR] [--coordinator HOST:PORT]

Exit codes (``common/exit_codes.py``): 0 pass; 50 a ledger does not verify; 52 a cap
is exceeded; 51 a claim understates the recomputed epsilon; 53 node and coordinator
ledgers disagree (when several fail, the first in this order); 2 / 10 / 40 for bad usage,
an unreadable key, an unreadable ledger. Errors are mapped to exit codes in one place,
:func:`common.cli.run_cli`.

    >>> from auditor.cli import build_app
    >>> [c.name for c in build_app().registered_commands]
    ['verify']
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from auditor.claims import DEFAULT_TOLERANCE
from auditor.report import write_reports
from auditor.verify import AuditResult, audit
from common.cli import run_cli

__all__ = ["build_app", "main"]

_console = Console()
_SHOWN_ERRORS = 20


def _verify(
    ledgers: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Ledger directories (entries.jsonl, tree_heads.jsonl).", metavar="LEDGER_DIR..."
        ),
    ] = None,
    keys: Annotated[
        list[Path] | None,
        typer.Option(
            "--keys", "-k", help="Public keys (PEM) of the ledgers' owners.", show_default=False
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Report directory.")] = Path(
        "audit-report"
    ),
    coordinator: Annotated[
        str | None,
        typer.Option(help="HOST:PORT of the coordinator's ledger service (instead of its dir)."),
    ] = None,
    tolerance: Annotated[
        float, typer.Option(help="Largest relative understatement of a claim that passes.")
    ] = DEFAULT_TOLERANCE,
) -> None:
    """Check signatures and proofs, recompute epsilon, cross-check, write the report."""
    result = audit(
        list(ledgers or []),
        list(keys or []),
        coordinator_address=coordinator,
        tolerance=tolerance,
    )
    paths = write_reports(result, out)
    _print(result, paths)
    raise typer.Exit(int(result.exit_code))


def _print(result: AuditResult, paths: list[Path]) -> None:
    colour = "green" if result.verdict == "PASS" else "red"
    _console.print(
        f"[{colour}]{result.verdict}[/] (exit {int(result.exit_code)}): "
        f"{len(result.ledgers)} ledger(s), {len(result.errors)} error(s), "
        f"{len(result.warnings)} warning(s); largest relative difference of a lifetime claim "
        f"{result.largest_relative_difference:+.2e}"
    )
    for finding in result.errors[:_SHOWN_ERRORS]:
        _console.print(f"  {escape(str(finding))}")
    if len(result.errors) > _SHOWN_ERRORS:
        _console.print(f"  ... and {len(result.errors) - _SHOWN_ERRORS} more in the report")
    _console.print("Report: " + ", ".join(str(p) for p in paths))


def _expand_keys(argv: list[str]) -> list[str]:
    """Let ``--keys`` take several values (``--keys a.pem b.pem``): each value up to the
    next option becomes its own ``--keys`` (click options take one value each)."""
    out: list[str] = []
    taking = False
    for arg in argv:
        if arg in ("--keys", "-k"):
            taking = True
            continue
        if arg.startswith("-"):
            taking = False
        out += ["--keys", arg] if taking else [arg]
    return out


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="fedrisk-audit",
        help="fedrisk auditor: verify signed ledgers and recomputed privacy claims.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_show_locals=False,
    )

    @app.callback()
    def _root() -> None:
        """fedrisk auditor: verify signed ledgers and recomputed privacy claims."""

    app.command("verify")(_verify)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (errors mapped to exit codes in ``common.cli.run_cli``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    run_cli(build_app(), "fedrisk-audit", _expand_keys(args))


if __name__ == "__main__":
    main()
