"""Life table and risk curves: known answers, equality with lifelines, noise robustness, exports."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from lifelines import KaplanMeierFitter

from coordinator.curve_plot import plot_curves
from models.curves import RiskCurve, curves_csv, curves_to_json
from models.life_table import life_table

EDGES = np.arange(0.0, 121.0, 6.0)  # the demo grid: 20 intervals of 6 months
J = len(EDGES) - 1


def make_binned_units(n: int, *, seed: int, with_entry: bool = False) -> dict[str, np.ndarray]:
    """Factory: units of one segment binned on EDGES (exit interval, event, entry interval)."""
    rng = np.random.default_rng(seed)
    failure = rng.weibull(1.5, n) * rng.uniform(50, 110)
    censor = rng.uniform(0, 160, n)
    duration = np.minimum(failure, censor)
    entry = np.where(rng.uniform(size=n) < 0.4, 0.0, rng.uniform(0, 70, n))
    if with_entry:
        keep = entry < duration
        duration, failure, censor, entry = duration[keep], failure[keep], censor[keep], entry[keep]
    exit_idx = np.clip(np.searchsorted(EDGES, duration, side="left") - 1, 0, J - 1)
    event = ((failure <= censor) & (duration <= EDGES[-1])).astype(int)
    entry_idx = np.clip(np.searchsorted(EDGES, entry, side="right") - 1, 0, J - 1)
    return {"exit_idx": exit_idx, "event": event, "entry_idx": entry_idx}


def histograms(units: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = np.bincount(units["exit_idx"], weights=units["event"], minlength=J)
    c = np.bincount(units["exit_idx"], weights=1 - units["event"], minlength=J)
    e = np.bincount(units["entry_idx"], minlength=J).astype(float)
    return d, c, e


def lifelines_km(units: dict[str, np.ndarray], *, censor_weight: float, entry: bool = False):
    """Pooled KM on binned data: exits at right edges; entries at left edges; with
    censor_weight 0.5 each censored unit is two half-weight records, censored at the left
    and at the right edge of its interval (the actuarial adjustment)."""
    j, ev, ej = units["exit_idx"], units["event"].astype(bool), units["entry_idx"]
    durations, events, weights, entries = [EDGES[j + 1][ev]], [np.ones(ev.sum())], [], []
    weights.append(np.ones(ev.sum()))
    entries.append(EDGES[ej][ev])
    if censor_weight == 0.0:
        parts = [(EDGES[j + 1][~ev], 1.0)]
    else:
        parts = [(EDGES[j][~ev], 0.5), (EDGES[j + 1][~ev], 0.5)]
    for times, weight in parts:
        durations.append(times)
        events.append(np.zeros(len(times)))
        weights.append(np.full(len(times), weight))
        entries.append(EDGES[ej][~ev])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifelines warns about non-integer weights
        return KaplanMeierFitter().fit(
            np.concatenate(durations),
            np.concatenate(events),
            entry=np.concatenate(entries) if entry else None,
            weights=np.concatenate(weights),
            timeline=EDGES,
        )


def test_life_table_known_answer() -> None:
    # Prepare: 5 units; interval 1: 2 failures, 2 censored; interval 2: 1 failure
    d, c, edges = np.array([2.0, 1.0]), np.array([2.0, 0.0]), np.array([0.0, 1.0, 2.0])
    # Execute
    km = life_table(d, c, censor_weight=0.0, edges=edges)
    actuarial = life_table(d, c, censor_weight=0.5, edges=edges)
    # Assert: n = (5, 1), h = (0.4, 1); actuarial n = (4, 1), h = (0.5, 1)
    np.testing.assert_allclose(km.n_at_risk, [5.0, 1.0])
    np.testing.assert_allclose(km.survival, [1.0, 0.6, 0.0])
    np.testing.assert_allclose(km.failure, [0.0, 0.4, 1.0])
    np.testing.assert_allclose(km.greenwood_var, [0.0, 0.36 * 2 / (5 * 3), 0.0])
    np.testing.assert_allclose(actuarial.n_at_risk, [4.0, 1.0])
    np.testing.assert_allclose(actuarial.hazard, [0.5, 1.0])
    np.testing.assert_allclose(actuarial.greenwood_var, [0.0, 0.25 * 2 / (4 * 2), 0.0])
    assert km.n_units == 5.0 and km.n_failures == 3.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_km_equals_lifelines_on_binned_data(seed: int) -> None:
    # Prepare: three segments of different sizes
    for n in (40, 300, 2000):
        units = make_binned_units(n, seed=seed * 10 + n)
        d, c, _ = histograms(units)
        # Execute
        table = life_table(d, c, censor_weight=0.0, edges=EDGES)
        reference = lifelines_km(units, censor_weight=0.0)
        # Assert
        s_ref = reference.survival_function_.to_numpy()[:, 0]
        var_ref = s_ref**2 * reference._cumulative_sq_.to_numpy()
        np.testing.assert_allclose(table.survival, s_ref, rtol=0, atol=1e-9)
        np.testing.assert_allclose(table.greenwood_var, var_ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_actuarial_equals_lifelines_with_split_censored_records(seed: int) -> None:
    # Prepare
    for n in (40, 300, 2000):
        units = make_binned_units(n, seed=seed * 10 + n)
        d, c, _ = histograms(units)
        # Execute
        table = life_table(d, c, censor_weight=0.5, edges=EDGES)
        reference = lifelines_km(units, censor_weight=0.5)
        # Assert (lifelines truncates fractional at-risk counts in its variance: S only)
        s_ref = reference.survival_function_.to_numpy()[:, 0]
        np.testing.assert_allclose(table.survival, s_ref, rtol=0, atol=1e-9)
        km = life_table(d, c, censor_weight=0.0, edges=EDGES)
        assert not np.allclose(table.survival, km.survival)


@pytest.mark.parametrize("censor_weight", [0.0, 0.5])
def test_left_truncation_equals_lifelines_entry(censor_weight: float) -> None:
    # Prepare
    units = make_binned_units(1500, seed=7, with_entry=True)
    d, c, e = histograms(units)
    # Execute
    table = life_table(d, c, entries=e, censor_weight=censor_weight, edges=EDGES)
    reference = lifelines_km(units, censor_weight=censor_weight, entry=True)
    # Assert
    s_ref = reference.survival_function_.to_numpy()[:, 0]
    np.testing.assert_allclose(table.survival, s_ref, rtol=0, atol=1e-9)
    if censor_weight == 0.0:
        var_ref = s_ref**2 * reference._cumulative_sq_.to_numpy()
        np.testing.assert_allclose(table.greenwood_var, var_ref, rtol=0, atol=1e-9)
    untruncated = life_table(d, c, censor_weight=censor_weight, edges=EDGES)
    assert np.max(np.abs(untruncated.survival - table.survival)) > 1e-3


def test_noisy_histograms_give_valid_curves_and_flags() -> None:
    # Prepare: sparse counts plus Gaussian noise of std 3 (negative cells, empty risk sets)
    rng = np.random.default_rng(11)
    units = make_binned_units(30, seed=5)
    d, c, e = histograms(units)
    for _ in range(200):
        noisy = [x + rng.normal(0, 3.0, J) for x in (d, c, e)]
        # Execute
        table = life_table(noisy[0], noisy[1], entries=noisy[2], edges=EDGES)
        # Assert
        for array in (table.hazard, table.survival, table.greenwood_var, table.n_at_risk):
            assert np.all(np.isfinite(array))
        assert np.all((table.hazard >= 0) & (table.hazard <= 1))
        assert np.all(np.diff(table.survival) <= 0) and table.survival[0] == 1.0
        assert np.all(table.greenwood_var >= 0)
        assert np.all(table.hazard[table.risk_set_empty] == 0)
        assert np.all(table.hazard[table.hazard_capped] == 1)


def test_empty_risk_set_is_flagged_not_nan() -> None:
    # Prepare: everyone exits in interval 1; later intervals get noise only
    d = np.array([3.0, 0.4, 0.0])
    c = np.array([-1.0, 0.0, 0.0])
    # Execute
    table = life_table(d, c, censor_weight=0.5, edges=np.array([0.0, 1.0, 2.0, 3.0]))
    # Assert: c clipped to 0; n = (3.4, 0.4, 0); interval 3 has no one at risk
    np.testing.assert_allclose(table.censored, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(table.risk_set_empty, [False, False, True])
    np.testing.assert_allclose(table.hazard, [3 / 3.4, 1.0, 0.0])
    np.testing.assert_allclose(table.survival[-1], 0.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"censor_weight": 1.5}, r"censor_weight must lie in \[0, 1\]"),
        ({"entries": np.ones(3)}, r"entries: expected shape \(2,\)"),
        ({"edges": np.array([0.0, 2.0, 1.0])}, "strictly increasing"),
    ],
)
def test_life_table_rejects_bad_input(kwargs: dict, message: str) -> None:
    # Prepare
    args = {"edges": np.array([0.0, 1.0, 2.0])} | kwargs
    # Execute / Assert
    with pytest.raises(ValueError, match=message):
        life_table(np.ones(2), np.ones(2), **args)


def test_life_table_arrays_are_read_only() -> None:
    table = life_table(np.ones(2), np.ones(2), edges=np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="read-only"):
        table.survival[1] = 0.0


# Risk curves ------------------------------------------------------------------------


def test_curve_band_equals_lifelines_exponential_greenwood() -> None:
    # Prepare
    units = make_binned_units(500, seed=3)
    d, c, _ = histograms(units)
    table = life_table(d, c, censor_weight=0.0, edges=EDGES)
    reference = lifelines_km(units, censor_weight=0.0).confidence_interval_.to_numpy()
    # Execute
    curve = RiskCurve.from_life_table("nev_battery", table)
    # Assert: F band = 1 - (S band), flipped
    np.testing.assert_allclose(curve.failure_lower, 1.0 - reference[:, 1], rtol=0, atol=1e-9)
    np.testing.assert_allclose(curve.failure_upper, 1.0 - reference[:, 0], rtol=0, atol=1e-9)
    assert np.all(curve.failure_lower <= curve.failure)
    assert np.all(curve.failure <= curve.failure_upper)
    assert curve.failure_upper[5] - curve.failure_lower[5] > 0.01


def test_curve_band_widens_with_extra_variance() -> None:
    # Prepare
    table = life_table(*histograms(make_binned_units(500, seed=4))[:2], edges=EDGES)
    # Execute
    base = RiskCurve.from_life_table("s", table)
    wider = RiskCurve.from_life_table("s", table, survival_var=table.greenwood_var * 4)
    # Assert
    width = base.failure_upper - base.failure_lower
    assert np.all(wider.failure_upper - wider.failure_lower >= width - 1e-15)
    assert np.max(wider.failure_upper - wider.failure_lower - width) > 0.01
    with pytest.raises(ValueError, match=r"survival_var: expected shape \(21,\)"):
        RiskCurve.from_life_table("s", table, survival_var=np.ones(3))


def test_curves_json_round_trip_and_csv(tmp_path: Path) -> None:
    # Prepare
    tables = [
        life_table(*histograms(make_binned_units(200, seed=s))[:2], edges=EDGES) for s in (1, 2)
    ]
    curves = [
        RiskCurve.from_life_table("semiconductor_fab", tables[0]),
        RiskCurve.from_life_table("nev_battery", tables[1], published=False, note="too few nodes"),
    ]
    # Execute
    document = json.loads(json.dumps(curves_to_json(curves)))
    (tmp_path / "curves.csv").write_text(curves_csv(curves), encoding="utf-8")
    # Assert
    assert document["format_version"] == 1
    back = RiskCurve.from_dict(document["curves"][1])
    np.testing.assert_array_equal(back.failure_upper, curves[1].failure_upper)
    assert (back.published, back.note) == (False, "too few nodes")
    with open(tmp_path / "curves.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["segment", "t", "S", "h", "F", "F_lower", "F_upper"]
    assert len(rows) == 2 * (J + 1)
    assert rows[0]["h"] == "" and float(rows[0]["S"]) == 1.0
    assert float(rows[3]["h"]) == tables[0].hazard[2]
    assert float(rows[J + 1 + 4]["F_upper"]) == curves[1].failure_upper[4]


def test_plot_curves_writes_png(tmp_path: Path) -> None:
    # Prepare
    table = life_table(*histograms(make_binned_units(200, seed=9))[:2], edges=EDGES)
    curves = [RiskCurve.from_life_table(s, table) for s in ("a", "b")]
    # Execute
    plot_curves(tmp_path / "curves.png", curves, truth={"a": 1 - np.exp(-EDGES / 80)})
    # Assert
    data = (tmp_path / "curves.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    with pytest.raises(ValueError, match="no curves to plot"):
        plot_curves(tmp_path / "none.png", [])


@pytest.mark.parametrize("censor_weight", [0.0, 0.5])
def test_survivors_past_horizon_are_at_risk_in_every_interval(censor_weight: float) -> None:
    # Prepare: units observed past t_J are survivors, not censored in the last interval;
    # lifelines sees them as censored exactly at t_J (at risk through it, never split)
    rng = np.random.default_rng(7)
    failure = rng.weibull(1.5, 3000) * 90
    duration = np.minimum(failure, rng.uniform(0, 200, 3000))
    beyond = duration > EDGES[-1]
    units = {
        "exit_idx": np.clip(np.searchsorted(EDGES, duration[~beyond], side="left") - 1, 0, J - 1),
        "event": (failure <= duration)[~beyond].astype(int),
        "entry_idx": np.zeros((~beyond).sum(), dtype=int),
    }
    d, c, _ = histograms(units)
    reference = lifelines_km(units, censor_weight=censor_weight)
    n_beyond = int(beyond.sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        times = np.concatenate([reference.durations, np.full(n_beyond, EDGES[-1])])
        observed = np.concatenate([reference.event_observed, np.zeros(n_beyond)])
        weights = np.concatenate([reference.weights, np.ones(n_beyond)])
        expected = KaplanMeierFitter().fit(times, observed, weights=weights, timeline=EDGES)
    # Execute
    table = life_table(d, c, survivors=n_beyond, censor_weight=censor_weight, edges=EDGES)
    # Assert
    assert n_beyond > 100
    np.testing.assert_allclose(
        table.survival, expected.survival_function_.to_numpy().ravel(), atol=1e-9
    )
    assert table.n_units == 3000
