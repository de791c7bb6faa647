"""`fedrisk-coordinator report`: a run's report in Markdown and HTML.

Built only from the run's own outputs (summary, progress events, curves, hashes) and the
coordinator's ledger beside it: run and plan, nodes by label and pseudonymous id, rounds
with refusals, failures and dropouts, privacy spent against the plan, published and
withheld segments, the curves at a few ages with the plot, model metrics, and the output
hashes with the ledger entry that records them. No node data is read, so none can appear.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from common.atomic import atomic_write_text
from common.report_document import Document, Section, Table, render_html, render_markdown
from coordinator.coordinator_ledger import file_sha256
from coordinator.curve_export import run_curves
from coordinator.errors import CommandUsageError
from coordinator.ledger_view import ledger_state_of, read_ledger_view, run_entries
from coordinator.outputs import MODEL_FILE
from coordinator.progress_events import SecureSumDone
from coordinator.round_summary import NodeNote, RoundSummary
from coordinator.run_view import RunView, utc_time
from ledger.records import OutputsPublished, RoundRecorded
from models.curves import RiskCurve
from models.metrics import FIGURE_MEANINGS, FIGURE_NAMES
from privacy.epsilon_wording import DIFFERENT_DELTAS, epsilon_at, epsilon_number

__all__ = ["REPORT_FORMATS", "MARKDOWN_FILE", "HTML_FILE", "build_report", "write_run_report"]

REPORT_FORMATS = ("md", "html", "both")
MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"
#: Names of the evaluation.json figures, in the report's order; ``c_index`` is Antolini's
#: C_td under the name it had before Harrell's C on the risk score was added.
_FIGURE_LABELS = {
    "harrell_c": FIGURE_NAMES["harrell_c"],
    "c_td": FIGURE_NAMES["c_td"],
    "c_index": FIGURE_NAMES["c_td"],
    "ibs": FIGURE_NAMES["ibs"],
}
#: Plain words for the keys of the privacy figures (curve noise, enterprise-level DP).
_PRIVACY_LABELS = {
    "distributed": "noise added as shares inside the secure sum",
    "mechanism": "noise mechanism",
    "share_std": "one node's noise share (std)",
    "shares_planned": "shares the noise was planned for (the fewest a released sum may hold)",
    "shares_present": "shares in the released sum",
    "total_noise_std": "total noise (std) in each released count",
    "epsilon_charged_per_node": "epsilon each node was charged (at the delta below)",
    "epsilon_realised": "epsilon with the shares actually present",
    "delta": "delta",
    "note": "note",
    "clip_norm": "clip norm C of an enterprise's update",
    "noise_multiplier": "noise multiplier planned (noise std / C)",
    "effective_noise_multiplier": "noise multiplier of the planned shares' sum",
    "expected_noise_std_per_coordinate_of_mean": (
        "expected noise std per coordinate of the mean update"
    ),
    "expected_noise_norm_of_mean": "expected noise norm of the mean update",
    "epsilon_one_round": "epsilon of one round",
    "epsilon": "epsilon spent so far",
    "epsilon_cap": "epsilon cap",
    "rounds_accounted": "rounds accounted",
    "stopped_before_round": "stopped before round",
    "warning": "warning",
}
#: Ages at which the curves table shows F and its band on a grid in months.
_AGES_MONTHS = (12.0, 24.0, 36.0, 48.0, 60.0)


def write_run_report(run: RunView, out_dir: Path | None = None, fmt: str = "both") -> list[Path]:
    """Write report.md and/or report.html (atomically) to ``out_dir`` (default
    ``RUN/report``); return the paths written."""
    if fmt not in REPORT_FORMATS:
        raise CommandUsageError(f"unknown report format {fmt!r}; use {', '.join(REPORT_FORMATS)}")
    out = Path(out_dir) if out_dir is not None else run.run_dir / "report"
    document = build_report(run)
    written = []
    if fmt in ("md", "both"):
        atomic_write_text(out / MARKDOWN_FILE, render_markdown(document, out))
        written.append(out / MARKDOWN_FILE)
    if fmt in ("html", "both"):
        atomic_write_text(out / HTML_FILE, render_html(document))
        written.append(out / HTML_FILE)
    return written


def build_report(run: RunView) -> Document:
    lead = f"Run {run.run_id}: {run.status}"
    if run.error:
        lead += f" - {run.error}"
    pseudonyms, ledger_section = _ledger(run)
    return Document(
        title=f"fedrisk run report: {run.run_id}",
        lead=lead,
        sections=(
            _overview(run),
            _nodes(run, pseudonyms),
            _rounds(run),
            _privacy(run),
            _segments(run),
            _curves(run),
            _model(run),
            ledger_section,
        ),
    )


def _overview(run: RunView) -> Section:
    request, summary = run.request, run.summary
    plan = None if request is None else request.config.plan
    seconds = None if summary is None else summary.seconds
    spec_digest = (summary and summary.model_spec_digest) or (plan and plan.model_spec.digest)
    record_dp = None if summary is None else summary.record_dp
    if record_dp is None and plan is not None:
        record_dp = plan.privacy.record.enabled
    rows = [
        ("run id", run.run_id),
        ("status", run.status),
        ("plan digest", "-" if summary is None else summary.plan_digest),
        ("model spec digest", spec_digest or "-"),
        ("secure aggregation", "-" if plan is None else _yes(plan.secure_aggregation)),
        ("record-level DP", "-" if record_dp is None else _yes(record_dp)),
        ("started", utc_time(run.started_at)),
        ("ended", utc_time(run.ended_at)),
        ("duration", "-" if seconds is None else f"{seconds:.1f} s"),
        ("rounds done / planned", f"{run.rounds_done} / {run.rounds_planned or '?'}"),
        ("nodes expected", "-" if request is None else str(request.expected_nodes)),
        ("nodes that took part", str(len(run.nodes))),
    ]
    return Section("Run", tables=(Table(("item", "value"), tuple(rows)),))


def _nodes(run: RunView, pseudonyms: Mapping[str, str]) -> Section:
    summary = run.summary
    privacy = {} if summary is None else summary.privacy.nodes
    checks = (summary and summary.inclusion_checks) or {}
    names = sorted({*run.nodes, *privacy, *(p.node for r in run.rounds for p in r.problems)})
    target = _record_target(run)
    rows = []
    for name in names:
        spent = privacy.get(name)
        epsilon = None if spent is None else spent.epsilon_run
        rows.append(
            (
                name,
                pseudonyms.get(name, "-"),
                _eps(epsilon),
                _within(run, epsilon),
                "-" if spent is None else _at_delta(spent.epsilon_total, spent.delta_total),
                "-" if spent is None else _at_delta(spent.epsilon_cap, spent.delta_cap),
                checks.get(name, "-"),
            )
        )
    headers = (
        "node (label)",
        "pseudonymous id",
        "epsilon this run" + ("" if run.run_delta is None else f" at delta {run.run_delta:g}"),
        f"within the plan's target ({target})",
        "node lifetime epsilon at its cap's delta",
        "node cap",
        "ledger inclusion check",
    )
    note = (
        "Pseudonymous ids are the key ids of the nodes' ledger keys, as in the coordinator's "
        "ledger. Epsilon this run is at the plan's delta; lifetime epsilon and cap at each "
        f"node's own cap delta. {DIFFERENT_DELTAS}"
    )
    return Section("Nodes", (note,), (Table(headers, tuple(rows), "No node took part."),))


def _within(run: RunView, epsilon: float | None) -> str:
    """Whether a node's epsilon this run stays within the plan's record-level target (the
    summary rounds epsilon to 6 decimals)."""
    if epsilon is None or run.request is None or not run.request.config.plan.privacy.record.enabled:
        return "-"
    return "yes" if epsilon <= run.request.config.plan.privacy.record.epsilon + 1e-6 else "NO"


def _rounds(run: RunView) -> Section:
    """One row per round: its model or curve exchange, with every stage's problems."""
    stages: dict[int, list[RoundSummary]] = defaultdict(list)
    for record in run.rounds:
        stages[record.round].append(record)
    sums = {(e.round, e.task): e for e in run.events if isinstance(e, SecureSumDone)}
    rows = []
    for number, records in sorted(stages.items()):
        main = next((r for r in records if r.task in ("model", "curve")), records[-1])
        secure = sums.get((number, main.task))
        rows.append(
            (
                str(number),
                main.task,
                str(len(main.ok)),
                _reasons([(r.task, p) for r in records for p in r.refused]),
                _reasons([(r.task, p) for r in records for p in r.failed]),
                "-" if secure is None else str(secure.survivors),
                "-" if secure is None else str(secure.dropped),
                f"{sum(r.seconds for r in records):.1f}",
            )
        )
    headers = (
        "round",
        "exchange",
        "participants",
        "refusals (stage: node: reason)",
        "failures (stage: node: reason)",
        "in secure sum",
        "dropped",
        "seconds",
    )
    return Section("Rounds", tables=(Table(headers, tuple(rows), "No round ran."),))


