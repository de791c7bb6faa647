"""The run directory: progress events while a run goes, outputs and summary at its end.

``progress.jsonl`` gets one JSON line per event (appended, fsynced) so that the command
that submitted the run can show progress; everything else is written atomically.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from common.atomic import atomic_write_json

__all__ = ["RunStore"]


class RunStore:
    """Files of one run under ``run_dir``."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def progress_path(self) -> Path:
        return self.dir / "progress.jsonl"

    @property
    def summary_path(self) -> Path:
        return self.dir / "summary.json"

    def event(self, kind: str, **fields: Any) -> None:
        """Append a progress event (``kind`` plus fields) to progress.jsonl."""
        line = json.dumps({"event": kind, "time": time.time(), **fields}, sort_keys=True)
        with open(self.progress_path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def write_json(self, name: str, obj: Any) -> Path:
        path = self.dir / name
        atomic_write_json(path, obj)
        return path

    def read_events(self) -> list[dict[str, Any]]:
        if not self.progress_path.exists():
            return []
        events = []
        for line in self.progress_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # a line being written right now
        return events
