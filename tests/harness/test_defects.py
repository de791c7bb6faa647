"""plant_defects: each kind plants exactly what it reports, in CSV and Parquet."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from coordinator.config import load_coordinator_config
from enterprise_node.config import load_node_config
from enterprise_node.ingest import load_and_validate
from harness.defects import DEFECT_KINDS, PlantedDefect, plant_defects
from harness.synthetic import FederationManifest, SyntheticConfig, generate_federation

REPO = Path(__file__).resolve().parents[2]
ROW_KINDS = [k for k in DEFECT_KINDS if k != "wrong_column_name"]
SEGMENTS = ("semiconductor_fab", "nev_battery", "industrial_robot")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> FederationManifest:
    """Three sites with delayed entry: canonical CSV, hours CSV, days Parquet."""
    spec = load_coordinator_config(REPO / "configs" / "coordinator.yaml").plan.model_spec
    config = SyntheticConfig(
        n_enterprises=3,
        min_units=400,
        max_units=400,
        holdout_units=0,
        parquet_every=3,
        delayed_entry=True,
    )
    return generate_federation(tmp_path_factory.mktemp("pristine"), spec, config)


@pytest.fixture
def site(pristine, tmp_path):
    """Factory: a fresh copy of site k (0-based); returns (data file, its column map)."""

    def copy(k: int) -> tuple[Path, object]:
        folder = tmp_path / f"site-{k}"
        shutil.copytree(pristine.enterprise_dirs[k], folder)
        config = load_node_config(folder / "node.yaml")
        return config.data_path, config.data.columns

    return copy


def _as_text(path: Path) -> pd.DataFrame:
    """Every cell as text ('' for missing), whatever the format."""
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path).astype(object)
        return frame.map(lambda v: "" if v is None or v is pd.NA or v != v else str(v))
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _changed_cells(before: pd.DataFrame, after: pd.DataFrame) -> set[tuple[int, str]]:
    """(1-based row, column) of every cell whose text changed."""
    changed = set()
    for column in before.columns:
        differs = before[column].to_numpy() != after[column].to_numpy()
        changed |= {(int(i) + 1, column) for i in differs.nonzero()[0]}
    return changed


def _has_defect(frame: pd.DataFrame, defect: PlantedDefect, columns) -> bool:
    """Whether the defect is visible in the rewritten file, judged from the text alone."""
    i = defect.row - 1
    value = frame.at[i, defect.column]
    if defect.kind == "missing_value":
        return value == ""
    if defect.kind == "negative_duration":
        return float(value) < 0
    if defect.kind == "non_numeric_duration":
        try:
            float(value)
        except ValueError:
            return True
        return False
    if defect.kind == "unknown_segment":
        return value not in SEGMENTS
    if defect.kind == "duplicate_id":
        return value in set(frame[defect.column].iloc[:i])
    if defect.kind == "failed_not_binary":
        return value not in {"0", "1"}
    if defect.kind == "entry_after_exit":
        return float(value) > float(frame.at[i, columns.duration])
    raise AssertionError(defect.kind)


@pytest.mark.parametrize("k", [0, 1, 2], ids=["canonical-csv", "hours-csv", "days-parquet"])
@pytest.mark.parametrize("kind", ROW_KINDS)
def test_row_defect_plants_exactly_what_it_reports(site, k, kind):
    # Prepare
    path, columns = site(k)
    before = _as_text(path)
    # Execute
    planted = plant_defects(path, [kind], rate=0.01, seed=5)
    # Assert
    after = _as_text(path)
    assert len(planted) == 4  # round(0.01 * 400)
    assert {d.kind for d in planted} == {kind}
    assert _changed_cells(before, after) == {(d.row, d.column) for d in planted}
    assert all(_has_defect(after, d, columns) for d in planted)
    assert list(path.parent.glob(".*.tmp")) == []


@pytest.mark.parametrize("k", [1, 2])
def test_wrong_column_name_renames_one_mapped_header(site, k):
    # Prepare
    path, columns = site(k)
    before = _as_text(path)
    # Execute
    planted = plant_defects(path, ["wrong_column_name"], seed=2)
    # Assert
    after = _as_text(path)
    (defect,) = planted
    assert defect.kind == "wrong_column_name" and defect.row is None
    assert defect.column in before.columns and defect.column not in after.columns
    assert len(after.columns) == len(before.columns)
    assert after.drop(columns=f"{defect.column}_v2").equals(before.drop(columns=defect.column))


def test_all_kinds_at_once_use_distinct_rows_and_keep_reports_true(site):
    # Prepare
    path, columns = site(1)
    before = _as_text(path)
    # Execute
    planted = plant_defects(path, DEFECT_KINDS, rate=0.005, seed=9)
    # Assert
    after = _as_text(path)
    header = [d for d in planted if d.row is None]
    rows = [d for d in planted if d.row is not None]
    assert len(header) == 1 and len(rows) == 2 * len(ROW_KINDS)
    assert len({d.row for d in rows}) == len(rows)
    renamed = header[0].column
    assert renamed not in {d.column for d in rows}
    after = after.rename(columns={f"{renamed}_v2": renamed})
    assert _changed_cells(before, after) == {(d.row, d.column) for d in rows}
    assert all(_has_defect(after, d, columns) for d in rows)


def test_same_seed_same_defects_other_seed_differs(site):
    # Prepare
    first, _ = site(0)
    second, _ = site(1)
    # Execute
    a = plant_defects(first, ["negative_duration"], seed=1)
    b = plant_defects(second, ["negative_duration"], seed=1)
    shutil.copy(first, first.with_name("planted.csv"))
    c = plant_defects(first.with_name("planted.csv"), ["negative_duration"], seed=2)
    # Assert
    assert [d.row for d in a] == [d.row for d in b]
    assert [d.row for d in a] != [d.row for d in c]


def test_unknown_kind_is_refused(site):
    path, _ = site(0)
    with pytest.raises(ValueError, match=r"unknown defect kinds \['typo'\]"):
        plant_defects(path, ["typo"])


def test_entry_after_exit_needs_an_entry_column(tmp_path):
    # Prepare
    path = tmp_path / "units.csv"
    path.write_text("unit_id,segment,equipment_class,duration,failed\nU1,nev_battery,agv,3.0,1\n")
    # Execute / Assert
    with pytest.raises(ValueError, match="needs an entry_age column"):
        plant_defects(path, ["entry_after_exit"])
    assert path.read_text().endswith("3.0,1\n")


@pytest.mark.parametrize("k", [1, 2], ids=["hours-csv", "days-parquet"])
def test_node_validation_flags_exactly_the_planted_rows(site, k):
    # Prepare
    spec = load_coordinator_config(REPO / "configs" / "coordinator.yaml").plan.model_spec
    path, _ = site(k)
    config = load_node_config(path.parent / "node.yaml")
    clean = load_and_validate(config, spec)
    planted = plant_defects(path, ROW_KINDS, rate=0.005, seed=3)
    # Execute
    result = load_and_validate(config, spec)
    # Assert
    assert clean.errors == ()
    assert {e.row for e in result.errors} == {d.row for d in planted}
