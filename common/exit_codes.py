"""Exit codes of the fedrisk CLIs, one help line each (a test checks every code has one)."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode", "EXIT_CODE_HELP"]


class ExitCode(IntEnum):
    """Process exit codes shared by ``fedrisk-node``, ``fedrisk-coordinator`` and
    ``fedrisk-audit``. An audit failing in several classes exits with the first of, in
    priority order: 50 (ledger invalid), 52 (cap exceeded), 51 (epsilon), 53 (cross-check);
    an audit without errors that lacks a party's ledger exits 54 (incomplete)."""

    SUCCESS = 0
    GENERIC_ERROR = 1
    USAGE_ERROR = 2
    CONFIG_ERROR = 10
    DATA_ERROR = 11
    DATA_REFUSED = 12
    PERMISSION_DENIED = 13
    BUDGET_EXCEEDED = 20
    RUN_FAILED = 30
    STATE_ERROR = 40
    AUDIT_LEDGER_INVALID = 50
    AUDIT_EPSILON_MISMATCH = 51
    AUDIT_CAP_EXCEEDED = 52
    AUDIT_CROSS_CHECK_FAILED = 53
    AUDIT_INCOMPLETE = 54
    INTERRUPTED = 130


EXIT_CODE_HELP: dict[ExitCode, str] = {
    ExitCode.SUCCESS: "Success.",
    ExitCode.GENERIC_ERROR: "Unexpected error; the message says what failed.",
    ExitCode.USAGE_ERROR: "Wrong command-line usage; see --help.",
    ExitCode.CONFIG_ERROR: "A configuration file is missing, malformed or has unknown keys.",
    ExitCode.DATA_ERROR: "The data file cannot be read (missing, wrong format, wrong columns).",
    ExitCode.DATA_REFUSED: "Too many rows failed validation; the file was refused, nothing sent.",
    ExitCode.PERMISSION_DENIED: (
        "A file or directory fedrisk must read or write is not accessible to this user."
    ),
    ExitCode.BUDGET_EXCEEDED: "The task would pass the node's privacy cap; it was refused.",
    ExitCode.RUN_FAILED: "The federated run failed (too few nodes, failed rounds).",
    ExitCode.STATE_ERROR: "On-disk state (accountant, ledger) is missing or corrupt.",
    ExitCode.AUDIT_LEDGER_INVALID: (
        "Audit failed: a ledger's signatures, Merkle proofs, structure or records do not verify."
    ),
    ExitCode.AUDIT_EPSILON_MISMATCH: (
        "Audit failed: a claimed epsilon understates the one recomputed with dp-accounting."
    ),
    ExitCode.AUDIT_CAP_EXCEEDED: (
        "Audit failed: recomputed epsilon exceeds a node's cap or a run's planned budget."
    ),
    ExitCode.AUDIT_CROSS_CHECK_FAILED: (
        "Audit failed: node ledgers and the coordinator's ledger disagree."
    ),
    ExitCode.AUDIT_INCOMPLETE: (
        "Audit incomplete: a party of the run has no ledger given (see --partial)."
    ),
    ExitCode.INTERRUPTED: "Interrupted by the user (Ctrl-C).",
}
