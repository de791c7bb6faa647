"""Writing a completed run's outputs: global model, industry curves, run summary."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord

from common.atomic import atomic_write_bytes, atomic_write_text
from coordinator.curve_plot import plot_curves
from coordinator.publication import withheld_summary
from coordinator.round_summary import RoundSummary
from coordinator.run_request import RunRequest
from coordinator.run_store import RunStore
from coordinator.run_summary import RunPrivacy, RunSummary, write_summary
from models.curves import RiskCurve, curves_csv, curves_to_json
from models.hazard import model_digest
from models.model_file import MODEL_FILE, arrays_from_npz, arrays_to_npz

__all__ = [
    "MODEL_FILE",
    "WITHHELD_CURVES_FILE",
    "curves_caption",
    "write_outputs",
    "load_global_model",
]

#: Curves of segments withheld by the publication rules, kept for the broker's own review.
WITHHELD_CURVES_FILE = "curves_withheld.json"


def curves_caption(request: RunRequest, rounds: Sequence[RoundSummary]) -> str:
    """What curves.png shows, in one line: the run, how many enterprises the curves come
    from, and the curve release's record-level epsilon (with its delta)."""
    record = request.config.plan.privacy.record
    curve_rounds = [r for r in rounds if r.task == "curve"]
    enterprises = len(curve_rounds[-1].ok) if curve_rounds else 0
    privacy = (
        f"record-level DP: curve release epsilon {record.curve_epsilon:g} per enterprise "
        f"(delta {record.delta:g})"
        if record.enabled
        else "no differential privacy"
    )
    return (
        f"fedrisk run {request.run_id}: industry risk curves from {enterprises} enterprises; "
        f"{privacy}; bands: 95 %, sampling and DP noise"
    )


def write_outputs(
    store: RunStore,
    request: RunRequest,
    *,
    arrays: ArrayRecord,
    curves: list[RiskCurve],
    rounds: Sequence[RoundSummary],
    privacy: RunPrivacy,
    seconds: float,
) -> None:
    """Model (npz), published curves (JSON, CSV, PNG), withheld curves (JSON, for the
    broker only) and summary.json, each written atomically; ``rounds`` are every
    exchange of the run (a resumed run's earlier ones too)."""
    plan = request.config.plan
    params = [arrays[name].numpy() for name in sorted(arrays)]
    atomic_write_bytes(store.dir / MODEL_FILE, arrays_to_npz(params))
    store.write_json("model_spec.json", json.loads(plan.model_spec.model_dump_json()))
    outputs = [MODEL_FILE, "model_spec.json"]
    published = [c for c in curves if c.published]
    if published:
        store.write_json("curves.json", curves_to_json(published))
        atomic_write_text(store.dir / "curves.csv", curves_csv(published))
        plot_curves(store.dir / "curves.png", published, caption=curves_caption(request, rounds))
        outputs += ["curves.json", "curves.csv", "curves.png"]
    withheld = [c for c in curves if not c.published]
    if withheld:  # for the broker only (`curves --include-withheld`); never in outputs
        store.write_json(WITHHELD_CURVES_FILE, curves_to_json(withheld))
    summary = RunSummary(
        run_id=request.run_id,
        status="completed",
        plan_digest=plan.digest,
        record_dp=plan.privacy.record.enabled,
        model_spec_digest=plan.model_spec.digest,
        model_digest=model_digest(params),
        nodes=tuple(sorted({name for r in rounds for name in r.ok})),
        rounds=tuple(rounds),
        refusals=sum(len(r.refused) for r in rounds),
        failures=sum(len(r.failed) for r in rounds),
        privacy=privacy,
        published_segments=tuple(c.segment for c in published),
        withheld_segments=withheld_summary(curves),
        outputs=tuple(outputs),
        seconds=round(seconds, 3),
    )
    write_summary(store.summary_path, summary)


def load_global_model(run_dir) -> list[np.ndarray]:
    """The parameters saved by :func:`write_outputs`, in order (no pickle)."""
    return arrays_from_npz(Path(run_dir, MODEL_FILE).read_bytes())
