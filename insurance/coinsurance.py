"""The co-insurance split: each insurer takes its share of every loss and of the premium.

A share s of the pool's annual loss S is s S, so its expected loss is s E[S], its VaR
and TVaR are s VaR(S) and s TVaR(S) (a positive multiple keeps quantiles), and its
premium is s x the pool premium. An insurer's capacity is short when it is below its
VaR 99.5 %: the loss it would have to bear once in 200 years.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import ConfigError
from insurance.loss_distribution import LossDistribution
from insurance.pool import Coinsurance, share_problems

__all__ = ["VAR_LEVEL", "InsurerShare", "coinsurance_split"]

#: The confidence level of the capital figures (Solvency II's 1 in 200 years).
VAR_LEVEL = 0.995


@dataclass(frozen=True)
class InsurerShare:
    """One insurer's part of the pool (currency units; ``role`` lead or co-insurer);
    ``shortfall`` is max(VaR - capacity, 0), and ``capacity_short`` says it is positive."""

    name: str
    role: str
    share: float
    capacity: float
    expected_loss: float
    var_995: float
    tvar_995: float
    premium: float
    shortfall: float
    capacity_short: bool


def coinsurance_split(
    coinsurance: Coinsurance, loss: LossDistribution, premium: float
) -> tuple[InsurerShare, ...]:
    """Each insurer's share of ``loss`` and of ``premium``, the lead first; ConfigError when
    the shares break the domain's rule."""
    problems = share_problems(coinsurance.lead, list(coinsurance.coinsurers))
    if problems:
        raise ConfigError("co-insurance: " + "; ".join(problems))
    mean = loss.mean()
    var = loss.value_at_risk(VAR_LEVEL)
    tvar = loss.tail_value_at_risk(VAR_LEVEL)
    return tuple(
        InsurerShare(
            name=insurer.name,
            role="lead" if number == 0 else "co-insurer",
            share=insurer.share,
            capacity=insurer.capacity,
            expected_loss=insurer.share * mean,
            var_995=insurer.share * var,
            tvar_995=insurer.share * tvar,
            premium=insurer.share * premium,
            shortfall=max(insurer.share * var - insurer.capacity, 0.0),
            capacity_short=insurer.share * var > insurer.capacity,
        )
        for number, insurer in enumerate(coinsurance.insurers)
    )
