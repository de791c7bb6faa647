"""Row-level validation of a site's unit table: every error is collected, none stops the rest.

Rows are named by their **file line** in a CSV (what an editor shows; blank lines count)
and by 1-based **data row** in Parquet (header excluded). Columns are named as the site
calls them, with the canonical name in parentheses when it differs. Unit ids never appear
in errors: a duplicate names the row where the id was first seen instead.

Checks (DESIGN.md, factory data contract): required values present; ``duration`` numeric,
finite, >= 0; ``failed`` 0 or 1; ``segment`` and ``equipment_class`` in the spec's published
lists; ``entry_age`` (optional per row) numeric, finite, >= 0 and < ``duration``; numeric
covariates present, numeric and finite (values outside the public bounds are *not*
errors: they are clipped at encoding); category covariates among the spec's levels; unit
ids unique (every copy after the first is bad).

With service dates (node.yaml ``data.dates``) duration, failed and entry_age are not read
but derived (:mod:`enterprise_node.service_dates`), and the dates are checked instead:
installation date present, every date given a date (in ``data.dates.format``), none after
the observation end, no failure or removal before installation, no removal before the
failure, and no unit that ended before the observation start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from enterprise_node.config import ServiceDates
from enterprise_node.service_dates import DatedLifetimes, dated_lifetimes, expected_format
from models.spec import CategoryFeature, ModelSpec, NumericFeature

__all__ = [
    "ROW_NUMBERING",
    "LINE_NUMBERING",
    "ERROR_KINDS",
    "RowError",
    "ErrorGroup",
    "Validation",
    "validate_table",
    "canonical_columns",
    "group_errors",
]

#: How rows are numbered in every message (shown to users by the check report).
ROW_NUMBERING = "data rows are counted from 1, header excluded (data row 1 is line 2 of a CSV)"
#: The same for a CSV whose rows are named by their file line.
LINE_NUMBERING = "rows are named by their line in the file, as an editor shows it (header: line 1)"

#: Error kind -> what it means, for reports.
ERROR_KINDS: dict[str, str] = {
    "missing": "required value missing",
    "not_numeric": "not a number",
    "non_finite": "not a finite number",
    "negative": "negative value",
    "not_binary": "failed is not 0 or 1",
    "unknown_segment": "segment not in the published list",
    "unknown_equipment_class": "equipment class not in the published list",
    "unknown_level": "category not among the feature's levels",
    "entry_not_before_exit": "entry_age is not less than duration",
    "duplicate_unit_id": "unit id seen in an earlier row",
    "not_a_date": "not a date in data.dates.format",
    "after_observation_end": "date after data.dates.observation_end",
    "before_installation": "failure or removal before the installation date",
    "removed_before_failure": "removal date before the failure date",
    "ended_before_observation_start": "failed or removed before data.dates.observation_start",
}

_MAX_SHOWN = 40
_TEXT_REQUIRED = ("unit_id", "segment", "equipment_class")


@dataclass(frozen=True)
class RowError:
    """One bad cell; ``row`` is the 1-based data row, ``line`` the file line it is on (a
    CSV; None for Parquet), ``value`` a short repr ('' if hidden)."""

    file: str
    row: int
    column: str
    message: str
    value: str = ""
    kind: str = ""
    line: int | None = None

    @property
    def where(self) -> str:
        """``line N`` in a CSV (what an editor shows), else ``data row N``."""
        return f"line {self.line}" if self.line is not None else f"data row {self.row}"

    def __str__(self) -> str:
        got = f" (got {self.value})" if self.value else ""
        return f"{self.file}: {self.where}, column {self.column}: {self.message}{got}"


@dataclass(frozen=True)
class ErrorGroup:
    """The errors of one kind in one column: how many, and the first as an example."""

    column: str
    kind: str
    count: int
    first: RowError

    def __str__(self) -> str:
        got = f" (got {self.first.value})" if self.first.value else ""
        first = self.first.where if self.count == 1 else f"first at {self.first.where}"
        return f"column {self.column}: {self.count} x {self.first.message}{got}, {first}"


def group_errors(errors: Sequence[RowError]) -> tuple[ErrorGroup, ...]:
    """``errors`` summed up per column and kind, most frequent first: a file with 800,000
    decimal-comma cells reads as a few lines, not a wall of repeats."""
    groups: dict[tuple[str, str], list[RowError]] = {}
    for error in errors:
        groups.setdefault((error.column, error.kind), []).append(error)
    summary = [
        ErrorGroup(column, kind, len(found), found[0]) for (column, kind), found in groups.items()
    ]
    return tuple(sorted(summary, key=lambda g: (-g.count, g.first.row, g.column)))


@dataclass(frozen=True, eq=False)
class Validation:
    """Outcome of :func:`validate_table` over all rows read.

    ``parsed`` has the canonical columns with values parsed (NaN where missing or bad);
    ``missing`` says which cells were empty; ``bad_rows`` marks rows with any error;
    ``required`` names the columns of ``missing`` that every row must fill.
    """

    errors: tuple[RowError, ...]
    bad_rows: np.ndarray
    parsed: pd.DataFrame
    missing: pd.DataFrame
    required: tuple[str, ...]

    @property
    def n_rows(self) -> int:
        return len(self.bad_rows)

    @property
    def n_bad(self) -> int:
        return int(self.bad_rows.sum())


@dataclass(frozen=True)
class _Finding:
    """Rows (0-based positions) where ``column`` fails one check, with optional per-row detail."""

    column: str
    kind: str
    message: str
    rows: np.ndarray
    details: Sequence[str] | None = None


def canonical_columns(spec: ModelSpec) -> tuple[str, ...]:
    """Canonical column order: the contract columns, then the spec's features in order."""
    base = ("unit_id", "segment", "equipment_class", "duration", "failed", "entry_age")
    return base + spec.feature_names


