"""How a DP figure is reported: a distribution over runs, never one run.

Mean, min and max of a figure over the runs of one setting (fresh noise each), rounded
for the JSON records; figures that are not finite numbers (no factor, no correlation) are
left out, and a setting with none gives None throughout.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

__all__ = ["spread"]


def spread(values: Sequence[float]) -> dict[str, float | None]:
    """{"mean", "min", "max"} of the finite ``values``, to 4 decimals."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return {"mean": None, "min": None, "max": None}
    return {
        "mean": round(statistics.fmean(finite), 4),
        "min": round(min(finite), 4),
        "max": round(max(finite), 4),
    }
