"""Data-quality rating: the documented formula on hand-worked examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from node_site import NodeSite, load_spec

from enterprise_node.ingest import normalise_cells
from enterprise_node.quality import (
    SUSPECT_UNIT_GRADE,
    WEIGHTS,
    grade_for,
    guess_duration_unit,
    rate_quality,
    weighted_score,
)
from enterprise_node.validation import validate_table

SPEC = load_spec()


def _rate(tmp_path: Path, n_rows: int, *, bad=None, duration_scale: float = 1.0):
    site = NodeSite(tmp_path)
    columns = {c: c for c in ("unit_id", "segment", "equipment_class", "duration", "failed")}
    columns.update({name: name for name in SPEC.feature_names})
    table = normalise_cells(site.table(n_rows, bad=bad))
    validation = validate_table(table, site_columns=columns, spec=SPEC, source=Path("u.csv"))
    return rate_quality(validation, SPEC, duration_scale=duration_scale)


def test_weights_sum_to_one():
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)


def test_weighted_score_known_answer():
    # 100 x (0.25 x 0.8 + 0.35 x 0.6 + 0.20 x 1.0 + 0.20 x 0.5) = 71.0
    assert weighted_score(0.8, 0.6, 1.0, 0.5) == 71.0
    assert weighted_score(1.0, 1.0, 1.0, 1.0) == 100.0


@pytest.mark.parametrize(
    ("score", "grade"),
    [
        (100.0, "A"),
        (90.0, "A"),
        (89.9, "B"),
        (75.0, "B"),
        (74.9, "C"),
        (60.0, "C"),
        (59.9, "D"),
        (0.0, "D"),
    ],
)
def test_grade_thresholds(score, grade):
    assert grade_for(score) == grade


def test_clean_data_rates_100_a(tmp_path):
    # Execute
    rating = _rate(tmp_path, 12)
    # Assert
    assert (rating.completeness, rating.validity, rating.consistency, rating.plausibility) == (
        1.0,
        1.0,
        1.0,
        1.0,
    )
    assert (rating.score, rating.grade, rating.notes) == (100.0, "A", ())


def test_hand_example(tmp_path):
    # Prepare: 10 rows, durations 6.5 .. 33.5; 9 cells per row are counted (5 required + 4
    # covariates). Row 2 misses load_pct; row 4 repeats row 1's id; row 6 has load 150
    # (outside [0, 100], not an error); row 8 lasts 2000 months (> 3 x 120); row 9 has an
    # unknown segment. Bad rows: 2, 4, 9.
    bad = {
        (2, "load_pct"): "",
        (4, "unit_id"): "UNIT-0001",
        (6, "load_pct"): "150",
        (8, "duration"): "2000",
        (9, "segment"): "mining",
    }
    # Execute
    rating = _rate(tmp_path, 10, bad=bad)
    # Assert
    completeness = 89 / 90  # 1 empty cell of 90
    validity = 7 / 10  # 3 bad rows of 10
    consistency = (0.9 + 1.0 + 1.0) / 3  # 1 repeated id; no entry ages; no segment judged
    plausibility = (28 / 29 + 9 / 10) / 2  # 28 of 29 covariate values in bounds; 9 of 10 sane
    assert rating.completeness == pytest.approx(completeness)
    assert rating.validity == pytest.approx(validity)
    assert rating.consistency == pytest.approx(consistency)
    assert rating.plausibility == pytest.approx(plausibility)
    # 24.722 + 24.5 + 19.333 + 18.655 = 87.21 -> 87.2, grade B
    assert rating.score == 87.2
    assert rating.grade == "B"
    assert len(rating.notes) == 4


def test_segment_where_every_unit_failed_costs_consistency(tmp_path):
    # Prepare: 60 rows, 20 per segment; every nev_battery unit (rows 2, 5, 8, ...) failed
    bad = {(row, "failed"): "1" for row in range(2, 61, 3)}
    # Execute
    rating = _rate(tmp_path, 60, bad=bad)
    # Assert
    assert rating.consistency == pytest.approx((1.0 + 1.0 + 2 / 3) / 3)
    assert any("segment nev_battery: 20 of 20 units failed" in note for note in rating.notes)


def test_segment_without_failures_is_flagged(tmp_path):
    # Prepare: no failures at all in semiconductor_fab (rows 1, 4, 7, ...)
    bad = {(row, "failed"): "0" for row in range(1, 61, 3)}
    # Execute
    rating = _rate(tmp_path, 60, bad=bad)
    # Assert
    assert any("segment semiconductor_fab: no failures" in note for note in rating.notes)
    assert rating.consistency == pytest.approx((1.0 + 1.0 + 2 / 3) / 3)


def test_wrong_duration_scale_costs_plausibility(tmp_path):
    # Prepare: durations 6.5 .. 33.5 scaled x 100 are all beyond 360 months
    # Execute
    rating = _rate(tmp_path, 10, duration_scale=100.0)
    # Assert
    assert rating.plausibility == pytest.approx((1.0 + 0.0) / 2)
    assert any("check data.duration_scale" in note for note in rating.notes)


def _in_days(n_rows: int) -> dict[tuple[int, str], str]:
    """Every row's duration (6.5 + 3 i months) written in days."""
    return {(i + 1, "duration"): f"{(6.5 + 3 * i) * 30.4375:g}" for i in range(n_rows)}


