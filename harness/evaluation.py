"""Judging a run against what only a simulation knows: the truth and the pooled data.

Used by the demo and the benchmarks on synthetic federations. It reads every site's
data, which no real coordinator can; it is an evaluation tool, never part of a run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from enterprise_node.config import load_node_config
from enterprise_node.ingest import ingest
from models.curve_estimator import estimate_curves, sum_counts
from models.curves import RiskCurve, curves_from_json
from models.features import encode_units
from models.hazard import HazardNet, arrays_to_state, horizon_cumulative_hazard, survival_curves
from models.histogram import unit_histograms
from models.metrics import concordance_td, harrell_c, integrated_brier_score
from models.spec import ModelSpec

__all__ = [
    "CurveError",
    "ModelScore",
    "pooled_frame",
    "pooled_curves",
    "curve_errors",
    "load_curves",
    "score_model",
    "score_arrays",
]


@dataclass(frozen=True)
class CurveError:
    """Largest |F(t) difference| over the grid for one segment."""

    segment: str
    vs_truth: float
    vs_pooled: float


@dataclass(frozen=True)
class ModelScore:
    """A model judged on a holdout.

    ``harrell_c``: Harrell's C of the risk score F(t_J | x) (:func:`models.hazard.risk_score`),
    fedrisk's C-index; ``c_td``: Antolini's time-dependent C of the whole predicted curves
    (it can differ from ``harrell_c`` when curves cross); ``ibs``: integrated Brier score
    (IPCW) over the grid edges inside the holdout's follow-up. Reports name them by
    :data:`models.metrics.FIGURE_NAMES`.
    """

    harrell_c: float
    c_td: float
    ibs: float


def pooled_frame(node_configs: list[Path], spec: ModelSpec) -> pd.DataFrame:
    """All sites' validated unit tables stacked (evaluation only)."""
    frames = [ingest(load_node_config(p), spec).frame for p in node_configs]
    return pd.concat(frames, ignore_index=True)


def pooled_curves(frame: pd.DataFrame, spec: ModelSpec, *, censor_weight: float) -> list[RiskCurve]:
    """The non-private life table of the pooled data: what the federation should match."""
    counts = unit_histograms(frame, spec)
    total = sum_counts(spec, [counts])
    return estimate_curves(total, censor_weight=censor_weight)


def load_curves(path: Path) -> list[RiskCurve]:
    return curves_from_json(Path(path).read_bytes())


def curve_errors(
    curves: list[RiskCurve], pooled: list[RiskCurve], truth_path: Path
) -> list[CurveError]:
    """Per segment: max |F - F_true| (the federation's own truth) and max |F - F_pooled|."""
    truth = json.loads(Path(truth_path).read_text(encoding="utf-8"))["segments"]
    by_segment = {c.segment: c for c in pooled}
    errors = []
    for curve in curves:
        true_f = np.asarray(truth[curve.segment]["F_federation"], dtype=float)
        errors.append(
            CurveError(
                segment=curve.segment,
                vs_truth=float(np.max(np.abs(curve.failure - true_f))),
                vs_pooled=float(np.max(np.abs(curve.failure - by_segment[curve.segment].failure))),
            )
        )
    return errors


def score_model(model: HazardNet, holdout: pd.DataFrame, spec: ModelSpec) -> ModelScore:
    """Harrell's C on the risk score, Antolini's C_td and the IBS of ``model`` on ``holdout``
    (censoring weights from the holdout)."""
    units = encode_units(holdout, spec)
    surv = survival_curves(model, units.x)
    edges = np.asarray(spec.time_grid.edges, dtype=float)
    durations = holdout["duration"].to_numpy(dtype=float)
    events = holdout["failed"].to_numpy(dtype=int)
    # Ranked by H = -log S(t_J), which orders units as F(t_J) does (see risk_score).
    c_harrell = harrell_c(durations, events, horizon_cumulative_hazard(model, units.x))
    c_td = concordance_td(durations, events, surv, edges)
    lo, hi = durations.min(), durations.max()
    mask = (edges > lo) & (edges < hi)
    times = edges[mask]
    ibs = integrated_brier_score(durations, events, durations, events, surv[:, mask], times)
    return ModelScore(harrell_c=float(c_harrell), c_td=float(c_td), ibs=float(ibs))


def score_arrays(arrays: list[np.ndarray], holdout: pd.DataFrame, spec: ModelSpec) -> ModelScore:
    model = HazardNet(spec)
    arrays_to_state(model, arrays)
    return score_model(model, holdout, spec)
