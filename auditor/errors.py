"""Errors of ``fedrisk-audit``: part of the one fedrisk hierarchy (:mod:`common.errors`).

An audit that runs and finds problems is not an error (it returns findings and an exit
code); these are for audits that cannot run: wrong usage, unreadable inputs. A key file
that cannot be read raises :class:`ledger.signing.SigningKeyError` (exit 10) and an
unreadable ledger file :class:`common.errors.StateError` (exit 40).
"""

from __future__ import annotations

from common.errors import FedriskError
from common.exit_codes import ExitCode

__all__ = ["AuditUsageError"]


class AuditUsageError(FedriskError):
    """The command line names no ledger, a directory that is not a ledger, or no key (or
    no coordinator key)."""

    exit_code = ExitCode.USAGE_ERROR
    advice = (
        "Pass ledger directories (each with entries.jsonl and tree_heads.jsonl) and the "
        "owners' public keys (--keys, and the coordinator's with --coordinator-key); see "
        "`fedrisk-audit verify --help`."
    )