def test_days_read_as_months_are_named_with_the_scale_and_cap_the_grade(tmp_path):
    # Prepare: 60 units whose durations are in days, duration_scale forgotten (1.0)
    # Execute
    rating = _rate(tmp_path, 60, bad=_in_days(60))
    # Assert: the score alone would still be an A; the unit is named and the grade capped
    assert rating.score >= 90
    assert rating.grade == SUSPECT_UNIT_GRADE == "C"
    assert rating.suggested_duration_scale == pytest.approx(1 / 30.4375)
    (warning,) = rating.warnings
    assert "durations look like days, not months" in warning
    assert "Set data.duration_scale: 0.03285 in node.yaml" in warning
    assert "exceed 360 months" in warning and "capped at C" in warning


def test_days_with_their_scale_are_fine(tmp_path):
    # Execute
    rating = _rate(tmp_path, 60, bad=_in_days(60), duration_scale=1 / 30.4375)
    # Assert
    assert (rating.grade, rating.warnings, rating.suggested_duration_scale) == ("A", (), None)


def test_a_few_very_old_units_do_not_make_the_unit_suspect(tmp_path):
    # Prepare: 3 of 60 units (5 %, not more) older than 3 x the horizon
    bad = {(row, "duration"): "400" for row in (1, 2, 3)}
    # Execute
    rating = _rate(tmp_path, 60, bad=bad)
    # Assert: a note and a lower plausibility, but no warning
    assert rating.warnings == () and rating.grade == "A"
    assert any("check data.duration_scale" in note for note in rating.notes)


def test_the_guess_finds_hours_and_gives_up_on_an_unknown_grid_unit():
    # Prepare: ages 1-9 years in hours
    hours = np.array([1.0, 2.5, 4.0, 6.0, 9.0]) * 365.25 * 24
    # Execute
    guess = guess_duration_unit(hours, SPEC, duration_scale=1.0)
    cycles = SPEC.model_copy(
        update={"time_grid": SPEC.time_grid.model_copy(update={"unit": "cycles"})}
    )
    # Assert
    assert guess == ("hours", pytest.approx(1 / 730.5))
    assert guess_duration_unit(hours, cycles, duration_scale=1.0) is None


def test_a_tail_of_typos_is_flagged_without_naming_a_unit(tmp_path):
    # Prepare: 4 of 60 durations (6.7 %) typed as 2000 months; the bulk is in months
    bad = {(row, "duration"): "2000" for row in (5, 15, 25, 35)}
    # Execute
    rating = _rate(tmp_path, 60, bad=bad)
    # Assert
    (warning,) = rating.warnings
    assert warning.startswith("Durations look too long for months") and "look like" not in warning
    assert "4 of 60 durations (6.7%) exceed 360 months" in warning
    assert (rating.grade, rating.suggested_duration_scale) == ("C", None)


# ---- planted defects: what lowers the score, and by how much -------------------------------


def test_one_bad_row_in_many_is_never_a_perfect_score(tmp_path):
    # 1 bad row of 40: validity 0.975 -> 100 x (1 - 0.35 x 0.025) = 99.125 -> 99.1
    rating = _rate(tmp_path, 40, bad={(7, "duration"): "-1"})
    assert rating.validity == pytest.approx(39 / 40)
    assert rating.score == 99.1 and rating.grade == "A"
    # rounded down: a share a hair under 1 still shows
    assert weighted_score(1.0, 1.0 - 1e-6, 1.0, 1.0) == 99.9


def test_a_file_with_no_usable_row_scores_zero(tmp_path):
    rating = _rate(tmp_path, 30, bad={(r, "failed"): "maybe" for r in range(1, 31)})
    assert rating.validity == 0.0
    assert (rating.score, rating.grade) == (0.0, "D")
    assert any("nothing of this file can be used" in w for w in rating.warnings)


def test_covariates_outside_their_bounds_lower_plausibility_by_their_share(tmp_path):
    # load_pct 150 (bounds 0-100) in 10 of 40 rows: 10 of the 40 x 3 numeric covariate
    # values are outside -> p1 = 110/120; P = (p1 + 1) / 2; the score loses 20 x (1 - P)
    rating = _rate(tmp_path, 40, bad={(r, "load_pct"): "150" for r in range(1, 11)})
    assert rating.validity == 1.0  # clipped at encoding, not rejected
    assert rating.plausibility == pytest.approx((110 / 120 + 1) / 2)
    assert rating.score == weighted_score(1.0, 1.0, 1.0, (110 / 120 + 1) / 2)
    assert rating.score < 100.0
