"""A run directory read back, for the broker's ``status``, ``curves`` and ``report``.

A run directory (:mod:`coordinator.run_store`) holds ``run_request.json`` once submitted,
``progress.jsonl`` while the run goes, and ``summary.json`` with the outputs at its end
(:mod:`coordinator.outputs`). This module only reads them; a coordinator state directory
keeps its runs under ``runs/<run_id>/``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import FedriskError, StateError
from coordinator.errors import CommandUsageError
from coordinator.progress_events import ProgressEvent, RoundEnd, RunEnd, RunStart, event_line
from coordinator.round_summary import RoundSummary
from coordinator.run_request import RunRequest, read_run_request
from coordinator.run_store import RunStore
from coordinator.run_summary import SUMMARY_FILE, NodePrivacy, RunSummary, read_summary
from privacy.epsilon_wording import epsilon_at, lifetime_at

__all__ = [
    "RUN_MARKERS",
    "RunView",
    "describe_node_epsilon",
    "is_run_dir",
    "read_run",
    "list_runs",
    "find_run",
    "utc_time",
]

#: Files of which a run directory has at least one.
RUN_MARKERS = (SUMMARY_FILE, "progress.jsonl", "run_request.json")
_ADVICE = "Give a run directory (summary.json, progress.jsonl) or a state dir with runs/."
#: The exchanges that make a round (the secure-aggregation stages around them do not).
_MAIN_TASKS = ("model", "curve")


@dataclass(frozen=True)
class RunView:
    """One run as its files tell it. ``status`` is "completed" or "failed" (summary.json or
    the run_end event), "in progress" (events, no end) or "submitted" (only the request).
    ``rounds`` are the per-exchange records (summary.json, else the round_end events);
    ``rounds_done`` counts rounds completed (:func:`_rounds_done`), ``rounds_planned``
    the plan's model rounds plus its curve round (None without run_request.json);
    ``max_epsilon_run`` the largest record-level epsilon this run cost a node, at
    ``run_delta`` (the plan's delta; None if unknown);
    ``time_unit`` that of the model spec's time grid (equipment age)."""

    run_dir: Path
    run_id: str
    status: str
    started_at: float | None
    ended_at: float | None
    rounds_done: int
    rounds_planned: int | None
    nodes: tuple[str, ...]
    refusals: int
    failures: int
    max_epsilon_run: float | None
    run_delta: float | None
    published: tuple[str, ...]
    withheld: tuple[tuple[str, str], ...]
    error: str | None
    last_event: ProgressEvent | None
    rounds: tuple[RoundSummary, ...]
    summary: RunSummary | None
    events: tuple[ProgressEvent, ...]
    request: RunRequest | None
    time_unit: str

    def to_json(self) -> dict[str, Any]:
        """The figures ``status --json`` shows for this run."""
        return {
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "status": self.status,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "rounds_done": self.rounds_done,
            "rounds_planned": self.rounds_planned,
            "nodes": len(self.nodes),
            "refusals": self.refusals,
            "failures": self.failures,
            "max_epsilon_run": self.max_epsilon_run,
            "delta_run": self.run_delta,
            "published_segments": list(self.published),
            "withheld_segments": [{"segment": s, "reason": r} for s, r in self.withheld],
            "error": self.error,
            "last_event": None if self.status != "in progress" else _event_json(self.last_event),
        }


def is_run_dir(path: Path) -> bool:
    return Path(path).is_dir() and any((Path(path) / name).exists() for name in RUN_MARKERS)


def read_run(run_dir: Path) -> RunView:
    """The run in ``run_dir``; StateError when it is missing, not a run or corrupt."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise StateError(f"{run_dir}: no such run directory", advice=_ADVICE)
    if not is_run_dir(run_dir):
        raise StateError(
            f"{run_dir}: not a run directory (none of {', '.join(RUN_MARKERS)})", advice=_ADVICE
        )
    summary = read_summary(run_dir / SUMMARY_FILE)
    events = tuple(RunStore(run_dir).read_events())
    request = _read_request(run_dir / "run_request.json")
    round_ends = tuple(e for e in events if isinstance(e, RoundEnd))
    rounds: tuple[RoundSummary, ...] = summary.rounds if summary and summary.rounds else round_ends
    starts = [e for e in events if isinstance(e, RunStart)]
    ends = [e for e in events if isinstance(e, RunEnd)]
    nodes_privacy = {} if summary is None else summary.privacy.nodes
    plan = None if request is None else request.config.plan
    status = _status(summary, ends, events)
    return RunView(
        run_dir=run_dir,
        run_id=(
            (summary.run_id if summary else None)
            or (starts[0].run_id if starts else None)
            or (request.run_id if request else run_dir.name)
        ),
        status=status,
        started_at=starts[0].time if starts else (events[0].time if events else None),
        ended_at=ends[-1].time if ends else None,
        rounds_done=_rounds_done(rounds, failed=status == "failed"),
        rounds_planned=None if plan is None else plan.training.rounds + int(plan.curve_release),
        nodes=(summary.nodes if summary else None) or _nodes(rounds),
        refusals=sum(len(r.refused) for r in rounds),
        failures=sum(len(r.failed) for r in rounds),
        max_epsilon_run=max((n.epsilon_run for n in nodes_privacy.values()), default=None),
        run_delta=_run_delta(nodes_privacy, plan),
        published=(summary.published_segments if summary else None) or (),
        withheld=tuple(
            (w.segment, w.reason) for w in (summary.withheld_segments if summary else None) or ()
        ),
        error=(summary.error if summary else None) or (ends[-1].error if ends else None),
        last_event=events[-1] if events else None,
        rounds=rounds,
        summary=summary,
        events=events,
        request=request,
        time_unit=_time_unit(run_dir / "model_spec.json"),
    )


def _run_delta(nodes_privacy: Mapping[str, NodePrivacy], plan: Any) -> float | None:
    """The delta of the run's epsilons: summary.json's, else the plan's."""
    deltas = {n.delta_run for n in nodes_privacy.values()}
    if len(deltas) == 1:
        return float(deltas.pop())
    return None if plan is None else float(plan.privacy.record.delta)


def list_runs(state_dir: Path) -> list[RunView]:
    """The runs under ``state_dir/runs``, newest first (by start, else directory time)."""
    runs_dir = Path(state_dir) / "runs"
    if not runs_dir.is_dir():
        return []
    runs = [read_run(d) for d in runs_dir.iterdir() if is_run_dir(d)]
    return sorted(runs, key=lambda r: r.started_at or r.run_dir.stat().st_mtime, reverse=True)


def find_run(path: Path, run_id: str | None = None) -> RunView:
    """``path`` as a run directory, or as a coordinator state directory: then the run
    ``run_id`` (its id or directory name), by default the newest completed one."""
    path = Path(path)
    if not path.is_dir():
        raise StateError(f"{path}: no such directory", advice=_ADVICE)
    if is_run_dir(path):
        if run_id is not None:
            raise CommandUsageError(f"{path} is a run directory; --run applies to a state dir")
        return read_run(path)
    if not (path / "runs").is_dir():
        raise StateError(
            f"{path}: neither a run directory ({', '.join(RUN_MARKERS)}) nor a coordinator "
            "state directory with runs/",
            advice=_ADVICE,
        )
    runs = list_runs(path)
    if run_id is not None:
        for run in runs:
            if run_id in (run.run_id, run.run_dir.name):
                return run
        known = ", ".join(r.run_id for r in runs) or "none"
        raise CommandUsageError(f"no run {run_id!r} under {path / 'runs'}; runs: {known}")
    for run in runs:
        if run.status == "completed":
            return run
    seen = ", ".join(f"{r.run_id} ({r.status})" for r in runs) or "none"
    raise StateError(f"no completed run under {path / 'runs'}; runs: {seen}")


def utc_time(timestamp: float | None) -> str:
    """A UNIX time as "YYYY-MM-DD HH:MM:SS UTC" ("-" for None)."""
    if timestamp is None:
        return "-"
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _rounds_done(rounds: tuple[RoundSummary, ...], *, failed: bool) -> int:
    """Rounds whose model or curve exchange ended, less the last one of a failed run (a
    run fails in the round it is in)."""
    numbers = {r.round for r in rounds if r.task in _MAIN_TASKS}
    if failed and rounds:
        numbers.discard(max(r.round for r in rounds))
    return len(numbers)


def _status(
    summary: RunSummary | None, ends: list[RunEnd], events: tuple[ProgressEvent, ...]
) -> str:
    if summary is not None and summary.status:
        return summary.status
    if ends:
        return ends[-1].status
    return "in progress" if events else "submitted"


def _nodes(rounds: tuple[RoundSummary, ...]) -> tuple[str, ...]:
    """The nodes whose replies some exchange used, sorted."""
    return tuple(sorted({node for r in rounds for node in r.ok}))


def _event_json(event: ProgressEvent | None) -> dict[str, Any] | None:
    """An event as ``status --json`` shows it: its progress.jsonl line's object."""
    return None if event is None else json.loads(event_line(event))


def _time_unit(model_spec: Path) -> str:
    """The time grid's unit in the run's model_spec.json (months, the default, if absent)."""
    try:
        spec = json.loads(model_spec.read_text(encoding="utf-8"))
        return str(spec["time_grid"]["unit"])
    except (OSError, ValueError, KeyError, TypeError):
        return "months"


def _read_request(path: Path) -> RunRequest | None:
    """The run request, or None when absent or unreadable by this version."""
    if not path.exists():
        return None
    try:
        return read_run_request(path)
    except (FedriskError, ValueError):
        return None


def describe_node_epsilon(node: NodePrivacy) -> str:
    """One node's figures of summary.json as a sentence naming each delta; a lifetime
    figure below this run's says why (it is at a larger delta).

    >>> text = describe_node_epsilon(NodePrivacy(epsilon_run=1.9991, delta_run=1e-6,
    ...     epsilon_total=1.78, delta_total=1e-5, epsilon_cap=5.0, delta_cap=1e-5, releases=()))
    >>> text.split("; ")[0]
    'this run: epsilon 1.999 at delta 1e-06'
    >>> text.split("; ")[1]
    'lifetime epsilon 1.780 of cap 5 at delta 1e-05 (a larger delta: it can read lower)'
    """
    why = ""
    if node.epsilon_total < node.epsilon_run and node.delta_total > node.delta_run:
        why = " (a larger delta: it can read lower)"
    return (
        f"this run: {epsilon_at(node.epsilon_run, node.delta_run)}; "
        f"{lifetime_at(node.epsilon_total, node.epsilon_cap, node.delta_total)}{why}"
    )
