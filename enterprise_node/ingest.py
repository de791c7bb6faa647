"""Ingest a site's unit file into the canonical unit table (DESIGN.md, factory data contract).

read CSV/Parquet -> map the site's columns (node.yaml) -> validate every row -> quarantine
bad rows (state/quarantine/, stays on the node) -> rate data quality -> pseudonymise unit
ids (HMAC-SHA256, site secret) -> scale durations to the federation's time unit.

File-level problems raise :class:`DataError`; too many bad rows raise
:class:`DataRefusedError` after the quarantine file is written. Cells are read as text
with surrounding blanks stripped; an empty cell or one of ``MISSING_TOKENS`` (any case)
is a missing value.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from common.atomic import atomic_write_text
from common.errors import ConfigError, DataError, DataRefusedError, permission_denied
from enterprise_node.config import (
    CONSTANT_ALLOWED,
    ColumnMap,
    CsvDialect,
    NodeConfig,
    ServiceDates,
)
from enterprise_node.pseudonym import load_or_create_site_secret, pseudonymise_many
from enterprise_node.quality import QualityRating, rate_quality
from enterprise_node.validation import (
    RowError,
    Validation,
    canonical_columns,
    group_errors,
    validate_table,
)
from models.spec import CategoryFeature, ModelSpec

__all__ = [
    "MISSING_TOKENS",
    "IngestResult",
    "ingest",
    "load_and_validate",
    "refuse_if_too_bad",
    "read_table",
    "normalise_cells",
    "resolve_columns",
    "add_constant_columns",
    "quarantine_path_for",
]

#: Cell texts read as "missing" (compared case-insensitively, after stripping blanks).
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none"})

_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
#: The most bad rows a quarantine file copies.
QUARANTINE_ROWS = 10_000
_GROUPS_SHOWN = 10


@dataclass(frozen=True, eq=False)
class IngestResult:
    """The canonical unit table of the accepted rows, plus what happened to the rest.

    ``frame`` holds pseudonymised unit ids and durations/entry ages in the federation's
    unit; ``errors`` lists every bad cell; ``quarantine_path`` is None when no row was bad.
    """

    frame: pd.DataFrame
    n_rows_read: int
    errors: tuple[RowError, ...]
    quarantine_path: Path | None
    quality: QualityRating
    source: Path

    @property
    def n_rows_accepted(self) -> int:
        return len(self.frame)

    @property
    def n_rows_quarantined(self) -> int:
        return self.n_rows_read - len(self.frame)


def ingest(config: NodeConfig, spec: ModelSpec) -> IngestResult:
    """Read, validate, quarantine, rate and pseudonymise; refuse a file with too many bad rows."""
    result = load_and_validate(config, spec)
    refuse_if_too_bad(result, max_bad_fraction=config.data.max_bad_fraction)
    return result


def load_and_validate(config: NodeConfig, spec: ModelSpec) -> IngestResult:
    """:func:`ingest` without the final refusal, so a report can show a refused file."""
    path = config.data_path
    dialect = config.data.csv
    original = read_table(path, config.data.format, dialect)
    lines = None
    if _detect_format(path, config.data.format) == "csv":
        lines = csv_record_lines(path, dialect)
        if lines is not None and len(lines) != len(original):
            lines = None  # a layout the line count does not follow: data rows are numbered
    table = normalise_cells(original)
    if table.empty:
        raise DataError(f"{path}: the file has a header but no data rows")
    columns, dates = config.data.columns, config.data.dates
    if dates is not None and spec.time_grid.days_per_unit is None:
        raise ConfigError(
            f"{Path(config.base_dir) / 'node.yaml'}: data.dates: the federation counts time in "
            f"{spec.time_grid.unit!r}, not a calendar unit, so dates cannot give durations; "
            "map a duration column instead"
        )
    site_columns = resolve_columns(columns, spec, tuple(table.columns), path, dates=dates)
    table, constants = add_constant_columns(
        table, columns, spec, f"{Path(config.base_dir) / 'node.yaml'}"
    )
    site_columns = {**site_columns, **constants}
    validation = validate_table(
        table,
        site_columns=site_columns,
        spec=spec,
        source=path,
        lines=lines,
        decimal=dialect.decimal,
        true_values=tuple(dialect.true_values),
        false_values=tuple(dialect.false_values),
        dates=dates,
    )
    quality = rate_quality(validation, spec, duration_scale=config.data.duration_scale)
    quarantine = None
    if validation.n_bad:
        quarantine = quarantine_path_for(path, config.state_dir)
        _write_quarantine(original, validation, quarantine)
    secret = load_or_create_site_secret(config.site_secret_path)
    frame = _canonical_frame(validation, spec, secret, config.data.duration_scale)
    return IngestResult(
        frame=frame,
        n_rows_read=len(table),
        errors=validation.errors,
        quarantine_path=quarantine,
        quality=quality,
        source=path,
    )


def refuse_if_too_bad(
    result: IngestResult, *, max_bad_fraction: float, list_errors: bool = True
) -> None:
    """Raise DataRefusedError when bad rows / rows read exceeds ``max_bad_fraction``; the
    message sums the errors up per column (with the first of each) unless ``list_errors``
    is False (``check`` has just shown them in its report)."""
    bad, read = result.n_rows_quarantined, result.n_rows_read
    if bad / read <= max_bad_fraction:
        return
    message = (
        f"{result.source}: {bad} of {read} rows failed validation ({bad / read:.1%}), more "
        f"than data.max_bad_fraction = {max_bad_fraction:g} ({max_bad_fraction:.1%}); the "
        f"file was refused and nothing was sent.\nBad rows, with their errors, are in "
        f"{result.quarantine_path}"
    )
    if list_errors:
        groups = group_errors(result.errors)
        shown = "\n".join(f"  {group}" for group in groups[:_GROUPS_SHOWN])
        more = len(groups) - _GROUPS_SHOWN
        tail = f"\n  ... and {more} more columns or kinds of error" if more > 0 else ""
        message += f"\nErrors by column:\n{shown}{tail}"
    raise DataRefusedError(message)


def read_table(
    path: Path, data_format: str = "auto", dialect: CsvDialect | None = None
) -> pd.DataFrame:
    """Read the file as it is (CSV: every cell as text, in ``dialect``); DataError naming
    the file, and for a CSV the line and the setting to change, otherwise."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: data file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    fmt = _detect_format(path, data_format)
    dialect = dialect or CsvDialect()
    try:
        if fmt == "csv":
            table = pd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                sep=dialect.delimiter,
                encoding=_python_encoding(dialect.encoding),
            )
        else:
            table = pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty (no header row)") from None
    except UnicodeDecodeError as err:
        raise _encoding_error(path, dialect.encoding, err) from None
    except PermissionError:
        raise permission_denied(path, "read") from None
    except (pd.errors.ParserError, OSError, pa.ArrowException) as err:
        raise DataError(f"{path}: cannot read as {fmt}: {err}") from None
    table.columns = [str(name).strip() for name in table.columns]
    if fmt == "csv":
        _check_delimiter(path, table, dialect)
    return table.reset_index(drop=True)


