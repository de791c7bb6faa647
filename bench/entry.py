"""What every benchmark's ``main`` shares: FLWR_HOME, errors mapped to exit codes, and who
approves the benchmark's plans at its synthetic nodes."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from common.errors import ConfigError, FedriskError
from common.exit_codes import ExitCode

__all__ = ["BENCH_APPROVER", "REPO", "bench_flwr_home", "fresh_work_dir", "run_bench"]

_MARKER = ".fedrisk-bench-work"

REPO = Path(__file__).resolve().parents[1]

#: The benchmark approves each plan it runs at its synthetic nodes, as their IT would.
BENCH_APPROVER = "bench: enterprise IT"


def bench_flwr_home() -> Path:
    """$FLWR_HOME if set, else the project-owned ``.fedrisk/flwr-home``."""
    return Path(os.environ.get("FLWR_HOME") or REPO / ".fedrisk" / "flwr-home")


def run_bench(name: str, call: Callable[[], object]) -> int:
    """Run ``call``; a FedriskError prints its message and advice and returns its exit code."""
    try:
        call()
    except FedriskError as err:
        print(f"error: {name} benchmark failed: {err}", file=sys.stderr)
        if err.advice:
            print(f"advice: {err.advice}", file=sys.stderr)
        return int(err.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.SUCCESS)


def fresh_work_dir(work: Path) -> None:
    """Empty ``work`` for this invocation; refuse to delete a directory that is not ours."""
    if work.exists():
        if not (work / _MARKER).exists():
            raise ConfigError(f"{work} exists and is not a fedrisk bench work directory")
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / _MARKER).touch()