def _privacy(run: RunView) -> Section:
    privacy = None if run.summary is None else run.summary.privacy
    paragraphs = [
        f"Record-level target per node (the plan's): {_record_target(run)}; accountant "
        f"{'-' if privacy is None else privacy.accountant}; epsilon per node is in the Nodes "
        "table."
    ]
    tables = []
    notes = {} if privacy is None else {"Curve noise": privacy.curve_noise}
    if privacy is not None:
        notes["Enterprise-level DP"] = privacy.enterprise
    for title, figures in notes.items():
        if figures is not None:
            rows = tuple(
                (_PRIVACY_LABELS.get(key, key), _plain(value))
                for key, value in _scalar_rows(figures)
            )
            tables.append(Table((title, "value"), rows))
    if privacy is None or privacy.enterprise is None:
        paragraphs.append("No enterprise-level DP in this run.")
    paragraphs += [f"Note: {note}" for note in (privacy.notes if privacy else ())]
    return Section("Privacy", tuple(paragraphs), tuple(tables))


def _segments(run: RunView) -> Section:
    rows = [(s, "published", "-") for s in run.published]
    rows += [(s, "withheld", reason) for s, reason in run.withheld]
    empty = "No curves: the run failed." if run.status == "failed" else "No curve release."
    table = Table(("segment", "curve", "why withheld"), tuple(rows), empty)
    return Section("Segments", tables=(table,))