def csv_record_lines(path: Path, dialect: CsvDialect) -> np.ndarray | None:
    """The file line each data record of a CSV starts on (header: line 1; blank lines
    skipped, as pandas skips them); None if the file cannot be read that way."""
    starts: list[int] = []
    try:
        with open(path, encoding=_python_encoding(dialect.encoding), newline="") as handle:
            reader = csv.reader(handle, delimiter=dialect.delimiter)
            previous = 0
            for record in reader:
                first_line = previous + 1
                previous = reader.line_num
                if record:  # an empty line is skipped, by pandas too
                    starts.append(first_line)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return np.asarray(starts[1:], dtype=np.int64)  # starts[0] is the header


def _python_encoding(encoding: str) -> str:
    """utf-8 read as utf-8-sig, so that Excel's byte order mark is not part of a name."""
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def _encoding_error(path: Path, encoding: str, err: UnicodeDecodeError) -> DataError:
    """The line and byte that are not ``encoding``, and the likely setting."""
    try:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
    except OSError:
        line = 0
    byte = err.object[err.start : err.start + 1].hex() if err.object else "?"
    where = f"line {line}" if line else "a line"
    hint = ""
    if "utf" in encoding:
        hint = " (Excel on Windows writes cp1252: set data.csv.encoding: cp1252)"
    return DataError(
        f"{path}: {where} is not valid {encoding} text (byte 0x{byte}){hint}",
        advice="Set data.csv.encoding in node.yaml to the file's encoding, e.g. cp1252.",
    )


