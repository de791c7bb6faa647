"""Row validation: each kind of bad cell names file, row and column; every error is collected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from node_site import NodeSite, load_spec

from enterprise_node.ingest import normalise_cells
from enterprise_node.validation import ERROR_KINDS, RowError, validate_table

SPEC = load_spec()
SOURCE = Path("/site/units.csv")
RENAME = {
    "duration": "op_months",
    "failed": "broke",
    "load_pct": "Load %",
    "vendor_origin": "origin",
    "entry_age": "age_at_start",
}


def _validate(
    site: NodeSite, n_rows: int = 12, *, bad=None, entry_age: bool = True, prefix="UNIT-"
):
    table = normalise_cells(site.table(n_rows, bad=bad, id_prefix=prefix))
    columns = {
        c: site.site_name(c)
        for c in ("unit_id", "segment", "equipment_class", "duration", "failed")
    }
    if entry_age:
        columns["entry_age"] = site.site_name("entry_age")
    columns.update({name: site.site_name(name) for name in SPEC.feature_names})
    return validate_table(table, site_columns=columns, spec=SPEC, source=SOURCE)


@pytest.fixture
def site(tmp_path: Path) -> NodeSite:
    return NodeSite(tmp_path, rename=dict(RENAME))


BAD_CELLS = [
    ("unit_id", "", "missing"),
    ("segment", "", "missing"),
    ("segment", "mining", "unknown_segment"),
    ("equipment_class", "toaster", "unknown_equipment_class"),
    ("equipment_class", " ", "missing"),
    ("duration", "", "missing"),
    ("duration", "abc", "not_numeric"),
    ("duration", "-3", "negative"),
    ("duration", "inf", "non_finite"),
    ("failed", "", "missing"),
    ("failed", "2", "not_binary"),
    ("failed", "yes", "not_binary"),
    ("entry_age", "x", "not_numeric"),
    ("entry_age", "-1", "negative"),
    ("entry_age", "500", "entry_not_before_exit"),
    ("entry_age", "-inf", "non_finite"),
    ("load_pct", "hot", "not_numeric"),
    ("load_pct", "NA", "missing"),
    ("load_pct", "inf", "non_finite"),
    ("ambient_temp_c", "", "missing"),
    ("vendor_origin", "martian", "unknown_level"),
    ("vendor_origin", "", "missing"),
]


@pytest.mark.parametrize(("column", "value", "kind"), BAD_CELLS)
def test_each_bad_cell_names_file_row_and_column(site, column, value, kind):
    # Prepare
    row = 7
    # Execute
    result = _validate(site, bad={(row, column): value})
    # Assert
    assert len(result.errors) == 1, result.errors
    error = result.errors[0]
    site_column = site.site_name(column)
    expected_column = site_column if site_column == column else f"{site_column} ({column})"
    assert (error.file, error.row, error.column, error.kind) == (
        str(SOURCE),
        row,
        expected_column,
        kind,
    )
    assert str(error).startswith(f"{SOURCE}: data row {row}, column {expected_column}: ")
    assert kind in ERROR_KINDS
    assert result.bad_rows.sum() == 1 and result.bad_rows[row - 1]


def test_bad_value_is_shown_truncated(site):
    # Prepare
    long_value = "z" * 200
    # Execute
    result = _validate(site, bad={(2, "segment"): long_value})
    # Assert
    (error,) = result.errors
    assert error.value.startswith("'zzz") and error.value.endswith("...")
    assert len(error.value) <= 40


def test_five_bad_rows_of_different_kinds_give_five_errors(site):
    # Prepare
    bad = {
        (2, "duration"): "-1",
        (4, "failed"): "3",
        (6, "segment"): "mining",
        (8, "vendor_origin"): "martian",
        (10, "load_pct"): "much",
    }
    # Execute
    result = _validate(site, bad=bad)
    # Assert
    assert [e.row for e in result.errors] == [2, 4, 6, 8, 10]
    assert [e.kind for e in result.errors] == [
        "negative",
        "not_binary",
        "unknown_segment",
        "unknown_level",
        "not_numeric",
    ]
    assert result.n_bad == 5


def test_every_error_of_one_row_is_reported_in_column_order(site):
    # Prepare
    bad = {(3, "failed"): "maybe", (3, "duration"): "", (3, "equipment_class"): "toaster"}
    # Execute
    result = _validate(site, bad=bad)
    # Assert
    assert [e.column for e in result.errors] == [
        "equipment_class",
        "op_months (duration)",
        "broke (failed)",
    ]
    assert result.n_bad == 1


def test_duplicate_ids_flag_every_copy_after_the_first_without_showing_the_id(site):
    # Prepare
    bad = {(4, "unit_id"): "UNIT-0001", (9, "unit_id"): "UNIT-0001"}
    # Execute
    result = _validate(site, bad=bad)
    # Assert
    assert [(e.row, e.kind) for e in result.errors] == [
        (4, "duplicate_unit_id"),
        (9, "duplicate_unit_id"),
    ]
    assert all("first seen in data row 1" in e.message for e in result.errors)
    assert not result.bad_rows[0]
    assert all("UNIT-0001" not in str(e) and e.value == "" for e in result.errors)


def test_unit_ids_never_appear_in_errors(site):
    # Prepare: every error kind on rows whose ids are distinctive
    bad = {
        (row, column): value
        for row, (column, value, _) in enumerate(BAD_CELLS, start=1)
        if column != "unit_id"
    }
    bad[len(BAD_CELLS) + 1, "unit_id"] = "TOPSECRET-0001"
    # Execute
    result = _validate(site, n_rows=len(BAD_CELLS) + 3, bad=bad, prefix="TOPSECRET-")
    # Assert
    assert len(result.errors) == len(BAD_CELLS)
    for error in result.errors:
        assert "TOPSECRET" not in str(error) and "TOPSECRET" not in repr(error)


def test_values_outside_public_bounds_are_not_errors(site):
    # Execute
    result = _validate(site, bad={(1, "load_pct"): "250", (2, "ambient_temp_c"): "-40"})
    # Assert
    assert result.errors == ()
    assert result.parsed.loc[0, "load_pct"] == 250.0


def test_entry_age_may_be_absent_in_a_row(site):
    # Execute
    result = _validate(site, bad={(5, "entry_age"): ""})
    # Assert
    assert result.errors == ()
    assert np.isnan(result.parsed.loc[4, "entry_age"])


def test_entry_age_equal_to_duration_is_an_error(site):
    # Prepare: row 1 has duration 6.5
    # Execute
    result = _validate(site, bad={(1, "entry_age"): "6.5"})
    # Assert
    (error,) = result.errors
    assert error.kind == "entry_not_before_exit"
    assert "duration is 6.5" in error.message


def test_unmapped_entry_age_is_not_checked(site):
    # Execute
    result = _validate(site, bad={(1, "entry_age"): "-5"}, entry_age=False)
    # Assert
    assert result.errors == ()
    assert result.parsed["entry_age"].isna().all()


def test_parsed_values_and_missing_mask(site):
    # Execute
    result = _validate(site, n_rows=3, bad={(2, "load_pct"): ""})
    # Assert
    assert result.parsed["duration"].tolist() == [6.5, 9.5, 12.5]
    assert result.parsed["failed"].tolist() == [1.0, 0.0, 0.0]
    assert result.missing["load_pct"].tolist() == [False, True, False]


def test_row_error_str_omits_hidden_value():
    # Prepare
    error = RowError("f.csv", 3, "unit_id", "missing value", "", "missing")
    # Execute / Assert
    assert str(error) == "f.csv: data row 3, column unit_id: missing value"


def test_numeric_cells_from_typed_columns_validate_like_text(site):
    # Prepare: a typed (Parquet-like) frame with a NaN duration and a bad failed code
    table = site.table(4)
    table["op_months"] = pd.to_numeric(table["op_months"])
    table.loc[1, "op_months"] = np.nan
    table["broke"] = [1, 0, 5, 0]
    columns = {
        c: site.site_name(c)
        for c in ("unit_id", "segment", "equipment_class", "duration", "failed")
    }
    columns.update({name: site.site_name(name) for name in SPEC.feature_names})
    # Execute
    result = validate_table(normalise_cells(table), site_columns=columns, spec=SPEC, source=SOURCE)
    # Assert
    assert [(e.row, e.kind) for e in result.errors] == [(2, "missing"), (3, "not_binary")]
    assert result.errors[1].value == "5"
