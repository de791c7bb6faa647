"""Metrics: Harrell's C (known answer, scikit-survival, speed), Antolini's C_td (known answer,
brute force, lifelines), Brier/IBS vs scikit-survival."""

from __future__ import annotations

import time

import numpy as np
import pytest
from lifelines.utils import concordance_index
from sksurv.metrics import brier_score as sk_brier_score
from sksurv.metrics import concordance_index_censored
from sksurv.metrics import integrated_brier_score as sk_integrated_brier_score
from sksurv.util import Surv

from models.metrics import brier_score, concordance_td, harrell_c, integrated_brier_score

EDGES = np.arange(0.0, 121.0, 6.0)


def proportional_curves(n: int, *, seed: int) -> dict[str, np.ndarray]:
    """Factory: S_i(t) = S0(t)^exp(eta_i) on EDGES (curves never cross), continuous times."""
    rng = np.random.default_rng(seed)
    eta = rng.normal(0.0, 0.8, n)
    baseline = np.exp(-((EDGES / 60.0) ** 1.3))
    survival = baseline[None, :] ** np.exp(eta)[:, None]
    failure = 60.0 * rng.weibull(1.3, n) / np.exp(eta / 1.3)
    censor = rng.uniform(0, 180, n)
    return {
        "eta": eta,
        "survival": survival,
        "durations": np.minimum(failure, censor),
        "events": (failure <= censor).astype(int),
    }


def brute_force_ctd(t: np.ndarray, e: np.ndarray, surv: np.ndarray, edges: np.ndarray) -> float:
    """Reference: loop over all pairs, S at the right edge of T_i's interval."""
    column = np.clip(np.searchsorted(edges, t, side="left"), 1, len(edges) - 1)
    concordant = comparable = 0.0
    for i in np.flatnonzero(e):
        for j in range(len(t)):
            if t[i] < t[j] or (t[i] == t[j] and not e[j]):
                comparable += 1
                a, b = surv[i, column[i]], surv[j, column[i]]
                concordant += 1.0 if a < b else 0.5 if a == b else 0.0
    return concordant / comparable


# ---------------------------------------------------------------- Harrell's C


def test_harrell_c_hand_computed_with_ties_in_time_and_risk() -> None:
    # Prepare: B, C, D exit at 4 (B, D fail, C censored); B, D, E tie in risk
    durations = np.array([2.0, 4.0, 4.0, 4.0, 6.0, 8.0])
    events = np.array([1, 1, 0, 1, 0, 1])
    risk = np.array([0.9, 0.5, 0.7, 0.5, 0.5, 0.1])
    # Execute
    c = harrell_c(durations, events, risk)
    # Assert: A vs the 5 others: 5; B vs C (same time, censored): 0, vs E: 0.5, vs F: 1,
    # not vs D (two failures at one time); D likewise: 1.5; 8 of 11 pairs
    assert c == pytest.approx(8 / 11, abs=1e-15)
    assert c == pytest.approx(
        concordance_index_censored(events.astype(bool), durations, risk)[0], abs=1e-15
    )


