"""Run ``flwr run`` against a SuperLink and follow the run's progress until it ends.

Used by ``fedrisk-coordinator run`` (a deployment) and by local federations; the
ServerApp writes ``progress.jsonl`` and ``summary.json`` in the run directory.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.errors import RunFailedError
from common.processes import spawn_logged, stop_tree
from coordinator.progress_events import ProgressEvent, RunEnd
from coordinator.run_store import RunStore
from coordinator.run_summary import RunSummary

__all__ = ["FederationResult", "ProgressFn", "flower_bin", "run_flwr"]

ProgressFn = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class FederationResult:
    """Where the run's outputs are, and its summary."""

    run_dir: Path
    summary: RunSummary


def flower_bin(name: str) -> str:
    """The path of a Flower command installed beside this Python, else its bare name."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def run_flwr(
    command: list[str],
    env: dict[str, str],
    store: RunStore,
    progress: ProgressFn | None,
    *,
    budget_s: float,
    superlink_log: Path,
) -> None:
    """Run ``flwr run`` (``command``), report the run's progress, and raise RunFailedError
    unless the ServerApp recorded a completed run; stops what it started."""
    log_path = store.dir / "flwr-run.log"
    process = spawn_logged(command, env, log_path)
    try:
        _follow(process, store, progress, deadline=time.monotonic() + budget_s)
    finally:
        stop_tree(process)
    events = store.read_events()
    end = next((e for e in reversed(events) if isinstance(e, RunEnd)), None)
    if end is None:
        raise RunFailedError(
            f"the run ended without a result: {_last_line(log_path)}; see {log_path} and "
            f"{superlink_log}"
        )
    if not end.completed:
        raise RunFailedError(f"the run failed: {end.error or 'unknown error'}")


def _last_line(path: Path) -> str:
    """The last meaningful line of a log (box-drawing stripped), for error messages."""
    lines = [
        line.strip(" │╭╮╰╯─")
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
    ]
    lines = [line for line in lines if line and not line.startswith("Using SuperLink")]
    return lines[-1] if lines else "no output"


def _follow(
    process: subprocess.Popen, store: RunStore, progress: ProgressFn | None, *, deadline: float
) -> None:
    seen = 0
    while True:
        events = store.read_events()
        for event in events[seen:]:
            if progress:
                progress(event)
        seen = len(events)
        if any(isinstance(e, RunEnd) for e in events):
            return
        if process.poll() is not None:
            time.sleep(1.0)  # let a last event land
            for event in store.read_events()[seen:]:
                if progress:
                    progress(event)
            return
        if time.monotonic() > deadline:
            raise RunFailedError("the run did not finish in time; stopped it")
        time.sleep(0.5)
