"""The one error hierarchy of fedrisk: every user-facing failure is a FedriskError.

Each class carries an exit code (see ``common/exit_codes.py``) and advice for the
user; each CLI catches ``FedriskError`` in exactly one place and maps it to its code.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from common.exit_codes import ExitCode

__all__ = [
    "FedriskError",
    "ConfigError",
    "DataError",
    "DataRefusedError",
    "PermissionDeniedError",
    "permission_denied",
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
    advice = (
        "Fix the named key in the named file; `fedrisk-node init DIR` and "
        "`fedrisk-coordinator init DIR` write annotated examples of node.yaml and "
        "coordinator.yaml."
    )


class DataError(FedriskError):
    """Input data cannot be read at all (missing file, unreadable format)."""

    exit_code = ExitCode.DATA_ERROR
    advice = "Check the data path and format in node.yaml (data.path, data.format)."


class DataRefusedError(FedriskError):
    """Too many rows failed validation: the whole file is refused, nothing is shared."""

    exit_code = ExitCode.DATA_REFUSED
    advice = "Fix the rows listed in the quarantine file, then run `fedrisk-node check` again."


class PermissionDeniedError(FedriskError):
    """A file or directory fedrisk must read or write is not accessible to this user."""

    exit_code = ExitCode.PERMISSION_DENIED
    advice = (
        "Run as the user that owns the files (e.g. the service account), or give this user "
        "access to the path named (chown/chmod); nothing else was changed."
    )


def permission_denied(path: str | Path | None, doing: str = "access") -> PermissionDeniedError:
    """The error for a PermissionError on ``path``, naming it and the user."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid
        user = "(unknown)"
    where = str(path) if path else "a file"
    return PermissionDeniedError(
        f"{where}: permission denied: cannot {doing} it as user {user} (uid {os.getuid()})"
    )


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
