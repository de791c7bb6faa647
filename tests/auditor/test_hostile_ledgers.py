"""Hostile ledger bytes end in a verdict and a report, never a traceback (issue 12, class 6).

Each case is a ledger its owner could sign (the attacker holds the party's key): a spend
dated 1e999, JSON nested 100,000 deep in an entry and in a tree head, a valid signed ledger
dated in year 33658, a line of 2 MiB, a body number wider than 64 bits. Each fails the
audit as an invalid ledger (50) with a finding naming the problem, and the report is
written.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from signed_ledgers import SignedRun, redate, sign_heads, signed_run, write_raw_ledger

from auditor.cli import main
from auditor.report import HTML_FILE, MARKDOWN_FILE, write_reports
from auditor.verify import AuditResult, audit
from common.exit_codes import ExitCode
from ledger.log import ENTRIES_FILE, Entry, LedgerError
from ledger.ranges import MAX_LEDGER_BYTES, MAX_LINE_BYTES
from ledger.records import PlanApproved
from ledger.writer import Ledger

INVALID = ExitCode.AUDIT_LEDGER_INVALID


@pytest.fixture
def run(tmp_path: Path) -> SignedRun:
    return signed_run(tmp_path / "run")


def _lines(run: SignedRun) -> list[bytes]:
    return (run.nodes[0].ledger / ENTRIES_FILE).read_bytes().splitlines()


def _audit_and_report(run: SignedRun, out: Path) -> tuple[AuditResult, list[Path]]:
    result = audit(run.ledger_dirs(), run.key_paths(), coordinator_key=run.coordinator.public_key)
    return result, write_reports(result, out)


def _cli(run: SignedRun, out: Path) -> int:
    argv = ["verify", *map(str, run.ledger_dirs()), "--keys", *map(str, run.key_paths())]
    argv += ["--coordinator-key", str(run.coordinator.public_key)]
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--out", str(out)])
    return int(exited.value.code or 0)


def _kinds(result: AuditResult) -> set[str]:
    return {f.kind for f in result.errors}


def test_the_clean_signed_run_passes(run, tmp_path) -> None:
    # Execute
    result, paths = _audit_and_report(run, tmp_path / "out")
    # Assert
    assert result.verdict == "PASS", [str(f) for f in result.findings]
    assert (tmp_path / "out" / "epsilon.png") in paths


def test_a_spend_dated_1e999_fails_as_invalid_and_the_report_is_written(run, tmp_path) -> None:
    # Prepare: the node's PrivacySpent (line 2) dated 1e999 (inf), heads re-signed over it
    lines = _lines(run)
    assert b'"kind":"privacy_spent"' in lines[1]
    lines[1] = lines[1].replace(b'"time":1700000000.0', b'"time":1e999')
    write_raw_ledger(run.nodes[0], lines)
    # Execute
    result, paths = _audit_and_report(run, tmp_path / "out")
    # Assert
    assert result.exit_code == INVALID and "out-of-range" in _kinds(result)
    assert any("entry time is inf" in f.message for f in result.errors)
    assert {p.name for p in paths} >= {MARKDOWN_FILE, HTML_FILE}
    assert _cli(run, tmp_path / "cli") == INVALID
    assert (tmp_path / "cli" / MARKDOWN_FILE).exists()


def test_a_valid_signed_ledger_dated_in_year_33658_fails_as_invalid(run, tmp_path) -> None:
    # Prepare: every entry and head of a node dated 1e12 s (year 33658), canonical, re-signed
    redate(run.nodes[0], 1.0e12)
    # Execute
    result, paths = _audit_and_report(run, tmp_path / "out")
    # Assert: every date is a finding; the node's points are left out of the plot
    assert result.exit_code == INVALID
    out_of_range = [f for f in result.errors if f.kind == "out-of-range"]
    assert len(out_of_range) == 6  # 3 entries, 3 tree heads
    assert all("after the end of year 9999" in f.message for f in out_of_range)
    assert {p.name for p in paths} >= {MARKDOWN_FILE, HTML_FILE, "epsilon.png"}
    assert _cli(run, tmp_path / "cli") == INVALID


def test_a_ledger_dated_before_1970_fails_as_invalid(run, tmp_path) -> None:
    # Prepare
    redate(run.nodes[0], -1.0e12)
    # Execute
    result, _ = _audit_and_report(run, tmp_path / "out")
    # Assert
    assert result.exit_code == INVALID
    assert any("before 1970" in f.message for f in result.errors)


@pytest.mark.parametrize("depth", [300, 100_000])
def test_json_nested_deep_in_an_entry_and_a_head_fails_as_invalid(run, tmp_path, depth) -> None:
    # Prepare: a nested body in an appended entry (heads re-signed over it) and a nested head
    node = run.nodes[0]
    lines = _lines(run)
    nested = b'{"seq":3,"time":1700000000.0,"kind":"x","version":1,"body":{"a":'
    lines.append(nested + b"[" * depth + b"]" * depth + b"}}")
    heads = sign_heads(node.key, node.ledger_id, lines)
    heads.append(b"[" * depth + b"]" * depth)
    write_raw_ledger(node, lines, heads)
    # Execute
    result, paths = _audit_and_report(run, tmp_path / "out")
    # Assert: the parser's depth bound (about 200) names both lines
    parse = [f for f in result.errors if f.kind == "parse"]
    assert result.exit_code == INVALID
    assert {f.where.split()[-1] for f in parse} == {"entries.jsonl:4", "tree_heads.jsonl:5"}
    assert all("recursion limit exceeded" in f.message for f in parse)
    assert _cli(run, tmp_path / "cli") == INVALID


def test_a_line_longer_than_the_bound_is_not_parsed(run, tmp_path) -> None:
    # Prepare: an entry whose body holds a 1 MiB string, signed
    node = run.nodes[0]
    lines = _lines(run)
    big = Entry(3, 1.7e9, "plan_approved", 2, {"note": "x" * MAX_LINE_BYTES})
    lines.append(big.canonical())
    write_raw_ledger(node, lines)
    # Execute
    result, _ = _audit_and_report(run, tmp_path / "out")
    # Assert
    assert result.exit_code == INVALID
    assert any("longer than" in f.message and f.kind == "parse" for f in result.errors)
    with pytest.raises(LedgerError, match="longer than"):
        Entry.from_line(big.canonical())


def test_a_ledger_file_larger_than_the_bound_is_not_read(run, tmp_path) -> None:
    # Prepare: a node's entries.jsonl grown (sparse) past the bound
    node = run.nodes[0]
    with open(node.ledger / ENTRIES_FILE, "r+b") as handle:
        handle.truncate(MAX_LEDGER_BYTES + 1)
    # Execute
    result, paths = _audit_and_report(run, tmp_path / "out")
    # Assert: a finding, the report written, the other ledgers audited
    assert result.exit_code == INVALID and paths
    [finding] = [f for f in result.errors if f.kind == "too-large"]
    assert "entries.jsonl has 1,073,741,825 bytes" in finding.message
    assert str(node.ledger.resolve()) in finding.where
    assert any(ledger.name == "coordinator" and ledger.errors == 0 for ledger in result.ledgers)


def test_a_body_integer_wider_than_64_bits_fails_as_invalid(run, tmp_path) -> None:
    # Prepare: the spend's steps re-signed as 2**70
    lines = _lines(run)
    lines[1] = lines[1].replace(b'"steps":1', b'"steps":' + str(2**70).encode())
    write_raw_ledger(run.nodes[0], lines)
    # Execute
    result, paths = _audit_and_report(run, tmp_path / "out")
    # Assert
    assert result.exit_code == INVALID
    assert any(f.kind == "out-of-range" and "body.steps" in f.message for f in result.errors)
    assert {p.name for p in paths} >= {MARKDOWN_FILE, HTML_FILE}


def test_the_writer_refuses_a_time_the_verification_would_flag(tmp_path) -> None:
    # Prepare
    from ledger.signing import generate_private_key

    ledger = Ledger.open(tmp_path / "l", generate_private_key(), "n", clock=lambda: 1.0e12)
    # Execute / Assert
    with pytest.raises(LedgerError, match="after the end of year 9999"):
        ledger.append(PlanApproved("a" * 64, "tests", ""))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (b'"delta":1e-05', b'"delta":-1.0', "delta -1 is not in (0, 1)"),
        (b'"noise_multiplier":1.2', b'"noise_multiplier":1e-300', "noise multiplier 1e-300"),
        (b'"noise_multiplier":1.2', b'"noise_multiplier":1e+308', "noise multiplier 1e+308"),
        (b'"sample_rate":1.0', b'"sample_rate":2.0', "sample rate 2 is not in [0, 1]"),
        (b'"steps":1', b'"steps":9223372036854775807', "9223372036854775807 steps"),
    ],
)
def test_release_parameters_the_accountant_cannot_evaluate_fail_as_invalid(
    run, tmp_path, field, value, message
) -> None:
    # Prepare: the node's spend re-signed with the parameter (canonical, 64-bit, finite)
    lines = _lines(run)
    assert field in lines[1]
    lines[1] = lines[1].replace(field, value)
    write_raw_ledger(run.nodes[0], lines)
    # Execute
    result, paths = _audit_and_report(run, tmp_path / "out")
    # Assert
    assert result.exit_code == INVALID
    assert any(f.kind == "out-of-range" and message in f.message for f in result.errors), [
        str(f) for f in result.errors
    ]
    assert {p.name for p in paths} >= {MARKDOWN_FILE, HTML_FILE}
