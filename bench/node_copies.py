"""Benchmark copies of synthetic enterprise folders, and what a copy's node sent.

Each benchmark run gets fresh copies of the same enterprises, without node state: a new
accountant, ledger and outbox, so runs compare on the same data and none spends another's
budget. ``outbox_rows`` reads a copy's ``state/outbox.jsonl`` afterwards (bytes sent).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from common.atomic import atomic_write_text

__all__ = ["allow_non_private", "copy_nodes", "outbox_rows"]


def allow_non_private(node_yaml: Path) -> None:
    """Set ``privacy.allow_non_private: true`` in a (benchmark copy's) node.yaml."""
    data = yaml.safe_load(node_yaml.read_text(encoding="utf-8"))
    data["privacy"]["allow_non_private"] = True
    header = "# fedrisk bench copy: serves NON-PRIVATE plans (benchmark only)\n"
    atomic_write_text(node_yaml, header + yaml.safe_dump(data, sort_keys=False))


def copy_nodes(folders: Iterable[Path], target: Path, *, non_private: bool) -> list[Path]:
    """Copies of the enterprise ``folders`` under ``target`` without node state (fresh
    accountant, ledger and outbox); their node.yaml paths. ``non_private``: the copies
    serve non-private plans (:func:`allow_non_private`)."""
    node_configs = []
    for folder in folders:
        copy = target / folder.name
        shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("state"))
        if non_private:
            allow_non_private(copy / "node.yaml")
        node_configs.append(copy / "node.yaml")
    return node_configs


def outbox_rows(node_yaml: Path) -> list[dict[str, Any]]:
    """The rows of a node's ``state/outbox.jsonl`` (what it sent), [] before any."""
    path = node_yaml.parent / "state" / "outbox.jsonl"
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]
