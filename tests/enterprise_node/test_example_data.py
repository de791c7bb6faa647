"""The README's example data file is valid for the shipped node.yaml, row for row."""

from __future__ import annotations

import shutil
from pathlib import Path

from node_site import REPO, load_spec

from enterprise_node.config import load_node_config
from enterprise_node.ingest import ingest


def test_the_example_units_pass_the_shipped_node_yaml(tmp_path: Path) -> None:
    shutil.copy(REPO / "configs" / "node.yaml", tmp_path / "node.yaml")
    shutil.copy(REPO / "configs" / "example_units.csv", tmp_path / "units.csv")
    result = ingest(load_node_config(tmp_path / "node.yaml"), load_spec())
    assert result.n_rows_read == result.n_rows_accepted == 8
    assert result.quality.score == 100.0
