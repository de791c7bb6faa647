"""Peak memory of this process and everything it started, sampled from /proc.

A Flower simulation is a tree: this process, the SuperLink, ``flwr-simulation`` (the
ServerApp and Ray's driver), Ray's GCS and raylet, and one worker per actor. Their resident
sizes double-count the pages they share (the Python runtime, torch), so the figure the
acceptance uses is the sum of proportional set sizes (PSS: shared pages split among their
users), what the machine actually holds; the RSS sum is reported as an upper bound.

>>> with TreeMemory(interval_s=0.05) as memory:
...     _ = bytearray(1 << 20)
>>> memory.peak.pss_mb > 0 and memory.peak.rss_mb >= memory.peak.pss_mb
True
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from types import TracebackType

from common.processes import descendants, pss_kb, rss_kb

__all__ = ["TreeSample", "TreeMemory", "tree_sample"]


@dataclass(frozen=True)
class TreeSample:
    """Memory of a process tree at one instant (MB) and how many processes it had."""

    pss_mb: float
    rss_mb: float
    processes: int


def tree_sample(root: int) -> TreeSample:
    """The summed PSS and RSS of ``root`` and its live descendants now."""
    pids = [root, *descendants(root)]
    pss = sum(pss_kb(pid) for pid in pids)
    rss = sum(rss_kb(pid) for pid in pids)
    return TreeSample(pss_mb=pss / 1024, rss_mb=rss / 1024, processes=len(pids))


class TreeMemory:
    """Context manager: samples this process's tree every ``interval_s`` in a thread and
    keeps the peak (by PSS; the RSS peak is tracked separately)."""

    def __init__(self, interval_s: float = 0.5, root: int | None = None) -> None:
        self.interval_s = interval_s
        self.root = os.getpid() if root is None else root
        self.peak = TreeSample(0.0, 0.0, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="tree-memory", daemon=True)

    def _sample(self) -> None:
        while True:
            now = tree_sample(self.root)
            self.peak = TreeSample(
                pss_mb=max(self.peak.pss_mb, now.pss_mb),
                rss_mb=max(self.peak.rss_mb, now.rss_mb),
                processes=max(self.peak.processes, now.processes),
            )
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
