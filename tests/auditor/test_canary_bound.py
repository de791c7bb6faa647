"""The one-run epsilon lower bound: never above a known mechanism's epsilon more often than
its confidence allows, and strong when the release gives the canaries away."""

from __future__ import annotations

import math

import dp_accounting
import numpy as np
import pytest
from scipy import stats

from auditor.canary_bound import one_run_bound


def _gaussian_scores(m: int, sigma: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Canaries of a Gaussian mechanism: score = included (0/1) + N(0, sigma^2)."""
    rng = np.random.default_rng(seed)
    included = rng.random(m) < 0.5
    scores = included + rng.normal(0.0, sigma, m)
    return scores[included], scores[~included]


def test_a_release_that_gives_every_canary_away_is_bounded_by_the_binomial_alone() -> None:
    # Prepare: perfect separation, 150 included and 150 excluded canaries
    bound = one_run_bound(np.ones(150), np.zeros(150), delta=1e-6)
    # Assert: at most what 150 correct guesses out of 150 can show without a threshold
    # search (delta 0): P[Binomial(150, q) = 150] = 0.05 at q = logistic(epsilon)
    closed_form = math.log(0.05 ** (1 / 150) / (1 - 0.05 ** (1 / 150)))
    assert 0.8 * closed_form < bound.epsilon <= closed_form
    # the 5 % are split over the candidate thresholds (Bonferroni: 3 here, the two scores
    # and +inf), so 150 of 150 correct has probability about 0.05 / 3 at the bound
    p_value = stats.binom.sf(149, 150, 1 / (1 + math.exp(-bound.epsilon)))
    assert p_value == pytest.approx(0.05 / 3, rel=1e-2)  # less the delta term
    assert (bound.m, bound.included, bound.confidence) == (300, 150, 0.95)
    # more canaries, a stronger bound
    assert one_run_bound(np.ones(500), np.zeros(500), delta=1e-6).epsilon > bound.epsilon


def test_an_honest_gaussian_mechanism_is_rarely_bounded_above_its_epsilon() -> None:
    # Prepare: the Gaussian mechanism of epsilon 1 at delta 1e-6, 40 independent audits
    epsilon, delta = 1.0, 1e-6
    sigma = dp_accounting.get_sigma_gaussian(epsilon, delta)
    # Execute
    bounds = [
        one_run_bound(*_gaussian_scores(300, sigma, seed), delta=delta).epsilon
        for seed in range(40)
    ]
    # Assert: at 95 % confidence, about 1 audit in 20 may exceed; 7 of 40 would be
    # P < 0.005 for a sound bound
    assert sum(b > epsilon for b in bounds) <= 6
    assert np.mean(bounds) < epsilon


def test_a_leak_is_shown_above_the_epsilon_it_claims() -> None:
    # a "private" release whose noise was forgotten: sigma 0.05 instead of 4.2
    bound = one_run_bound(*_gaussian_scores(300, 0.05, seed=1), delta=1e-6)
    assert bound.epsilon > 3.0


def test_canaries_the_release_says_nothing_about_are_never_guessed_included() -> None:
    # -inf: no score; the bound is that of the scored canaries alone
    scored = one_run_bound(np.ones(100), np.zeros(100), delta=1e-6)
    with_blind = one_run_bound(
        np.r_[np.ones(100), np.full(50, -np.inf)], np.r_[np.zeros(100), np.full(50, -np.inf)],
        delta=1e-6,
    )
    assert 0 < with_blind.epsilon <= scored.epsilon + 1e-9 and with_blind.m == 300


@pytest.mark.parametrize(
    ("included", "excluded", "delta", "message"),
    [
        ([], [0.0], 1e-6, "needs included and excluded"),
        ([np.nan], [0.0], 1e-6, "NaN"),
        ([np.inf], [0.0], 1e-6, "finite or -inf"),
        ([1.0], [0.0], 0.0, "delta must be in"),
    ],
)
def test_bad_input_is_refused(included, excluded, delta, message) -> None:
    with pytest.raises(ValueError, match=message):
        one_run_bound(included, excluded, delta=delta)