def _curves(run: RunView) -> Section:
    if run.status != "completed" or not run.published:
        return Section("Risk curves", ("No published curves.",))
    curves = run_curves(run)
    rows = tuple(row for curve in curves for row in _curve_rows(curve, run.time_unit))
    note = (
        "F(t): probability that equipment has failed by age t, with the pointwise 95 % band "
        "(sampling and DP noise); linear between grid edges. Published segments only."
    )
    table = Table(("segment", "age", "F", "95 % band"), rows)
    plot = run.run_dir / "curves.png"
    image = plot if plot.exists() else None
    return Section("Risk curves", (note,), (table,), image, "risk curves: F(t) with 95 % band")


def _curve_rows(curve: RiskCurve, unit: str) -> list[tuple[str, ...]]:
    """F and its band at a few ages, linear between grid edges as in the plot."""
    edges = np.asarray(curve.edges, float)
    rows: list[tuple[str, ...]] = []
    for age in _ages(edges, unit):
        value, low, high = (
            float(np.interp(age, edges, y))
            for y in (curve.failure, curve.failure_lower, curve.failure_upper)
        )
        rows.append((curve.segment, f"{age:g} {unit}", f"{value:.4f}", f"[{low:.4f}, {high:.4f}]"))
    return rows


def _ages(edges: np.ndarray, unit: str) -> list[float]:
    """Yearly ages up to 5 years on a grid in months, else up to 5 inner edges spread over
    the grid; then the grid's end."""
    if unit == "months":
        early = [a for a in _AGES_MONTHS if a < edges[-1]]
    else:
        inner = edges[1:-1]
        picks = np.linspace(0, len(inner) - 1, min(5, len(inner))).round().astype(int)
        early = sorted({float(inner[i]) for i in picks})
    return [*early, float(edges[-1])]


def _model(run: RunView) -> Section:
    summary = run.summary
    rows = [
        ("model parameters digest", (summary and summary.model_digest) or "-"),
        ("model spec digest", (summary and summary.model_spec_digest) or "-"),
    ]
    evaluation = run.run_dir / "evaluation.json"
    if evaluation.exists():
        scores = json.loads(evaluation.read_text(encoding="utf-8"))
        for key in ("federated_dp", "central_nonprivate"):
            for label, value in _figure_rows(scores.get(key, {})):
                rows.append((f"held-out evaluation, {key}: {label}", value))
    meanings = tuple(f"{FIGURE_NAMES[k]}: {FIGURE_MEANINGS[k]}." for k in FIGURE_MEANINGS)
    notes = meanings if evaluation.exists() else ()
    return Section("Model", notes, tables=(Table(("item", "value"), tuple(rows)),))


