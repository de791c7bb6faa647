"""The site's own history against the model and the curve: actual versus expected.

Over every unit of the covered segments, from its entry age (0 without one) to its exit
(failure or censoring), the curve and the global model each expect H = log S(entry) -
log S(exit) failures (:func:`models.term_failure.exposure_hazard`). Beside the failures
the site observed, this says whether the model's level agrees with the site's own
experience (observed / model-expected near 1) before the site reads a relative-risk
factor that rests on it. Shown on the node only; never shared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.curves import RiskCurve
from models.term_failure import exposure_hazard

__all__ = ["LEVEL_TOLERANCE", "FleetHistory", "fleet_history"]

#: Observed over model-expected failures outside [1 / this, this] is worth a warning.
LEVEL_TOLERANCE = 1.5
#: ... when at least this many failures were observed (fewer say little).
_MIN_FAILURES = 20


@dataclass(frozen=True)
class FleetHistory:
    """The site's ``units`` in the covered segments, the failures it ``observed`` and the
    failures the global model and the curves expected over the same exposure."""

    units: int
    observed: int
    expected_model: float
    expected_base: float

    @property
    def model_level_off(self) -> bool:
        """Whether the model's expectation is off the site's own experience by more than
        ``LEVEL_TOLERANCE`` times, on enough failures to tell."""
        if self.observed < _MIN_FAILURES or self.expected_model <= 0:
            return False
        ratio = self.observed / self.expected_model
        return not 1 / LEVEL_TOLERANCE <= ratio <= LEVEL_TOLERANCE


def fleet_history(
    units: pd.DataFrame,
    model_survival: np.ndarray,
    model_edges: np.ndarray,
    curves: Mapping[str, RiskCurve],
) -> FleetHistory:
    """The :class:`FleetHistory` of ``units`` (a canonical unit table, every row in a
    segment of ``curves``), whose rows of S on ``model_edges`` are ``model_survival``."""
    entry = np.nan_to_num(units["entry_age"].to_numpy(dtype=float), nan=0.0)
    exit_ = units["duration"].to_numpy(dtype=float)
    by_model = exposure_hazard(np.asarray(model_edges, float), model_survival, entry, exit_)
    by_curve = np.empty(len(units))
    segments = units["segment"].to_numpy(dtype=str)
    for segment in np.unique(segments):
        mine = segments == segment
        curve = curves[segment]
        rows = np.broadcast_to(
            np.asarray(curve.survival, float), (int(mine.sum()), len(curve.edges))
        )
        by_curve[mine] = exposure_hazard(curve.edges, rows, entry[mine], exit_[mine])
    return FleetHistory(
        units=len(units),
        observed=int(units["failed"].astype(int).sum()),
        expected_model=float(by_model.sum()),
        expected_base=float(by_curve.sum()),
    )