def validate_table(
    table: pd.DataFrame,
    *,
    site_columns: Mapping[str, str],
    spec: ModelSpec,
    source: Path,
    lines: Sequence[int] | np.ndarray | None = None,
    decimal: str = ".",
    true_values: Sequence[str] = (),
    false_values: Sequence[str] = (),
    dates: ServiceDates | None = None,
) -> Validation:
    """Check every row of ``table`` (site column names; missing cells are NaN).

    ``site_columns`` maps canonical names to the site's columns: the five required ones and
    every spec feature (as :func:`enterprise_node.ingest.resolve_columns` returns);
    ``entry_age`` may be absent, and then it is not checked. With ``dates``, it maps the
    date names (installed_on, failed_on, removed_on) instead of duration, failed and
    entry_age, which the dates give in the spec's time unit (a calendar unit). ``lines``
    gives each row's file line (errors then name it); numbers are written with
    ``decimal`` as their decimal mark; ``failed`` also reads ``true_values`` as 1 and
    ``false_values`` as 0.
    """
    missing = pd.DataFrame({c: table[s].isna().to_numpy() for c, s in site_columns.items()})
    parsed = _parse(table, site_columns, spec, _NumberFormat(decimal, true_values, false_values))
    if dates is None:
        required = (*_TEXT_REQUIRED, "duration", "failed", *spec.feature_names)
        lifetime_findings = [
            *_check_duration(parsed, missing),
            *_check_failed(parsed, missing),
            *_check_entry_age(parsed, missing),
        ]
    else:
        required = (*_TEXT_REQUIRED, "installed_on", *spec.feature_names)
        days_per_unit = spec.time_grid.days_per_unit
        if days_per_unit is None:
            raise ValueError(f"time unit {spec.time_grid.unit!r} is not a calendar unit")
        lifetimes = dated_lifetimes(table, dates, site_columns, days_per_unit)
        parsed["duration"] = lifetimes.duration
        parsed["failed"] = lifetimes.failed
        parsed["entry_age"] = lifetimes.entry_age
        lifetime_findings = _check_dates(lifetimes, missing, dates)
    findings = [
        *_check_required(missing, required),
        *lifetime_findings,
        *_check_published(parsed, spec),
        *_check_features(parsed, missing, spec),
        *_check_duplicates(parsed, lines),
    ]
    errors = _to_errors(findings, table, site_columns, str(source), lines)
    bad = np.zeros(len(table), dtype=bool)
    bad[[e.row - 1 for e in errors]] = True
    return Validation(
        errors=errors, bad_rows=bad, parsed=parsed, missing=missing, required=required
    )


