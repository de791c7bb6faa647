"""The ledger benchmark, run small: figures, JSON record, table, error path."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from bench.ledger import main, records, render_table, run_ledger_bench
from common.exit_codes import ExitCode
from ledger.log import read_ledger
from ledger.records import record_from_entry


def test_a_small_run_writes_its_figures(tmp_path: Path) -> None:
    # Execute
    console = Console(record=True, width=120)
    report = run_ledger_bench(tmp_path, single=20, entries=250, batch=100, console=console)
    # Assert: the JSON on disk is the report; figures are consistent
    assert json.loads((tmp_path / "ledger.json").read_text()) == report
    single, batched = report["append_single"], report["append_batched"]
    assert (single["entries"], single["tree_heads"]) == (20, 20)
    assert (batched["entries"], batched["tree_heads"]) == (250, 3)
    assert single["entries_per_second"] > 0 and batched["entries_per_second"] > 0
    assert report["verify_batched"] | {"verify_seconds": 0, "open_seconds": 0} == {
        "entries": 250,
        "tree_heads": 3,
        "findings": 0,
        "verify_seconds": 0,
        "open_seconds": 0,
    }
    assert "batches of 100" in console.export_text()
    entries = read_ledger(tmp_path / "ledger-work" / "batched").entries()
    assert [record_from_entry(e) for e in entries] == records(250)


def test_the_table_has_one_row_per_mode(tmp_path: Path) -> None:
    report = run_ledger_bench(tmp_path, single=2, entries=3, batch=2, console=Console(quiet=True))
    assert render_table(report).row_count == 2


def test_bad_sizes_exit_with_the_config_code(tmp_path: Path) -> None:
    assert main(["--batch", "0", "--out", str(tmp_path)]) == int(ExitCode.CONFIG_ERROR)
