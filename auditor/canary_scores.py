"""Scores of the canaries from a run's released outputs alone (higher: more likely in).

- Curves (``curves.json``): the released hazard of the canary's own cell (its segment,
  its interval), the only cell its failure fills; -inf when the segment was withheld.
- Model (``global_model.npz``): how far the released model's hazard log-odds of the canary,
  in the interval it failed in, are from those of the same unit with the level nobody has
  (``c_reference``): the interval's baseline drops out, what is left is what the canary's
  own coefficient learnt from it. The distance, not the signed difference: a canary that
  failed later than the model expects moves its coefficient down, an early one up.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from auditor.canaries import CANARY_FEATURE, REFERENCE_LEVEL, CanaryPlant, canary_units
from models.curves import RiskCurve

__all__ = ["curve_scores", "model_scores"]


def curve_scores(curves: Sequence[RiskCurve], plant: CanaryPlant) -> np.ndarray:
    """Each canary's released hazard in its cell, in canary order (-inf: not released, or
    undefined)."""
    hazards = {c.segment: c for c in curves if c.published}
    scores = np.full(plant.m, -np.inf)
    for canary in plant.canaries:
        curve = hazards.get(canary.segment)
        if curve is not None:
            scores[canary.index] = float(curve.hazard[canary.interval - 1])
    return np.where(np.isnan(scores), -np.inf, scores)  # an undefined hazard says nothing


def model_scores(arrays: Sequence[np.ndarray], plant: CanaryPlant) -> np.ndarray:
    """Each canary's |hazard log-odds with its own level - with ``c_reference``| in the
    interval it failed in, under the model whose parameter arrays are ``arrays`` (canary
    order)."""
    units = canary_units(plant, only_included=False)
    own = _interval_logits(arrays, units, plant)
    nobody = _interval_logits(arrays, units.assign(**{CANARY_FEATURE: REFERENCE_LEVEL}), plant)
    return np.abs(own - nobody)


def _interval_logits(
    arrays: Sequence[np.ndarray], units: pd.DataFrame, plant: CanaryPlant
) -> np.ndarray:
    """logit h_j(x) of every unit in the interval j its canary failed in."""
    # imported here: torch loads with the model, and the curve audit does not need it
    import torch

    from models.features import encode_units
    from models.hazard import HazardNet, arrays_to_state

    model = HazardNet(plant.spec)
    arrays_to_state(model, list(arrays))
    x = torch.as_tensor(encode_units(units, plant.spec).x.astype(np.float32))
    with torch.no_grad():
        logits = model(x).double().numpy()
    interval = np.array([c.interval for c in plant.canaries]) - 1
    return logits[np.arange(len(units)), interval]
