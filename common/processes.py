"""Stopping exactly the processes fedrisk started: a process, its group and descendants.

Flower's SuperLink and SuperNode start their helpers (SuperExec, the simulation runtime,
Ray) in new sessions, so killing a process group is not enough. The descendants are
collected from /proc (by parent PID) before anything is signalled, then stopped
gracefully, then killed if they linger. Only PIDs descended from ours are touched.

Reaping: stopping a tree stops parents (SuperExec, ``flwr-simulation``) together with
their children (``flwr-simulation``, Ray's ``gcs_server`` and ``raylet``), so the
children outlive their parents and are re-parented. By default that is PID 1, which in a
container without an init never waits for them: they stay ``<defunct>``. A process that
spawns through this module therefore makes itself their child subreaper (Linux
``PR_SET_CHILD_SUBREAPER``, :func:`adopt_orphans`): orphans of the trees it started come
to it, and :func:`stop_pid_tree` reaps them (by PID, those of the tree it stopped).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = [
    "adopt_orphans",
    "descendants",
    "pss_kb",
    "rss_kb",
    "spawn_logged",
    "stop_pid_tree",
    "stop_tree",
]

#: prctl(2) option: orphaned descendants are re-parented to this process, not to PID 1.
_PR_SET_CHILD_SUBREAPER = 36
_REAP_WAIT_S = 5.0


def adopt_orphans() -> bool:
    """Make this process the child subreaper of everything it starts from now on (Linux;
    idempotent): a descendant whose parent dies is re-parented here, where
    :func:`stop_pid_tree` reaps it, instead of to PID 1. False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces: split after its closing ')'
    return stat[stat.rfind(")") + 2 :].split()


def _parents() -> dict[int, int]:
    """PID -> parent PID for every process visible in /proc."""
    table: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
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


def _kb_field(path: str, key: str) -> int:
    """The ``key:`` line's value in kB of a /proc file, 0 if the process is gone."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def rss_kb(pid: int) -> int:
    """Resident set size of ``pid`` in kB (0 if it is gone)."""
    return _kb_field(f"/proc/{pid}/status", "VmRSS:")


def pss_kb(pid: int) -> int:
    """Proportional set size of ``pid`` in kB (shared pages split among their users; 0 if
    it is gone or unreadable)."""
    return _kb_field(f"/proc/{pid}/smaps_rollup", "Pss:")


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
    """Start ``command`` in its own session, its output appended to ``log_path``; this
    process adopts the orphans of its tree (:func:`adopt_orphans`)."""
    adopt_orphans()
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
    """SIGTERM ``pid`` and every descendant, wait up to ``grace``, then SIGKILL the rest;
    then reap the descendants re-parented to this process (``pid`` itself is left to its
    parent: :func:`stop_tree` waits for a process we started)."""
    tree = [pid, *descendants(pid)]
    sessions = {fields[3] for p in tree if (fields := _stat_fields(p)) is not None}
    root = _stat_fields(pid)
    since = int(root[19]) if root is not None else None
    _signal(tree, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in tree):
            break
        time.sleep(0.2)
    _signal([p for p in tree if _alive(p)], signal.SIGKILL)
    _reap([*tree[1:], *_adopted_zombies(sessions, exclude=pid, since=since)], set(tree))


def _adopted_zombies(sessions: set[str], *, exclude: int, since: int | None) -> list[int]:
    """Dead children of this process adopted from the tree (its root ``exclude`` apart):
    those in one of the tree's ``sessions``, and those started after the root (``since``,
    in clock ticks since boot). The second catches orphans that had left the tree
    before it was stopped and run in sessions of their own (Ray's ``gcs_server`` and
    ``raylet`` once ``flwr-simulation`` has exited): nothing else would ever wait for
    them."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == exclude:
            continue
        fields = _stat_fields(int(entry.name))
        if not fields or fields[0] != "Z" or int(fields[1]) != me:
            continue
        if fields[3] in sessions or (since is not None and int(fields[19]) >= since):
            found.append(int(entry.name))
    return found


def _reap(pids: list[int], tree: set[int]) -> None:
    """Wait for each of ``pids`` that is (or becomes, once its parent in ``tree`` is gone)
    a child of this process; leave the others to their own parents."""
    pending = set(pids)
    deadline = time.monotonic() + _REAP_WAIT_S
    while pending and time.monotonic() < deadline:
        for pid in sorted(pending):
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not ours (yet): gone, or another parent's
                fields = _stat_fields(pid)
                done = fields is None or int(fields[1]) not in tree
            if done:
                pending.discard(pid)
        if pending:
            time.sleep(0.05)


def stop_tree(process: subprocess.Popen, grace: float = 10.0) -> None:
    """Stop ``process`` and every descendant (:func:`stop_pid_tree`), then reap it."""
    stop_pid_tree(process.pid, grace)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
