"""How every screen and report states an epsilon: one wording, always with its delta.

``epsilon 1.999 at delta 1e-06``: three decimals everywhere, so one figure read on two
screens reads the same, and the delta it holds at, because a run's epsilon (at the plan's
delta) and a node's lifetime epsilon (at the node's cap delta) are different figures.
"""

from __future__ import annotations

__all__ = ["DIFFERENT_DELTAS", "epsilon_number", "epsilon_at", "lifetime_at"]

#: The one sentence that explains two epsilons at different deltas.
DIFFERENT_DELTAS = (
    "Epsilons at different deltas are not comparable: at a larger delta the same spend has "
    "a smaller epsilon."
)


def epsilon_number(epsilon: float) -> str:
    """An epsilon as every screen shows it: three decimals (``inf`` as is)."""
    return f"{epsilon:.3f}"


def epsilon_at(epsilon: float, delta: float) -> str:
    """``epsilon 1.999 at delta 1e-06``."""
    return f"epsilon {epsilon_number(epsilon)} at delta {delta:g}"


def lifetime_at(spent: float, cap: float, delta: float) -> str:
    """A node's lifetime spend against its cap: ``lifetime epsilon 1.780 of cap 5 at delta
    1e-05`` (the cap is the enterprise's own figure, shown as written)."""
    return f"lifetime epsilon {epsilon_number(spent)} of cap {cap:g} at delta {delta:g}"
