"""Stopping a process tree by PID, including children that left the process group."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from waiting import running, wait_until

from common.processes import descendants, stop_tree

CHILD = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],\n"
    "                 start_new_session=True)\n"
    "time.sleep(60)\n"
)


def test_stop_tree_stops_detached_grandchildren() -> None:
    # Prepare: a parent whose child detaches into its own session (as Flower's do)
    parent = subprocess.Popen([sys.executable, "-c", CHILD])
    wait_until(lambda: bool(descendants(parent.pid)), timeout=10, what="the child started")
    tree = [parent.pid, *descendants(parent.pid)]
    assert len(tree) == 2
    # Execute
    stop_tree(parent, grace=5)
    # Assert: nothing of the tree is left running
    wait_until(
        lambda: not any(running(pid) for pid in tree), timeout=5, what="the tree stopped"
    )


# A parent (like flower-superexec) whose child (like flwr-simulation) starts a grandchild in
# its own session (like Ray's raylet); nobody in the tree waits for anybody.
_TREE = (
    "import subprocess, sys, time\n"
    "leaf = 'import time; time.sleep(60)'\n"
    "middle = ('import subprocess, sys, time; subprocess.Popen([sys.executable, \"-c\", '\n"
    "          + repr(leaf) + '], start_new_session=True); time.sleep(60)')\n"
    "subprocess.Popen([sys.executable, '-c', middle])\n"
    "time.sleep(60)\n"
)
# The coordinator: starts the tree, waits until it stands, stops it.
_COORDINATOR = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from common.processes import descendants, spawn_logged, stop_tree\n"
    "root = spawn_logged([sys.executable, '-c', sys.argv[1]], {}, Path(sys.argv[2]))\n"
    "deadline = time.monotonic() + 20\n"
    "while len(descendants(root.pid)) < 2 and time.monotonic() < deadline:\n"
    "    time.sleep(0.1)\n"
    "stop_tree(root, grace=5)\n"
)
# An init that never waits (a container's PID 1 without an init system): the subreaper
# above the coordinator. It counts the coordinator's orphans it was left with, then reaps.
_INIT = (
    "import ctypes, json, os, signal, subprocess, sys, time\n"
    "from pathlib import Path\n"
    "ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)\n"
    "coordinator = subprocess.Popen([sys.executable, '-c', sys.argv[1], *sys.argv[2:]])\n"
    "coordinator.wait()\n"
    "time.sleep(1.0)\n"
    "me, left = str(os.getpid()), []\n"
    "for entry in Path('/proc').iterdir():\n"
    "    if entry.name.isdigit():\n"
    "        try:\n"
    "            fields = (entry / 'stat').read_text().rsplit(') ', 1)[1].split()\n"
    "        except OSError:\n"
    "            continue\n"
    "        if fields[1] == me:\n"
    "            left.append((int(entry.name), fields[0]))\n"
    "for pid, _state in left:\n"
    "    os.kill(pid, signal.SIGKILL)\n"
    "    os.waitpid(pid, 0)\n"
    "print(json.dumps(left))\n"
)


def test_a_stopped_tree_leaves_no_zombie_even_under_an_init_that_never_waits(
    tmp_path: Path,
) -> None:
    # Prepare: the processes of the tree outlive their parents when it is stopped; they
    # are re-parented to the nearest subreaper, here an init that never waits
    import json
    import os

    repo = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": repo}
    command = [sys.executable, "-c", _INIT, _COORDINATOR, _TREE, str(tmp_path / "tree.log")]
    # Execute
    done = subprocess.run(command, env=env, cwd=repo, capture_output=True, text=True, timeout=60)
    # Assert: the coordinator adopted and reaped them itself; the init was left nothing
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [], "left behind (pid, state): " + done.stdout
