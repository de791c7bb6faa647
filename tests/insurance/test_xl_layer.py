"""The excess-of-loss layer against closed forms: exponential and Pareto severities with
Poisson and binomial counts, without and with reinstatements, and against gemact's own
costing of a layer with reinstatements."""

from __future__ import annotations

import numpy as np
import pytest
from gemact import Frequency, Layer, LossModel, PolicyStructure, Severity
from scipy import stats

from common.errors import ConfigError
from insurance.aggregate_loss import beta_severity, binomial_frequency, compound_loss
from insurance.pool import XlLayer
from insurance.product import DamageRatio, Product
from insurance.xl_layer import layer_costing, treaty_layer

RETENTION, COVER = 300_000.0, 500_000.0


def _poisson(mu: float) -> Frequency:
    return Frequency(dist="poisson", par={"mu": mu})


def _exponential(mean: float) -> Severity:
    return Severity(dist="exponential", par={"theta": 1.0 / mean})  # gemact: theta is a rate


def _layer(reinstatements: int, premium: float | list[float] = 1.0) -> Layer:
    return Layer(cover=COVER, deductible=RETENTION, n_reinst=reinstatements,
                 reinst_percentage=premium)  # fmt: skip


def test_exponential_poisson_layer_has_the_closed_form_mean() -> None:
    # Prepare: E[min(max(X - R, 0), C)] = theta e^(-R/theta) (1 - e^(-C/theta))
    mu, theta = 3.0, 400_000.0
    closed = mu * theta * np.exp(-RETENTION / theta) * (1 - np.exp(-COVER / theta))
    # Execute
    loss = compound_loss(_exponential(theta), _poisson(mu), deductible=RETENTION,
                         cover=COVER, nodes=1025)  # fmt: skip
    # Assert
    assert loss.mean() == pytest.approx(closed, rel=1e-5)
    # it pays when a claim passes R by half a grid step (less is rounded to 0)
    costing = layer_costing(loss, _layer(reinstatements=5), sd_loading=0.0)
    reach = np.exp(-(RETENTION + loss.step / 2) / theta)
    assert costing.attach_probability == pytest.approx(1 - np.exp(-mu * reach), rel=1e-9)


def test_pareto_binomial_layer_has_the_closed_form_mean() -> None:
    # Prepare: Lomax, sf(x) = (1 + x/s)^-a, so the layer's mean per claim is the integral
    # of sf from R to R + C: s/(a-1) [(1 + R/s)^(1-a) - (1 + (R+C)/s)^(1-a)]
    n, p, shape, scale = 50, 0.1, 2.5, 800_000.0
    entry, exit_ = (1 + RETENTION / scale), (1 + (RETENTION + COVER) / scale)
    per_claim = scale / (shape - 1) * (entry ** (1 - shape) - exit_ ** (1 - shape))
    severity = Severity(dist="pareto2", par={"min": 0.0, "scale": scale, "shape": shape})
    # Execute
    loss = compound_loss(severity, Frequency(dist="binom", par={"n": n, "p": p}),
                         deductible=RETENTION, cover=COVER, nodes=1025)  # fmt: skip
    # Assert
    assert loss.mean() == pytest.approx(n * p * per_claim, rel=1e-5)


def test_no_reinstatement_limits_the_year_to_one_cover() -> None:
    # Prepare: exponential excesses are exponential again (memoryless): the claims above R
    # are Poisson(mu e^(-R/theta)) with Exp(theta) excesses; below C the cap never binds,
    # so E[min(S, C)] = sum_n P(n) E[min(Gamma(n, theta), C)], and E[min(G_n, C)] =
    # n theta P(G_(n+1) <= C) + C P(G_n > C)
    mu, theta = 3.0, 400_000.0
    rate = mu * np.exp(-RETENTION / theta)
    counts = np.arange(1, 80)
    capped = (counts * theta * stats.gamma.cdf(COVER, counts + 1, scale=theta)
              + COVER * stats.gamma.sf(COVER, counts, scale=theta))  # fmt: skip
    closed = float(stats.poisson.pmf(counts, rate) @ capped)
    loss = compound_loss(_exponential(theta), _poisson(mu), deductible=RETENTION,
                         cover=COVER, nodes=1025)  # fmt: skip
    # Execute
    costing = layer_costing(loss, _layer(reinstatements=0, premium=0.0), sd_loading=0.0)
    # Assert
    assert costing.aggregate_limit == COVER
    assert costing.expected_loss == pytest.approx(closed, rel=1e-5)
    assert costing.expected_loss_beyond_limit == pytest.approx(loss.mean() - closed, rel=1e-4)
    assert costing.upfront_premium == pytest.approx(costing.expected_loss)