#: Cell separators spreadsheet exports use, for the delimiter hint.
_DELIMITERS = (";", "\t", ",", "|")


def _check_delimiter(path: Path, table: pd.DataFrame, dialect: CsvDialect) -> None:
    """A header read as one column that holds another separator: the file is written with
    that separator; say which setting reads it (pandas would not notice)."""
    if len(table.columns) != 1:
        return
    header = str(table.columns[0])
    found = [d for d in _DELIMITERS if d != dialect.delimiter and header.count(d) >= 1]
    if found:
        shown = header if len(header) <= 60 else header[:57] + "..."
        name = "\\t" if found[0] == "\t" else found[0]
        raise DataError(
            f"{path}: the header is one column {shown!r} with {dialect.delimiter!r} as "
            f"separator; the file looks {found[0]!r}-separated",
            advice=f"Set data.csv.delimiter: {name!r} in node.yaml (and data.csv.decimal: ',' "
            "if numbers are written 12,5).",
        )


def resolve_columns(
    columns: ColumnMap,
    spec: ModelSpec,
    header: tuple[str, ...],
    path: Path,
    *,
    dates: ServiceDates | None = None,
) -> dict[str, str]:
    """Canonical name -> site column for every column the spec needs and the file holds
    (columns node.yaml gives as a constant are left out; with ``dates``, the date columns
    in place of duration, failed and entry_age); DataError if one is absent."""
    mapping = columns.site_columns(lifetimes=dates is None)
    if dates is not None:
        mapping.update(dates.columns())
    unmapped = [name for name in spec.feature_names if name not in columns.covariates]
    if unmapped:
        extra = sorted(set(columns.covariates) - set(spec.feature_names))
        hint = f" (mapped there but not in the spec: {', '.join(extra)})" if extra else ""
        raise DataError(
            f"{path}: node.yaml maps no column to the covariate(s) {', '.join(unmapped)} that "
            f"the model spec requires; add them under data.columns.covariates{hint}"
        )
    mapping.update({name: columns.covariates[name] for name in spec.feature_names})
    absent = [(canonical, site) for canonical, site in mapping.items() if site not in header]
    if absent:
        wanted = ", ".join(f"{canonical} -> {site!r}" for canonical, site in absent)
        constant = [c for c, _site in absent if c in CONSTANT_ALLOWED]
        hint = (
            f" If every row has the same {' and '.join(constant)}, give it as a constant "
            f"instead, e.g. {constant[0]}: {{value: ...}}."
            if constant
            else ""
        )
        dated = dates is not None and any(c in dates.columns() for c, _site in absent)
        section = "data.columns and data.dates" if dated else "data.columns"
        raise DataError(
            f"{path}: mapped columns missing from the header: {wanted}; columns found: "
            f"{', '.join(repr(name) for name in header)}",
            advice=f"Fix {section} in node.yaml (canonical name: your column name).{hint}",
        )
    return mapping


def add_constant_columns(
    table: pd.DataFrame, columns: ColumnMap, spec: ModelSpec, config_source: str
) -> tuple[pd.DataFrame, dict[str, str]]:
    """``table`` with one column per constant of node.yaml (``segment: {value: hdd}``),
    and canonical name -> that column; ConfigError, naming the key and ``config_source``,
    for a value outside the spec's published list."""
    published = {"segment": spec.segments, "equipment_class": spec.equipment_classes}
    mapping: dict[str, str] = {}
    table = table.copy()
    for canonical, value in columns.constants().items():
        if value not in published[canonical]:
            raise ConfigError(
                f"{config_source}: data.columns.{canonical}: constant {value!r} is not in the "
                f"published list ({', '.join(published[canonical])})"
            )
        name = f"{canonical} (constant in node.yaml)"
        table[name] = value
        mapping[canonical] = name
    return table, mapping


