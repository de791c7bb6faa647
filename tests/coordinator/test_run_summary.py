"""The run summary (coordinator.run_summary): summaries written before it was typed read
through it and write back byte for byte; a summary it cannot read is an error naming the
file and the key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from common.errors import StateError
from coordinator.run_summary import SUMMARY_FILE, read_summary, require_summary, write_summary

DATA = Path(__file__).parent / "data"
#: summary.json files written before the summary was typed: runs with enterprise-level DP
#: and inclusion checks, a Newton fit, DP-SGD in the clear, and a failed run.
BEFORE = ("summary_enterprise_dp", "summary_newton", "summary_plain", "summary_failed")


@pytest.mark.parametrize("name", BEFORE)
def test_a_summary_written_before_the_type_reads_and_writes_back_byte_for_byte(
    tmp_path: Path, name: str
) -> None:
    # Prepare
    original = DATA / f"{name}.json"
    # Execute
    summary = require_summary(original)
    write_summary(tmp_path / SUMMARY_FILE, summary)
    # Assert
    assert (tmp_path / SUMMARY_FILE).read_bytes() == original.read_bytes()


def test_the_typed_figures_are_the_files() -> None:
    # Execute
    completed = require_summary(DATA / "summary_enterprise_dp.json")
    failed = require_summary(DATA / "summary_failed.json")
    raw = json.loads((DATA / "summary_enterprise_dp.json").read_text())
    # Assert
    assert completed.completed and not failed.completed
    assert failed.error and failed.nodes is None and failed.inclusion_checks is None
    assert completed.inclusion_checks == raw["inclusion_checks"]
    for node, figures in completed.privacy.nodes.items():
        assert figures.epsilon_run == raw["privacy"]["nodes"][node]["epsilon_run"]
    assert completed.privacy.enterprise == raw["privacy"]["enterprise"]
    assert [r.task for r in completed.rounds] == [r["task"] for r in raw["rounds"]]


def test_inclusion_checks_are_added_to_a_completed_summary(tmp_path: Path) -> None:
    # Prepare
    shutil.copy(DATA / "summary_newton.json", tmp_path / SUMMARY_FILE)
    summary = require_summary(tmp_path / SUMMARY_FILE)
    # Execute
    write_summary(tmp_path / SUMMARY_FILE, summary.with_inclusion_checks({"a": "ok: 3"}))
    # Assert
    assert json.loads((tmp_path / SUMMARY_FILE).read_text())["inclusion_checks"] == {"a": "ok: 3"}


def test_no_summary_yet_is_none_and_required_is_an_error(tmp_path: Path) -> None:
    assert read_summary(tmp_path / SUMMARY_FILE) is None
    with pytest.raises(StateError, match="wrote no summary"):
        require_summary(tmp_path / SUMMARY_FILE)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"surprise": 1}, "has unknown key(s) 'surprise'"),
        ({"seconds": "12"}, ".seconds must be float"),
        ({"rounds": [{"round": 1}]}, ".rounds[0] misses key(s)"),
    ],
)
def test_a_summary_it_cannot_read_names_the_file_and_key(
    tmp_path: Path, change: dict, problem: str
) -> None:
    # Prepare
    body = json.loads((DATA / "summary_failed.json").read_text()) | change
    path = tmp_path / SUMMARY_FILE
    path.write_text(json.dumps(body))
    # Execute / Assert
    with pytest.raises(StateError) as error:
        read_summary(path)
    assert str(path) in str(error.value) and problem in str(error.value)
