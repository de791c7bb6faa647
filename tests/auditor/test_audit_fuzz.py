"""Fuzzing the auditor with hypothesis: any mutated ledgers end in a verdict and a report.

The target is the whole audit (:func:`auditor.verify.audit`: ledger verification, records,
epsilon recomputation, the run-level checks and cross-checks) and the report
(:func:`auditor.report.write_reports`, plot included) over a small signed run
(tests/support/signed_ledgers.py) with one party's ledger mutated: file-level, or its
content re-signed with the party's key. The only outcome allowed is a verdict with an exit
code of the documented audit scheme (incomplete included: a re-signed coordinator ledger
may name a node whose ledger is not given); no exception. The unit tier runs a few hundred
examples (integration tier), the slow tier 1,000 (10,000 with `make fuzz`).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ledger_fuzz import (
    FAST_EXAMPLES,
    SLOW_EXAMPLES,
    fuzz_settings,
    mutate_ledger,
    mutations,
)
from signed_ledgers import SignedRun, signed_run

from auditor.report import HTML_FILE, MARKDOWN_FILE, write_reports
from auditor.verify import audit
from common.exit_codes import ExitCode

#: The exit codes an audit that runs may end with (README, exit codes).
VERDICT_CODES = {
    ExitCode.SUCCESS,
    ExitCode.AUDIT_LEDGER_INVALID,
    ExitCode.AUDIT_EPSILON_MISMATCH,
    ExitCode.AUDIT_CAP_EXCEEDED,
    ExitCode.AUDIT_CROSS_CHECK_FAILED,
    ExitCode.AUDIT_INCOMPLETE,  # a re-signed coordinator ledger may name a node not given
}

_RUN: list[SignedRun] = []


def _run() -> SignedRun:
    if not _RUN:
        _RUN.append(signed_run(Path(tempfile.mkdtemp(prefix="fedrisk-audit-fuzz-"))))
    return _RUN[0]


def audit_mutated(party_at: int, which: str, mutation: tuple, report: bool) -> None:
    run = _run()
    party = run.parties[party_at % len(run.parties)]
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        dirs = []
        for other in run.parties:
            target = root / other.ledger.name
            shutil.copytree(other.ledger, target)
            dirs.append(target)
        mutate_ledger(root / party.ledger.name, party.key, party.ledger_id, which, mutation)
        result = audit(dirs, run.key_paths(), coordinator_key=run.coordinator.public_key)
        assert result.verdict in ("PASS", "FAIL", "INCOMPLETE")
        assert result.exit_code in VERDICT_CODES
        assert (result.verdict == "PASS") == (result.exit_code == ExitCode.SUCCESS)
        if report:
            paths = write_reports(result, root / "report")
            assert {p.name for p in paths} >= {MARKDOWN_FILE, HTML_FILE}


_mutations = mutations()
_fast = fuzz_settings(FAST_EXAMPLES)
_slow = fuzz_settings(SLOW_EXAMPLES)


@pytest.mark.integration
@_fast
@given(party_at=st.integers(0, 8), mutation=_mutations, report=st.booleans())
def test_fuzz_audit_of_mutated_ledgers(party_at: int, mutation: tuple, report: bool) -> None:
    audit_mutated(party_at, mutation[0], mutation[1], report)


@pytest.mark.slow
@_slow
@given(party_at=st.integers(0, 8), mutation=_mutations, report=st.booleans())
def test_fuzz_audit_of_mutated_ledgers_at_length(
    party_at: int, mutation: tuple, report: bool
) -> None:
    audit_mutated(party_at, mutation[0], mutation[1], report)
