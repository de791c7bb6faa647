"""Benchmark copies of synthetic enterprise folders, and what a copy's node sent.

Each benchmark run gets fresh copies of the same enterprises, without node state: a new
accountant, ledger and outbox, so runs compare on the same data and none spends another's
budget. ``outbox_rows`` reads a copy's ``state/outbox.jsonl`` afterwards (bytes sent).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from bench.spine import allow_non_private
from harness.synthetic import FederationManifest

__all__ = ["copy_nodes", "outbox_rows"]


def copy_nodes(manifest: FederationManifest, target: Path, *, non_private: bool) -> list[Path]:
    """Copies of the enterprise folders without node state (fresh accountant and outbox)."""
    node_configs = []
    for folder in manifest.enterprise_dirs:
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
