"""The `fedrisk-node check` report: what ingestion accepted, refused and rated, locally.

Everything here stays on the node: per-segment counts and failure rates are shown to the
site's own staff and never sent. The report never holds unit ids (not even pseudonyms).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from common.atomic import atomic_write_json
from common.config_file import parse_model
from common.errors import ConfigError
from enterprise_node.config import NodeConfig
from enterprise_node.contribution import ContributionOutlook, contribution_outlook
from enterprise_node.ingest import IngestResult, load_and_validate, refuse_if_too_bad
from enterprise_node.quality import QualityRating
from enterprise_node.service_dates import formats_reading
from enterprise_node.validation import (
    ERROR_KINDS,
    LINE_NUMBERING,
    ROW_NUMBERING,
    ErrorGroup,
    RowError,
    group_errors,
)
from models.spec import ModelSpec
from protocols.plan import TrainingPlan, model_spec_in

__all__ = [
    "NOTHING_SENT",
    "SegmentSummary",
    "CheckReport",
    "load_model_spec",
    "load_plan_or_none",
    "build_check_report",
    "render_check_report",
    "report_to_dict",
    "run_check",
    "declaration_notes",
    "date_format_notes",
]

NOTHING_SENT = "Nothing was sent: this check ran locally and shared nothing with anyone."
_FIRST_ERRORS = 10


@dataclass(frozen=True)
class SegmentSummary:
    """Accepted units and failures of one published segment (local only)."""

    segment: str
    units: int
    failures: int

    @property
    def failure_rate(self) -> float | None:
        return self.failures / self.units if self.units else None


@dataclass(frozen=True)
class CheckReport:
    """What `fedrisk-node check` shows; ``accepted`` is False when the file is refused."""

    source: Path
    rows_read: int
    rows_accepted: int
    rows_quarantined: int
    n_errors: int
    error_counts: tuple[tuple[str, int], ...]
    error_groups: tuple[ErrorGroup, ...]
    first_errors: tuple[RowError, ...]
    segments: tuple[SegmentSummary, ...]
    quality: QualityRating
    quarantine_path: Path | None
    max_bad_fraction: float
    contribution: ContributionOutlook | None = None

    @property
    def bad_fraction(self) -> float:
        return self.rows_quarantined / self.rows_read if self.rows_read else 0.0

    @property
    def accepted(self) -> bool:
        return self.bad_fraction <= self.max_bad_fraction


def _read_document(path: Path) -> dict:
    """The mapping in a JSON or YAML file; ConfigError naming the file otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except FileNotFoundError:
        raise ConfigError(f"{path}: spec file not found") from None
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read the model spec: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping holding a model spec")
    return data


def load_model_spec(path: Path) -> ModelSpec:
    """The model spec from a coordinator.yaml (``plan.model_spec``), a plan, or a spec file."""
    return model_spec_in(_read_document(path), str(path))


def load_plan_or_none(path: Path) -> TrainingPlan | None:
    """The training plan of a coordinator.yaml (``plan``) or a plan file; None for a bare
    model spec (then the check cannot tell what DP-SGD would make of the site's units)."""
    data = _read_document(path)
    if isinstance(data.get("plan"), dict):
        return parse_model(TrainingPlan, data["plan"], f"{path}: plan")
    if "model_spec" in data and len(data) > 1:  # a plan's JSON, not a wrapped spec
        return parse_model(TrainingPlan, data, str(path))
    return None


def build_check_report(
    result: IngestResult,
    spec: ModelSpec,
    *,
    max_bad_fraction: float,
    plan: TrainingPlan | None = None,
) -> CheckReport:
    """Summarise an ingest result (accepted or not) for display and JSON; with the ``plan``
    (or without, from the unit count alone) what training would make of the site's units."""
    counts = Counter(error.kind for error in result.errors)
    return CheckReport(
        source=result.source,
        rows_read=result.n_rows_read,
        rows_accepted=result.n_rows_accepted,
        rows_quarantined=result.n_rows_quarantined,
        n_errors=len(result.errors),
        error_counts=tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0]))),
        error_groups=group_errors(result.errors),
        first_errors=result.errors[:_FIRST_ERRORS],
        segments=_segments(result, spec),
        quality=result.quality,
        quarantine_path=result.quarantine_path,
        max_bad_fraction=max_bad_fraction,
        contribution=contribution_outlook(result.n_rows_accepted, plan),
    )


def _segments(result: IngestResult, spec: ModelSpec) -> tuple[SegmentSummary, ...]:
    frame = result.frame
    summaries = []
    for segment in spec.segments:
        failed = frame.loc[frame["segment"] == segment, "failed"]
        summaries.append(SegmentSummary(segment, len(failed), int(failed.sum())))
    return tuple(summaries)


