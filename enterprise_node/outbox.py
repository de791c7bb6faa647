"""The node's record of every message that left the site: digest, size, purpose.

Appended (one JSON line, flushed and fsynced) just before a reply is handed to Flower,
so enterprise IT can see exactly what left: never raw data, only what the reply held.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = ["OutboxEntry", "Outbox", "payload_digest"]


@dataclass(frozen=True)
class OutboxEntry:
    """One reply that left the node."""

    time: float
    run_id: str
    round: int
    task: str
    status: str
    purpose: str
    sha256: str
    bytes: int
    arrays: tuple[str, ...]


def payload_digest(arrays: dict[str, np.ndarray], meta: dict) -> tuple[str, int]:
    """SHA-256 and size of a reply's arrays (name-sorted) plus its metadata as JSON."""
    digest = hashlib.sha256()
    size = 0
    for name in sorted(arrays):
        data = np.ascontiguousarray(arrays[name]).tobytes()
        digest.update(name.encode() + b"\0" + data)
        size += len(data)
    meta_bytes = json.dumps(meta, sort_keys=True, default=str).encode()
    digest.update(meta_bytes)
    return digest.hexdigest(), size + len(meta_bytes)


class Outbox:
    """Append-only JSON-lines file ``state/outbox.jsonl``."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "outbox.jsonl"

    def append(self, entry: OutboxEntry) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(asdict(entry), sort_keys=True) + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def entries(self) -> list[OutboxEntry]:
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                raw = json.loads(line)
                raw["arrays"] = tuple(raw.get("arrays", ()))
                rows.append(OutboxEntry(**raw))
        return rows


def now() -> float:
    return time.time()
