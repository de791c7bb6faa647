"""`fedrisk-audit canary`: a one-run privacy audit of a test federation, in two steps.

1. ``plant``: the auditor draws m canaries for the federation's plan (coins from the OS's
   entropy) and hands the broker the audit's model spec and the canary enterprises' data
   (only the canaries that were flipped in, plus censored filler units that make every
   canary enterprise a contributor to every canary segment). The coins stay in
   ``private/plant.json`` (0600).
2. ``score``: after the broker ran the federation on that spec with the canary
   enterprises, the auditor scores every canary from the run's released outputs alone
   (``curves.json``, ``global_model.npz``), bounds epsilon for the curves and the model
   (:mod:`auditor.canary_bound`) and sets the bounds beside what the run's receipts claim
   (``summary.json``: each release's noise, RDP-composed at the plan's delta). A bound
   above its claim breaks the claim (exit 51). The result goes into a report (Markdown,
   HTML, JSON, score histograms) and into the auditor's own signed ledger.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from auditor.canaries import (
    CANARY_FEATURE,
    CANARY_SEGMENT_PREFIX,
    NO_CANARY,
    CanaryPlant,
    canary_units,
    load_plant,
    plant_canaries,
    save_plant,
)
from auditor.canary_bound import AuditBound, one_run_bound
from auditor.canary_scores import curve_scores, model_scores
from common.atomic import atomic_write_json, atomic_write_text
from common.errors import ConfigError, StateError
from coordinator.outputs import load_global_model
from coordinator.report_document import Document, Section, Table, render_html, render_markdown
from coordinator.run_summary import SUMMARY_FILE, RunSummary, require_summary
from ledger.records import CanaryAudited
from ledger.signing import generate_key_pair, key_id, load_private_key, public_key_path
from ledger.writer import Ledger
from models.spec import ModelSpec
from privacy.accounting import Spend, rdp_epsilon

__all__ = [
    "CANARY_SITES",
    "FILLERS",
    "PLANT_FILE",
    "CanaryAuditResult",
    "plant_audit",
    "canary_sites",
    "claimed_epsilons",
    "score_run",
    "write_canary_report",
    "record_in_ledger",
    "load_audit_plant",
]

#: Canary enterprises: every canary segment then has the contributors curves need.
CANARY_SITES = 3
#: Censored filler units per canary segment at each canary enterprise.
FILLERS = 40
#: Where ``plant`` keeps the coins, under its output folder.
PLANT_FILE = Path("private") / "plant.json"


@dataclass(frozen=True)
class CanaryAuditResult:
    """The audit of run ``run_id``: bounds and claims for the curves and the model, the
    scores behind them (canary order) and the coins."""

    run_id: str
    model_spec_digest: str
    curve: AuditBound
    model: AuditBound
    curve_claimed: float | None
    model_claimed: float | None
    curve_scores: tuple[float, ...]
    model_scores: tuple[float, ...]
    included: tuple[bool, ...]

    @property
    def broken(self) -> list[str]:
        """The parts whose bound exceeds what the run claims for them."""
        parts = (
            ("curves", self.curve, self.curve_claimed),
            ("model", self.model, self.model_claimed),
        )
        return [name for name, bound, claim in parts if claim is not None and bound.epsilon > claim]

    @property
    def verdict(self) -> str:
        return "claims broken" if self.broken else "claims hold"

    def to_dict(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "model_spec_digest": self.model_spec_digest,
            "verdict": self.verdict,
            "broken": self.broken,
            "curve": {"bound": asdict(self.curve), "claimed": self.curve_claimed},
            "model": {"bound": asdict(self.model), "claimed": self.model_claimed},
            "scores": {
                "curve": [None if not np.isfinite(x) else x for x in self.curve_scores],
                "model": list(self.model_scores),
                "included": list(self.included),
            },
        }


# -- plant ---------------------------------------------------------------------------------


def plant_audit(spec: ModelSpec, m: int, out_dir: Path, *, seed: int | None = None) -> CanaryPlant:
    """Draw the canaries and write what the broker gets (``model_spec.json``,
    ``canary-sites/``) and what the auditor keeps (``private/plant.json``)."""
    out_dir = Path(out_dir)
    if (out_dir / PLANT_FILE).exists():
        raise ConfigError(f"{out_dir / PLANT_FILE} exists: one plant per audit, never redrawn")
    plant = plant_canaries(spec, m, seed=seed)
    save_plant(plant, out_dir / PLANT_FILE)
    atomic_write_json(out_dir / "model_spec.json", plant.spec.model_dump(mode="json"))
    for k, units in enumerate(canary_sites(plant), start=1):
        _write_site(out_dir / "canary-sites" / f"canary-{k:02d}", units, plant)
    return plant


def canary_sites(plant: CanaryPlant) -> list[pd.DataFrame]:
    """The included canaries dealt round-robin to :data:`CANARY_SITES` enterprises, each
    with :data:`FILLERS` filler units per canary segment, censored past the horizon (they
    fill no canary's exit cell)."""
    canaries = canary_units(plant)
    template = canary_units(plant, only_included=False).iloc[:1]
    segments = [s for s in plant.spec.segments if s.startswith(CANARY_SEGMENT_PREFIX)]
    sites = []
    for k in range(CANARY_SITES):
        fillers = pd.concat([template] * (FILLERS * len(segments)), ignore_index=True)
        fillers["unit_id"] = [f"filler-{k}-{i:05d}" for i in range(len(fillers))]
        fillers["segment"] = np.repeat(segments, FILLERS)
        fillers["duration"] = plant.spec.time_grid.horizon * 2.0
        fillers["failed"] = 0
        fillers[CANARY_FEATURE] = NO_CANARY
        sites.append(pd.concat([canaries.iloc[k::CANARY_SITES], fillers], ignore_index=True))
    return sites


def _write_site(folder: Path, units: pd.DataFrame, plant: CanaryPlant) -> None:
    """units.csv and a node.yaml that declares every canary segment."""
    spec = plant.spec
    columns = ["unit_id", "segment", "equipment_class", "duration", "failed"]
    atomic_write_text(
        folder / "units.csv", units[[*columns, *spec.feature_names]].to_csv(index=False)
    )
    segments = [s for s in spec.segments if s.startswith(CANARY_SEGMENT_PREFIX)]
    document = {
        "node": {"name": folder.name, "segments": segments},
        "data": {
            "path": "units.csv",
            "columns": {
                **{c: c for c in columns},
                "covariates": {f: f for f in spec.feature_names},
            },
            "max_bad_fraction": 0.0,
        },
        "privacy": {"epsilon": 100.0, "delta": 1e-5},
    }
    header = "# canary enterprise of a fedrisk privacy audit (fedrisk-audit canary plant)\n"
    atomic_write_text(folder / "node.yaml", header + yaml.safe_dump(document, sort_keys=False))


# -- score ---------------------------------------------------------------------------------


def claimed_epsilons(summary: RunSummary) -> tuple[float | None, float | None, float]:
    """(curve, model) epsilon the run's receipts claim, each alone, the largest over nodes
    (RDP composition of each node's releases at the plan's delta), and that delta; the
    claims are None when record-level DP was off."""
    nodes = list(summary.privacy.nodes.values())
    if summary.record_dp is False or not nodes:
        return None, None, 1e-6 if not nodes else nodes[0].delta_run
    delta = nodes[0].delta_run
    curve, model = 0.0, 0.0
    for node in nodes:
        spends: dict[str, list[Spend]] = {"curve": [], "model": []}
        for r in node.releases:
            part = "curve" if r.task == "curve" else "model"
            spends[part].append(Spend(r.noise_multiplier, r.sample_rate, r.steps, r.mechanism))
        curve = max(curve, rdp_epsilon(spends["curve"], delta))
        model = max(model, rdp_epsilon(spends["model"], delta))
    return curve, model, delta


def score_run(run_dir: Path, plant: CanaryPlant) -> CanaryAuditResult:
    """Score the canaries from ``run_dir``'s released outputs and bound epsilon; StateError
    when the run is not one over the plant's spec."""
    run_dir = Path(run_dir)
    summary = require_summary(run_dir / SUMMARY_FILE)
    if summary.status != "completed":
        raise StateError(f"{run_dir}: the run {summary.status}; only a completed run is audited")
    if summary.model_spec_digest != plant.spec.digest:
        raise StateError(
            f"{run_dir}: the run's model spec ({summary.model_spec_digest}) is not the "
            f"audit's ({plant.spec.digest}): run the federation on the plant's model_spec.json"
        )
    curve_claimed, model_claimed, delta = claimed_epsilons(summary)
    curve = _read(run_dir / "curves.json", lambda path: curve_scores(path, plant))
    model = _read(
        run_dir / "global_model.npz", lambda path: model_scores(load_global_model(run_dir), plant)
    )
    inside = plant.included
    return CanaryAuditResult(
        run_id=summary.run_id,
        model_spec_digest=plant.spec.digest,
        curve=one_run_bound(curve[inside], curve[~inside], delta=delta),
        model=one_run_bound(model[inside], model[~inside], delta=delta),
        curve_claimed=curve_claimed,
        model_claimed=model_claimed,
        curve_scores=tuple(float(x) for x in curve),
        model_scores=tuple(float(x) for x in model),
        included=tuple(bool(x) for x in inside),
    )


# -- report and ledger -----------------------------------------------------------------------


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
    "canaries an honest mechanism is rarely bounded above 1 even when it claims 4). At 95 % "
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
            plant_sha256=_sha256(plant_path),
            delta=result.curve.delta,
            confidence=result.curve.confidence,
            curve_bound=result.curve.epsilon,
            curve_claimed=result.curve_claimed,
            model_bound=result.model.epsilon,
            model_claimed=result.model_claimed,
            verdict=result.verdict,
            report_sha256=_sha256(report_json),
        )
    )
    return key_id(key.public_key())


def load_audit_plant(path: Path) -> CanaryPlant:
    """The plant at ``path`` (a plant file or the folder ``plant`` wrote)."""
    path = Path(path)
    return load_plant(path / PLANT_FILE if path.is_dir() else path)


def _read(path: Path, score: Callable[[Path], np.ndarray]) -> np.ndarray:
    """``score(path)``; StateError naming the file when it is missing or not what a run
    writes (a hostile or damaged output must not end in a traceback)."""
    try:
        return score(path)
    except FileNotFoundError:
        raise StateError(f"{path}: not found; was the run completed with this release?") from None
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
        raise StateError(f"{path}: cannot be read as the run's output: {err}") from None


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


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
