"""The pre-flight check: before a run charges anyone, can this node serve all of it?

The coordinator asks every node once, before the run's first exchange that computes
anything. The node answers with a status only (nothing about its data leaves): ok, or
refused with the reason, when it would refuse a task of the run later - the plan is not
approved (with the app it came in, in a deployment), the plan turns DP off and node.yaml
does not allow it, the data is refused by validation or has no valid unit, or the whole
run (every model round and the curve release, at this node's calibrated noise) would pass
the node's lifetime cap. A node refusing here is left out of the run, so no site is
charged for a run that could not use it; nothing is charged by the check itself.
"""

from __future__ import annotations

from flwr.app import Context, Message

from common.errors import ConfigError
from enterprise_node.runtime import NodeRuntime
from enterprise_node.tasks import TaskResult, record_dp_required
from models.features import encode_units
from privacy.accounting import Spend
from protocols.messages import TaskHeader
from protocols.plan import TrainingPlan

__all__ = ["preflight", "run_spends"]


def preflight(
    runtime: NodeRuntime,
    header: TaskHeader,
    plan: TrainingPlan,
    _message: Message,
    _context: Context,
) -> TaskResult:
    """Refuse (``task refused: ...``) now what a task of this run would refuse later; the
    plan's approval is checked before this runs (:mod:`enterprise_node.client_app`)."""
    private = record_dp_required(runtime, plan)
    spec = plan.model_spec
    n_units = len(encode_units(runtime.units(spec).frame, spec))
    if n_units == 0:
        raise ConfigError("task refused: no valid units to train on")
    if private:
        runtime.guard.check(run_spends(runtime, header, plan, n_units))
    return TaskResult()


def run_spends(
    runtime: NodeRuntime, header: TaskHeader, plan: TrainingPlan, n_units: int
) -> list[Spend]:
    """What the whole run would charge this node: every model round, then the curves."""
    noise = runtime.noise(plan, n_units)
    rounds = plan.training.rounds
    spends = [noise.model_spend(header.run_id, r) for r in range(1, rounds + 1)]
    if plan.curve_release:
        spends.append(noise.curve_spend(header.run_id, rounds + 1))
    return spends
