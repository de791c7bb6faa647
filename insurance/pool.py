"""pool.yaml: the co-insurance pool a broker assembles for a product.

- ``portfolio``: the enterprises' groups of units, inline (``groups``) or a broker's CSV
  (``csv``, a path relative to pool.yaml; :mod:`insurance.portfolio`);
- ``coinsurance``: the lead insurer and the co-insurers, each with its share of every
  loss and premium and its capacity (the annual loss, currency units, it can bear). The
  domain's rule (DOMAIN.md): the lead holds 30 %-50 %, the co-insurers together 50 %-70 %,
  and the shares sum to 1;
- ``layer``: the excess-of-loss reinsurance above the pool's retention (per failure;
  :mod:`insurance.xl_layer` says why), with reinstatements;
- ``fund``: the risk compensation fund (:mod:`insurance.compensation_fund`), with the
  domain's defaults: government seed at most 30 % of the fund (more is refused),
  insurers' levy 1 % of premium a year, annual payout cap 20 % of the balance.

Unknown keys are errors naming the key and the file.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from common.config_file import StrictModel, load_yaml_model
from insurance.portfolio import UnitGroup, read_portfolio_csv

__all__ = [
    "LEAD_SHARE",
    "COINSURERS_SHARE",
    "MAX_GOVERNMENT_SEED_SHARE",
    "Portfolio",
    "Insurer",
    "Coinsurance",
    "XlLayer",
    "Fund",
    "Pool",
    "PoolFile",
    "share_problems",
    "load_pool",
]

#: The lead insurer's share, and the co-insurers' together (DOMAIN.md).
LEAD_SHARE = (0.30, 0.50)
COINSURERS_SHARE = (0.50, 0.70)
#: The government's seed is at most this share of the fund (DOMAIN.md).
MAX_GOVERNMENT_SEED_SHARE = 0.30
_TOLERANCE = 1e-9


class Portfolio(StrictModel):
    """The groups inline, or ``csv``: a portfolio CSV's path relative to pool.yaml."""

    groups: list[UnitGroup] | None = None
    csv: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Portfolio:
        if (self.groups is None) == (self.csv is None):
            raise ValueError("give the groups inline (groups) or a CSV (csv): one of the two")
        if self.groups is not None and not self.groups:
            raise ValueError("groups is empty")
        return self


class Insurer(StrictModel):
    """An insurer of the pool: its ``share`` of every loss and premium, and its
    ``capacity``, the annual loss (currency units) it can bear."""

    name: str = Field(min_length=1)
    share: float = Field(gt=0, le=1)
    capacity: float = Field(gt=0)


class Coinsurance(StrictModel):
    """The lead insurer and the co-insurers (at least one)."""

    lead: Insurer
    coinsurers: list[Insurer] = Field(min_length=1)

    @model_validator(mode="after")
    def _domain_shares(self) -> Coinsurance:
        problems = share_problems(self.lead, self.coinsurers)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def insurers(self) -> tuple[Insurer, ...]:
        """The lead first, then the co-insurers."""
        return (self.lead, *self.coinsurers)


class XlLayer(StrictModel):
    """``cover`` xs ``retention`` per failure of the pool's payout (currency units), with
    ``reinstatements`` after the first use, each at ``reinstatement_premium`` (a share of
    the upfront premium, pro rata to the amount reinstated); priced at expected loss +
    ``sd_loading`` x its standard deviation."""

    retention: float = Field(gt=0)
    cover: float = Field(gt=0)
    reinstatements: int = Field(1, ge=0)
    reinstatement_premium: float = Field(1.0, ge=0, le=1)
    sd_loading: float = Field(0.3, ge=0)


class Fund(StrictModel):
    """The risk compensation fund (see :mod:`insurance.compensation_fund`): starts at
    ``initial_balance``, of which ``government_seed_share`` from the government; takes a
    levy of ``levy_rate`` x the pool premium each year; pays the pool's annual loss above
    ``trigger_loss_ratio`` x the pool premium, at most ``payout_cap`` x its balance a
    year; is used up (and stops) once its balance falls below ``exhausted_below`` x the
    initial balance. Simulated over ``years`` on ``paths`` paths from ``seed``."""

    initial_balance: float = Field(gt=0)
    government_seed_share: float = Field(MAX_GOVERNMENT_SEED_SHARE, ge=0)
    levy_rate: float = Field(0.01, ge=0, lt=1)
    payout_cap: float = Field(0.20, gt=0, le=1)
    trigger_loss_ratio: float = Field(gt=0)
    exhausted_below: float = Field(ge=0, lt=1)
    years: int = Field(10, ge=1, le=100)
    paths: int = Field(20_000, ge=100, le=1_000_000)
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _seed_share(self) -> Fund:
        if self.government_seed_share > MAX_GOVERNMENT_SEED_SHARE + _TOLERANCE:
            raise ValueError(
                f"government_seed_share {self.government_seed_share:g} is above "
                f"{MAX_GOVERNMENT_SEED_SHARE:.0%} of the fund, the most the rules allow"
            )
        return self


class Pool(StrictModel):
    """The whole pool (see the module docstring). ``severity_nodes``: points of the
    discretised loss of one failure (more is finer and slower)."""

    name: str = Field(min_length=1)
    portfolio: Portfolio
    coinsurance: Coinsurance
    layer: XlLayer
    fund: Fund
    severity_nodes: int = Field(1025, ge=65, le=16_385)

    @property
    def groups(self) -> tuple[UnitGroup, ...]:
        """The portfolio's groups (read from the CSV by :func:`load_pool`)."""
        if self.portfolio.groups is None:
            raise ValueError(f"pool {self.name!r}: the portfolio CSV was not read")
        return tuple(self.portfolio.groups)


class PoolFile(StrictModel):
    """The whole of pool.yaml."""

    pool: Pool


def share_problems(lead: Insurer, coinsurers: list[Insurer]) -> list[str]:
    """Every breach of the domain's co-insurance rule (empty: the shares are fine)."""
    problems = []
    low, high = LEAD_SHARE
    if not low - _TOLERANCE <= lead.share <= high + _TOLERANCE:
        problems.append(
            f"lead insurer {lead.name!r} holds {lead.share:.2%}, outside {low:.0%}-{high:.0%}"
        )
    together = sum(c.share for c in coinsurers)
    low, high = COINSURERS_SHARE
    if not low - _TOLERANCE <= together <= high + _TOLERANCE:
        problems.append(
            f"the co-insurers hold {together:.2%} together, outside {low:.0%}-{high:.0%}"
        )
    if abs(lead.share + together - 1.0) > _TOLERANCE:
        problems.append(f"the shares sum to {lead.share + together:.6g}, not 1")
    names = [lead.name, *(c.name for c in coinsurers)]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        problems.append(f"insurer named twice: {', '.join(twice)}")
    return problems


def load_pool(path: Path) -> Pool:
    """pool.yaml, strictly, with a CSV portfolio read (its path relative to pool.yaml)."""
    path = Path(path)
    pool = load_yaml_model(PoolFile, path).pool
    if pool.portfolio.csv is None:
        return pool
    groups = read_portfolio_csv(path.parent / pool.portfolio.csv)
    portfolio = pool.portfolio.model_copy(update={"groups": groups})
    return pool.model_copy(update={"portfolio": portfolio})
