"""The risk compensation fund, simulated year by year over many paths.

The fund backs the pilot against the pool's bad years. Its rules (DOMAIN.md defaults,
configured in pool.yaml's ``fund``):

- it starts at the initial balance B_0, of which the government's seed is at most 30 %
  (a larger share is refused) and the insurers' capital the rest;
- each year, while it is open, the insurers pay in a levy of ``levy_rate`` (1 %) x the
  pool premium P, first;
- **what it pays:** the pool's annual loss S above ``trigger_loss_ratio`` x P, the claim
  C = max(S - trigger x P, 0), at most ``payout_cap`` (20 %) x its balance after the
  levy; what the cap leaves unpaid is not carried over;
- **used up means stop:** the fund is exhausted once its balance after a year's payout
  falls below ``exhausted_below`` x B_0 (a fund paying at most a fifth of itself a
  year never reaches 0, so "used up" is a floor). From then on it is closed: it pays
  nothing more and takes no levy; its balance stays where it was.

The pool's annual losses are independent draws from its aggregate loss distribution
(numpy Generator from the configured seed): the same seed gives the same paths. They are
gross of the excess-of-loss layer's recoveries (the joint distribution of the pool's
loss and the layer's is not computed), which errs on the fund's side. No interest is
earned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.errors import ConfigError
from insurance.loss_distribution import LossDistribution
from insurance.pool import MAX_GOVERNMENT_SEED_SHARE, Fund

__all__ = ["FundPaths", "FundFigures", "annual_losses", "simulate_fund", "fund_figures"]


@dataclass(frozen=True, eq=False)
class FundPaths:
    """Simulated paths (rows) by year (columns): ``balance`` at the start and at the end
    of each year (years + 1 columns), the ``claim`` on the fund and its ``payout`` in each
    year, and whether it is ``exhausted`` by the end of each year (currency units)."""

    balance: np.ndarray
    claim: np.ndarray
    payout: np.ndarray
    exhausted: np.ndarray


@dataclass(frozen=True)
class FundFigures:
    """The fund's rules in currency units and what the simulation gives: the probability
    it is used up within the horizon (and by each year), the probability a year's loss
    claims on it, its payouts by year (mean and quantiles p50/p90/p99) and its balance
    quantiles by year, year 0 first (the fan chart)."""

    initial_balance: float
    government_seed: float
    insurers_capital: float
    levy_per_year: float
    trigger: float
    payout_cap: float
    floor: float
    years: int
    paths: int
    seed: int
    exhaustion_probability: float
    exhausted_by_year: tuple[float, ...]
    claim_probability: float
    payout_mean: tuple[float, ...]
    payout_p50: tuple[float, ...]
    payout_p90: tuple[float, ...]
    payout_p99: tuple[float, ...]
    balance_p05: tuple[float, ...]
    balance_p25: tuple[float, ...]
    balance_p50: tuple[float, ...]
    balance_p75: tuple[float, ...]
    balance_p95: tuple[float, ...]
    mean_total_payout: float
    mean_unpaid_claims: float


def annual_losses(loss: LossDistribution, fund: Fund) -> np.ndarray:
    """The pool's annual losses, (paths, years), drawn from the fund's seed."""
    return loss.sample(np.random.default_rng(fund.seed), (fund.paths, fund.years))


def simulate_fund(fund: Fund, *, premium: float, losses: np.ndarray) -> FundPaths:
    """The fund's paths under its rules (module docstring), given the pool ``premium`` and
    its annual ``losses`` (paths, years)."""
    _check_seed_share(fund)
    paths, years = losses.shape
    floor = fund.exhausted_below * fund.initial_balance
    balance = np.empty((paths, years + 1))
    balance[:, 0] = fund.initial_balance
    claim = np.maximum(losses - fund.trigger_loss_ratio * premium, 0.0)
    payout = np.zeros((paths, years))
    exhausted = np.zeros((paths, years), dtype=bool)
    closed = np.zeros(paths, dtype=bool)
    for year in range(years):
        current = balance[:, year] + np.where(closed, 0.0, fund.levy_rate * premium)
        paid = np.where(closed, 0.0, np.minimum(claim[:, year], fund.payout_cap * current))
        balance[:, year + 1] = current - paid
        payout[:, year] = paid
        closed |= balance[:, year + 1] < floor
        exhausted[:, year] = closed
    return FundPaths(balance=balance, claim=claim, payout=payout, exhausted=exhausted)


def _check_seed_share(fund: Fund) -> None:
    if fund.government_seed_share > MAX_GOVERNMENT_SEED_SHARE + 1e-9:
        raise ConfigError(
            f"fund.government_seed_share {fund.government_seed_share:g}: the government's "
            f"seed is at most {MAX_GOVERNMENT_SEED_SHARE:.0%} of the fund"
        )


def fund_figures(fund: Fund, *, premium: float, paths: FundPaths) -> FundFigures:
    """The summary of simulated ``paths`` (see :class:`FundFigures`)."""

    def by_year(values: np.ndarray, q: float) -> tuple[float, ...]:
        return tuple(float(v) for v in np.quantile(values, q, axis=0))

    seed = fund.government_seed_share * fund.initial_balance
    return FundFigures(
        initial_balance=fund.initial_balance,
        government_seed=seed,
        insurers_capital=fund.initial_balance - seed,
        levy_per_year=fund.levy_rate * premium,
        trigger=fund.trigger_loss_ratio * premium,
        payout_cap=fund.payout_cap,
        floor=fund.exhausted_below * fund.initial_balance,
        years=fund.years,
        paths=fund.paths,
        seed=fund.seed,
        exhaustion_probability=float(paths.exhausted[:, -1].mean()),
        exhausted_by_year=tuple(float(v) for v in paths.exhausted.mean(axis=0)),
        claim_probability=float((paths.claim > 0).mean()),
        payout_mean=tuple(float(v) for v in paths.payout.mean(axis=0)),
        payout_p50=by_year(paths.payout, 0.50),
        payout_p90=by_year(paths.payout, 0.90),
        payout_p99=by_year(paths.payout, 0.99),
        balance_p05=by_year(paths.balance, 0.05),
        balance_p25=by_year(paths.balance, 0.25),
        balance_p50=by_year(paths.balance, 0.50),
        balance_p75=by_year(paths.balance, 0.75),
        balance_p95=by_year(paths.balance, 0.95),
        mean_total_payout=float(paths.payout.sum(axis=1).mean()),
        mean_unpaid_claims=float((paths.claim - paths.payout).sum(axis=1).mean()),
    )
