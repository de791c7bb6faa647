"""One charged release at a node: budget check, compute, charge, receipt, in that order.

Every noised result a node hands back goes through :func:`charged_release`, so the order
is enforced in one place: the planned spend is checked against the lifetime cap BEFORE
anything is computed (a refusal costs nothing), and charged durably AFTER the noised
result exists but BEFORE it leaves (a crash in between leaves a charge with nothing
released, never a release without a charge). The receipt it returns is what the reply
carries and what the node's ledger records as the PrivacySpent when the reply leaves
(:meth:`enterprise_node.node_ledger.NodeLedger.record_reply`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from enterprise_node.runtime import NodeRuntime
from privacy.accounting import Spend, rdp_epsilon
from protocols.messages import PrivacyReceipt

__all__ = ["ReceiptTerms", "charged_release"]

T = TypeVar("T")


@dataclass(frozen=True)
class ReceiptTerms:
    """What a receipt states beyond the spend: the L2 ``sensitivity``, the ``clip`` norm
    (0 for counts), whether the noise came from a ``secure_rng``, and for distributed
    noise the ``noise_shares`` summed and one share's std ``share_std``; for Skellam shares
    the ``l1_sensitivity`` and the ``integer_scale`` of the noised integers (an auditor
    recomputes the release from these)."""

    sensitivity: float
    clip: float
    secure_rng: bool
    noise_shares: int = 1
    share_std: float = 0.0
    l1_sensitivity: float = 0.0
    integer_scale: int = 1


def charged_release(
    runtime: NodeRuntime,
    spend: Spend,
    terms: ReceiptTerms,
    compute: Callable[[], T],
    *,
    plan_delta: float,
) -> tuple[T, PrivacyReceipt]:
    """``compute()`` (which adds the noise ``spend`` describes) under the node's budget:
    BudgetExceededError before computing if ``spend`` would pass the cap; charged before
    the result is returned; with the receipt of the release, which also states what the
    run has cost this node so far at the plan's delta ``plan_delta``."""
    runtime.guard.check([spend])
    result = compute()
    total = runtime.guard.charge([spend])
    this_run = [s for s in runtime.guard.spends() if s.run_id == spend.run_id]
    run = (rdp_epsilon(this_run, plan_delta), plan_delta)
    return result, _receipt(runtime, spend, terms, total=total, run=run)


def _receipt(
    runtime: NodeRuntime,
    spend: Spend,
    terms: ReceiptTerms,
    *,
    total: float,
    run: tuple[float, float],
) -> PrivacyReceipt:
    """The record-level receipt of ``spend``, the node's lifetime epsilon now ``total``
    and (epsilon, delta) of the run so far ``run``."""
    guard = runtime.guard
    return PrivacyReceipt(
        unit="record",
        mechanism=spend.mechanism,
        noise_multiplier=spend.noise_multiplier,
        sample_rate=spend.sample_rate,
        steps=spend.steps,
        max_grad_norm=terms.clip,
        sensitivity=terms.sensitivity,
        epsilon_task=rdp_epsilon([spend], guard.delta),
        epsilon_total=total,
        epsilon_cap=guard.epsilon_cap,
        delta=guard.delta,
        accountant="rdp",
        secure_rng=terms.secure_rng,
        noise_shares=terms.noise_shares,
        share_std=terms.share_std,
        l1_sensitivity=terms.l1_sensitivity,
        integer_scale=terms.integer_scale,
        epsilon_run=run[0],
        delta_run=run[1],
    )
