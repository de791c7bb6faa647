"""Plant known data defects in a site's export, to test validation and quarantine.

Rows are numbered as a user counts them in the file: row 1 is the first data row after
the header (line 2 in a text editor or spreadsheet). Columns are the site's own names,
read from the node.yaml next to the file (canonical names if there is none). Each
defect gets its own row, so every planted row carries exactly one defect.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> header = "unit_id,segment,equipment_class,duration,failed\\n"
>>> rows = "U1,nev_battery,coating,12.5,0\\nU2,nev_battery,agv,3.0,1\\n"
>>> _ = (folder / "units.csv").write_text(header + rows)
>>> plant_defects(folder / "units.csv", ["negative_duration"])
[PlantedDefect(kind='negative_duration', row=2, column='duration')]
>>> import shutil; shutil.rmtree(folder)
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.atomic import atomic_write_bytes, atomic_write_text
from enterprise_node.config import ColumnMap, load_node_config

__all__ = ["DEFECT_KINDS", "PlantedDefect", "plant_defects"]

#: Every kind plant_defects knows; all but wrong_column_name are row-level.
DEFECT_KINDS: tuple[str, ...] = (
    "missing_value",
    "negative_duration",
    "non_numeric_duration",
    "unknown_segment",
    "duplicate_id",
    "failed_not_binary",
    "entry_after_exit",
    "wrong_column_name",
)
_UNKNOWN_SEGMENT = "commercial_space"
_NON_NUMERIC = ("{:.1f} mo", "approx. {:.0f}", "{:.0f}?")


@dataclass(frozen=True)
class PlantedDefect:
    """One planted defect: its kind, the 1-based data row (None for a header defect) and
    the site's column name."""

    kind: str
    row: int | None
    column: str


def plant_defects(
    data_path: Path, kinds: Sequence[str], *, rate: float = 0.005, seed: int = 0
) -> list[PlantedDefect]:
    """Plant each kind in max(1, round(rate * rows)) distinct rows (wrong_column_name:
    once, in the header), rewrite the file in place atomically; return what was planted."""
    data_path = Path(data_path)
    unknown = sorted(set(kinds) - set(DEFECT_KINDS))
    if unknown:
        raise ValueError(f"unknown defect kinds {unknown}; known: {list(DEFECT_KINDS)}")
    if not 0 < rate <= 1:
        raise ValueError(f"rate must be in (0, 1], got {rate}")
    columns = _column_map(data_path)
    if "entry_after_exit" in kinds and columns.entry_age is None:
        raise ValueError(f"{data_path}: entry_after_exit needs an entry_age column")
    if "unknown_segment" in kinds and "segment" in columns.constants():
        raise ValueError(f"{data_path}: unknown_segment needs a segment column, not a constant")
    parquet = data_path.suffix == ".parquet"
    frame = pd.read_parquet(data_path) if parquet else _read_csv_as_text(data_path)
    rng = np.random.default_rng(seed)
    row_kinds = [k for k in dict.fromkeys(kinds) if k != "wrong_column_name"]
    per_kind = max(1, round(rate * len(frame)))
    # one extra row per duplicate: the earlier row whose id is copied stays clean
    needed = per_kind * (len(row_kinds) + ("duplicate_id" in row_kinds))
    if needed > len(frame):
        raise ValueError(f"{data_path}: {len(frame)} rows are too few for {needed} defects")
    rows = iter(rng.choice(len(frame), size=needed, replace=False).tolist())
    planted = []
    for kind in row_kinds:
        for _ in range(per_kind):
            planted.append(_plant_row(frame, kind, rows, columns, rng, parquet))
    if "wrong_column_name" in kinds:
        planted.append(_rename_column(frame, columns, planted, rng))
    _write(frame, data_path, parquet)
    return sorted(planted, key=lambda d: (d.row or 0, d.kind))


