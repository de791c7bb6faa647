"""Stopping exactly the processes fedrisk started: a process, its group and descendants.

Flower's SuperLink and SuperNode start their helpers (SuperExec, the simulation runtime,
Ray) in new sessions, so killing a process group is not enough. The descendants are
collected from /proc (by parent PID) before anything is signalled, then stopped
gracefully, then killed if they linger. Only PIDs descended from ours are touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

__all__ = ["descendants", "rss_kb", "spawn_logged", "stop_pid_tree", "stop_tree"]


def _parents() -> dict[int, int]:
    """PID -> parent PID for every process visible in /proc."""
    table: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name (field 2) may contain spaces: split after its closing ')'
        fields = stat[stat.rfind(")") + 2 :].split()
        table[int(entry.name)] = int(fields[1])
    return table


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (children first found, then theirs)."""
    parents = _parents()
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found.extend(children)
        frontier.extend(children)
    return found


def rss_kb(pid: int) -> int:
    """Resident set size of ``pid`` in kB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(") ")[1][0] != "Z"  # a zombie is already dead
    except (OSError, IndexError):
        return False


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def spawn_logged(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start ``command`` in its own session, its output appended to ``log_path``."""
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def stop_pid_tree(pid: int, grace: float = 10.0) -> None:
    """SIGTERM ``pid`` and every descendant, wait up to ``grace``, then SIGKILL the rest."""
    tree = [pid, *descendants(pid)]
    _signal(tree, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in tree):
            break
        time.sleep(0.2)
    _signal([p for p in tree if _alive(p)], signal.SIGKILL)


def stop_tree(process: subprocess.Popen, grace: float = 10.0) -> None:
    """Stop ``process`` and every descendant (:func:`stop_pid_tree`), then reap it."""
    stop_pid_tree(process.pid, grace)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
