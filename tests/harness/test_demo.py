"""The demo only ever deletes synthetic factories it made itself, and states every epsilon
with its delta."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from common.errors import ConfigError
from harness.demo import _epsilon_table, _fresh_factories


def test_demo_refuses_to_delete_a_directory_that_is_not_its_own(tmp_path: Path) -> None:
    # Prepare: someone's data where the demo would put its factories
    (tmp_path / "factories").mkdir()
    (tmp_path / "factories" / "precious.csv").write_text("unit_id\n1\n")
    # Execute / Assert
    with pytest.raises(ConfigError, match="not a fedrisk synthetic federation"):
        _fresh_factories(tmp_path / "factories")
    assert (tmp_path / "factories" / "precious.csv").exists()


def test_demo_replaces_its_own_previous_factories(tmp_path: Path) -> None:
    (tmp_path / "factories").mkdir()
    (tmp_path / "factories" / "ground_truth.json").write_text("{}")
    _fresh_factories(tmp_path / "factories")
    assert not (tmp_path / "factories").exists()


def test_the_demos_epsilon_table_names_each_columns_delta() -> None:
    # Prepare: two nodes; the same cap delta, then different ones
    evaluation = {
        "delta": 1e-6,
        "epsilon_per_node": {"a": 1.9991, "b": 1.9991},
        "epsilon_total_per_node": {"a": 1.7849, "b": 1.7849},
        "delta_total_per_node": {"a": 1e-5, "b": 1e-5},
    }
    mixed = {**evaluation, "delta_total_per_node": {"a": 1e-5, "b": 1e-7}}
    # Execute
    shown = []
    for figures in (evaluation, mixed):
        console = Console(record=True, width=200)
        console.print(_epsilon_table(figures))
        shown.append(console.export_text())
    # Assert: one delta per column in the header, or one per cell
    assert "this run: epsilon at delta 1e-06 (the plan's)" in shown[0]
    assert "lifetime epsilon at delta 1e-05 (the caps')" in shown[0]
    assert "1.999" in shown[0] and "1.785" in shown[0]
    assert "epsilon 1.785 at delta 1e-07" in shown[1]