@pytest.mark.parametrize("seed", range(12))
def test_harrell_c_matches_scikit_survival_with_ties(seed: int) -> None:
    # Prepare: few distinct times and risks, so both tie often (distinct risks differ by
    # >= 0.1, far above sksurv's tied_tol of 1e-8)
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    t = rng.choice(np.arange(1.0, 25.0), n)
    e = rng.random(n) < 0.6
    e[0] = True
    t[0] = 0.0  # a failure before every other exit: at least one comparable pair
    risk = np.round(rng.normal(0.0, 1.0, n), 1)
    # Execute
    c = harrell_c(t, e.astype(int), risk)
    # Assert
    assert c == pytest.approx(concordance_index_censored(e, t, risk)[0], abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_harrell_c_matches_scikit_survival_on_continuous_data(seed: int) -> None:
    # Prepare
    data = proportional_curves(3000, seed=seed)
    events = data["events"].astype(bool)
    # Execute
    c = harrell_c(data["durations"], data["events"], data["eta"])
    # Assert
    expected = concordance_index_censored(events, data["durations"], data["eta"])[0]
    assert c == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_harrell_c_equals_concordance_td_when_curves_do_not_cross(seed: int) -> None:
    # Prepare: proportional curves rank units alike at every time
    data = proportional_curves(800, seed=seed)
    # Execute
    c = harrell_c(data["durations"], data["events"], data["eta"])
    # Assert
    c_td = concordance_td(data["durations"], data["events"], data["survival"], EDGES)
    assert c == pytest.approx(c_td, abs=1e-12)


def test_harrell_c_is_fast_for_50000_units() -> None:
    # Prepare: tied times (whole months) and continuous risks
    rng = np.random.default_rng(3)
    t = np.round(rng.exponential(40.0, 50_000))
    e = rng.integers(0, 2, 50_000)
    risk = rng.normal(0.0, 1.0, 50_000) - 0.01 * t
    # Execute
    start = time.perf_counter()
    c = harrell_c(t, e, risk)
    elapsed = time.perf_counter() - start
    # Assert: O(n log n); the pairwise loop would take minutes
    assert elapsed < 1.0
    assert 0.5 < c < 0.9


def test_harrell_c_rejects_bad_input() -> None:
    t = np.array([1.0, 2.0])
    with pytest.raises(ValueError, match="no comparable pairs"):
        harrell_c(t, np.array([0, 0]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="no comparable pairs"):
        harrell_c(np.array([1.0, 1.0]), np.array([1, 1]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match=r"risk: expected shape \(2,\)"):
        harrell_c(t, np.array([1, 0]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="risk: must be finite"):
        harrell_c(t, np.array([1, 0]), np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="events: must be 0/1"):
        harrell_c(t, np.array([2, 0]), np.array([0.1, 0.2]))


# ---------------------------------------------------------------- Antolini's C_td


def test_concordance_td_hand_computed() -> None:
    # Prepare: edges 0, 10, 20; A fails at 5 (column t_1), B fails at 12 (column t_2)
    durations = np.array([5.0, 12.0, 15.0, 25.0])
    events = np.array([1, 1, 0, 0])
    survival = np.array(
        [
            [1.0, 0.6, 0.3],  # A
            [1.0, 0.8, 0.5],  # B
            [1.0, 0.6, 0.2],  # C
            [1.0, 0.9, 0.7],  # D
        ]
    )
    # Execute
    c_td = concordance_td(durations, events, survival, np.array([0.0, 10.0, 20.0]))
    # Assert: A vs B, C, D at t_1: 1 + 0.5 + 1; B vs C, D at t_2: 0 + 1; 3.5 of 5 pairs
    assert c_td == pytest.approx(0.7, abs=1e-15)


@pytest.mark.parametrize("seed", range(6))
def test_concordance_td_equals_brute_force_with_ties_and_crossing(seed: int) -> None:
    # Prepare: tied times, tied curve values, crossing curves
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 120))
    t = rng.choice(np.arange(0.0, 135.0, 3.0), n)
    e = rng.integers(0, 2, n)
    surv = np.round(rng.uniform(0, 1, (n, len(EDGES))), 1)
    # Execute
    c_td = concordance_td(t, e, surv, EDGES)
    # Assert
    assert c_td == pytest.approx(brute_force_ctd(t, e, surv, EDGES), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_concordance_td_equals_harrell_when_curves_do_not_cross(seed: int) -> None:
    # Prepare
    data = proportional_curves(800, seed=seed)
    assert len(np.unique(data["durations"])) == 800  # no tied times
    # Execute
    c_td = concordance_td(data["durations"], data["events"], data["survival"], EDGES)
    # Assert: higher eta = higher risk = shorter predicted survival
    harrell = concordance_index(data["durations"], -data["eta"], data["events"])
    assert c_td == pytest.approx(harrell, abs=1e-9)
    assert c_td > 0.6


def test_concordance_td_is_fast_for_20000_units() -> None:
    # Prepare
    data = proportional_curves(20_000, seed=5)
    # Execute
    start = time.perf_counter()
    c_td = concordance_td(data["durations"], data["events"], data["survival"], EDGES)
    elapsed = time.perf_counter() - start
    # Assert
    assert elapsed < 2.0
    assert 0.6 < c_td < 0.9


def test_concordance_td_rejects_bad_input() -> None:
    surv = np.ones((2, 3))
    edges = np.array([0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="no comparable pairs"):
        concordance_td(np.array([1.0, 2.0]), np.array([0, 0]), surv, edges)
    with pytest.raises(ValueError, match=r"survival_at_edges: expected shape \(2, 3\)"):
        concordance_td(np.array([1.0, 2.0]), np.array([1, 0]), np.ones((2, 4)), edges)
    with pytest.raises(ValueError, match="events: must be 0/1"):
        concordance_td(np.array([1.0, 2.0]), np.array([2, 0]), surv, edges)


def make_train_test(seed: int) -> tuple[np.ndarray, ...]:
    """Factory: train/test survival data with tied (rounded) times and test predictions."""
    rng = np.random.default_rng(seed)
    train_t = np.round(rng.exponential(30, 400)) + 1
    train_e = rng.integers(0, 2, 400)
    test_t = np.minimum(np.round(rng.exponential(30, 250)) + 1, train_t.max())
    test_e = rng.integers(0, 2, 250)
    times = np.linspace(test_t.min(), test_t.max() - 1, 12)
    survival = np.exp(-times[None, :] / rng.uniform(10, 60, 250)[:, None])
    return train_t, train_e, test_t, test_e, survival, times


@pytest.mark.parametrize("seed", range(4))
def test_brier_scores_match_scikit_survival(seed: int) -> None:
    # Prepare
    train_t, train_e, test_t, test_e, survival, times = make_train_test(seed)
    y_train = Surv.from_arrays(train_e.astype(bool), train_t)
    y_test = Surv.from_arrays(test_e.astype(bool), test_t)
    # Execute
    scores = brier_score(train_t, train_e, test_t, test_e, survival, times)
    ibs = integrated_brier_score(train_t, train_e, test_t, test_e, survival, times)
    # Assert
    _, expected = sk_brier_score(y_train, y_test, survival, times)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-6)
    expected_ibs = sk_integrated_brier_score(y_train, y_test, survival, times)
    assert ibs == pytest.approx(expected_ibs, abs=1e-6)


def test_brier_score_known_answer_without_censoring() -> None:
    # Prepare: no censoring, so G = 1 and BS(t) is the plain mean squared error
    t = np.array([1.0, 2.0, 3.0, 4.0])
    e = np.ones(4, dtype=int)
    survival = np.array([[0.2], [0.5], [0.9], [0.7]])
    # Execute
    score = brier_score(t, e, t, e, survival, np.array([2.5]))
    # Assert: units 1, 2 failed by 2.5 (target 0), units 3, 4 alive (target 1)
    assert score[0] == pytest.approx((0.04 + 0.25 + 0.01 + 0.09) / 4, abs=1e-15)


def test_brier_score_rejects_times_outside_follow_up() -> None:
    train_t, train_e, test_t, test_e, survival, times = make_train_test(0)
    with pytest.raises(ValueError, match="within the follow-up of the test data"):
        brier_score(train_t, train_e, test_t, test_e, survival, times + 5)
    with pytest.raises(ValueError, match="at least two time points"):
        integrated_brier_score(train_t, train_e, test_t, test_e, survival[:, :1], times[:1])
    with pytest.raises(ValueError, match="strictly increasing"):
        brier_score(train_t, train_e, test_t, test_e, survival, times[::-1])
