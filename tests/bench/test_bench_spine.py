"""The spine benchmark's pure parts: round timing, ratio, JSON record, table, config copies.

No federation is run here (that is `make bench`); the CLI is checked on its error paths.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from bench.node_copies import allow_non_private
from bench.report import BenchSetup, RunFigures, render_table, spine_report
from bench.spine import main, non_private_config
from bench.timing import RoundTiming, ratio, read_round_timing, round_timing
from common.exit_codes import ExitCode
from coordinator.config import load_config_or_default
from coordinator.progress_events import (
    NodesReady,
    ProgressEvent,
    RoundEnd,
    RoundStart,
    RunEnd,
    RunStart,
)
from coordinator.run_store import RunStore
from enterprise_node.config import load_node_config

SEGMENTS = ("semiconductor_fab", "nev_battery", "industrial_robot")


def round_end(number: int, task: str, seconds: float) -> RoundEnd:
    """Factory: the end of exchange ``task`` of round ``number`` (every node answered)."""
    return RoundEnd(number, task, ("a", "b", "c"), (), (), seconds, epsilon_max=0.0)


def events(model_seconds: list[float], curve_seconds: float | None = 1.5) -> list[ProgressEvent]:
    """Factory: progress events of a run with these model-round times (round 1 first)."""
    out: list[ProgressEvent] = [RunStart("r", "p", len(model_seconds), 3), NodesReady(3)]
    for number, seconds in enumerate(model_seconds, start=1):
        out.append(RoundStart(number, "model", 3))
        out.append(round_end(number, "model", seconds))
    if curve_seconds is not None:
        out.append(round_end(len(model_seconds) + 1, "curve", curve_seconds))
    out.append(RunEnd("completed", 99.0))
    return out


def figures(*, later: float, first: float, c_index: float, offset: float) -> RunFigures:
    """Factory: a run's figures with distinct, recognisable values."""
    return RunFigures(
        timing=RoundTiming(first_model_round=first, later_model_rounds=later, later_count=9,
                           curve_round=0.75),
        c_index=c_index,
        ibs=0.1 + offset,
        curve_vs_truth={s: 0.01 * (k + 1) + offset for k, s in enumerate(SEGMENTS)},
        curve_vs_pooled={s: 0.001 * (k + 1) + offset for k, s in enumerate(SEGMENTS)},
        epsilon_per_node={"enterprise-01": 1.9876543219, "enterprise-02": 2.0} if offset else {},
        run_seconds=60.0 + offset,
    )


def report(*, dp_later: float = 6.0, plain_later: float = 2.0) -> dict:
    setup = BenchSetup(
        enterprises=2, units_per_enterprise={"enterprise-01": 2500, "enterprise-02": 4100},
        seed=0, rounds=10, local_epochs=2.0, batch_size=128, epsilon_target=2.0, delta=1e-6,
    )
    return spine_report(
        setup,
        figures(later=dp_later, first=30.0, c_index=0.71234567, offset=0.002),
        figures(later=plain_later, first=20.0, c_index=0.73, offset=0.0),
        central_c_index=0.75, central_ibs=0.09, central_seconds=12.3456,
        machine={"nproc": 2, "python": "3.11.9", "torch": "2.13.0", "flwr": "1.42.0",
                 "opacus": "1.6.0"},
        timestamp="2026-01-01T00:00:00+00:00", wall_seconds=200.04,
    )


def test_round_timing_excludes_round_one_from_the_mean() -> None:
    # Prepare: round 1 pays start-up (10 s), later rounds 2, 3, 4 s
    run = events([10.0, 2.0, 3.0, 4.0])
    # Execute
    timing = round_timing(run)
    # Assert
    assert timing == RoundTiming(
        first_model_round=10.0, later_model_rounds=3.0, later_count=3, curve_round=1.5
    )


def test_round_timing_of_a_one_round_run_has_no_per_round_mean() -> None:
    # Execute
    timing = round_timing(events([7.0], curve_seconds=None))
    # Assert
    assert timing.first_model_round == 7.0
    assert timing.later_model_rounds is None and timing.later_count == 0
    assert timing.curve_round is None


def test_read_round_timing_reads_the_run_store_progress_file(tmp_path: Path) -> None:
    # Prepare: events written the way the ServerApp writes them
    store = RunStore(tmp_path / "run")
    for event in events([5.0, 1.0, 2.0]):
        store.event(event)
    # Execute
    timing = read_round_timing(tmp_path / "run")
    # Assert
    assert (timing.first_model_round, timing.later_model_rounds) == (5.0, 1.5)


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [(6.0, 2.0, 3.0), (1.0, 4.0, 0.25), (1.0, 0.0, None), (None, 2.0, None), (2.0, None, None)],
)
def test_ratio(numerator, denominator, expected) -> None:
    assert ratio(numerator, denominator) == expected


