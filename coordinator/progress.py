"""Showing a run's progress in the terminal, one line per round, from progress events."""

from __future__ import annotations

from rich.console import Console

from coordinator.progress_events import (
    EnterpriseBudgetStop,
    EnterpriseDPStated,
    EnterpriseEpsilon,
    NodesReady,
    ProgressEvent,
    RoundEnd,
    RoundStart,
    RunEnd,
    RunResumed,
    RunStart,
    SecureSumDone,
)
from coordinator.run_summary import RunSummary
from coordinator.run_view import describe_node_epsilon
from privacy.epsilon_wording import epsilon_at, epsilon_number

__all__ = ["ProgressPrinter", "print_node_epsilons"]


#: Secure-aggregation stages around each round's task: shown only when a node had a problem.
_SECAGG_STAGES = ("secagg-keys", "secagg-shares", "secagg-unmask")


class ProgressPrinter:
    """Turns ``progress.jsonl`` events into readable lines on a rich console."""

    def __init__(self, console: Console, total_rounds: int) -> None:
        self.console = console
        self.total = total_rounds
        #: Seconds and exchanges of each round so far (a secure round has three or four).
        self._seconds: dict[int, float] = {}
        self._exchanges: dict[int, int] = {}

    def __call__(self, event: ProgressEvent) -> None:
        match event:
            case RunStart():
                self.console.print(
                    f"[bold]run {event.run_id}[/]: plan {event.plan_digest[:12]}, "
                    f"{event.rounds} model round(s) + curve round, "
                    f"waiting for {event.expected_nodes} node(s)"
                )
            case RunResumed():
                self.console.print(
                    f"  resumed after a crash: {event.checkpoint_round} model round(s) "
                    f"complete, continuing with round {event.from_round}"
                )
            case NodesReady():
                self.console.print(f"  {event.nodes} node(s) connected")
            case RoundStart() if self.console.is_terminal:
                # on a terminal, each exchange as it starts (a deployed one can take a minute)
                self.console.print(
                    f"  [dim]round {event.round}/{self.total}: {event.task} exchange with "
                    f"{event.nodes} node(s)...[/]"
                )
            case RoundEnd():
                self._seconds[event.round] = self._seconds.get(event.round, 0.0) + event.seconds
                self._exchanges[event.round] = self._exchanges.get(event.round, 0) + 1
                if event.task not in _SECAGG_STAGES or event.problems:
                    self._round(event)
            case SecureSumDone():
                self.console.print(
                    f"    secure sum of {event.survivors} node(s), {event.dropped} dropped; "
                    f"round {event.round} took {self._seconds.get(event.round, 0.0):.1f} s "
                    f"over {self._exchanges.get(event.round, 0)} exchanges"
                )
            case EnterpriseDPStated():
                self._enterprise_dp(event)
            case EnterpriseEpsilon():
                spent = _at(event.epsilon, event.delta)
                self.console.print(f"    enterprise-level {spent} so far")
            case EnterpriseBudgetStop():
                self.console.print(
                    f"  [yellow]enterprise budget stop[/] before round {event.round}: "
                    f"{_at(event.epsilon, event.delta)}, the next round would reach "
                    f"{epsilon_number(event.projected)}; keeping the last model"
                )
            case RunEnd() if not event.completed:
                # the command's error line that follows gives the reason (once)
                self.console.print(f"[red]run failed[/] after {event.seconds:.1f} s")

    def _enterprise_dp(self, event: EnterpriseDPStated) -> None:
        self.console.print(
            f"  enterprise-level DP: clip {event.clip_norm:g}, noise multiplier "
            f"{event.noise_multiplier:g}; expected noise norm of the mean update "
            f"{event.expected_noise_norm_of_mean:.3g}"
        )
        if event.warning:
            self.console.print(f"  [yellow]warning:[/] {event.warning}")

    def _round(self, event: RoundEnd) -> None:
        refused, failed = event.refused, event.failed
        colour = "green" if not (refused or failed) else "yellow"
        self.console.print(
            f"  [{colour}]round {event.round}/{self.total} {event.task:<5}[/] "
            f"{len(event.ok)} ok, {len(refused)} refused, {len(failed)} failed, "
            f"{_spent(event)}, this exchange {event.seconds:.1f} s"
        )
        for problem in refused:
            self.console.print(f"    [yellow]refused[/] {problem.node}: {problem.reason}")
        for problem in failed:
            self.console.print(f"    [red]failed[/] {problem.node}: {problem.reason}")


def print_node_epsilons(console: Console, summary: RunSummary) -> None:
    """After a run: each node's record-level epsilon, each figure with its delta."""
    for node, figures in summary.privacy.nodes.items():
        console.print(f"  {node}: {describe_node_epsilon(figures)}", markup=False)


def _at(epsilon: float, delta: float | None) -> str:
    """``epsilon X at delta Y`` (an event written before events named their delta: without)."""
    return f"epsilon {epsilon_number(epsilon)}" if delta is None else epsilon_at(epsilon, delta)


def _spent(event: RoundEnd) -> str:
    """The most this run has cost a node so far, at the plan's delta: the figure the run's
    summary and ``status`` show too."""
    if event.epsilon_run_max is None or event.delta_run is None:
        return "no record-level spend yet"
    return f"max node {epsilon_at(event.epsilon_run_max, event.delta_run)} this run"
