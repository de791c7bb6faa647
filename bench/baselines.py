"""Central, NON-private baselines of the model benchmark, and Harrell's C.

Both are fitted on a data set's pooled training split and scored on its test split:

- ``cox``: lifelines' Cox proportional-hazards model on the encoded covariates
  (:func:`models.features.encode_units`: numeric features scaled by the public bounds,
  categories one-hot with the first level as reference).
- ``glm``: the discrete-time logistic hazard GLM that the federated Newton fit estimates:
  scikit-learn's logistic regression on person-period rows (one row per unit and
  interval at risk; the outcome is 1 only in a failure's exit interval), design =
  interval one-hot + every encoded input, no intercept. Its risk score is the covariate
  part of the linear predictor: the interval terms are common to all units, so ranking by
  it equals ranking by F(t | x) at any horizon.

Harrell's C is scikit-survival's ``concordance_index_censored`` on the test units' own
``duration`` and ``failed`` (not cut at the grid's horizon).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models import metrics
from models.features import EncodedUnits, encode_units
from models.spec import CategoryFeature, ModelSpec

__all__ = [
    "CentralFit",
    "harrell_c",
    "person_period",
    "glm_linear_risk",
    "fit_cox",
    "fit_glm",
    "central_baselines",
]

#: Inverse L2 strength of the GLM fit (scikit-learn's C; the penalty is
#: ||beta||^2 / (2 C) against a summed log-likelihood): negligible next to thousands of
#: person-period rows; it only pins down the one-hot blocks that are collinear with the
#: interval terms and the coefficients of classes that never fail.
GLM_INVERSE_RIDGE = 100.0
#: lifelines' penalizer (L2 on the coefficients against the mean partial likelihood):
#: keeps classes without failures finite.
COX_PENALIZER = 1e-4
#: lifelines' Newton steps, shortened: with its default step (0.95) the hdfail fit
#: diverged (a rare drive model's coefficient ran to -15,000; test C 0.36); at 0.2 it
#: converges to the unpenalised fit's coefficients within 0.1 (test C 0.856).
_COX_FIT_OPTIONS = {"step_size": 0.2, "max_steps": 500}


@dataclass(frozen=True)
class CentralFit:
    """A central fit's Harrell C on the test split, and how long the fit took."""

    model: str
    c_index: float
    seconds: float


def harrell_c(units: pd.DataFrame, risk: np.ndarray) -> float:
    """Harrell's C of ``risk`` (higher = fails sooner) on the units' own duration and
    failed (:func:`models.metrics.harrell_c`, fedrisk's one C-index)."""
    return metrics.harrell_c(
        units["duration"].to_numpy(dtype=float),
        units["failed"].to_numpy(dtype=int),
        np.asarray(risk, dtype=float),
    )


def _covariate_blocks(spec: ModelSpec) -> list[tuple[int, int, bool]]:
    """(start, width, categorical) of each block of the encoded input after the
    segment one-hot: equipment class, then each feature."""
    blocks, start = [], len(spec.segments)
    widths = [(len(spec.equipment_classes), True)]
    widths += [(f.width, isinstance(f, CategoryFeature)) for f in spec.features]
    for width, categorical in widths:
        blocks.append((start, width, categorical))
        start += width
    return blocks


def _cox_design(encoded: EncodedUnits, spec: ModelSpec) -> np.ndarray:
    """Encoded covariates without the segment one-hot and each category's first level."""
    columns: list[int] = []
    for start, width, categorical in _covariate_blocks(spec):
        first = start + 1 if categorical else start
        columns.extend(range(first, start + width))
    return encoded.x[:, np.asarray(columns, dtype=np.int64)].astype(float)


def person_period(encoded: EncodedUnits, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """(design, outcome) of the person-period rows: interval one-hot, then the encoded
    input; one row per unit and interval from its entry interval to its exit interval."""
    n_intervals = spec.time_grid.n_intervals
    counts = encoded.interval - encoded.entry_interval + 1
    unit = np.repeat(np.arange(len(encoded)), counts)
    offset = np.arange(len(unit)) - np.repeat(np.cumsum(counts) - counts, counts)
    interval = encoded.entry_interval[unit] + offset
    design = np.zeros((len(unit), n_intervals + encoded.x.shape[1]))
    design[np.arange(len(unit)), interval] = 1.0
    design[:, n_intervals:] = encoded.x[unit]
    outcome = ((interval == encoded.interval[unit]) & (encoded.event[unit] == 1)).astype(int)
    return design, outcome


def glm_linear_risk(coefficients: np.ndarray, x: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """The covariate part of the GLM's linear predictor for encoded inputs ``x``."""
    return np.asarray(x, float) @ np.asarray(coefficients, float)[spec.time_grid.n_intervals :]


def fit_glm(train: pd.DataFrame, test: pd.DataFrame, spec: ModelSpec) -> CentralFit:
    """The pooled logistic hazard GLM on ``train``; its Harrell C on ``test``."""
    from sklearn.linear_model import LogisticRegression

    start = time.monotonic()
    design, outcome = person_period(encode_units(train, spec), spec)
    model = LogisticRegression(C=GLM_INVERSE_RIDGE, fit_intercept=False, max_iter=5000)
    model.fit(design, outcome)
    risk = glm_linear_risk(model.coef_[0], encode_units(test, spec).x, spec)
    return CentralFit("glm", harrell_c(test, risk), time.monotonic() - start)


def fit_cox(train: pd.DataFrame, test: pd.DataFrame, spec: ModelSpec) -> CentralFit:
    """lifelines' Cox model on ``train``'s encoded covariates; its Harrell C on ``test``."""
    from lifelines import CoxPHFitter

    start = time.monotonic()
    x = _cox_design(encode_units(train, spec), spec)
    names = [f"x{i}" for i in range(x.shape[1])]
    frame = pd.DataFrame(x, columns=names)
    frame["duration"] = train["duration"].to_numpy(dtype=float)
    frame["failed"] = train["failed"].to_numpy(dtype=int)
    fitter = CoxPHFitter(penalizer=COX_PENALIZER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifelines' convergence chatter on rare levels
        fitter.fit(frame, duration_col="duration", event_col="failed", fit_options=_COX_FIT_OPTIONS)
    beta = fitter.params_[names].to_numpy()
    risk = _cox_design(encode_units(test, spec), spec) @ beta
    return CentralFit("cox", harrell_c(test, risk), time.monotonic() - start)


def central_baselines(train: pd.DataFrame, test: pd.DataFrame, spec: ModelSpec) -> dict[str, float]:
    """Harrell's C of both central fits on ``test``, for a report:
    ``{"cox": c, "glm": c}`` (rounded to 4 places; :func:`fit_cox` and :func:`fit_glm`
    give the fit times too)."""
    fits = (fit_cox(train, test, spec), fit_glm(train, test, spec))
    return {fit.model: round(fit.c_index, 4) for fit in fits}
