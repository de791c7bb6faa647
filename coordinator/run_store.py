"""The run directory: progress events while a run goes, outputs and summary at its end.

``progress.jsonl`` gets one JSON line per typed event (:mod:`coordinator.progress_events`,
appended, fsynced) so that the command that submitted the run can show progress;
everything else is written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from common.atomic import atomic_write_json
from coordinator.progress_events import ProgressEvent, event_from_line, event_line
from coordinator.run_summary import SUMMARY_FILE

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
        return self.dir / SUMMARY_FILE

    def event(self, event: ProgressEvent) -> None:
        """Append ``event`` to progress.jsonl as one line, flushed and fsynced."""
        with open(self.progress_path, "a", encoding="utf-8") as handle:
            handle.write(event_line(event) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def write_json(self, name: str, obj: Any) -> Path:
        path = self.dir / name
        atomic_write_json(path, obj)
        return path

    def read_events(self) -> list[ProgressEvent]:
        """The events in progress.jsonl so far ([] before the first). Text after the last
        newline is a line being written and is left for the next read; any complete line
        that is not an event is a ProgressError naming the file and the line."""
        if not self.progress_path.exists():
            return []
        text = self.progress_path.read_text(encoding="utf-8")
        complete = text.split("\n")[:-1]  # the last piece has no newline yet
        return [
            event_from_line(line, f"{self.progress_path} line {number}")
            for number, line in enumerate(complete, start=1)
            if line.strip()
        ]
