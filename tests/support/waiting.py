"""Waiting on a condition instead of sleeping a fixed time (tests only)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["running", "wait_until"]


def wait_until(
    condition: Callable[[], bool], *, timeout: float, what: str, every: float = 0.05
) -> None:
    """Return as soon as ``condition()`` holds; AssertionError naming ``what`` if it does
    not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(every)


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (an exited child not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.split(") ")[1][:1] != "Z"