def test_reinstatements_of_a_layer_every_claim_exhausts() -> None:
    # Prepare: Pareto losses all above R + C, so every claim takes the whole cover: L = C
    # min(N, k + 1); with k = 2 reinstatements at 100 % and 50 %, the upfront premium is
    # E[L] / (1 + 1.0 P(N > 0) + 0.5 P(N > 1)) (reinstatement i pays for claim i's cover)
    mu = 1.2
    severity = Severity(dist="pareto2", par={"min": 2_000_000.0, "scale": 1e6, "shape": 2.0})
    loss = compound_loss(severity, _poisson(mu), deductible=RETENTION, cover=COVER, nodes=257)
    tail = stats.poisson.sf  # P(N > j)
    expected = COVER * (tail(0, mu) + tail(1, mu) + tail(2, mu))
    counts = np.arange(0, 60)
    capped = COVER * np.minimum(counts, 3)
    sd = np.sqrt(stats.poisson.pmf(counts, mu) @ (capped - expected) ** 2)
    # Execute
    costing = layer_costing(loss, _layer(2, [1.0, 0.5]), sd_loading=0.25)
    # Assert
    assert costing.aggregate_limit == 3 * COVER
    assert costing.expected_loss == pytest.approx(expected, rel=1e-9)
    assert costing.sd == pytest.approx(sd, rel=1e-9)
    assert costing.premium == pytest.approx(expected + 0.25 * sd, rel=1e-9)
    upfront = (expected + 0.25 * sd) / (1 + 1.0 * tail(0, mu) + 0.5 * tail(1, mu))
    assert costing.upfront_premium == pytest.approx(upfront, rel=1e-9)
    assert costing.exhaustion_probability == pytest.approx(tail(2, mu), rel=1e-9)
    assert costing.expected_loss_unlimited == pytest.approx(mu * COVER, rel=1e-9)


def test_reinstatement_costing_agrees_with_gemacts_own() -> None:
    # Prepare: one beta-binomial cell, 500,000 xs 1,050,000 with one reinstatement at 80 %
    severity = beta_severity(DamageRatio(mean=0.25, sd=0.15), 2_000_000.0)
    frequency = binomial_frequency(60, 0.08)
    layer = Layer(cover=COVER, deductible=1_050_000.0, n_reinst=1, reinst_percentage=0.8)
    gemact = LossModel(severity=severity, frequency=frequency,
                       policystructure=PolicyStructure(layers=layer),
                       aggr_loss_dist_method="fft", sev_discr_method="massdispersal",
                       n_sev_discr_nodes=1025, n_aggr_dist_nodes=2**16)  # fmt: skip
    # Execute
    loss = compound_loss(severity, frequency, deductible=1_050_000.0, cover=COVER, nodes=1025)
    costing = layer_costing(loss, layer, sd_loading=0.0)
    # Assert
    assert costing.upfront_premium == pytest.approx(gemact.pure_premium_dist[0], rel=1e-9)
    assert costing.expected_loss == pytest.approx(gemact.mean(), rel=1e-9)
    assert costing.expected_reinstatement_premium > 0


def _product(limit: float = 1_500_000.0) -> Product:
    return Product.model_validate({
        "name": "toy", "segments": ["nev_battery"], "term": 12, "age_bands": [0, 120],
        "sum_insured": 2_000_000,
        "severity": {"damage_ratio": {"mean": 0.25, "sd": 0.15}, "deductible": 50_000,
                     "limit": limit},
    })  # fmt: skip


def test_the_treaty_sits_on_the_ground_up_loss_within_the_limit() -> None:
    # Prepare: 800,000 xs 1,000,000 under a limit of 1,500,000 can pay 500,000 a failure
    terms = XlLayer(retention=1_000_000, cover=800_000, reinstatements=2,
                    reinstatement_premium=0.5)  # fmt: skip
    # Execute
    layer = treaty_layer(terms, _product())
    # Assert
    assert (layer.deductible, layer.cover, layer.aggr_cover) == (1_050_000, 500_000, 1_500_000)
    assert list(layer.reinst_percentage) == [0.5, 0.5]


def test_a_retention_at_the_limit_is_refused() -> None:
    with pytest.raises(ConfigError, match="layer.retention 1,500,000 is at or above"):
        treaty_layer(XlLayer(retention=1_500_000, cover=100_000), _product())
