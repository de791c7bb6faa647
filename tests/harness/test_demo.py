"""The demo only ever deletes synthetic factories it made itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import ConfigError
from harness.demo import _fresh_factories


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