def run_check(
    config: NodeConfig,
    spec: ModelSpec,
    *,
    console: Console,
    json_path: Path | None = None,
    plan: TrainingPlan | None = None,
) -> CheckReport:
    """Ingest, print the report, write it as JSON if asked, then refuse a too-bad file."""
    result = load_and_validate(config, spec)
    report = build_check_report(
        result, spec, max_bad_fraction=config.data.max_bad_fraction, plan=plan
    )
    render_check_report(report, console)
    notes = dialect_notes(result.errors, config.data.csv.decimal)
    notes += date_format_notes(result.errors, config.data.dates is not None)
    notes += declaration_notes(config.node.segments, report)
    for note in notes:
        console.print(f"[yellow]note:[/] {note}")
    if json_path is not None:
        atomic_write_json(json_path, {**report_to_dict(report), "declaration_notes": notes})
        console.print(f"Report written to {json_path}")
    # the report above listed the errors: the refusal need not repeat them
    refuse_if_too_bad(result, max_bad_fraction=config.data.max_bad_fraction, list_errors=False)
    return report


#: A number written with a decimal comma, as a refused cell shows it (its repr).
_DECIMAL_COMMA = re.compile(r"^'-?\d+,\d+'$")


def dialect_notes(errors: Sequence[RowError], decimal: str) -> list[str]:
    """The setting to propose when numbers were refused for their decimal comma: at least
    half of a column's "not a number" cells look like 12,5 (values read, never guessed)."""
    if decimal == ",":
        return []
    refused: dict[str, list[str]] = {}
    for error in errors:
        if error.kind == "not_numeric":
            refused.setdefault(error.column, []).append(error.value)
    notes = []
    for column, values in refused.items():
        commas = [v for v in values if _DECIMAL_COMMA.match(v)]
        if len(commas) * 2 >= len(values):
            notes.append(
                f"{len(commas)} value(s) of {column} like {commas[0]} are numbers with a "
                "decimal comma: if the file writes numbers that way, set data.csv.decimal: "
                "',' (and data.csv.delimiter: ';') in node.yaml"
            )
    return notes


def date_format_notes(errors: Sequence[RowError], dated: bool) -> list[str]:
    """The data.dates.format to propose when dates were refused and a common format reads
    every refused date (it is one setting for all date columns); both formats when day and
    month cannot be told apart, and nothing when none reads them all."""
    refused = [e for e in errors if e.kind == "not_a_date"] if dated else []
    formats = formats_reading([e.value for e in refused])
    if not formats:
        return []
    columns = ", ".join(dict.fromkeys(e.column for e in refused))
    seen = f"{len(refused)} date(s) of {columns} like {refused[0].value}"
    if len(formats) == 1:
        return [
            f"{seen} read as {formats[0]}: if the file writes dates that way, set "
            f"data.dates.format: '{formats[0]}' in node.yaml"
        ]
    options = " or ".join(f"'{f}'" for f in formats)
    return [
        f"{seen} read as {options}; which one is right depends on the export (day or "
        "month first): set data.dates.format in node.yaml"
    ]


def declaration_notes(declared: list[str] | None, report: CheckReport) -> list[str]:
    """How node.segments (the segments the enterprise declares) fits the data and the spec."""
    if declared is None:
        return [
            "node.yaml declares no segments (node.segments): under secure aggregation this "
            "node refuses curve rounds until it does"
        ]
    units = {s.segment: s.units for s in report.segments}
    notes = [
        f"declared segment {name!r} is not in the model spec"
        for name in declared
        if name not in units
    ]
    notes += [
        f"declared segment {name!r} has no accepted units"
        for name in declared
        if units.get(name) == 0
    ]
    notes += [
        f"{count} unit(s) in undeclared segment {name!r}: they enter the sums, but this "
        "enterprise is not counted as a contributor there"
        for name, count in units.items()
        if count and name not in declared
    ]
    return notes


def render_check_report(report: CheckReport, console: Console) -> None:
    """Print the report with rich: rows, errors, segments, rating, verdict."""
    console.rule(f"fedrisk-node check: {report.source}")
    console.print(
        f"Rows read: {report.rows_read}   accepted: {report.rows_accepted}   "
        f"quarantined: {report.rows_quarantined}"
    )
    if report.n_errors:
        _render_errors(report, console)
    console.print(_segment_table(report))
    # the headline on a line of its own: as a table title it wraps to the table's width
    quality = report.quality
    console.print(f"[bold]Data quality: {quality.score:.1f} / 100, grade {quality.grade}[/]")
    console.print(_quality_table(quality))
    for note in report.quality.notes:
        console.print(f"  - {note}")
    if report.contribution is not None:
        console.print(f"Model contribution: {report.contribution.describe()}")
    for warning in _warnings(report):
        console.print(f"WARNING: {warning}", style="bold yellow", markup=False)
    _render_verdict(report, console)
    console.print(NOTHING_SENT, style="bold")


