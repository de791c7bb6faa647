"""Exit codes of the fedrisk CLIs, one help line each (a test checks every code has one)."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode", "EXIT_CODE_HELP"]


class ExitCode(IntEnum):
    """Process exit codes shared by ``fedrisk-node`` and ``fedrisk-coordinator``."""

    SUCCESS = 0
    GENERIC_ERROR = 1
    USAGE_ERROR = 2
    CONFIG_ERROR = 10
    DATA_ERROR = 11
    DATA_REFUSED = 12
    BUDGET_EXCEEDED = 20
    RUN_FAILED = 30
    STATE_ERROR = 40
    INTERRUPTED = 130


EXIT_CODE_HELP: dict[ExitCode, str] = {
    ExitCode.SUCCESS: "Success.",
    ExitCode.GENERIC_ERROR: "Unexpected error; the message says what failed.",
    ExitCode.USAGE_ERROR: "Wrong command-line usage; see --help.",
    ExitCode.CONFIG_ERROR: "A configuration file is missing, malformed or has unknown keys.",
    ExitCode.DATA_ERROR: "The data file cannot be read (missing, wrong format, wrong columns).",
    ExitCode.DATA_REFUSED: "Too many rows failed validation; the file was refused, nothing sent.",
    ExitCode.BUDGET_EXCEEDED: "The task would pass the node's privacy cap; it was refused.",
    ExitCode.RUN_FAILED: "The federated run failed (too few nodes, failed rounds).",
    ExitCode.STATE_ERROR: "On-disk state (accountant, ledger) is missing or corrupt.",
    ExitCode.INTERRUPTED: "Interrupted by the user (Ctrl-C).",
}
