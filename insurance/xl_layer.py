"""The pool's excess-of-loss reinsurance layer: ``cover`` xs ``retention`` per failure,
with reinstatements, priced from the tail.

**Per occurrence, not aggregate.** The layer pays, for each failure, the part of the
pool's payout above the retention, up to the cover: min(max(payout - R, 0), C). Two
reasons. Reinstatements belong to a per-occurrence layer: its aggregate limit is
(1 + reinstatements) x cover, and each use of the cover is bought back; an aggregate
(stop-loss) layer has one limit and nothing to reinstate. And gemact's ``Layer``
(deductible and cover each and every loss, ``n_reinst``, ``reinst_percentage``) is that
treaty. Failures of units are independent, so per occurrence is per risk. The pool's
aggregate bad years are what the compensation fund answers
(:mod:`insurance.compensation_fund`).

On the ground-up loss X x sum insured the layer is deductible d + R and cover
min(C, L - R) (d, L the product's deductible and limit: the pool never pays more than L
for a failure, so the layer can never pay more than L - R). Each cell's loss to it is a
gemact collective risk model (:func:`insurance.aggregate_loss.pool_loss`), and the pool's
loss to it, S, their convolution. With k reinstatements:

- the reinsurer pays L = min(S, (k + 1) C); E[S] alone is the loss with unlimited
  reinstatements, E[S] - E[L] falls back on the pool;
- layer premium = E[L] + loading x sd(L);
- reinstatement i (i = 1..k) costs c_i x the upfront premium P, pro rata to the amount
  reinstated, min(max(S - (i - 1) C, 0), C) / C; the premium's expected value is then
  P (1 + sum_i c_i D_i / C), D_i = E[min(max(S - (i - 1) C, 0), C)], so the upfront
  premium is P = layer premium / (1 + sum_i c_i D_i / C) (as gemact's ``LossModel``
  costs an xlrs layer, Sundt 1991).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gemact import Layer

from common.errors import ConfigError
from insurance.loss_distribution import LossDistribution
from insurance.pool import XlLayer
from insurance.product import Product

__all__ = ["LayerCosting", "treaty_layer", "layer_costing"]


@dataclass(frozen=True)
class LayerCosting:
    """A layer's figures (currency units): on the ground-up loss it attaches at
    ``attachment`` for ``cover`` per failure, at most ``aggregate_limit`` a year.
    ``attach_probability`` = P(S > 0); ``expected_loss_unlimited`` = E[S];
    ``expected_loss`` and ``sd`` of L = min(S, aggregate limit); ``premium`` = E[L] +
    loading x sd; ``upfront_premium`` and ``expected_reinstatement_premium`` split it;
    ``exhaustion_probability`` = P(S >= aggregate limit), every reinstatement used;
    ``expected_loss_beyond_limit`` = E[S] - E[L], back to the pool."""

    attachment: float
    cover: float
    reinstatements: int
    reinstatement_premium: tuple[float, ...]
    aggregate_limit: float
    sd_loading: float
    attach_probability: float
    expected_loss_unlimited: float
    expected_loss: float
    sd: float
    premium: float
    upfront_premium: float
    expected_reinstatement_premium: float
    exhaustion_probability: float
    expected_loss_beyond_limit: float


def treaty_layer(layer: XlLayer, product: Product) -> Layer:
    """gemact's Layer of ``layer`` on the ground-up loss (see the module docstring);
    ConfigError when the retention is at or above the product's limit."""
    severity = product.severity
    if layer.retention >= severity.limit:
        raise ConfigError(
            f"layer.retention {layer.retention:,.0f} is at or above the product's limit "
            f"{severity.limit:,.0f} a failure: the layer could never pay"
        )
    return Layer(
        deductible=severity.deductible + layer.retention,
        cover=min(layer.cover, severity.limit - layer.retention),
        n_reinst=layer.reinstatements,
        reinst_percentage=layer.reinstatement_premium,
    )


def layer_costing(loss: LossDistribution, layer: Layer, *, sd_loading: float) -> LayerCosting:
    """The figures of ``layer`` (a gemact xlrs Layer) given the pool's loss to it per
    failure before the aggregate limit, ``loss``."""
    cover, limit = float(layer.cover), float(layer.aggr_cover)
    nodes = loss.nodes
    limited = np.minimum(nodes, limit)
    expected = float(loss.pmf @ limited)
    sd = float(np.sqrt(loss.pmf @ (limited - expected) ** 2))
    premium = expected + sd_loading * sd
    rates = _reinstatement_rates(layer)
    used = np.array([loss.layer_mean(i * cover, cover) for i in range(len(rates))])
    upfront = premium / (1.0 + float(rates @ used) / cover)
    return LayerCosting(
        attachment=float(layer.deductible),
        cover=cover,
        reinstatements=int(layer.n_reinst or 0),
        reinstatement_premium=tuple(float(r) for r in rates),
        aggregate_limit=limit,
        sd_loading=float(sd_loading),
        attach_probability=loss.exceedance(0.0),
        expected_loss_unlimited=loss.mean(),
        expected_loss=expected,
        sd=sd,
        premium=premium,
        upfront_premium=upfront,
        expected_reinstatement_premium=premium - upfront,
        exhaustion_probability=float(loss.pmf[nodes >= limit * (1 - 1e-12)].sum()),
        expected_loss_beyond_limit=loss.mean() - expected,
    )


def _reinstatement_rates(layer: Layer) -> np.ndarray:
    """c_1..c_k: each reinstatement's premium as a share of the upfront premium."""
    count = int(layer.n_reinst or 0)
    if count == 0:
        return np.zeros(0)
    return np.broadcast_to(np.asarray(layer.reinst_percentage, float).ravel(), (count,)).copy()
