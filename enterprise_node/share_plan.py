"""How a node sizes its noise share for a secure round, and what it checks of the round.

The coordinator sends each round's settings (n nodes, threshold t, neighbourhood size k);
the node checks them against the plan it approved (:func:`check_graph`: with
``plan.secure_graph`` the round's k and t must be the ones its risk gives) and plans its
noise share for the fewest inputs a released sum may hold (:func:`planned_noise_shares`:
t, or max(t, ceil(f n)) with ``plan.release_fraction`` f, :mod:`protocols.secure_round`).
A re-sent contribution is reused only for a round its share was sized for
(:func:`share_basis`).
"""

from __future__ import annotations

from common.errors import ConfigError
from enterprise_node.runtime import NodeRuntime
from protocols.plan import TrainingPlan
from protocols.secure_round import SecureRoundSettings, noise_shares, plan_graph

__all__ = ["check_graph", "planned_noise_shares", "share_basis"]


def check_graph(plan: TrainingPlan, settings: SecureRoundSettings) -> None:
    """Refuse a round whose graph is not the one the plan's ``secure_graph`` gives."""
    expected = plan_graph(plan.secure_graph, settings.num_nodes)
    if expected is not None and expected != (settings.num_shares, settings.threshold):
        raise ConfigError(
            f"task refused: the round's secure-sum graph (num_shares {settings.num_shares}, "
            f"threshold {settings.threshold}) is not the plan's secure_graph for "
            f"{settings.num_nodes} nodes (num_shares {expected[0]}, threshold {expected[1]})"
        )


def planned_noise_shares(
    runtime: NodeRuntime, plan: TrainingPlan, settings: SecureRoundSettings
) -> int:
    """How many shares this node's curve or GLM noise share is planned for: the fewest a
    released sum may hold, or 1 when the node does not count on its peers' shares."""
    if not runtime.config.privacy.distributed_noise:
        return 1
    return noise_shares(plan.release_fraction, settings.num_nodes, settings.threshold)


def share_basis(plan: TrainingPlan, settings: SecureRoundSettings) -> str:
    """What a noise share was sized for, in a re-sent contribution's basis: the threshold,
    and the planned shares when the plan sets a release fraction."""
    basis = f":threshold={settings.threshold}"
    if plan.release_fraction is not None:
        shares = noise_shares(plan.release_fraction, settings.num_nodes, settings.threshold)
        basis += f":shares={shares}"
    return basis
