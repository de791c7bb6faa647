"""Keep the SuperLink's admitted node keys in step with the broker's register (nodes.json).

Flower keeps its own list of SuperNode keys (``flwr supernode register/unregister/list``).
The broker's register is the source of truth: at ``start`` (and before every ``run``)
revoked keys are unregistered, admitted keys registered, and any key the SuperLink holds
that the register does not know is unregistered and reported. The last case matters:
Flower's Control API accepts registrations without credentials (STACK.md), so a stranger
who reaches it could admit a node of their own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.atomic import atomic_write_text
from common.errors import RunFailedError
from coordinator.flower_env import flower_env
from coordinator.node_registry import NodeRegistry
from coordinator.superlink import CONNECTION, SuperLinkFiles

__all__ = ["NodeSync", "flwr_json", "superlink_nodes", "sync_nodes"]


@dataclass(frozen=True)
class NodeSync:
    """What a sync changed: names registered and unregistered, and strangers removed."""

    registered: list[str] = field(default_factory=list)
    unregistered: list[str] = field(default_factory=list)
    strangers: list[int] = field(default_factory=list)


def flwr_json(state: Path, *args: str) -> dict[str, Any]:
    """Run ``flwr ARGS fedrisk --format json`` against our SuperLink; its JSON answer.

    ``flwr`` exits 0 even when the SuperLink refuses, so ``success`` is what counts.
    """
    files = SuperLinkFiles(Path(state).resolve())
    command = [str(Path(sys.executable).with_name("flwr")), *args, CONNECTION, "--format", "json"]
    done = subprocess.run(
        command,
        env=flower_env(files.flwr_home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise RunFailedError(
            f"`flwr {' '.join(args[:2])}` failed (exit {done.returncode}): "
            f"{detail[-1] if detail else 'no output'}"
        ) from None
    if not answer.get("success", False):
        message = str(answer.get("error-message", "unknown error")).strip().splitlines()[-1]
        raise RunFailedError(f"`flwr {' '.join(args[:2])}` was refused: {message}")
    return answer


def superlink_nodes(state: Path) -> dict[int, str]:
    """Flower node id -> status for every node key the SuperLink holds (not deleted)."""
    answer = flwr_json(state, "supernode", "list")
    return {
        int(row["node-id"]): str(row["status"])
        for row in answer.get("nodes", [])
        if row.get("status") != "unregistered" and row.get("deleted-at", "N/A") == "N/A"
    }


def _register(state: Path, public_key: str, name: str) -> int:
    files = SuperLinkFiles(Path(state).resolve())
    key_file = files.directory / "keys" / f"{name}.pub"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(key_file, public_key + "\n")
    answer = flwr_json(state, "supernode", "register", str(key_file))
    return int(answer["node-id"])


def sync_nodes(state: Path) -> NodeSync:
    """Make the SuperLink admit exactly the register's active keys."""
    registry = NodeRegistry(state)
    held = superlink_nodes(state)
    result = NodeSync()
    known: set[int] = set()
    for node in registry.nodes():
        if node.flower_node_id is None:
            continue
        known.add(node.flower_node_id)
        if not node.active and node.flower_node_id in held:
            flwr_json(state, "supernode", "unregister", str(node.flower_node_id))
            result.unregistered.append(node.name)
    for stranger in sorted(set(held) - known):
        flwr_json(state, "supernode", "unregister", str(stranger))
        result.strangers.append(stranger)
    for node in registry.active():
        if node.flower_node_id is not None and node.flower_node_id in held:
            continue
        registry.set_flower_node_id(node.fingerprint, _register(state, node.public_key, node.name))
        result.registered.append(node.name)
    return result
