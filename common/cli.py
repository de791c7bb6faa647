"""The one place each fedrisk CLI catches FedriskError and maps it to its exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import typer

from common.errors import FedriskError, permission_denied
from common.exit_codes import ExitCode

__all__ = ["run_cli"]


def run_cli(
    app: typer.Typer,
    prog_name: str,
    argv: Sequence[str] | None = None,
    *,
    release: Callable[[], str] | None = None,
) -> None:
    """Run ``app``; a FedriskError prints its message and advice and exits with its code,
    Ctrl-C exits 130. Anything else is a bug and keeps its traceback. ``--version`` alone
    prints ``prog_name`` and ``release()`` (the release and app hash) and exits 0."""
    args = sys.argv[1:] if argv is None else list(argv)
    if release is not None and args == ["--version"]:
        print(f"{prog_name}: {release()}")
        raise SystemExit(0)
    try:
        try:
            app(args=None if argv is None else list(argv), prog_name=prog_name)
        except PermissionError as err:  # wherever it came from: one code, the path, the user
            raise permission_denied(err.filename) from None
    except FedriskError as err:
        print(f"error: {err}", file=sys.stderr)
        if err.advice:
            print(f"advice: {err.advice}", file=sys.stderr)
        raise SystemExit(int(err.exit_code)) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(int(ExitCode.INTERRUPTED)) from None
