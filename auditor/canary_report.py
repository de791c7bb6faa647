"""The canary audit's report and its ledger entry: what ``fedrisk-audit canary score``
writes (canary_audit.json, .md, .html and the score histograms) and appends to the
auditor's own signed ledger (a ``canary_audited`` record)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from auditor.canary_audit import CanaryAuditResult
from common.atomic import atomic_write_json, atomic_write_text
from common.file_digest import file_sha256
from common.report_document import Document, Section, Table, render_html, render_markdown
from ledger.records import CanaryAudited
from ledger.signing import generate_key_pair, key_id, load_private_key, public_key_path
from ledger.writer import Ledger

__all__ = ["write_canary_report", "record_in_ledger"]

_WHAT_IT_SHOWS = (
    "Each canary was put into the federation's data, or left out, by a coin flip the "
    "federation never saw. A score from the released outputs alone (the curve's hazard in "
    "the canary's own cell; how far the model's coefficient for the canary moved) is used "
    "to guess which canaries were in; the number of right guesses turns into a lower bound "
    "on epsilon at 95 % confidence (Steinke, Nasr, Jagielski 2023, computed by "
    "jax_privacy). A bound above the run's claim means the claim is broken."
)
_WHAT_IT_CANNOT = (
    "A lower bound, not a proof: a bound below the claim shows these canaries could not "
    "catch a leak, not that there is none, and one run's bound is loose (with 300 "
    "canaries a curve release that claims 4 bounds at about 0.4). At 95 % "
    "confidence, about 1 honest run in 20 can still be bounded above its claim."
)


_BOUND_HEADERS = ("release", "empirical lower bound", "claimed epsilon", "claim holds")


def write_canary_report(result: CanaryAuditResult, out_dir: Path) -> list[Path]:
    """canary_audit.json, .md, .html and canary_scores.png in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "canary_audit.json"
    atomic_write_json(json_path, result.to_dict())
    image = out_dir / "canary_scores.png"
    _plot_scores(result, image)
    rows = []
    for name, bound, claim in (
        ("curves", result.curve, result.curve_claimed),
        ("model", result.model, result.model_claimed),
    ):
        shown = "DP off" if claim is None else f"{claim:.3f}"
        holds = "-" if claim is None else ("no" if bound.epsilon > claim else "yes")
        rows.append((name, f"{bound.epsilon:.3f}", shown, holds))
    bound = result.curve
    lead = (
        f"{result.verdict.upper()}: run {result.run_id}, {bound.m} canaries ({bound.included} "
        f"in), bounds at delta {bound.delta:g} and {bound.confidence:.0%} confidence"
    )
    document = Document(
        title=f"fedrisk canary audit: run {result.run_id}",
        lead=lead,
        sections=(
            Section(
                "Lower bounds against claims",
                (_WHAT_IT_SHOWS,),
                (
                    Table(
                        ("release", "empirical lower bound", "claimed epsilon", "claim holds"),
                        tuple(rows),
                    ),
                ),
            ),
            Section(
                "Canary scores",
                ("Scores of the canaries that were in (blue) and out (orange).",),
                image=image,
                image_alt="canary score histograms",
            ),
            Section("What this audit cannot show", (_WHAT_IT_CANNOT,)),
        ),
    )
    markdown = out_dir / "canary_audit.md"
    atomic_write_text(markdown, render_markdown(document, out_dir))
    page = out_dir / "canary_audit.html"
    atomic_write_text(page, render_html(document))
    return [json_path, markdown, page, image]


def record_in_ledger(
    result: CanaryAuditResult, plant_path: Path, report_json: Path, ledger_dir: Path, key_path: Path
) -> str:
    """Append the audit to the auditor's signed ledger (its key made at ``key_path``,
    0600, on first use); the ledger's key id."""
    key_path = Path(key_path)
    if not key_path.exists():
        generate_key_pair(key_path, public_key_path(key_path))
    key = load_private_key(key_path)
    ledger = Ledger.open(Path(ledger_dir), key, key_id(key.public_key()))
    ledger.append(
        CanaryAudited(
            run_id=result.run_id,
            model_spec_digest=result.model_spec_digest,
            m=result.curve.m,
            included=result.curve.included,
            plant_sha256=file_sha256(plant_path),
            delta=result.curve.delta,
            confidence=result.curve.confidence,
            curve_bound=result.curve.epsilon,
            curve_claimed=result.curve_claimed,
            model_bound=result.model.epsilon,
            model_claimed=result.model_claimed,
            verdict=result.verdict,
            report_sha256=file_sha256(report_json),
        )
    )
    return key_id(key.public_key())


def _plot_scores(result: CanaryAuditResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    included = np.array(result.included)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, name, scores, bound in (
        (axes[0], "curves", np.array(result.curve_scores), result.curve),
        (axes[1], "model", np.array(result.model_scores), result.model),
    ):
        finite = np.isfinite(scores)
        if finite.any():
            bins = np.histogram_bin_edges(scores[finite], bins=30)
            axis.hist(scores[finite & included], bins=bins, alpha=0.6, label="in")
            axis.hist(scores[finite & ~included], bins=bins, alpha=0.6, label="out")
        axis.set_title(f"{name}: lower bound {bound.epsilon:.2f}", fontsize=10)
        axis.set_xlabel("score from the released outputs")
        axis.legend(fontsize=8)
    figure.suptitle(f"Canary scores, run {result.run_id}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