def _column_map(data_path: Path) -> ColumnMap:
    """The column map of the node.yaml beside the file, if it describes this file."""
    node_yaml = data_path.parent / "node.yaml"
    if node_yaml.exists():
        config = load_node_config(node_yaml)
        if config.data_path == data_path.resolve():
            return config.data.columns
    return ColumnMap()


def _read_csv_as_text(path: Path) -> pd.DataFrame:
    """Every cell as the exact text in the file, so untouched cells are written back as-is."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _plant_row(
    frame: pd.DataFrame,
    kind: str,
    rows: Iterator[int],
    columns: ColumnMap,
    rng: np.random.Generator,
    parquet: bool,
) -> PlantedDefect:
    """Plant one defect of ``kind`` in the next free row; return what was planted."""
    row = next(rows)
    site = columns.site_columns()
    column = {
        "missing_value": None,
        "negative_duration": columns.duration,
        "non_numeric_duration": columns.duration,
        "unknown_segment": site.get("segment"),
        "duplicate_id": columns.unit_id,
        "failed_not_binary": columns.failed,
        "entry_after_exit": columns.entry_age,
    }[kind]
    if kind == "missing_value":
        candidates = _required_columns(columns)
        column = candidates[int(rng.integers(len(candidates)))]
        value: object = None if parquet else ""
    elif kind == "negative_duration":
        value = -abs(float(frame.iat[row, frame.columns.get_loc(column)])) or -1.0
    elif kind == "non_numeric_duration":
        number = float(frame.iat[row, frame.columns.get_loc(column)])
        value = _NON_NUMERIC[int(rng.integers(len(_NON_NUMERIC)))].format(number)
    elif kind == "unknown_segment":
        value = _UNKNOWN_SEGMENT
    elif kind == "duplicate_id":
        source = next(rows)
        row, source = max(row, source), min(row, source)
        value = frame.iat[source, frame.columns.get_loc(column)]
    elif kind == "failed_not_binary":
        value = 2
    else:  # entry_after_exit
        duration = float(frame.iat[row, frame.columns.get_loc(columns.duration)])
        value = round(duration * 1.5 + 1.0, 3)
    _set_cell(frame, row, str(column), value, parquet)
    return PlantedDefect(kind, row + 1, str(column))


def _required_columns(columns: ColumnMap) -> list[str]:
    """Mapped columns that every row must fill (entry_age may legitimately be empty;
    constants of node.yaml are no column)."""
    fixed = [site for name, site in columns.site_columns().items() if name != "entry_age"]
    return fixed + list(columns.covariates.values())


def _set_cell(frame: pd.DataFrame, row: int, column: str, value: object, parquet: bool) -> None:
    """Write one cell; a Parquet column that must now hold text becomes a text column."""
    if parquet and value is None and pd.api.types.is_integer_dtype(frame[column].dtype):
        frame[column] = frame[column].astype("Int64")
    elif parquet and isinstance(value, str) and frame[column].dtype != object:
        frame[column] = [
            None if pd.isna(v) else repr(v) if isinstance(v, float) else str(v)
            for v in frame[column]
        ]
    elif parquet and value is not None and frame[column].dtype == object:
        value = str(value)
    elif not parquet:
        value = "" if value is None else str(value)
    frame.iat[row, frame.columns.get_loc(column)] = value


def _rename_column(
    frame: pd.DataFrame, columns: ColumnMap, planted: list[PlantedDefect], rng: np.random.Generator
) -> PlantedDefect:
    """Rename one mapped column in the header, preferring one no other defect names."""
    mapped = _required_columns(columns)
    used = {d.column for d in planted}
    free = [c for c in mapped if c not in used] or mapped
    column = free[int(rng.integers(len(free)))]
    frame.rename(columns={column: f"{column}_v2"}, inplace=True)
    return PlantedDefect("wrong_column_name", None, column)


def _write(frame: pd.DataFrame, path: Path, parquet: bool) -> None:
    if parquet:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        atomic_write_bytes(path, buffer.getvalue())
    else:
        atomic_write_text(path, frame.to_csv(index=False))