def quarantine_path_for(source: Path, state_dir: Path) -> Path:
    """``state/quarantine/<source-stem>-<first 12 hex of the file's SHA-256>.csv``."""
    digest = hashlib.sha256()
    with open(source, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return state_dir / "quarantine" / f"{Path(source).stem}-{digest.hexdigest()[:12]}.csv"


def _detect_format(path: Path, data_format: str) -> str:
    if data_format != "auto":
        return data_format
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{path}: unknown data format {path.suffix!r}; use .csv or .parquet, "
            "or set data.format in node.yaml"
        )
    return fmt


def normalise_cells(original: pd.DataFrame) -> pd.DataFrame:
    """Strip text cells and turn empty cells and MISSING_TOKENS into NaN."""
    table = original.copy()
    for name in table.columns:
        column = table[name]
        if isinstance(column.dtype, pd.CategoricalDtype) or column.dtype == object:
            table[name] = _clean_column(column.astype(object))
    return table


def _clean_column(values: pd.Series) -> pd.Series:
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        text = values.str.strip()  # fast path: text cells (every CSV column)
        absent = values.isna() | text.str.lower().isin(MISSING_TOKENS)
        return text.mask(absent, np.nan)
    return values.map(_clean_cell)


def _clean_cell(value: object) -> object:
    if not isinstance(value, str):
        absent = value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))
        return np.nan if absent else value
    text = value.strip()
    return np.nan if text.lower() in MISSING_TOKENS else text


def _write_quarantine(original: pd.DataFrame, validation: Validation, path: Path) -> None:
    """The bad rows as read, with ``_row`` (data row number), ``_line`` (file line, a CSV)
    and ``_errors``; mode 0600. At most :data:`QUARANTINE_ROWS` rows: a file refused whole
    needs examples to fix, not a copy of itself (the count of the rest is in the last row)."""
    messages: dict[int, list[str]] = {}
    lines: dict[int, int | None] = {}
    for error in validation.errors:
        got = f" (got {error.value})" if error.value else ""
        messages.setdefault(error.row, []).append(f"{error.column}: {error.message}{got}")
        lines[error.row] = error.line
    rows = sorted(messages)
    kept = rows[:QUARANTINE_ROWS]
    bad = original.iloc[[row - 1 for row in kept]].copy()
    bad["_row"] = pd.Series(kept, index=bad.index, dtype=object)  # stays "7", not "7.0"
    if any(lines[row] is not None for row in kept):
        bad["_line"] = pd.Series([lines[row] for row in kept], index=bad.index, dtype=object)
    bad["_errors"] = ["; ".join(messages[row]) for row in kept]
    if len(rows) > len(kept):
        note = {"_errors": f"... and {len(rows) - len(kept)} more bad rows, not copied here"}
        bad = pd.concat([bad, pd.DataFrame([note])], ignore_index=True)
    atomic_write_text(path, bad.to_csv(index=False), mode=0o600)


def _canonical_frame(
    validation: Validation, spec: ModelSpec, secret: bytes, duration_scale: float
) -> pd.DataFrame:
    good = validation.parsed.loc[~validation.bad_rows].reset_index(drop=True)
    frame = pd.DataFrame(
        {
            "unit_id": pd.Series(pseudonymise_many(good["unit_id"], secret), dtype=object),
            "segment": good["segment"].astype(object),
            "equipment_class": good["equipment_class"].astype(object),
            "duration": good["duration"].astype(float) * duration_scale,
            "failed": good["failed"].astype(np.int64),
            "entry_age": good["entry_age"].astype(float) * duration_scale,
        }
    )
    for feature in spec.features:
        kind = object if isinstance(feature, CategoryFeature) else float
        frame[feature.name] = good[feature.name].astype(kind)
    return frame[list(canonical_columns(spec))]