def test_report_has_the_contracted_keys_and_the_dp_over_plain_ratio() -> None:
    # Execute
    record = report(dp_later=6.0, plain_later=2.0)
    # Assert: the keys other tools read, the ratio of the later-round means, sums, rounding
    for key in (
        "curve_max_abs_error_vs_truth", "curve_max_abs_error_vs_pooled", "c_index_federated_dp",
        "c_index_federated_plain", "c_index_central_nonprivate", "ibs_federated_dp",
        "ibs_central_nonprivate", "epsilon_per_node", "seconds_per_round_plain",
        "seconds_per_round_dp", "seconds_first_round_dp", "seconds_first_round_plain",
        "machine", "timestamp", "wall_seconds_total", "rounds", "epsilon_target", "delta",
        "enterprises", "units_per_enterprise",
    ):
        assert key in record, key
    assert record["seconds_per_round_ratio_dp_over_plain"] == 3.0
    assert (record["seconds_first_round_dp"], record["seconds_first_round_plain"]) == (30.0, 20.0)
    assert record["units_total"] == 6600
    assert record["curve_max_abs_error_vs_truth"]["nev_battery"] == 0.022
    assert record["curve_max_abs_error_vs_pooled_plain"]["industrial_robot"] == 0.003
    assert record["epsilon_per_node"]["enterprise-01"] == 1.987654
    assert record["seconds_central_training"] == 12.346
    assert json.loads(json.dumps(record)) == record  # plain JSON, nothing exotic


def test_report_ratio_is_null_without_later_rounds() -> None:
    # Prepare
    setup = BenchSetup(1, {"e": 100}, 0, 1, 1.0, 64, 2.0, 1e-6)
    one_round = RunFigures(RoundTiming(4.0, None, 0, 1.0), 0.7, 0.1, {}, {}, {}, 5.0)
    # Execute
    record = spine_report(
        setup, one_round, one_round, central_c_index=0.7, central_ibs=0.1, central_seconds=1.0,
        machine={}, timestamp="t", wall_seconds=1.0,
    )
    # Assert
    assert record["seconds_per_round_dp"] is None
    assert record["seconds_per_round_ratio_dp_over_plain"] is None


def test_table_shows_every_figure() -> None:
    # Prepare
    console = Console(record=True, width=200)
    # Execute
    console.print(render_table(report(dp_later=6.0, plain_later=2.0)))
    text = console.export_text()
    # Assert
    assert "3.00 x" in text
    assert "0.7123" in text and "0.7300" in text and "0.7500" in text
    assert "max |F(t) error| vs truth, nev_battery" in text and "0.0220" in text
    assert "1.988 - 2.000" in text
    assert "mean of rounds 2..10" in text
    assert "6,600 units" in text


def test_non_private_config_only_turns_record_dp_off() -> None:
    # Prepare
    config = load_config_or_default(None)
    # Execute
    plain = non_private_config(config)
    # Assert: DP off, everything else the same, the original untouched
    assert plain.plan.privacy.record.enabled is False
    assert config.plan.privacy.record.enabled is True
    expected = config.model_dump()
    expected["plan"]["privacy"]["record"]["enabled"] = False
    assert plain.model_dump() == expected
    assert plain.plan.digest != config.plan.digest


def test_allow_non_private_sets_only_that_key(tmp_path: Path) -> None:
    # Prepare
    node_yaml = tmp_path / "node.yaml"
    shutil.copy("configs/node.yaml", node_yaml)
    before = load_node_config(node_yaml)
    # Execute
    allow_non_private(node_yaml)
    # Assert
    after = load_node_config(node_yaml)
    assert before.privacy.allow_non_private is False
    assert after.privacy.allow_non_private is True
    assert after.model_copy(update={"privacy": before.privacy}) == before


def test_main_reports_a_missing_config_with_its_exit_code(tmp_path, capsys) -> None:
    # Execute
    code = main(["--config", str(tmp_path / "missing.yaml"), "--out", str(tmp_path)])
    # Assert
    assert code == ExitCode.CONFIG_ERROR
    assert "spine benchmark failed" in capsys.readouterr().err


def test_main_refuses_to_delete_a_work_dir_it_did_not_make(tmp_path, capsys) -> None:
    # Prepare: someone else's directory where the work dir goes
    (tmp_path / "spine-work").mkdir()
    (tmp_path / "spine-work" / "precious.txt").write_text("keep me")
    # Execute
    code = main(["--out", str(tmp_path)])
    # Assert
    assert code == ExitCode.CONFIG_ERROR
    assert "not a fedrisk bench work directory" in capsys.readouterr().err
    assert (tmp_path / "spine-work" / "precious.txt").exists()