def _warnings(report: CheckReport) -> tuple[str, ...]:
    """What the site must look at before it joins: the data's, then its contribution's."""
    contribution = () if report.contribution is None else report.contribution.warnings
    return (*report.quality.warnings, *contribution)


def _render_errors(report: CheckReport, console: Console) -> None:
    console.print(f"Bad rows were quarantined to {report.quarantine_path} (stays on this node).")
    by_line = all(e.line is not None for e in report.first_errors)
    groups = Table(title=f"{report.n_errors} errors by column")
    for name in ("column", "problem", "count", "first at", "e.g."):
        groups.add_column(name, justify="right" if name == "count" else "left")
    for group in report.error_groups:
        example = group.first
        at = example.line if by_line and example.line is not None else example.row
        meaning = ERROR_KINDS.get(group.kind, example.message)
        groups.add_row(group.column, meaning, str(group.count), str(at), example.value)
    console.print(groups)
    numbering = LINE_NUMBERING if by_line else ROW_NUMBERING
    first = Table(title=f"First {len(report.first_errors)} errors ({numbering})")
    for name in ("line" if by_line else "data row", "column", "problem", "value"):
        first.add_column(name)
    for error in report.first_errors:
        place = error.line if by_line else error.row
        first.add_row(str(place), error.column, error.message, error.value)
    console.print(first)


def _segment_table(report: CheckReport) -> Table:
    table = Table(title="Accepted units per segment (local only, never sent)")
    for name in ("segment", "units", "failures", "failure rate"):
        table.add_column(name, justify="left" if name == "segment" else "right")
    for summary in report.segments:
        rate = summary.failure_rate
        shown = "-" if rate is None else f"{rate:.1%}"
        table.add_row(summary.segment, str(summary.units), str(summary.failures), shown)
    return table


def _quality_table(quality: QualityRating) -> Table:
    table = Table()
    table.add_column("component")
    table.add_column("share", justify="right")
    for name in ("completeness", "validity", "consistency", "plausibility"):
        table.add_row(name, f"{getattr(quality, name):.1%}")
    return table


def _render_verdict(report: CheckReport, console: Console) -> None:
    share = f"{report.rows_quarantined} of {report.rows_read} rows bad ({report.bad_fraction:.1%})"
    limit = f"data.max_bad_fraction {report.max_bad_fraction:.1%}"
    if report.accepted:
        console.print(f"ACCEPTED: {share}, within {limit}.", style="bold green")
    else:
        console.print(f"REFUSED: {share}, more than {limit}.", style="bold red")


def report_to_dict(report: CheckReport) -> dict[str, object]:
    """JSON-ready form of the report (no unit ids, no pseudonyms)."""
    return {
        "source": str(report.source),
        "accepted": report.accepted,
        "rows_read": report.rows_read,
        "rows_accepted": report.rows_accepted,
        "rows_quarantined": report.rows_quarantined,
        "max_bad_fraction": report.max_bad_fraction,
        "quarantine_path": None if report.quarantine_path is None else str(report.quarantine_path),
        "row_numbering": ROW_NUMBERING,
        "line_numbering": LINE_NUMBERING,
        "n_errors": report.n_errors,
        "error_counts": dict(report.error_counts),
        "errors_by_column": [
            {
                "column": g.column,
                "kind": g.kind,
                "count": g.count,
                "first_row": g.first.row,
                "first_line": g.first.line,
                "example": g.first.value,
            }
            for g in report.error_groups
        ],
        "first_errors": [
            {
                "row": e.row,
                "line": e.line,
                "column": e.column,
                "kind": e.kind,
                "message": e.message,
                "value": e.value,
            }
            for e in report.first_errors
        ],
        "segments": [
            {
                "segment": s.segment,
                "units": s.units,
                "failures": s.failures,
                "failure_rate": s.failure_rate,
            }
            for s in report.segments
        ],
        "quality": {
            "completeness": report.quality.completeness,
            "validity": report.quality.validity,
            "consistency": report.quality.consistency,
            "plausibility": report.quality.plausibility,
            "score": report.quality.score,
            "grade": report.quality.grade,
            "notes": list(report.quality.notes),
            "warnings": list(report.quality.warnings),
            "suggested_duration_scale": report.quality.suggested_duration_scale,
        },
        "contribution": None if report.contribution is None else report.contribution.to_dict(),
        "warnings": list(_warnings(report)),
        "sent": False,
    }
