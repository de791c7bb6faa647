"""The site's fleet against its segments' baseline, on the node, with the global model.

For every unit still in service (not failed) in the covered segments, at its current age
a (its observed duration), the segment's published curve gives q_base, the industry's
failure probability over the term given survival to a, and the global model gives
q_model, the same for this unit's covariates (both by :mod:`models.term_failure`). Its
**relative risk** is r = q_model / q_base.

The fleet's expected failures over the term are sum(q_model) = sum(q_base x r) by the
model and sum(q_base) by the baseline. Its **relative-risk factor** is their ratio with
each r clipped at ``RELATIVE_RISK_CLIP``, so that the factor has a bounded sensitivity
when the site chooses to share it (:mod:`enterprise_node.risk_share`). Its 95 % interval
is the ratio estimator's (linearised) sampling interval over the fleet's units: how sure
the fleet's own composition makes the factor, not how sure the model is.

The factor's **level** is as good as the global model's calibration against the curves:
a model whose baseline hazard is below the curve's (DP noise, few Newton steps) reads
every fleet low. An earlier design compared each unit with a reference unit at the
middle of the published covariate bounds, so that the model's baseline cancelled; on
real data that reference is nobody's average (for flchain a 77-year-old with abnormal
blood values) and its factors were further from the enterprises' held-out failures than
these (``bench/fleet_risk.py``; README, "Enterprise: what sharing is worth"). So the site
also sees its own history, actual against expected by the model and by the curve
(:mod:`enterprise_node.fleet_history`), to judge the model's level before the factor.

Nothing here leaves the node: the fleet's arrays stay in memory.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.errors import ConfigError, StateError
from enterprise_node.check import load_model_spec
from enterprise_node.config import NodeConfig
from enterprise_node.fleet_history import FleetHistory, fleet_history
from enterprise_node.ingest import ingest
from models.curves import RiskCurve, curves_from_json
from models.features import encode_units
from models.hazard import HazardNet, arrays_to_state, survival_curves
from models.model_file import MODEL_FILE, arrays_from_npz
from models.spec import ModelSpec
from models.term_failure import unit_term_failure

__all__ = [
    "RELATIVE_RISK_CLIP",
    "RunOutputs",
    "FleetRisk",
    "load_run_outputs",
    "fleet_risk",
    "clipped_risk",
    "reference_failure",
]

#: A unit's relative risk counts at most this many times its segment's baseline.
RELATIVE_RISK_CLIP = 4.0
_Z95 = 1.959963984540054


@dataclass(frozen=True, eq=False)
class RunOutputs:
    """What a run published that the node reads: the model spec, the global model's
    parameters and the industry curves by segment, and the run id."""

    run_id: str
    spec: ModelSpec
    arrays: tuple[np.ndarray, ...]
    curves: dict[str, RiskCurve]


@dataclass(frozen=True, eq=False)
class FleetRisk:
    """The fleet in the covered ``segments`` over ``term``: per unit (in memory only) its
    segment, age, q_base and relative risk; the expected failures by the model and by the
    baseline, the clipped factor with its 95 % interval, the site's data-quality grade
    (what its sharing discount depends on) and its own history in these segments, actual
    against expected (:mod:`enterprise_node.fleet_history`)."""

    segments: tuple[str, ...]
    term: float
    unit_segments: np.ndarray
    ages: np.ndarray
    q_base: np.ndarray
    relative: np.ndarray
    expected_model: float
    expected_base: float
    factor: float
    factor_low: float
    factor_high: float
    quality_grade: str
    history: FleetHistory

    @property
    def units(self) -> int:
        return int(len(self.ages))


def clipped_risk(relative: np.ndarray) -> np.ndarray:
    """Each unit's relative risk, at most ``RELATIVE_RISK_CLIP``."""
    return np.minimum(relative, RELATIVE_RISK_CLIP)


