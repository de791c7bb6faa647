"""Enterprise-level DP-FedAvg accountant at the coordinator, with a budget stop.

Each round every taking-part enterprise clips its model update to L2 norm C and the secure
sum carries Gaussian noise of total std z * C; enterprises take part with Poisson
probability q (q = 1 when all do). One enterprise's whole update is the protected unit, so
each round is one step of the subsampled Gaussian mechanism with noise multiplier z
(McMahan et al. 2018, "Learning Differentially Private Recurrent Language Models").
Rounds compose under Opacus's RDP (:func:`privacy.accounting.rdp_epsilon`);
:func:`cross_check` recomputes the same history with Google's ``dp_accounting`` (RDP
and PLD) and Opacus's PRV accountant, independently.

Compatibility rule for :meth:`EnterpriseAccountant.state_dict`: keys are never removed
and their meanings never change, so an auditor can replay an old run's state.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import dp_accounting
import numpy as np
from opacus.accountants import PRVAccountant

from privacy.accounting import Spend, rdp_epsilon
from privacy.mechanisms import Mechanism

__all__ = [
    "CrossCheck",
    "EnterpriseAccountant",
    "cross_check",
]

_STATE_KEYS = ("delta", "cap", "history")


@dataclass(frozen=True)
class CrossCheck:
    """Epsilon of one history at ``delta`` by four accountants: Opacus RDP (the one that
    gates rounds), dp-accounting RDP, dp-accounting PLD and Opacus PRV (the tight pair)."""

    opacus_rdp: float
    dp_accounting_rdp: float
    dp_accounting_pld: float
    opacus_prv: float


class EnterpriseAccountant:
    """Composes enterprise-level DP-FedAvg rounds and refuses a round that would pass ``cap``.

    ``delta`` is the target delta; ``cap`` the largest epsilon the run may reach.
    """

    def __init__(self, *, delta: float, cap: float) -> None:
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta must be in (0, 1), got {delta}")
        if cap <= 0.0:
            raise ValueError(f"cap must be > 0, got {cap}")
        self.delta = float(delta)
        self.cap = float(cap)
        self.history: list[Spend] = []

    def epsilon(self) -> float:
        """Epsilon spent so far at ``delta`` (Opacus RDP)."""
        return rdp_epsilon(_merged(self.history), self.delta)

    def project(self, *, noise_multiplier: float, sample_rate: float) -> float:
        """Epsilon the run would have after one more round with these settings."""
        _check_round(noise_multiplier, sample_rate)
        spend = Spend(noise_multiplier, sample_rate, 1, Mechanism.ENTERPRISE_SHARES)
        return rdp_epsilon(_merged([*self.history, spend]), self.delta)

    def can_run_round(self, *, noise_multiplier: float, sample_rate: float) -> bool:
        """The budget stop: True only if the next round keeps epsilon within ``cap``."""
        return self.project(noise_multiplier=noise_multiplier, sample_rate=sample_rate) <= self.cap

    def record(self, *, noise_multiplier: float, sample_rate: float, round_number: int) -> float:
        """Record one round that ran; returns the epsilon spent so far."""
        _check_round(noise_multiplier, sample_rate)
        self.history.append(
            Spend(noise_multiplier, sample_rate, 1, Mechanism.ENTERPRISE_SHARES, round=round_number)
        )
        return self.epsilon()

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state: delta, cap and [noise_multiplier, sample_rate, round] per round."""
        return {
            "delta": self.delta,
            "cap": self.cap,
            "history": [[s.noise_multiplier, s.sample_rate, s.round] for s in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; a missing key or another delta/cap is an error."""
        for key in _STATE_KEYS:
            if key not in state:
                raise KeyError(f"enterprise accountant state is missing key {key!r}")
        for key in ("delta", "cap"):
            if float(state[key]) != getattr(self, key):
                raise ValueError(
                    f"state {key} {state[key]} differs from this accountant's {getattr(self, key)}"
                )
        history = []
        for entry in state["history"]:
            z, q, round_number = entry
            _check_round(float(z), float(q))
            history.append(
                Spend(float(z), float(q), 1, Mechanism.ENTERPRISE_SHARES, round=int(round_number))
            )
        self.history = history


def _merged(history: list[Spend]) -> list[Spend]:
    """Rounds with equal (z, q) merged into one spend of their total steps (same RDP)."""
    steps: Counter[tuple[float, float]] = Counter()
    for spend in history:
        steps[(spend.noise_multiplier, spend.sample_rate)] += spend.steps
    return [Spend(z, q, count, Mechanism.ENTERPRISE_SHARES) for (z, q), count in steps.items()]


def _check_round(noise_multiplier: float, sample_rate: float) -> None:
    if not noise_multiplier > 0.0:
        raise ValueError(f"noise_multiplier must be > 0, got {noise_multiplier}")
    if not 0.0 < sample_rate <= 1.0:
        raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate}")


def cross_check(history: list[Spend], delta: float) -> CrossCheck:
    """Epsilon of ``history`` by Opacus RDP, dp-accounting RDP and PLD, and Opacus PRV."""
    merged = _merged(history)
    rdp = dp_accounting.rdp.RdpAccountant()
    pld = dp_accounting.pld.PLDAccountant()
    for spend in merged:
        event = _dp_event(spend.noise_multiplier, spend.sample_rate, spend.steps)
        rdp.compose(event)
        pld.compose(event)
    prv = PRVAccountant()
    prv.history = [(s.noise_multiplier, s.sample_rate, s.steps) for s in merged]
    with np.errstate(divide="ignore"):  # Opacus PRV takes log(1 - q) = log(0) at q = 1
        prv_epsilon = float(prv.get_epsilon(delta=delta))
    return CrossCheck(
        opacus_rdp=rdp_epsilon(history, delta),
        dp_accounting_rdp=float(rdp.get_epsilon(delta)),
        dp_accounting_pld=float(pld.get_epsilon(delta)),
        opacus_prv=prv_epsilon,
    )


def _dp_event(noise_multiplier: float, sample_rate: float, count: int) -> dp_accounting.DpEvent:
    """dp-accounting's event: Poisson-sampled (unless q = 1) Gaussian, composed ``count`` times."""
    event: dp_accounting.DpEvent = dp_accounting.GaussianDpEvent(noise_multiplier)
    if sample_rate < 1.0:
        event = dp_accounting.PoissonSampledDpEvent(sample_rate, event)
    return dp_accounting.SelfComposedDpEvent(event, count)
