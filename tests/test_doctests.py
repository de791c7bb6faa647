"""Runs the examples in the docstrings of the user-facing entry points (STYLE item 14)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["coordinator.cli", "enterprise_node.cli", "harness.cli", "harness.synthetic"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