def load_run_outputs(run_dir: Path) -> RunOutputs:
    """model_spec.json, global_model.npz, curves.json and summary.json of a run;
    StateError naming the file that is missing or unreadable."""
    run_dir = Path(run_dir)
    spec = load_model_spec(_needed(run_dir / "model_spec.json"))
    model_path = _needed(run_dir / MODEL_FILE)
    try:
        arrays = tuple(arrays_from_npz(model_path.read_bytes()))
    except (OSError, ValueError) as err:
        raise StateError(f"{model_path}: cannot be read as the global model: {err}") from None
    curves_path = _needed(run_dir / "curves.json")
    try:
        curves = {c.segment: c for c in curves_from_json(curves_path.read_bytes())}
        run_id = str(json.loads((run_dir / "summary.json").read_text("utf-8"))["run_id"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise StateError(f"{run_dir}: cannot read the run's curves and summary: {err}") from None
    return RunOutputs(run_id, spec, arrays, curves)


def _needed(path: Path) -> Path:
    if not path.exists():
        raise StateError(
            f"{path}: not found",
            advice="Point --run-outputs at the directory of a completed run the broker "
            "published (model_spec.json, global_model.npz, curves.json, summary.json).",
        )
    return path


def reference_failure(curves: Sequence[RiskCurve], term: float) -> float:
    """The largest baseline q over any age of the ``curves``: public (a function of the
    published curves only), it scales each unit's weight into [0, 1]."""
    best = 0.0
    for curve in curves:
        edges = np.asarray(curve.edges, float)
        ages = np.unique(np.clip(np.concatenate([edges, edges - term]), 0.0, None))
        survival = np.broadcast_to(np.asarray(curve.survival, float), (len(ages), len(edges)))
        best = max(best, float(np.max(unit_term_failure(edges, survival, ages, term))))
    return best


def fleet_risk(
    config: NodeConfig, outputs: RunOutputs, segments: Sequence[str], term: float
) -> FleetRisk:
    """The site's :class:`FleetRisk` in ``segments`` over ``term`` (the curves' time
    unit); ConfigError when a segment has no published curve or the site has no unit
    in service there."""
    missing = [s for s in segments if s not in outputs.curves or not outputs.curves[s].published]
    if missing:
        raise ConfigError(f"the run published no curve for segment(s) {', '.join(missing)}")
    result = ingest(config, outputs.spec)
    covered = result.frame[result.frame["segment"].isin(list(segments))]
    in_service = (covered["failed"].astype(int) == 0).to_numpy()
    if not in_service.any():
        raise ConfigError(
            f"no unit in service in segment(s) {', '.join(segments)} in {result.source}"
        )
    edges = np.asarray(outputs.spec.time_grid.edges, float)
    survival = _model_survival(outputs, covered)
    history = fleet_history(covered, survival, edges, outputs.curves)
    fleet = covered[in_service]
    ages = fleet["duration"].to_numpy(dtype=float)
    unit_segments = fleet["segment"].to_numpy(dtype=str)
    q_model = unit_term_failure(edges, survival[in_service], ages, term)
    q_base = np.empty(len(ages))
    for segment in segments:
        mine = unit_segments == segment
        curve = outputs.curves[segment]
        rows = np.broadcast_to(
            np.asarray(curve.survival, float), (int(mine.sum()), len(curve.edges))
        )
        q_base[mine] = unit_term_failure(curve.edges, rows, ages[mine], term)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(q_base > 0, q_model / q_base, 1.0)
    factor, low, high = _ratio_interval(q_base * clipped_risk(relative), q_base)
    return FleetRisk(
        segments=tuple(segments), term=term, unit_segments=unit_segments, ages=ages,
        q_base=q_base, relative=relative, expected_model=float(q_model.sum()),
        expected_base=float(q_base.sum()), factor=factor, factor_low=low, factor_high=high,
        quality_grade=result.quality.grade, history=history,
    )  # fmt: skip


def _model_survival(outputs: RunOutputs, units: pd.DataFrame) -> np.ndarray:
    """The global model's S on its grid for every unit of ``units`` (canonical table)."""
    model = HazardNet(outputs.spec)
    arrays_to_state(model, list(outputs.arrays))
    return survival_curves(model, encode_units(units, outputs.spec).x)


def _ratio_interval(y: np.ndarray, x: np.ndarray) -> tuple[float, float, float]:
    """sum(y) / sum(x) and its linearised 95 % interval over the units."""
    total = float(x.sum())
    if total <= 0:
        return math.nan, math.nan, math.nan
    ratio = float(y.sum()) / total
    n = len(x)
    residual = y - ratio * x
    sd = math.sqrt(n / max(n - 1, 1) * float(np.sum(residual**2))) / total
    return ratio, max(0.0, ratio - _Z95 * sd), ratio + _Z95 * sd
