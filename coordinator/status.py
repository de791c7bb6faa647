"""`fedrisk-coordinator status`: the SuperLink, the node register, the ledger and the runs.

Read-only. The SuperLink counts as running only when the pid in ``superlink/superlink.json``
is alive and is a SuperLink; a file naming a process that is gone (or a pid reused by
another program) is reported as stale, never trusted.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from common.errors import StateError
from coordinator.ledger_view import LedgerView, read_ledger_view
from coordinator.node_registry import REGISTRY_FILE, NodeRegistry
from coordinator.progress_events import ProgressEvent
from coordinator.run_view import RunView, list_runs, utc_time
from coordinator.superlink import SuperLinkFiles, is_superlink_process, read_info
from privacy.epsilon_wording import epsilon_number
from protocols.app_identity import release

__all__ = ["SUPERLINK_FILE", "SuperlinkState", "CoordinatorStatus", "read_status", "print_status"]

SUPERLINK_FILE = Path("superlink") / "superlink.json"
#: What a coordinator state directory holds; an existing directory with none is not one.
_STATE_MARKERS = ("tls", "keys", "ledger", "runs", "superlink", REGISTRY_FILE)
_ADVICE = "Give the state directory made by `fedrisk-coordinator init`."


@dataclass(frozen=True)
class SuperlinkState:
    """What ``superlink.json`` says and whether it holds: ``state`` is "running", "stale"
    (the process is gone or is not a SuperLink), "not started" (no file) or "unreadable";
    ``note`` says why when not running."""

    state: str
    pid: int | None = None
    address: str | None = None
    control_address: str | None = None
    started_at: float | None = None
    log: str | None = None
    note: str = ""


@dataclass(frozen=True)
class CoordinatorStatus:
    """Everything ``status`` shows for one coordinator state directory."""

    state_dir: Path
    superlink: SuperlinkState
    nodes_active: int
    nodes_revoked: int
    ledger: LedgerView | None
    runs: tuple[RunView, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "state_dir": str(self.state_dir),
            "superlink": asdict(self.superlink),
            "nodes": {"active": self.nodes_active, "revoked": self.nodes_revoked},
            "ledger": None if self.ledger is None else self.ledger.to_json(),
            "runs": [run.to_json() for run in self.runs],
        }


def read_status(state_dir: Path) -> CoordinatorStatus:
    """The status of ``state_dir``; StateError if it is missing or not a coordinator's."""
    state_dir = Path(state_dir)
    if not state_dir.is_dir():
        raise StateError(f"{state_dir}: no such coordinator state directory", advice=_ADVICE)
    if not any((state_dir / name).exists() for name in _STATE_MARKERS):
        raise StateError(
            f"{state_dir}: not a coordinator state directory (none of {', '.join(_STATE_MARKERS)})",
            advice=_ADVICE,
        )
    nodes = NodeRegistry(state_dir).nodes()
    active = sum(node.active for node in nodes)
    return CoordinatorStatus(
        state_dir=state_dir,
        superlink=read_superlink(state_dir / SUPERLINK_FILE),
        nodes_active=active,
        nodes_revoked=len(nodes) - active,
        ledger=read_ledger_view(state_dir),
        runs=tuple(list_runs(state_dir)),
    )


def read_superlink(path: Path) -> SuperlinkState:
    """The SuperLink recorded in ``path``, checked against the live process table (a
    recycled pid or a zombie does not count)."""
    if not path.exists():
        return SuperlinkState("not started", note=f"no {path}")
    try:
        info = read_info(SuperLinkFiles(path.parent.parent))
    except StateError as err:
        return SuperlinkState("unreadable", note=str(err))
    if info is None:  # removed between the check and the read
        return SuperlinkState("not started", note=f"no {path}")
    alive = is_superlink_process(info.pid)
    note = (
        ""
        if alive
        else (f"process {info.pid} has exited or is not a SuperLink (stale superlink.json)")
    )
    return SuperlinkState(
        state="running" if alive else "stale",
        pid=info.pid,
        address=info.address,
        control_address=info.control_address,
        started_at=info.started_at,
        log=info.log,
        note=note,
    )


