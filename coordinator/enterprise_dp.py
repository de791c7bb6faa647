"""Enterprise-level DP around the secure model round, as Flower adds DP by wrapping a
strategy.

Each node clips its update and adds a noise share planned for the threshold t of
survivors (:func:`protocols.secure_update.enterprise_share`). Before the first round the
wrapper states the expected noise next to the clip norm; before each round it asks the
coordinator's accountant whether the round fits under ``enterprise_budget.epsilon_cap``
and stops training (keeping the last model) when it does not; after the secure sum it
charges the noise actually in it, the planned share of each survivor.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flwr.app import ArrayRecord

from common.codec import encode
from common.errors import RunFailedError, StateError
from coordinator.checkpoint import Checkpoint
from coordinator.config import CoordinatorConfig
from coordinator.model_rounds import SecureFedAvgRound, TrainedRound, dimension
from coordinator.privacy_notes import EnterpriseSpend
from coordinator.progress_events import (
    EnterpriseBudgetStop,
    EnterpriseDPStated,
    EnterpriseEpsilon,
)
from coordinator.round_context import RoundContext
from coordinator.secure_round import SecureTotal
from coordinator.secure_summary import enterprise_dp_summary
from privacy.accounting import Spend, rdp_epsilon
from privacy.enterprise_accounting import EnterpriseAccountant
from protocols.secure_update import EnterpriseShare, enterprise_share

__all__ = ["EnterpriseDP", "enterprise_accountant", "restore_accountant"]

_log = logging.getLogger("fedrisk.coordinator")


def enterprise_accountant(config: CoordinatorConfig) -> EnterpriseAccountant | None:
    """The run's enterprise accountant (None without enterprise-level DP)."""
    budget = config.enterprise_budget
    if config.plan.privacy.enterprise is None or budget is None:
        return None
    return EnterpriseAccountant(delta=budget.delta, cap=budget.epsilon_cap)


def restore_accountant(
    accountant: EnterpriseAccountant | None, checkpoint: Checkpoint, where: Path
) -> None:
    """Continue the accountant of a resumed run from its checkpoint (read from ``where``);
    StateError when the checkpoint and the configuration disagree on enterprise-level DP."""
    if (accountant is None) != (checkpoint.enterprise is None):
        raise StateError(
            f"{where}: enterprise-level DP is "
            f"{'on' if checkpoint.enterprise is not None else 'off'} in the checkpoint "
            "and not in this run's configuration"
        )
    if accountant is not None and checkpoint.enterprise is not None:
        try:
            accountant.load_state_dict(checkpoint.enterprise)
        except (KeyError, TypeError, ValueError) as err:
            raise StateError(f"{where}: enterprise accountant state: {err}") from None


class EnterpriseDP:
    """A secure model round under enterprise-level DP: announce, check the budget,
    charge; None from :meth:`train` stops training."""

    def __init__(
        self, inner: SecureFedAvgRound, context: RoundContext, accountant: EnterpriseAccountant
    ) -> None:
        self.inner, self.context, self.accountant = inner, context, accountant

    def train(self, round_number: int, arrays: ArrayRecord) -> TrainedRound | None:
        size = dimension(arrays)
        planned = self.context.sums.noise_shares(len(self.context.node_ids))
        share = enterprise_share(self.context.plan, n_shares=planned, dimension=size)
        if self.context.log.notes.enterprise is None:  # a resumed run announced it already
            self._announce(share, size)
        z = share.effective_noise_multiplier
        if not self.accountant.can_run_round(noise_multiplier=z, sample_rate=1.0):
            self._stop(round_number, self.accountant.project(noise_multiplier=z, sample_rate=1.0))
            return None
        summed = self.inner.collect(round_number, arrays)
        self._charge(round_number, summed.total, share)
        return self.inner.aggregate(round_number, arrays, summed)

    def _announce(self, share: EnterpriseShare, size: int) -> None:
        """State the expected noise next to the update norm (large with few enterprises)."""
        figures = enterprise_dp_summary(
            self.context.plan,
            share,
            n_nodes=len(self.context.node_ids),
            dimension=size,
            delta=self.accountant.delta,
        )
        self.context.log.notes.announce_enterprise(encode(figures))
        self.context.log.store.event(EnterpriseDPStated.of(figures))
        if figures.warning:
            _log.warning("%s", figures.warning)

    def _stop(self, round_number: int, projected: float) -> None:
        """Round ``round_number`` would pass the cap: record the stop (an error in round 1,
        when there is no model to keep)."""
        spent, cap = self.accountant.epsilon(), self.accountant.cap
        self.context.log.store.event(
            EnterpriseBudgetStop(round_number, spent, projected, self.accountant.delta)
        )
        self.context.log.notes.stop_enterprise(round_number)
        if round_number == 1:
            raise RunFailedError(
                f"enterprise budget: one round would spend epsilon {projected:.4g}, over the "
                f"cap {cap:g}; no model round could run"
            )
        _log.warning(
            "enterprise budget stop before round %d: epsilon %.4g, the next round would reach "
            "%.4g > cap %g; keeping the model of round %d",
            round_number,
            spent,
            projected,
            cap,
            round_number - 1,
        )

    def _charge(self, round_number: int, total: SecureTotal, share: EnterpriseShare) -> None:
        """Account the noise actually in the sum: the planned share from each survivor."""
        accountant, log = self.accountant, self.context.log
        clip_norm = share_clip_norm(self.context)
        z_actual = share.noise_multiplier_with(total.survivors)
        epsilon = accountant.record(
            noise_multiplier=z_actual, sample_rate=1.0, round_number=round_number
        )
        log.ledger.enterprise_round(
            round_number,
            share,
            noise_multiplier=z_actual,
            clip_norm=clip_norm,
            shares=total.survivors,
            epsilon_round=rdp_epsilon([Spend(z_actual, 1.0, 1, "enterprise")], accountant.delta),
            epsilon_total=epsilon,
            cap=accountant.cap,
            delta=accountant.delta,
        )
        spend = EnterpriseSpend(
            epsilon=round(epsilon, 6),
            delta=accountant.delta,
            epsilon_cap=accountant.cap,
            rounds_accounted=len(accountant.history),
            accountant=accountant.state_dict(),
        )
        log.notes.charge_enterprise(spend)
        log.store.event(EnterpriseEpsilon(round_number, epsilon, accountant.delta))


def share_clip_norm(context: RoundContext) -> float:
    """The clip norm that bounds each enterprise's update (the plan's enterprise DP)."""
    enterprise = context.plan.privacy.enterprise
    assert enterprise is not None, "enterprise-level DP without privacy.enterprise"
    return enterprise.clip_norm
