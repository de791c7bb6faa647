"""The progress printer: one readable line per round; secure stages only when they matter."""

from __future__ import annotations

from rich.console import Console

from coordinator.progress import ProgressPrinter, print_node_epsilons
from coordinator.progress_events import (
    EnterpriseBudgetStop,
    EnterpriseDPStated,
    ProgressEvent,
    RoundEnd,
    RoundStart,
    RunEnd,
    RunResumed,
    SecureSumDone,
)
from coordinator.round_summary import NodeNote
from coordinator.run_summary import NodePrivacy, RunPrivacy, RunSummary


def stage(task: str, *, failed: tuple[NodeNote, ...] = ()) -> RoundEnd:
    return RoundEnd(
        2, task, ("a", "b", "c"), (), failed, 0.2, epsilon_max=0.5, delta_max=1e-5,
        epsilon_run_max=0.6, delta_run=1e-6,
    )  # fmt: skip


def printed(*events: ProgressEvent) -> str:
    console = Console(record=True, width=200)
    printer = ProgressPrinter(console, total_rounds=3)
    for event in events:
        printer(event)
    return console.export_text()


def test_secure_stages_are_quiet_unless_a_node_had_a_problem() -> None:
    text = printed(
        stage("secagg-keys"),
        stage("secagg-shares", failed=(NodeNote("site-9", "no reply within 9 s"),)),
        stage("model"),
        SecureSumDone(2, "model", survivors=3, dropped=1),
    )
    assert "secagg-keys" not in text
    assert "secagg-shares" in text and "site-9: no reply within 9 s" in text
    assert "round 2/3 model" in text
    assert "secure sum of 3 node(s), 1 dropped" in text


def test_enterprise_dp_warning_and_budget_stop_are_shown() -> None:
    text = printed(
        EnterpriseDPStated(
            clip_norm=0.1,
            noise_multiplier=3.0,
            shares_planned=3,
            share_std=1.0,
            effective_noise_multiplier=3.0,
            expected_noise_std_per_coordinate_of_mean=0.5,
            expected_noise_norm_of_mean=2.5,
            epsilon_one_round=0.7,
            delta=1e-5,
            warning="enterprise-level DP with 4 enterprises: too noisy",
        ),
        EnterpriseBudgetStop(3, epsilon=9.0, projected=10.3),
    )
    assert "warning: enterprise-level DP with 4 enterprises" in text
    assert "enterprise budget stop before round 3: epsilon 9.000" in text
    assert "keeping the last model" in text


def test_a_resumed_run_says_where_it_continues() -> None:
    text = printed(RunResumed("r1", from_round=3, checkpoint_round=2))
    assert "resumed after a crash: 2 model round(s) complete, continuing with round 3" in text


def test_each_epsilon_is_named_with_its_delta() -> None:
    # Prepare: a node whose run epsilon (plan delta 1e-6) reads larger than its lifetime
    # epsilon (cap delta 1e-5), as in summary.json
    node = NodePrivacy(
        epsilon_run=1.999,
        delta_run=1e-6,
        epsilon_total=1.78,
        delta_total=1e-5,
        epsilon_cap=5.0,
        delta_cap=1e-5,
        releases=(),
    )
    privacy = RunPrivacy("record", "rdp", "", {"fab-a": node}, ())
    summary = RunSummary("r1", "completed", "p", (), privacy, 1.0)
    console = Console(record=True, width=200)
    # Execute
    print_node_epsilons(console, summary)
    round_line = printed(stage("model"))
    # Assert
    assert (
        "fab-a: this run: epsilon 1.999 at delta 1e-06; lifetime epsilon 1.780 of cap 5 at "
        "delta 1e-05 (a larger delta: it can read lower)"
    ) in console.export_text()
    # the round line shows the run's figure, at the plan's delta, as status and the summary do
    assert "max node epsilon 0.600 at delta 1e-06 this run" in round_line
    before = RoundEnd(1, "keys", ("a",), (), (), 0.1, epsilon_max=0.0)
    assert "no record-level spend yet" in printed(before)


def test_a_failed_run_is_announced_once_its_reason_is_left_to_the_error_line() -> None:
    # the command then prints "error: the run failed: <reason>": the reason appears once
    text = printed(RunEnd("failed", 12.34, "round 1 (model): 2 good repl(ies)"))
    assert "run failed after 12.3 s" in text and "good repl" not in text


def test_a_secure_round_shows_its_true_time_over_all_its_exchanges() -> None:
    # each stage took 0.2 s: the round took 0.6 s, not the model exchange's 0.2 s
    text = printed(
        stage("secagg-shares"),
        stage("model"),
        stage("secagg-unmask"),
        SecureSumDone(2, "model", survivors=3, dropped=0),
    )
    assert "this exchange 0.2 s" in text
    assert "round 2 took 0.6 s over 3 exchanges" in text


def test_each_exchange_is_announced_as_it_starts_on_a_terminal_only() -> None:
    start = RoundStart(2, "secagg-shares", 4)
    terminal = Console(record=True, width=200, force_terminal=True)
    ProgressPrinter(terminal, total_rounds=3)(start)
    assert "round 2/3: secagg-shares exchange with 4 node(s)..." in terminal.export_text()
    assert "secagg-shares" not in printed(start)  # a log file gets round lines only
