"""Stopping a process tree by PID, including children that left the process group."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from protocols.processes import descendants, stop_tree

CHILD = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],\n"
    "                 start_new_session=True)\n"
    "time.sleep(60)\n"
)


def test_stop_tree_stops_detached_grandchildren() -> None:
    # Prepare: a parent whose child detaches into its own session (as Flower's do)
    parent = subprocess.Popen([sys.executable, "-c", CHILD])
    deadline = time.monotonic() + 10
    while not descendants(parent.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    tree = [parent.pid, *descendants(parent.pid)]
    assert len(tree) == 2
    # Execute
    stop_tree(parent, grace=5)
    # Assert: nothing of the tree is left running
    time.sleep(0.3)
    for pid in tree:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
        except FileNotFoundError:
            continue
        assert state == "Z", f"pid {pid} still running"
