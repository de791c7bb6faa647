"""The one error hierarchy of fedrisk: every user-facing failure is a FedriskError.

Each class carries an exit code (see ``common/exit_codes.py``) and advice for the
user; each CLI catches ``FedriskError`` in exactly one place and maps it to its code.
"""

from __future__ import annotations

from common.exit_codes import ExitCode

__all__ = [
    "FedriskError",
    "ConfigError",
    "DataError",
    "DataRefusedError",
    "BudgetExceededError",
    "RunFailedError",
    "StateError",
]


class FedriskError(Exception):
    """Base of all fedrisk errors; ``advice`` tells the user what to do next."""

    exit_code: ExitCode = ExitCode.GENERIC_ERROR
    advice: str = ""

    def __init__(self, message: str, *, advice: str | None = None) -> None:
        super().__init__(message)
        if advice is not None:
            self.advice = advice


class ConfigError(FedriskError):
    """A YAML/JSON configuration file is missing, malformed or has unknown keys."""

    exit_code = ExitCode.CONFIG_ERROR
    advice = "Fix the named key in the named file; see configs/ for annotated examples."


class DataError(FedriskError):
    """Input data cannot be read at all (missing file, unreadable format)."""

    exit_code = ExitCode.DATA_ERROR
    advice = "Check the data path and format in node.yaml (data.path, data.format)."


class DataRefusedError(FedriskError):
    """Too many rows failed validation: the whole file is refused, nothing is shared."""

    exit_code = ExitCode.DATA_REFUSED
    advice = "Fix the rows listed in the quarantine file, then run `fedrisk-node check` again."


class BudgetExceededError(FedriskError):
    """A task would push the node's privacy spend past its lifetime cap."""

    exit_code = ExitCode.BUDGET_EXCEEDED
    advice = "The node refused the task; raise the cap in node.yaml only if your policy allows."


class RunFailedError(FedriskError):
    """A federated run could not complete (too few nodes, all replies failed, ...)."""

    exit_code = ExitCode.RUN_FAILED
    advice = "See the run summary for refusals and failures per round."


class StateError(FedriskError):
    """On-disk state (accountant, ledger, checkpoint) is missing, corrupt or inconsistent."""

    exit_code = ExitCode.STATE_ERROR
    advice = "Do not delete or edit state files by hand; restore them from backup."
