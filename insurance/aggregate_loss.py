"""The collective risk model of one risk cell, by gemact: S = Y_1 + ... + Y_N with N the
number of failures in the year and Y_i what each failure costs a layer.

A cell is units alike (segment, age, sum insured): each fails within the term with
probability q, independently, so N ~ Binomial(units, q); a failure destroys a share X of
the sum insured, X ~ Beta (the product's damage ratio). What a layer (deductible d, cover
c, each and every loss) pays for it is Y = min(max(X SI - d, 0), c): the product's own
deductible and limit for the pool's gross loss, or the reinsurance layer above the pool's
retention (:mod:`insurance.xl_layer`). gemact's ``LossModel`` thins N to the failures
above d, discretises Y on c / (nodes - 1) by mass dispersal and computes S's
distribution by FFT; a cell's grid is long enough that P(N > its length / (nodes - 1)) <
1e-12, so nothing wraps round. Cells are independent, and a pool's loss is their
convolution on the common grid (:meth:`LossDistribution.plus`).

Why mass dispersal: gemact 1.3.0's ``Beta.lev`` (limited expected value) uses the
inverse of the incomplete beta function where the function itself belongs, so every path
through it (the default local-moments discretisation, ``LossModel.mean(use_dist=False)``
and ``pure_premium``) is wrong for a beta severity; mass dispersal needs only the cdf.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import twiggy
from gemact import Frequency, Layer, LossModel, PolicyStructure, Severity

from insurance.loss_distribution import LossDistribution
from insurance.product import DamageRatio
from insurance.risk_cell import RiskCell

__all__ = ["MIN_GRID", "beta_severity", "binomial_frequency", "compound_loss", "pool_loss"]

#: gemact's FFT needs at least this many aggregate nodes.
MIN_GRID = 256
#: The count beyond the grid has at most this probability.
_COUNT_TAIL = 1e-12

# gemact logs every FFT at INFO through twiggy's stderr emitter; keep its warnings only.
for _emitter in twiggy.emitters.values():
    _emitter.min_level = twiggy.levels.WARNING


def beta_severity(ratio: DamageRatio, sum_insured: float) -> Severity:
    """X x sum insured with X ~ Beta of the damage ratio's mean and sd (method of
    moments: a + b = mean (1 - mean) / sd^2 - 1)."""
    if ratio.sd <= 0:
        raise ValueError("the pool needs a damage ratio with sd > 0 (a beta distribution)")
    total = ratio.mean * (1 - ratio.mean) / ratio.sd**2 - 1
    return Severity(
        dist="beta",
        par={"a": ratio.mean * total, "b": (1 - ratio.mean) * total, "scale": sum_insured},
    )


def binomial_frequency(units: int, q: float) -> Frequency:
    """Failures among ``units`` alike units, each failing with probability ``q``."""
    return Frequency(dist="binom", par={"n": int(units), "p": float(q)})


def compound_loss(
    severity: Severity,
    frequency: Frequency,
    *,
    deductible: float,
    cover: float,
    nodes: int,
) -> LossDistribution:
    """The distribution of S = sum of min(max(X - deductible, 0), cover) over the year's
    claims, on the grid of step cover / (nodes - 1)."""
    step = cover / (nodes - 1)
    reach = float(severity.model.sf(deductible))
    if reach <= 0 or _claim_probability(frequency) <= 0:
        return LossDistribution(step, np.ones(1))  # no loss, for sure
    model = LossModel(
        severity=severity,
        frequency=frequency,
        policystructure=PolicyStructure(layers=Layer(cover=cover, deductible=deductible)),
        aggr_loss_dist_method="fft",
        sev_discr_method="massdispersal",
        n_sev_discr_nodes=nodes,
        n_aggr_dist_nodes=_grid_length(frequency, nodes),
    )
    dist = model.dist[0]
    masses = np.diff(np.asarray(dist.cumprobs, float), prepend=0.0)
    if abs(masses.sum() - 1.0) > 1e-9:
        raise ArithmeticError(f"gemact's aggregate distribution sums to {masses.sum()!r}")
    return LossDistribution.from_masses(float(model.sev_discr_step), masses)


def _claim_probability(frequency: Frequency) -> float:
    """P(N > 0)."""
    return float(frequency.model.sf(0))


def _grid_length(frequency: Frequency, nodes: int) -> int:
    """A power of two holding (nodes - 1) x the count's 1 - 1e-12 quantile, at least
    gemact's minimum and the severity's own length."""
    most = float(frequency.model.ppf(1.0 - _COUNT_TAIL))
    needed = max(MIN_GRID, nodes, int(most) * (nodes - 1) + 1)
    return 1 << math.ceil(math.log2(needed))


def pool_loss(
    cells: Sequence[RiskCell],
    ratio: DamageRatio,
    *,
    deductible: float,
    cover: float,
    nodes: int,
) -> LossDistribution:
    """The pool's annual loss to a layer (``deductible``, ``cover`` per failure, on the
    ground-up loss X x sum insured): the convolution of its cells' compound losses."""
    total = LossDistribution(cover / (nodes - 1), np.ones(1))
    for cell in cells:
        total = total.plus(
            compound_loss(
                beta_severity(ratio, cell.sum_insured),
                binomial_frequency(cell.units, cell.q),
                deductible=deductible,
                cover=cover,
                nodes=nodes,
            )
        )
    return total
