"""The node's record of every message that left the site: digest, size, purpose.

Appended (one JSON line, flushed and fsynced) just before a reply is handed to Flower,
so enterprise IT can see exactly what left: never raw data, only the reply's digest
(:func:`protocols.reply_digest.reply_digest`, the one the coordinator computes on receipt),
size and purpose.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["OutboxEntry", "Outbox"]


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