def _figure_rows(scores: Mapping[str, Any]) -> list[tuple[str, str]]:
    """An evaluation's figures by their plain names, Harrell's C on the risk score first."""
    order = list(_FIGURE_LABELS)
    rows = sorted(
        _scalar_rows(scores), key=lambda row: order.index(row[0]) if row[0] in order else len(order)
    )
    return [(_FIGURE_LABELS.get(metric, metric), value) for metric, value in rows]


def _ledger(run: RunView) -> tuple[dict[str, str], Section]:
    """(node label -> pseudonymous id, the hashes-and-ledger section)."""
    files = [run.run_dir / MODEL_FILE, run.run_dir / "curves.json"]
    hashes = {p.name: file_sha256(p) for p in files if p.exists()}
    state = ledger_state_of(run)
    view = None if state is None else read_ledger_view(state)
    if state is None or view is None:
        rows = tuple((name, digest, "no ledger found") for name, digest in hashes.items())
        note = f"No coordinator ledger found for this run (looked beside {run.run_dir})."
        return {}, Section("Hashes and ledger", (note,), (_hash_table(rows),))
    entries = run_entries(view.directory, run.run_id)
    outputs = [e for e in entries if e.kind == OutputsPublished.KIND]
    recorded, seq = (outputs[-1].body, outputs[-1].seq) if outputs else ({}, None)
    keys = {MODEL_FILE: "model_sha256", "curves.json": "curves_sha256"}
    rows = tuple(
        (name, digest, _matches(recorded.get(keys[name]), digest, seq))
        for name, digest in hashes.items()
    )
    verdict = "verified" if view.verified else "FAILED verification: " + "; ".join(view.problems)
    note = (
        f"Coordinator ledger {view.directory}: {view.entries} entries, latest signed tree head "
        f"of size {view.signed_size} (root {view.root_hash}), {verdict}."
    )
    if seq is not None:
        covered = "covered" if seq < view.signed_size else "NOT yet covered"
        note += f" The outputs are recorded at entry {seq}, {covered} by it."
    return _pseudonyms(run, entries), Section("Hashes and ledger", (note,), (_hash_table(rows),))


def _pseudonyms(run: RunView, entries: list[Any]) -> dict[str, str]:
    """Labels to pseudonymous ids: the summary's and the ledger's round records list the
    same replies in the same order."""
    recorded = {
        (e.body["round"], e.body["task"]): e.body for e in entries if e.kind == RoundRecorded.KIND
    }
    mapping: dict[str, str] = {}
    for record in run.rounds:
        body = recorded.get((record.round, record.task))
        if body is None:
            continue
        mapping.update(zip(record.ok, body["participants"], strict=False))
        for kind, notes in (("refused", record.refused), ("failed", record.failed)):
            labels = [p.node for p in notes]
            mapping.update(zip(labels, [p["node"] for p in body[kind]], strict=False))
    return mapping


def _hash_table(rows: tuple[tuple[str, ...], ...]) -> Table:
    return Table(("file", "sha256", "in the coordinator's ledger"), rows, "No output files.")


def _matches(recorded: str | None, digest: str, seq: int | None) -> str:
    if recorded is None:
        return "not recorded"
    return f"matches entry {seq}" if recorded == digest else f"DIFFERS from entry {seq}"


def _record_target(run: RunView) -> str:
    if run.request is None:
        return "-"
    record = run.request.config.plan.privacy.record
    if not record.enabled:
        return "record-level DP off"
    return f"epsilon {record.epsilon:g} at delta {record.delta:g}"  # the plan's target, as set


def _reasons(problems: list[tuple[str, NodeNote]]) -> str:
    """Each (stage, node note) as "stage: node: reason"."""
    return "; ".join(f"{task}: {p.node}: {p.reason}" for task, p in problems) or "-"


def _scalar_rows(mapping: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """Key and value of each scalar item (nested state such as accountants is left out)."""
    return tuple(
        (str(key), _num(value) if isinstance(value, float) else str(value))
        for key, value in sorted(mapping.items())
        if isinstance(value, str | int | float | bool) and value != ""
    )


def _plain(value: str) -> str:
    """A figure as a reader wants it: yes/no for flags."""
    return {"True": "yes", "False": "no"}.get(value, value)


def _eps(value: Any) -> str:
    return "-" if value is None else epsilon_number(float(value))


def _at_delta(epsilon: float, delta: float) -> str:
    """A node's lifetime figure with the delta it is at (its cap's)."""
    return epsilon_at(epsilon, delta)


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4g}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
