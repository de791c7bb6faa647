"""Ingestion: canonical table, pseudonyms, scaling, file errors, quarantine and refusal."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from node_site import NodeSite, load_spec

import common.atomic
from common.errors import ConfigError, DataError, DataRefusedError, StateError
from enterprise_node.config import load_node_config
from enterprise_node.ingest import ingest, load_and_validate, quarantine_path_for
from enterprise_node.pseudonym import (
    SECRET_BYTES,
    load_or_create_site_secret,
    pseudonymise,
    pseudonymise_many,
)

SPEC = load_spec()


@pytest.fixture
def site(tmp_path: Path) -> NodeSite:
    return NodeSite(tmp_path)


# --- the canonical unit table ---------------------------------------------------------


def test_good_file_gives_the_canonical_table(site):
    # Prepare
    config = site.build(12, entry_age=True)
    # Execute
    result = ingest(config, SPEC)
    # Assert
    frame = result.frame
    assert list(frame.columns) == [
        "unit_id",
        "segment",
        "equipment_class",
        "duration",
        "failed",
        "entry_age",
        "load_pct",
        "ambient_temp_c",
        "maintenance_interval_days",
        "vendor_origin",
    ]
    assert frame["duration"].dtype == np.float64 and frame["failed"].dtype == np.int64
    assert frame["entry_age"].dtype == np.float64 and frame["load_pct"].dtype == np.float64
    assert frame["vendor_origin"].map(type).eq(str).all()
    assert (result.n_rows_read, result.n_rows_accepted, result.errors) == (12, 12, ())
    assert result.quarantine_path is None
    assert frame["segment"].tolist()[:3] == ["semiconductor_fab", "nev_battery", "industrial_robot"]
    assert result.source == config.data_path


def test_unit_ids_are_hmac_sha256_under_the_site_secret(site):
    # Prepare
    config = site.build(5)
    # Execute
    result = ingest(config, SPEC)
    # Assert
    secret = bytes.fromhex(config.site_secret_path.read_text().strip())
    expected = [
        hmac.new(secret, f"UNIT-{i:04d}".encode(), hashlib.sha256).hexdigest() for i in range(1, 6)
    ]
    assert result.frame["unit_id"].tolist() == expected
    assert not any(uid.startswith("UNIT-") for uid in result.frame["unit_id"])


def test_durations_and_entry_ages_are_scaled(site):
    # Prepare: site durations in years, federation unit months
    config = site.build(4, entry_age=True, duration_scale=12.0)
    # Execute
    frame = ingest(config, SPEC).frame
    # Assert
    assert frame["duration"].tolist() == [78.0, 114.0, 150.0, 186.0]
    assert frame["entry_age"].tolist() == [0.0, 12.0, 24.0, 36.0]


def test_unmapped_entry_age_is_nan(site):
    # Execute
    frame = ingest(site.build(3, entry_age=False), SPEC).frame
    # Assert
    assert frame["entry_age"].isna().all()


def test_csv_and_parquet_give_the_same_frame(site):
    # Prepare
    csv_config = site.build(15, entry_age=True, name="units.csv")
    parquet_config = site.build(15, entry_age=True, name="units.parquet")
    # Execute
    from_csv = ingest(csv_config, SPEC).frame
    from_parquet = ingest(parquet_config, SPEC).frame
    # Assert
    pd.testing.assert_frame_equal(from_csv, from_parquet)


def test_cells_are_stripped_and_na_tokens_are_missing(tmp_path):
    # Prepare
    site = NodeSite(tmp_path)
    config = site.build(4, bad={(2, "segment"): "  nev_battery ", (3, "load_pct"): "N/A"})
    # Execute
    result = ingest(config, SPEC)
    # Assert
    assert result.frame.loc[1, "segment"] == "nev_battery"
    assert [(e.row, e.column, e.kind) for e in result.errors] == [(3, "load_pct", "missing")]


def _with_constants(site: NodeSite, constants: dict[str, object]) -> Path:
    """node.yaml of ``site`` with some canonical columns given as constants."""
    path = site.write_config()
    document = yaml.safe_load(path.read_text())
    document["data"]["columns"].update(constants)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_segment_and_equipment_class_can_be_constants(site):
    # Prepare: a one-segment site whose file has neither column
    site.write_data(6, drop=("segment", "equipment_class"))
    path = _with_constants(
        site, {"segment": {"value": "nev_battery"}, "equipment_class": {"value": "coating"}}
    )
    # Execute
    result = ingest(load_node_config(path), SPEC)
    # Assert
    assert (result.n_rows_accepted, result.errors) == (6, ())
    assert set(result.frame["segment"]) == {"nev_battery"}
    assert set(result.frame["equipment_class"]) == {"coating"}
    assert result.quality.completeness == 1.0


def test_a_constant_outside_the_published_list_is_a_config_error_naming_key_and_file(site):
    # Prepare
    site.write_data(4, drop=("segment",))
    path = _with_constants(site, {"segment": {"value": "hdd"}})
    # Execute / Assert
    with pytest.raises(
        ConfigError, match=r"data\.columns\.segment: constant 'hdd' is not in"
    ) as info:
        ingest(load_node_config(path), SPEC)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("constant", "key_path"),
    [
        ({"segment": {"value": "nev_battery", "colour": "red"}}, "segment.constant.colour"),
        ({"equipment_class": {"valeu": "coating"}}, "equipment_class.constant.valeu"),
        ({"unit_id": {"value": "U1"}}, "unit_id"),
    ],
)
def test_constants_are_parsed_strictly(site, constant, key_path):
    # Prepare
    path = _with_constants(site, constant)
    # Execute / Assert
    with pytest.raises(ConfigError, match=rf"data\.columns\.{key_path}: ") as info:
        load_node_config(path)
    assert str(path) in str(info.value)


def test_a_missing_segment_column_suggests_a_constant(site):
    # Prepare
    site.write_data(3, drop=("segment",))
    config = load_node_config(site.write_config())
    # Execute / Assert
    with pytest.raises(DataError, match="segment -> 'segment'") as info:
        ingest(config, SPEC)
    assert "segment: {value: ...}" in info.value.advice


# --- pseudonyms and the site secret --------------------------------------------------


def test_pseudonym_matches_hmac_and_differs_per_secret():
    # Prepare
    secret_a, secret_b = b"a" * SECRET_BYTES, b"b" * SECRET_BYTES
    # Execute
    pseudonym_a = pseudonymise("CNC-17", secret_a)
    pseudonym_b = pseudonymise("CNC-17", secret_b)
    # Assert
    assert pseudonym_a == hmac.new(secret_a, b"CNC-17", hashlib.sha256).hexdigest()
    assert pseudonym_a != pseudonym_b
    assert pseudonymise_many(["CNC-17", "CNC-18"], secret_a)[0] == pseudonym_a


def test_site_secret_is_created_0600_and_then_kept(tmp_path):
    # Prepare
    path = tmp_path / "secrets" / "site.key"
    # Execute
    first = load_or_create_site_secret(path)
    second = load_or_create_site_secret(path)
    # Assert
    assert first == second and len(first) == SECRET_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["site.key"]


def test_two_sites_get_different_secrets(tmp_path):
    # Execute
    a = load_or_create_site_secret(tmp_path / "a.key")
    b = load_or_create_site_secret(tmp_path / "b.key")
    # Assert
    assert a != b


@pytest.mark.parametrize(("content", "message"), [("zz-not-hex", "not hex"), ("abcd", "2 bytes")])
def test_corrupt_site_secret_is_a_state_error(tmp_path, content, message):
    # Prepare
    path = tmp_path / "site.key"
    path.write_text(content)
    path.chmod(0o600)
    # Execute / Assert
    with pytest.raises(StateError, match=message):
        load_or_create_site_secret(path)


def test_world_readable_secret_warns(tmp_path):
    # Prepare
    path = tmp_path / "site.key"
    path.write_text("ab" * SECRET_BYTES)
    path.chmod(0o644)
    # Execute / Assert
    with pytest.warns(UserWarning, match="readable by other users"):
        load_or_create_site_secret(path)


# --- file-level errors ---------------------------------------------------------------


def test_missing_file_is_a_data_error_naming_it(site):
    # Prepare
    config = load_node_config(site.write_config(data="nowhere.csv"))
    # Execute / Assert
    with pytest.raises(DataError, match=r"nowhere\.csv: data file not found"):
        ingest(config, SPEC)


def test_unknown_format_is_a_data_error(site):
    # Prepare
    site.write_data(3, name="units.xlsx")
    config = load_node_config(site.write_config(data="units.xlsx"))
    # Execute / Assert
    with pytest.raises(DataError, match=r"units\.xlsx: unknown data format '\.xlsx'"):
        ingest(config, SPEC)


def test_unreadable_parquet_is_a_data_error(site):
    # Prepare
    (site.root / "units.parquet").write_bytes(b"this is not parquet")
    config = load_node_config(site.write_config(data="units.parquet"))
    # Execute / Assert
    with pytest.raises(DataError, match=r"units\.parquet: cannot read as parquet"):
        ingest(config, SPEC)


def test_empty_and_header_only_files_are_data_errors(site):
    # Prepare
    config = load_node_config(site.write_config())
    # Execute / Assert
    (site.root / "units.csv").write_text("")
    with pytest.raises(DataError, match="the file is empty"):
        ingest(config, SPEC)
    (site.root / "units.csv").write_text("unit_id,segment\n")
    with pytest.raises(DataError, match="no data rows"):
        ingest(config, SPEC)


def test_mapped_column_missing_from_header_lists_mapping_and_columns_found(tmp_path):
    # Prepare
    site = NodeSite(tmp_path, rename={"duration": "op_months", "load_pct": "Load"})
    site.write_data(3, drop=("duration", "load_pct"))
    config = load_node_config(site.write_config())
    # Execute / Assert
    with pytest.raises(DataError) as caught:
        ingest(config, SPEC)
    message = str(caught.value)
    assert "units.csv: mapped columns missing from the header" in message
    assert "duration -> 'op_months'" in message and "load_pct -> 'Load'" in message
    assert "columns found: 'unit_id', 'segment'" in message


def test_covariate_without_mapping_is_a_data_error(site):
    # Prepare
    site.write_data(3)
    covariates = {
        "load_pct": "load_pct",
        "ambient_temp_c": "ambient_temp_c",
        "vendor_origin": "vendor_origin",
        "maint_days": "maintenance_interval_days",
    }
    config = load_node_config(site.write_config(covariates=covariates))
    # Execute / Assert
    with pytest.raises(DataError, match=r"maintenance_interval_days .*not in the spec: maint_days"):
        ingest(config, SPEC)


def test_unknown_node_yaml_key_is_a_config_error_naming_key_and_file(site):
    # Prepare
    path = site.write_config(extra={"dataa": {"path": "x.csv"}})
    # Execute / Assert
    with pytest.raises(ConfigError, match=r"node\.yaml: dataa: unknown key"):
        load_node_config(path)


# --- quarantine and refusal -----------------------------------------------------------


BAD = {(3, "duration"): "-2", (8, "failed"): "7", (15, "vendor_origin"): "martian"}


def test_too_many_bad_rows_refuses_after_writing_the_quarantine(site):
    # Prepare
    config = site.build(20, bad=BAD, max_bad_fraction=0.1)
    # Execute
    with pytest.raises(DataRefusedError, match=r"3 of 20 rows failed validation") as caught:
        ingest(config, SPEC)
    # Assert
    message = str(caught.value)
    quarantine = quarantine_path_for(config.data_path, config.state_dir)
    assert str(quarantine) in message and "max_bad_fraction = 0.1" in message
    # errors summed up per column, each naming its file line (the header is line 1)
    assert "column duration: 1 x negative duration (got '-2'), line 4" in message
    assert re.search(r"column vendor_origin: 1 x .*, line 16", message)
    bad_rows = pd.read_csv(quarantine, dtype=str)
    assert bad_rows["_row"].tolist() == ["3", "8", "15"]
    assert bad_rows["_line"].tolist() == ["4", "9", "16"]
    assert bad_rows["unit_id"].tolist() == ["UNIT-0003", "UNIT-0008", "UNIT-0015"]
    assert "failed: must be 0" in bad_rows.loc[1, "_errors"]
    assert bad_rows.loc[0, "duration"] == "-2"  # the original row, as read
    assert stat.S_IMODE(quarantine.stat().st_mode) == 0o600


def test_a_refusal_sums_repeated_errors_up_per_column(site):
    # Prepare: the same mistake in 15 rows of one column, one other mistake elsewhere
    bad = {(row, "load_pct"): "12,5" for row in range(1, 16)} | {(17, "failed"): "2"}
    config = site.build(20, bad=bad)
    # Execute
    with pytest.raises(DataRefusedError) as caught:
        ingest(config, SPEC)
    # Assert: one line per column and kind, most frequent first, with the first example
    summary = str(caught.value).split("Errors by column:\n")[1].splitlines()
    assert summary == [
        "  column load_pct: 15 x not a number (got '12,5'), first at line 2",
        "  column failed: 1 x must be 0 (running or lost) or 1 (failed) (got '2'), line 18",
    ]


def test_the_quarantine_copies_at_most_its_cap_and_counts_the_rest(site, monkeypatch):
    # Prepare: 15 bad rows, a cap of 4
    monkeypatch.setattr("enterprise_node.ingest.QUARANTINE_ROWS", 4)
    config = site.build(20, bad={(row, "segment"): "mining" for row in range(1, 16)})
    # Execute
    with pytest.raises(DataRefusedError):
        ingest(config, SPEC)
    # Assert: 4 rows as read, then a line saying how many were left out
    bad_rows = pd.read_csv(quarantine_path_for(config.data_path, config.state_dir), dtype=str)
    assert bad_rows["_row"].tolist()[:4] == ["1", "2", "3", "4"]
    assert len(bad_rows) == 5 and bad_rows["_errors"].iloc[-1] == (
        "... and 11 more bad rows, not copied here"
    )


def test_refusal_sums_up_at_most_ten_columns_or_kinds(site):
    # Prepare: 12 different (column, kind) pairs, one row each
    cells = [
        ("segment", "mining"), ("segment", ""), ("equipment_class", "drill"),
        ("equipment_class", ""), ("duration", "-1"), ("duration", "x"), ("duration", ""),
        ("failed", "2"), ("failed", ""), ("load_pct", "x"), ("load_pct", ""),
        ("vendor_origin", "martian"),
    ]  # fmt: skip
    bad = {(row, column): value for row, (column, value) in enumerate(cells, start=1)}
    config = site.build(20, bad=bad, max_bad_fraction=0.1)
    # Execute
    with pytest.raises(DataRefusedError, match=r"and 2 more columns or kinds of error") as caught:
        ingest(config, SPEC)
    # Assert
    summary = str(caught.value).split("Errors by column:\n")[1].splitlines()
    assert len(summary) == 11 and all(line.startswith("  column ") for line in summary[:10])


def test_bad_fraction_at_the_threshold_is_accepted(site):
    # Prepare: 2 of 20 = 0.1
    config = site.build(20, bad={(2, "failed"): "x", (5, "segment"): ""}, max_bad_fraction=0.1)
    # Execute
    result = ingest(config, SPEC)
    # Assert
    assert (result.n_rows_accepted, result.n_rows_quarantined) == (18, 2)
    assert result.quarantine_path is not None and result.quarantine_path.exists()
    assert len(result.errors) == 2


def test_quarantine_name_is_stem_and_file_sha256(site):
    # Prepare
    config = site.build(10, bad={(1, "failed"): "x"})
    # Execute
    result = ingest(config, SPEC)
    # Assert
    digest = hashlib.sha256(config.data_path.read_bytes()).hexdigest()[:12]
    assert result.quarantine_path == config.state_dir / "quarantine" / f"units-{digest}.csv"


def test_quarantine_write_is_atomic(site, monkeypatch):
    # Prepare: the final rename fails, as in a crash between write and replace
    config = site.build(10, bad={(1, "failed"): "x"})

    def failing_replace(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(common.atomic.os, "replace", failing_replace)
    # Execute
    with pytest.raises(OSError, match="disk gone"):
        ingest(config, SPEC)
    # Assert: no partial quarantine file and no temp file left behind
    quarantine_dir = config.state_dir / "quarantine"
    assert list(quarantine_dir.iterdir()) == []
    assert os.replace is failing_replace


def test_load_and_validate_does_not_refuse(site):
    # Prepare
    config = site.build(20, bad=BAD | {(1, "segment"): ""}, max_bad_fraction=0.0)
    # Execute
    result = load_and_validate(config, SPEC)
    # Assert
    assert (result.n_rows_read, result.n_rows_quarantined, len(result.frame)) == (20, 4, 16)


def test_unit_ids_never_appear_in_the_refusal(site):
    # Prepare
    bad = {(2, "unit_id"): "SECRETID-0001", (4, "duration"): "-1", (6, "segment"): "mars"}
    config = site.build(8, bad=bad, max_bad_fraction=0.0, id_prefix="SECRETID-")
    # Execute
    with pytest.raises(DataRefusedError) as caught:
        ingest(config, SPEC)
    # Assert
    assert "SECRETID" not in str(caught.value)
    assert "column unit_id: 1 x duplicate unit id (first seen in line 2), line 3" in str(
        caught.value
    )
