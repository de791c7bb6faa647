"""A node's calibrated noise plans, kept so that a task does not calibrate again.

Calibrating DP-SGD's noise multiplier is a bisection over Opacus's RDP analysis, whose
fractional orders cost up to 0.15 s an evaluation at larger sample rates: about 2 s per
task, ten times the DP-SGD training itself, for a figure that depends only on the plan
and the node's unit count. So each calibration is kept in memory and in the node's state
directory (``noise-plans/``: a Flower simulation worker serves nodes in turn, and a
deployed node starts a fresh task process per message). A kept plan is used only after
checking that it still meets the plan's targets (one RDP evaluation): a damaged or
edited file can never lower the noise; it is calibrated again and rewritten.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

from common.atomic import atomic_write_json
from enterprise_node.noise_plan import NoisePlan, meets_targets, noise_plan_with, plan_noise
from protocols.plan import TrainingPlan

__all__ = ["CACHE_DIR", "calibrated_noise"]

#: The state directory's folder of kept noise plans, one JSON file per (plan, unit count).
CACHE_DIR = "noise-plans"

_MEMO: OrderedDict[tuple[str, str, int], NoisePlan] = OrderedDict()
_MEMO_SIZE = 256


def calibrated_noise(state_dir: Path, plan: TrainingPlan, n_units: int) -> NoisePlan:
    """:func:`enterprise_node.noise_plan.plan_noise` for ``plan`` and ``n_units``, from
    memory or ``state_dir`` when kept there and still meeting the plan's targets."""
    key = (str(state_dir), plan.digest, n_units)
    if key in _MEMO:
        _MEMO.move_to_end(key)
        return _MEMO[key]
    path = state_dir / CACHE_DIR / f"{plan.digest}-{n_units}.json"
    noise = _kept(path, plan, n_units)
    if noise is None:
        noise = plan_noise(plan, n_units)
        atomic_write_json(
            path,
            {
                "model_noise_multiplier": noise.model_noise_multiplier,
                "curve_noise_multiplier": noise.curve_noise_multiplier,
            },
        )
    _MEMO[key] = noise
    while len(_MEMO) > _MEMO_SIZE:
        _MEMO.popitem(last=False)
    return noise


def _kept(path: Path, plan: TrainingPlan, n_units: int) -> NoisePlan | None:
    """The noise plan kept at ``path`` if it is readable and meets the plan's targets."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        model = float(data["model_noise_multiplier"])
        curve = data["curve_noise_multiplier"]
        noise = noise_plan_with(plan, n_units, model, None if curve is None else float(curve))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return noise if meets_targets(noise, plan) else None
