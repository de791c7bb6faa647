"""The fleet-risk benchmark: its enterprises and splits, its per-run figures on made-up
scores, and a tiny run on real data that writes every figure."""

from __future__ import annotations

import json
import math

import pytest

from bench.datasets import load_dataset
from bench.fleet_risk import (
    HELD_OUT_FRACTION,
    MIN_ENTERPRISES,
    EnterpriseScore,
    make_enterprises,
    run_fleet_risk,
    run_summary,
)


def score(factor: float, held: float, in_sample: float, shared=(1.0, 1.2)) -> EnterpriseScore:
    return EnterpriseScore(
        enterprise="e", joined_units=70, held_out_units=30, in_service=50, factor=factor,
        factor_low=factor, factor_high=factor, held_out_oe=held, held_out_failures=int(held * 10),
        held_out_expected=10.0, in_sample_oe=in_sample, shared=tuple(shared),
        shared_sd_stated=0.5,
    )  # fmt: skip


def test_gbsg2_is_cut_into_enough_unequal_enterprises_each_split_by_event() -> None:
    # Prepare
    dataset = load_dataset("gbsg2")  # 6 natural groups, fewer than a rank correlation needs
    # Execute
    enterprises = make_enterprises(dataset, seed=0, target=8)
    # Assert: every unit in exactly one part of one enterprise
    assert len(enterprises) >= MIN_ENTERPRISES
    ids = [u for e in enterprises for part in (e.joined, e.held_out) for u in part["unit_id"]]
    assert sorted(ids) == sorted(dataset.units["unit_id"])
    sizes = {len(e.joined) + len(e.held_out) for e in enterprises}
    assert len(sizes) > 1
    for e in enterprises:
        units = len(e.joined) + len(e.held_out)
        assert abs(len(e.held_out) - HELD_OUT_FRACTION * units) <= 1
        failed = e.joined["failed"].sum() + e.held_out["failed"].sum()
        assert abs(e.held_out["failed"].sum() - HELD_OUT_FRACTION * failed) <= 0.5
    # the same seed, the same enterprises
    again = make_enterprises(dataset, seed=0, target=8)
    assert [list(e.held_out["unit_id"]) for e in again] == [
        list(e.held_out["unit_id"]) for e in enterprises
    ]


def test_run_summary_by_hand() -> None:
    # Prepare: factors ranked as the held-out O/Es, in-sample O/Es in reverse; one
    # enterprise without a held-out failure and one share draw that gave no factor
    scores = [
        score(0.5, 0.0, 2.0),
        score(1.0, 1.0, 1.0),
        score(2.0, 2.0, 0.5, shared=(2.0, math.nan)),
    ]
    # Execute
    row = run_summary(scores)
    # Assert
    assert row["rho_factor"] == pytest.approx(1.0)
    assert row["rho_in_sample"] == pytest.approx(-1.0)
    assert row["log_error_factor"] == pytest.approx(0.0)  # 1 vs 1, 2 vs 2 (0 left out)
    assert row["log_error_one"] == pytest.approx(math.log(2) / 2)
    assert row["log_error_in_sample"] == pytest.approx(math.log(4) / 2)
    # the factors' geometric mean is 1: re-centred they are the factors themselves
    assert row["log_error_factor_recentred"] == pytest.approx(0.0)
    assert row["enterprises_scored"] == 2
    assert row["share_no_factor"] == pytest.approx(1 / 6)
    assert row["share_sd_stated_max"] == pytest.approx(1.0)  # 0.5 / 0.5
    assert row["pooled_held_out_oe"] == pytest.approx(30 / 30)


@pytest.mark.integration
def test_a_tiny_run_on_real_data_writes_every_figure(tmp_path) -> None:
    out = tmp_path / "out" / "fleet_risk.json"
    report = run_fleet_risk(["gbsg2"], out, tmp_path / "work", seeds=1, splits=1)
    written = json.loads(out.read_text())
    assert written["datasets"][0]["dataset"] == "gbsg2"
    assert (tmp_path / "out" / "fleet_risk_gbsg2.png").stat().st_size > 0
    settings = report["datasets"][0]["settings"]
    assert [s["setting"] for s in settings] == ["DP off", "DP eps 2"]
    for setting in settings:
        figures = setting["figures"]
        assert -1.0 <= figures["rho_factor"]["mean"] <= 1.0
        assert 0.7 < figures["pooled_held_out_oe"]["mean"] < 1.3  # the curve fits its data
        assert figures["log_error_one"]["mean"] >= 0.0