@dataclass(frozen=True)
class _NumberFormat:
    """How the site writes numbers and the ``failed`` flag."""

    decimal: str = "."
    true_values: Sequence[str] = ()
    false_values: Sequence[str] = ()

    def numbers(self, values: pd.Series, canonical: str) -> pd.Series:
        """Parsed floats (NaN where not a number), after the site's words and marks."""
        text = values
        if canonical == "failed" and (self.true_values or self.false_values):
            words = {w.lower(): "1" for w in self.true_values}
            words |= {w.lower(): "0" for w in self.false_values}
            lowered = values.astype(object).map(lambda v: v.lower() if isinstance(v, str) else v)
            text = values.where(~lowered.isin(list(words)), lowered.map(words))
        if self.decimal != ".":
            text = text.map(lambda v: v.replace(self.decimal, ".") if isinstance(v, str) else v)
        return pd.to_numeric(text, errors="coerce").astype(float)


def _parse(
    table: pd.DataFrame, site_columns: Mapping[str, str], spec: ModelSpec, fmt: _NumberFormat
) -> pd.DataFrame:
    numeric = {"duration", "failed", "entry_age"} | {
        f.name for f in spec.features if isinstance(f, NumericFeature)
    }
    parsed: dict[str, pd.Series] = {}
    for canonical in canonical_columns(spec):
        site = site_columns.get(canonical)
        if site is None:
            parsed[canonical] = pd.Series(np.nan, index=table.index, dtype=float)
        elif canonical in numeric:
            parsed[canonical] = fmt.numbers(table[site], canonical)
        else:
            parsed[canonical] = _as_text(table[site])
    frame = pd.DataFrame(parsed).reset_index(drop=True)
    frame.loc[~frame["failed"].isin([0.0, 1.0]), "failed"] = np.nan
    return frame


def _as_text(series: pd.Series) -> pd.Series:
    values = series.astype(object)
    return values.where(values.isna(), values.map(str))


def _rows(mask: pd.Series | np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.asarray(mask, dtype=bool))


def _check_required(missing: pd.DataFrame, required: Sequence[str]) -> list[_Finding]:
    return [
        _Finding(column, "missing", "missing value", _rows(missing[column])) for column in required
    ]


def _number_findings(column: str, values: pd.Series, missing: pd.Series) -> list[_Finding]:
    """not_numeric / non_finite findings for a numeric column; missing handled elsewhere."""
    present = ~missing.to_numpy()
    return [
        _Finding(column, "not_numeric", "not a number", _rows(present & values.isna().to_numpy())),
        _Finding(column, "non_finite", "not a finite number", _rows(np.isinf(values.to_numpy()))),
    ]


def _check_duration(parsed: pd.DataFrame, missing: pd.DataFrame) -> list[_Finding]:
    duration = parsed["duration"]
    findings = _number_findings("duration", duration, missing["duration"])
    negative = np.isfinite(duration) & (duration < 0)
    findings.append(_Finding("duration", "negative", "negative duration", _rows(negative)))
    return findings


def _check_failed(parsed: pd.DataFrame, missing: pd.DataFrame) -> list[_Finding]:
    bad = parsed["failed"].isna().to_numpy() & ~missing["failed"].to_numpy()
    return [
        _Finding("failed", "not_binary", "must be 0 (running or lost) or 1 (failed)", _rows(bad))
    ]


def _check_entry_age(parsed: pd.DataFrame, missing: pd.DataFrame) -> list[_Finding]:
    if "entry_age" not in missing:
        return []
    entry, duration = parsed["entry_age"], parsed["duration"]
    findings = _number_findings("entry_age", entry, missing["entry_age"])
    negative = np.isfinite(entry) & (entry < 0)
    findings.append(_Finding("entry_age", "negative", "negative entry age", _rows(negative)))
    comparable = np.isfinite(entry) & np.isfinite(duration) & (entry >= 0) & (duration >= 0)
    late = _rows(comparable & (entry >= duration))
    details = [f"duration is {duration.iloc[i]:g}" for i in late]
    findings.append(
        _Finding(
            "entry_age",
            "entry_not_before_exit",
            "entry age must be less than the duration",
            late,
            details,
        )
    )
    return findings


