"""`fedrisk-coordinator curves`: a completed run's industry risk curves as JSON, CSV or PNG.

Published segments only, unless the broker asks for the withheld ones too: those come from
``curves_withheld.json`` and stay marked (``published: false`` in JSON and CSV, "not
published" in the plot). The writers are the run's own (:mod:`models.curves`,
:mod:`coordinator.curve_plot`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.atomic import atomic_write_text
from common.errors import RunFailedError, StateError
from coordinator.curve_plot import plot_curves
from coordinator.errors import CommandUsageError
from coordinator.outputs import WITHHELD_CURVES_FILE, curves_caption
from coordinator.run_view import RunView
from models.curves import RiskCurve, curves_csv, curves_to_json

__all__ = ["CURVE_FORMATS", "WITHHELD_WARNING", "run_curves", "select_segments", "export_curves"]

CURVE_FORMATS = ("json", "csv", "png")
WITHHELD_WARNING = (
    "includes segments withheld by the publication rules (published: false): "
    "for the broker's review only, not for publication"
)


def run_curves(run: RunView, *, include_withheld: bool = False) -> list[RiskCurve]:
    """The run's published curves, then (if asked) its withheld ones, as the summary lists
    them; RunFailedError for a failed run, StateError for one not finished or missing files."""
    if run.status == "failed":
        raise RunFailedError(f"{run.run_dir}: run {run.run_id} failed, no curves: {run.error}")
    if run.status != "completed":
        raise StateError(f"{run.run_dir}: run {run.run_id} is {run.status}; no curves yet")
    curves = _read(run, "curves.json", run.published)
    if include_withheld:
        curves += _read(run, WITHHELD_CURVES_FILE, tuple(s for s, _ in run.withheld))
    return curves


def select_segments(
    run: RunView, curves: list[RiskCurve], segments: Sequence[str]
) -> list[RiskCurve]:
    """The curves of ``segments`` (all when empty); CommandUsageError names an unknown or
    withheld segment, or a run with nothing to export."""
    have = {c.segment: c for c in curves}
    withheld = dict(run.withheld)
    for segment in segments:
        if segment in have:
            continue
        if segment in withheld:
            raise CommandUsageError(
                f"segment {segment!r} of run {run.run_id} was withheld ({withheld[segment]}); "
                "pass --include-withheld to export it marked as not published"
            )
        known = ", ".join([*run.published, *withheld]) or "none"
        raise CommandUsageError(
            f"unknown segment {segment!r} in run {run.run_id}; its segments: {known}"
        )
    chosen = [have[s] for s in segments] if segments else curves
    if not chosen:
        reasons = "; ".join(f"{s}: {r}" for s, r in run.withheld) or "no curve release"
        raise CommandUsageError(
            f"run {run.run_id} published no curves ({reasons}); --include-withheld shows them"
        )
    return chosen


def export_curves(
    run: RunView, curves: list[RiskCurve], fmt: str, out: Path | None
) -> tuple[Path | None, str]:
    """Write ``curves`` as ``fmt`` to ``out`` (JSON and CSV: stdout text when ``out`` is
    None; PNG: ``curves-<run id>.png`` here by default). Returns (path, text to print)."""
    if fmt not in CURVE_FORMATS:
        raise CommandUsageError(f"unknown curves format {fmt!r}; use {', '.join(CURVE_FORMATS)}")
    marked = any(not c.published for c in curves)
    if fmt == "png":
        path = out or Path(f"curves-{run.run_id}.png")
        caption = (
            curves_caption(run.request, run.rounds)
            if run.request is not None
            else f"fedrisk run {run.run_id}"
        )
        if marked:
            caption += "; includes withheld curves (not published)"
        plot_curves(path, curves, time_unit=run.time_unit, caption=caption)
        return path, ""
    text = (
        _json_text(run, curves, marked)
        if fmt == "json"
        else curves_csv(curves, with_published=marked)
    )
    if out is None:
        return None, text
    atomic_write_text(out, text)
    return out, ""


def _json_text(run: RunView, curves: list[RiskCurve], marked: bool) -> str:
    document: dict[str, Any] = {**curves_to_json(curves), "run_id": run.run_id}
    if marked:
        document["warning"] = WITHHELD_WARNING
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _read(run: RunView, name: str, segments: Sequence[str]) -> list[RiskCurve]:
    """The curves of ``segments`` in ``run_dir/name`` (the summary says which to expect)."""
    if not segments:
        return []
    path = run.run_dir / name
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        curves = {c.segment: c for c in map(RiskCurve.from_dict, document["curves"])}
    except FileNotFoundError:
        raise StateError(f"{path}: missing, but the run summary lists {list(segments)}") from None
    except (ValueError, KeyError, TypeError) as err:
        raise StateError(f"{path}: corrupt curves file: {err}") from None
    missing = [s for s in segments if s not in curves]
    if missing:
        raise StateError(f"{path}: no curve for segment(s) {missing} the summary lists")
    return [curves[s] for s in segments]