def print_status(console: Console, status: CoordinatorStatus) -> None:
    """The status as readable lines and a table of runs, newest first (file contents are
    escaped, never read as rich markup)."""
    link = status.superlink
    console.print(f"[bold]coordinator state[/] {escape(str(status.state_dir))}")
    console.print(escape(f"release: {release()} (every node must run the same)"))
    if link.state == "running":
        where = f"Fleet API {link.address}, Control API {link.control_address}; log {link.log}"
        since = utc_time(link.started_at)
        console.print(
            f"SuperLink: [green]running[/] (pid {link.pid}, since {since}); {escape(where)}"
        )
    else:
        console.print(f"SuperLink: [yellow]{link.state}[/] - {escape(link.note)}")
    console.print(f"Nodes: {status.nodes_active} active, {status.nodes_revoked} revoked")
    console.print(_ledger_line(status.ledger))
    if not status.runs:
        console.print("Runs: none yet")
        return
    console.print(_runs_table(status))
    console.print("nodes: the enterprises that took part (in brackets: those that refused)")
    if any(run.max_epsilon_run is not None for run in status.runs):
        console.print(escape(_run_deltas(status.runs)))
    for run in status.runs:
        if run.status == "in progress" and run.last_event is not None:
            console.print(escape(f"run {run.run_id}, last event: {describe_event(run.last_event)}"))
        if run.published:
            console.print(escape(f"run {run.run_id} published: {', '.join(run.published)}"))
        if run.status == "failed":
            console.print(escape(f"run {run.run_id} failed: {run.error}"))


def _runs_table(status: CoordinatorStatus) -> Table:
    """One row per run, narrow enough for an 80-column terminal: no vertical rules, the
    start without the year, nodes as "took part (refused)", published segments counted
    (their names follow the table)."""
    table = Table(
        title=escape(f"runs under {status.state_dir / 'runs'}"),
        box=box.SIMPLE,
        pad_edge=False,
        show_edge=False,
    )
    for column in ("run", "status", "started UTC", "rounds", "nodes"):
        table.add_column(column, no_wrap=True)
    table.add_column("max eps", justify="right", no_wrap=True)
    table.add_column("published", justify="right", no_wrap=True)
    for run in status.runs:
        planned = "?" if run.rounds_planned is None else run.rounds_planned
        cells = (
            run.run_id,
            run.status,
            utc_time(run.started_at)[5:16],
            f"{run.rounds_done}/{planned}",
            f"{len(run.nodes)} ({run.refusals})",
            "-" if run.max_epsilon_run is None else epsilon_number(run.max_epsilon_run),
            str(len(run.published)),
        )
        table.add_row(*map(escape, cells))
    return table


def _run_deltas(runs: Sequence[RunView]) -> str:
    """The footnote naming the delta of the runs' epsilons (the plan's of each run)."""
    deltas: dict[str, list[str]] = {}
    for run in runs:
        if run.max_epsilon_run is not None:
            key = "?" if run.run_delta is None else f"{run.run_delta:g}"
            deltas.setdefault(key, []).append(run.run_id)
    if len(deltas) == 1:
        (delta,) = deltas
        where = f"at delta {delta}"
    else:
        where = "at each plan's delta: " + "; ".join(
            f"{delta} ({', '.join(ids)})" for delta, ids in deltas.items()
        )
    return (
        f"max eps: the largest record-level epsilon a run cost a node, {where} "
        "(lifetime epsilons, at each node's cap delta, are in the run's summary and report)"
    )


def describe_event(event: ProgressEvent) -> str:
    """One line for a progress event, e.g. "round_end (round 3, model), 12 s ago"."""
    where = ", ".join(
        f"{key} {getattr(event, key)}" for key in ("round", "task") if hasattr(event, key)
    )
    age = time.time() - event.time
    return f"{event.KIND}{f' ({where})' if where else ''}, {age:.0f} s ago"


def _ledger_line(ledger: LedgerView | None) -> str:
    if ledger is None:
        return "Ledger: none yet"
    verdict = "[green]verified[/]" if ledger.verified else "[red]FAILED verification[/]"
    line = (
        f"Ledger: {ledger.entries} entries, signed head of {ledger.signed_size} "
        f"(root {(ledger.root_hash or '-')[:16]}, {utc_time(ledger.head_time)}), {verdict}"
    )
    return "\n".join([line, *(f"  {escape(problem)}" for problem in ledger.problems)])
