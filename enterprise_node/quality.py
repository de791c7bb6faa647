"""Data-quality rating of one site's unit table: four shares in [0, 1], a score and a grade.

With n rows read (all rows, before quarantine):

- completeness C = non-missing cells / all cells, over the required columns (unit_id,
  segment, equipment_class, duration, failed; with service dates, the installation date
  in place of duration and failed) and the spec's covariates (entry_age, and failure and
  removal dates, are optional and not counted);
- validity V = rows passing validation / n;
- consistency K = mean of three shares:
  k1 = 1 - (rows whose unit id repeats an earlier row) / n;
  k2 = rows with entry_age < duration / rows where both are finite and >= 0 (1 if none);
  k3 = plausible segments / judged segments (1 if none), where a segment with at least
  ``MIN_UNITS_TO_JUDGE`` units (known segment, failed 0/1) is plausible when it has at
  least one failure and at most ``MAX_FAILURE_SHARE`` of its units failed (a live fleet
  always has censored units; none at all suggests a failure-only extract);
- plausibility P = mean of two shares:
  p1 = finite numeric covariate values inside the public bounds / finite numeric
  covariate values (1 if none; values outside are clipped at encoding, not rejected);
  p2 = durations (in federation units) <= ``DURATION_SANE_MULTIPLE`` x the grid horizon /
  finite non-negative durations (1 if none; many beyond suggests a wrong duration_scale).

score = 100 x (0.25 C + 0.35 V + 0.20 K + 0.20 P), rounded down to one decimal (so 100.0
means no fault at all), and 0 when no row passed validation; the grade is read from the
score: A >= 90, B >= 75, C >= 60, D otherwise.

Durations in the wrong time unit (days read as months: ``duration_scale`` forgotten) shift
every curve, however clean the rows: when, of at least ``MIN_UNITS_TO_JUDGE`` durations,
more than ``DURATION_UNIT_SUSPECT_SHARE`` exceed ``DURATION_SANE_MULTIPLE`` x the horizon,
the grade is at most ``SUSPECT_UNIT_GRADE`` and ``warnings`` says so; when their median
is beyond the horizon too (the bulk moved, not a tail of typos) it names the unit they
look like and the ``duration_scale`` that converts it (:func:`guess_duration_unit`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from enterprise_node.validation import Validation
from models.spec import UNIT_DAYS, ModelSpec, NumericFeature

__all__ = [
    "WEIGHTS",
    "GRADE_THRESHOLDS",
    "MIN_UNITS_TO_JUDGE",
    "MAX_FAILURE_SHARE",
    "DURATION_SANE_MULTIPLE",
    "DURATION_UNIT_SUSPECT_SHARE",
    "SUSPECT_UNIT_GRADE",
    "QualityRating",
    "weighted_score",
    "grade_for",
    "guess_duration_unit",
    "rate_quality",
]

#: Weights of completeness, validity, consistency and plausibility (they sum to 1).
WEIGHTS: dict[str, float] = {
    "completeness": 0.25,
    "validity": 0.35,
    "consistency": 0.20,
    "plausibility": 0.20,
}
#: Lowest score of each grade, best first; below the last one the grade is D.
GRADE_THRESHOLDS: tuple[tuple[str, float], ...] = (("A", 90.0), ("B", 75.0), ("C", 60.0))
MIN_UNITS_TO_JUDGE = 20
MAX_FAILURE_SHARE = 0.95
DURATION_SANE_MULTIPLE = 3.0
#: Share of durations beyond DURATION_SANE_MULTIPLE x the horizon above which the time
#: unit itself is suspect (a few very old units are not).
DURATION_UNIT_SUSPECT_SHARE = 0.05
#: The best grade a table whose time unit is suspect can get.
SUSPECT_UNIT_GRADE = "C"


@dataclass(frozen=True)
class QualityRating:
    """The four shares (0-1), the weighted score (0-100), its grade, and what cost points."""

    completeness: float
    validity: float
    consistency: float
    plausibility: float
    score: float
    grade: str
    notes: tuple[str, ...] = ()
    #: What the site must look at before it joins (shown apart from the notes).
    warnings: tuple[str, ...] = ()
    #: The duration_scale the durations look like they need (None: no suspicion, or no
    #: common unit fits).
    suggested_duration_scale: float | None = None


def weighted_score(
    completeness: float, validity: float, consistency: float, plausibility: float
) -> float:
    """100 x the weighted mean of the four shares, rounded *down* to one decimal: 100.0
    only for a table with no fault at all (11 bad rows in 200,000 show as 99.9)."""
    total = (
        WEIGHTS["completeness"] * completeness
        + WEIGHTS["validity"] * validity
        + WEIGHTS["consistency"] * consistency
        + WEIGHTS["plausibility"] * plausibility
    )
    return math.floor(1000.0 * total + 1e-9) / 10.0


def grade_for(score: float) -> str:
    """A (>= 90), B (>= 75), C (>= 60) or D."""
    for grade, lowest in GRADE_THRESHOLDS:
        if score >= lowest:
            return grade
    return "D"


def rate_quality(
    validation: Validation, spec: ModelSpec, *, duration_scale: float
) -> QualityRating:
    """Rate the table ``validation`` checked; durations are multiplied by ``duration_scale``."""
    notes: list[str] = []
    warnings: list[str] = []
    completeness = _completeness(validation, notes)
    validity = 1.0 - validation.n_bad / validation.n_rows if validation.n_rows else 0.0
    consistency = float(
        np.mean(
            [
                _unique_ids(validation.parsed, notes),
                _entry_before_exit(validation.parsed, notes),
                _plausible_segments(validation.parsed, spec, notes),
            ]
        )
    )
    plausibility = float(
        np.mean(
            [
                _inside_bounds(validation.parsed, spec, notes),
                _sane_durations(validation.parsed, spec, duration_scale, notes),
            ]
        )
    )
    score = weighted_score(completeness, validity, consistency, plausibility)
    if validation.n_rows and validation.n_bad == validation.n_rows:
        score = 0.0  # nothing of the file can be used, whatever its other shares say
        warnings.append("No row passed validation: nothing of this file can be used.")
    grade = grade_for(score)
    suggested = None
    suspect = _suspect_unit(validation.parsed, spec, duration_scale)
    if suspect is not None:
        warning, suggested = suspect
        if grade < SUSPECT_UNIT_GRADE:  # letters: "A" < "B" < "C" < "D"
            grade = SUSPECT_UNIT_GRADE
            warning += f" The grade is capped at {SUSPECT_UNIT_GRADE} until this is fixed."
        warnings.append(warning)
    return QualityRating(
        completeness=completeness,
        validity=validity,
        consistency=consistency,
        plausibility=plausibility,
        score=score,
        grade=grade,
        notes=tuple(notes),
        warnings=tuple(warnings),
        suggested_duration_scale=suggested,
    )


def _share(good: int, total: int) -> float:
    return good / total if total else 1.0


def _completeness(validation: Validation, notes: list[str]) -> float:
    columns = list(validation.required)
    missing = int(validation.missing[columns].to_numpy().sum())
    if missing:
        notes.append(f"{missing} required or covariate cells are empty")
    cells = validation.n_rows * len(columns)
    return 1.0 - missing / cells if cells else 0.0


def _unique_ids(parsed: pd.DataFrame, notes: list[str]) -> float:
    ids = parsed["unit_id"]
    repeats = int((ids.notna() & ids.duplicated(keep="first")).sum())
    if repeats:
        notes.append(f"{repeats} rows repeat the unit id of an earlier row")
    return 1.0 - repeats / len(parsed) if len(parsed) else 1.0


def _entry_before_exit(parsed: pd.DataFrame, notes: list[str]) -> float:
    entry, duration = parsed["entry_age"], parsed["duration"]
    comparable = np.isfinite(entry) & np.isfinite(duration) & (entry >= 0) & (duration >= 0)
    late = int((comparable & (entry >= duration)).sum())
    if late:
        notes.append(f"{late} rows have entry_age >= duration")
    return _share(int(comparable.sum()) - late, int(comparable.sum()))


def _plausible_segments(parsed: pd.DataFrame, spec: ModelSpec, notes: list[str]) -> float:
    usable = parsed[parsed["segment"].isin(spec.segments) & parsed["failed"].notna()]
    judged = plausible = 0
    for segment, group in usable.groupby("segment"):
        if len(group) < MIN_UNITS_TO_JUDGE:
            continue
        judged += 1
        failures = int(group["failed"].sum())
        if failures == 0:
            notes.append(f"segment {segment}: no failures among {len(group)} units")
        elif failures > MAX_FAILURE_SHARE * len(group):
            notes.append(
                f"segment {segment}: {failures} of {len(group)} units failed "
                "(few or no censored units: a failure-only extract?)"
            )
        else:
            plausible += 1
    return _share(plausible, judged)


def _inside_bounds(parsed: pd.DataFrame, spec: ModelSpec, notes: list[str]) -> float:
    inside = total = 0
    for feature in spec.features:
        if not isinstance(feature, NumericFeature):
            continue
        values = parsed[feature.name].to_numpy()
        values = values[np.isfinite(values)]
        within = int(((values >= feature.lower) & (values <= feature.upper)).sum())
        if within < len(values):
            notes.append(
                f"{len(values) - within} values of {feature.name} are outside the public "
                f"bounds [{feature.lower:g}, {feature.upper:g}] (clipped at encoding)"
            )
        inside += within
        total += len(values)
    return _share(inside, total)


def _sane_durations(
    parsed: pd.DataFrame, spec: ModelSpec, duration_scale: float, notes: list[str]
) -> float:
    durations = parsed["duration"].to_numpy() * duration_scale
    durations = durations[np.isfinite(durations) & (durations >= 0)]
    limit = DURATION_SANE_MULTIPLE * spec.time_grid.horizon
    sane = int((durations <= limit).sum())
    if sane < len(durations):
        notes.append(
            f"{len(durations) - sane} durations exceed {limit:g} {spec.time_grid.unit} "
            f"({DURATION_SANE_MULTIPLE:g} x the horizon): check data.duration_scale"
        )
    return _share(sane, len(durations))


def _site_durations(parsed: pd.DataFrame) -> np.ndarray:
    """Finite, non-negative durations as the site wrote them (before duration_scale)."""
    durations = parsed["duration"].to_numpy(dtype=float)
    return durations[np.isfinite(durations) & (durations >= 0)]


def _suspect_unit(
    parsed: pd.DataFrame, spec: ModelSpec, duration_scale: float
) -> tuple[str, float | None] | None:
    """(warning, suggested duration_scale) when the time unit is suspect, else None."""
    durations = _site_durations(parsed)
    if len(durations) < MIN_UNITS_TO_JUDGE:
        return None
    grid, scaled = spec.time_grid, durations * duration_scale
    limit = DURATION_SANE_MULTIPLE * grid.horizon
    beyond = int((scaled > limit).sum())
    if beyond <= DURATION_UNIT_SUSPECT_SHARE * len(durations):
        return None
    found = (
        f"with data.duration_scale {duration_scale:g}, {beyond} of {len(durations)} durations "
        f"({beyond / len(durations):.1%}) exceed {limit:g} {grid.unit} "
        f"({DURATION_SANE_MULTIPLE:g} x the grid's horizon of {grid.horizon:g} {grid.unit})"
    )
    # a wrong unit moves the bulk, not only a tail of typos
    bulk_off = float(np.median(scaled)) > grid.horizon
    guess = guess_duration_unit(durations, spec, duration_scale=duration_scale)
    if not bulk_off or guess is None:
        return (
            f"Durations look too long for {grid.unit}: {found}. If your durations are in "
            f"another unit, set data.duration_scale in node.yaml to the number of "
            f"{grid.unit} in one of them; otherwise check those rows.",
            None,
        )
    name, scale = guess
    return (
        f"The durations look like {name}, not {grid.unit}: {found}. Set "
        f"data.duration_scale: {scale:.4g} in node.yaml to convert {name} to {grid.unit}.",
        scale,
    )


def guess_duration_unit(
    durations: np.ndarray, spec: ModelSpec, *, duration_scale: float
) -> tuple[str, float] | None:
    """The coarsest common unit finer than ``duration_scale`` implies under which the site's
    ``durations`` fit the grid: at most DURATION_UNIT_SUSPECT_SHARE of them beyond
    DURATION_SANE_MULTIPLE x the horizon, and their median within the horizon (a grid is
    published to cover the ages observed). Returns (unit, the duration_scale converting it
    to the grid's unit), or None when the grid's unit is not a common one or none fits.

    >>> from models.spec import ModelSpec
    >>> spec = ModelSpec(time_grid={"unit": "months", "edges": [0, 60, 120]},
    ...                  segments=["s"], equipment_classes=["c"], features=[])
    >>> days = np.array([30.0, 400.0, 900.0, 1500.0, 2500.0, 3600.0])
    >>> guess_duration_unit(days, spec, duration_scale=1.0)
    ('days', 0.03285420944558522)
    """
    grid_days = spec.time_grid.days_per_unit
    durations = np.asarray(durations, dtype=float)
    if grid_days is None or len(durations) == 0:
        return None
    limit = DURATION_SANE_MULTIPLE * spec.time_grid.horizon
    for name, days in reversed(UNIT_DAYS.items()):
        scale = days / grid_days
        if scale >= duration_scale * (1 - 1e-9):
            continue
        scaled = durations * scale
        few_beyond = (scaled > limit).mean() <= DURATION_UNIT_SUSPECT_SHARE
        if few_beyond and np.median(scaled) <= spec.time_grid.horizon:
            return name, scale
    return None
