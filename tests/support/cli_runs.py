"""Running a fedrisk console entry point in this process, as a test would from a shell."""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["exit_code"]


def exit_code(main: Callable[[Sequence[str]], None], args: Sequence[str]) -> int:
    """Call a CLI's ``main`` with ``args`` and return its exit code (0 when it returns)."""
    try:
        main(list(args))
    except SystemExit as done:
        return int(done.code or 0)
    return 0
