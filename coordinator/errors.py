"""Errors of the broker's read-only commands (``status``, ``curves``, ``report``): part of
the one fedrisk hierarchy (:mod:`common.errors`).

A missing or corrupt state or run directory raises :class:`common.errors.StateError`
(exit 40); a command line that names something the run does not have is a usage error.
"""

from __future__ import annotations

from common.errors import FedriskError
from common.exit_codes import ExitCode

__all__ = ["CommandUsageError"]


class CommandUsageError(FedriskError):
    """The command line names a run, segment or format that does not exist for this run."""

    exit_code = ExitCode.USAGE_ERROR
    advice = "The message lists what exists; `--help` after the command shows its options."
