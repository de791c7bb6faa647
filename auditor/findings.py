"""What an audit found: one frozen record per finding, its failure class, and the verdict.

A finding is an ``error`` (the audit fails) or a ``warning`` (reported, never fails). Each
error belongs to one failure class with its own exit code (``common/exit_codes.py``).
When several classes fail, the exit code is the first failing class in
:data:`CLASS_PRIORITY`: broken evidence first (nothing else can be trusted on top of it),
then a privacy guarantee actually exceeded, then claims that understate the spend, then
disagreements between the parties' ledgers. An audit without errors that lacks the ledger
of a party the run must have is INCOMPLETE (exit 54), never PASS; asked for a partial
audit (``--partial``, e.g. a regulator auditing one node) it is a PASS WITH GAPS (exit 0),
the gaps named in the report.

    >>> f = AuditFinding(FailureClass.CAP, "error", "node-cap", "node ab12 seq 3", "over")
    >>> exit_code_for([f]).name
    'AUDIT_CAP_EXCEEDED'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from common.exit_codes import ExitCode

__all__ = [
    "FailureClass",
    "Severity",
    "AuditFinding",
    "CLASS_PRIORITY",
    "exit_code_for",
    "verdict_for",
    "PASS",
    "FAIL",
    "INCOMPLETE",
    "PASS_WITH_GAPS",
]

PASS, FAIL, INCOMPLETE, PASS_WITH_GAPS = "PASS", "FAIL", "INCOMPLETE", "PASS WITH GAPS"

Severity = Literal["error", "warning"]


class FailureClass(Enum):
    """The four ways an audit can fail; the value is the class's exit code."""

    LEDGER = ExitCode.AUDIT_LEDGER_INVALID
    EPSILON = ExitCode.AUDIT_EPSILON_MISMATCH
    CAP = ExitCode.AUDIT_CAP_EXCEEDED
    CROSS_CHECK = ExitCode.AUDIT_CROSS_CHECK_FAILED

    @property
    def label(self) -> str:
        """Short name shown in reports."""
        return _LABELS[self]


_LABELS = {
    FailureClass.LEDGER: "ledger",
    FailureClass.EPSILON: "epsilon",
    FailureClass.CAP: "cap",
    FailureClass.CROSS_CHECK: "cross-check",
}

#: The exit code of an audit failing in several classes is that of the first one here.
CLASS_PRIORITY: tuple[FailureClass, ...] = (
    FailureClass.LEDGER,
    FailureClass.CAP,
    FailureClass.EPSILON,
    FailureClass.CROSS_CHECK,
)


@dataclass(frozen=True)
class AuditFinding:
    """One result: its failure ``cls``, ``severity``, a stable ``kind`` code (e.g.
    "signature", "understated", "message-unmatched"), ``where`` (ledger and seq or
    file:line) and a ``message`` naming what was expected and what was found."""

    cls: FailureClass
    severity: Severity
    kind: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity} [{self.cls.label}/{self.kind}] {self.where}: {self.message}"


def exit_code_for(
    findings: Iterable[AuditFinding], *, incomplete: bool = False, partial: bool = False
) -> ExitCode:
    """The code of the first failing class by priority; without errors AUDIT_INCOMPLETE
    when a party's ledger is missing (``incomplete``) unless ``partial``, else SUCCESS."""
    failing = {f.cls for f in findings if f.severity == "error"}
    for cls in CLASS_PRIORITY:
        if cls in failing:
            return ExitCode(cls.value)
    if incomplete and not partial:
        return ExitCode.AUDIT_INCOMPLETE
    return ExitCode.SUCCESS


def verdict_for(
    findings: Iterable[AuditFinding], *, incomplete: bool = False, partial: bool = False
) -> str:
    """ "FAIL" when a finding is an error; else "INCOMPLETE" when a party's ledger is
    missing ("PASS WITH GAPS" if ``partial``); else "PASS"."""
    if any(f.severity == "error" for f in findings):
        return FAIL
    if incomplete:
        return PASS_WITH_GAPS if partial else INCOMPLETE
    return PASS