def _check_dates(
    lifetimes: DatedLifetimes, missing: pd.DataFrame, dates: ServiceDates
) -> list[_Finding]:
    """Dates that are not dates, or that no unit's history can have."""
    days = lifetimes.dates
    installed, failed_on, removed_on = days["installed_on"], days["failed_on"], days["removed_on"]
    observation_end = pd.Timestamp(dates.observation_end)
    end_day = f"the observation end {observation_end:%Y-%m-%d}"
    findings: list[_Finding] = []
    for name in dates.columns():
        day = days[name]
        present = ~missing[name].to_numpy()
        unread = present & day.isna().to_numpy()
        findings.append(_Finding(name, "not_a_date", expected_format(dates.format), _rows(unread)))
        late = _rows(day.dt.normalize() > observation_end)
        findings.append(_Finding(name, "after_observation_end", f"after {end_day}", late))
        if name != "installed_on":
            early = _rows(day < installed)
            shown = [f"installed {installed.iloc[i]:%Y-%m-%d}" for i in early]
            message = f"{'failure' if name == 'failed_on' else 'removal'} before installation"
            findings.append(_Finding(name, "before_installation", message, early, shown))
    if "removed_on" in dates.columns():
        early = _rows(removed_on < failed_on)
        shown = [f"failed {failed_on.iloc[i]:%Y-%m-%d}" for i in early]
        message = "removed before it failed"
        findings.append(_Finding("removed_on", "removed_before_failure", message, early, shown))
    if dates.observation_start is not None:
        start = pd.Timestamp(dates.observation_start)
        message = f"ended on or before the observation start {start:%Y-%m-%d}"
        ended_early = lifetimes.end <= start
        failed_early = failed_on.notna() & ended_early
        removed_early = failed_on.isna() & removed_on.notna() & ended_early
        kind = "ended_before_observation_start"
        findings.append(_Finding("failed_on", kind, message, _rows(failed_early)))
        if "removed_on" in dates.columns():
            findings.append(_Finding("removed_on", kind, message, _rows(removed_early)))
    return findings


def _check_published(parsed: pd.DataFrame, spec: ModelSpec) -> list[_Finding]:
    findings = []
    for column, allowed, kind in (
        ("segment", spec.segments, "unknown_segment"),
        ("equipment_class", spec.equipment_classes, "unknown_equipment_class"),
    ):
        values = parsed[column]
        unknown = values.notna() & ~values.isin(allowed)
        message = f"not in the published list ({', '.join(allowed)})"
        findings.append(_Finding(column, kind, message, _rows(unknown)))
    return findings


def _check_features(parsed: pd.DataFrame, missing: pd.DataFrame, spec: ModelSpec) -> list[_Finding]:
    findings: list[_Finding] = []
    for feature in spec.features:
        values = parsed[feature.name]
        if isinstance(feature, CategoryFeature):
            unknown = values.notna() & ~values.isin(feature.levels)
            message = f"not a level of {feature.name} ({', '.join(feature.levels)})"
            findings.append(_Finding(feature.name, "unknown_level", message, _rows(unknown)))
        else:
            findings.extend(_number_findings(feature.name, values, missing[feature.name]))
    return findings


def _check_duplicates(
    parsed: pd.DataFrame, lines: Sequence[int] | np.ndarray | None
) -> list[_Finding]:
    ids = parsed["unit_id"]
    duplicate = ids.notna() & ids.duplicated(keep="first")
    rows = _rows(duplicate)
    if len(rows) == 0:
        return []
    first = pd.Series(np.arange(len(ids))).groupby(ids.to_numpy()).transform("min")

    def seen(i: int) -> str:
        j = int(first.iloc[i])
        return f"line {int(lines[j])}" if lines is not None else f"data row {j + 1}"

    details = [f"first seen in {seen(int(i))}" for i in rows]
    return [_Finding("unit_id", "duplicate_unit_id", "duplicate unit id", rows, details)]


def _to_errors(
    findings: list[_Finding],
    table: pd.DataFrame,
    site_columns: Mapping[str, str],
    file: str,
    lines: Sequence[int] | np.ndarray | None,
) -> tuple[RowError, ...]:
    """RowErrors sorted by row, then by canonical column order."""
    order = {name: i for i, name in enumerate(site_columns)}
    keyed = []
    for finding in findings:
        site = site_columns[finding.column]
        label = site if site == finding.column else f"{site} ({finding.column})"
        hide = finding.column == "unit_id" or finding.kind == "missing"
        raw = table[site].to_numpy()
        for k, i in enumerate(finding.rows):
            message = finding.message
            if finding.details is not None:
                message = f"{message} ({finding.details[k]})"
            shown = "" if hide else _show(raw[i])
            line = None if lines is None else int(lines[int(i)])
            error = RowError(file, int(i) + 1, label, message, shown, finding.kind, line)
            keyed.append(((int(i), order[finding.column]), error))
    keyed.sort(key=lambda pair: pair[0])
    return tuple(error for _, error in keyed)


def _show(value: object) -> str:
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."
