"""Synthetic factories: determinism, layout, node.yaml maps, and the truth is right."""

from __future__ import annotations

import dataclasses
import json
import stat
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from lifelines.utils import concordance_index

from common.errors import ConfigError
from enterprise_node.config import NodeConfig, load_node_config
from harness.synthetic import FederationManifest, SyntheticConfig, generate_federation
from harness.synthetic_truth import (
    cumulative_failure,
    draw_classes,
    draw_covariates,
    draw_frailty,
    draw_profiles,
    linear_predictor,
    marginal_cumulative_failure,
    oracle_failure_probability,
    segment_truths,
    superpopulation_failure,
)
from models.spec import ModelSpec

REPO = Path(__file__).resolve().parents[2]
SMALL = SyntheticConfig(
    n_enterprises=4, min_units=200, max_units=400, holdout_units=300, parquet_every=2
)
SHARED = SyntheticConfig(
    n_enterprises=6, min_units=300, max_units=600, holdout_units=5000, parquet_every=2
)


@pytest.fixture(scope="module")
def spec(grid20_spec: ModelSpec) -> ModelSpec:
    """The demo spec on the fixed 20-interval grid (conftest), whatever the published grid."""
    return grid20_spec


@pytest.fixture(scope="module")
def shared(spec, tmp_path_factory) -> FederationManifest:
    """One federation (SHARED config) for the tests that only read it."""
    return generate_federation(tmp_path_factory.mktemp("shared"), spec, SHARED)


def _canonical(node_yaml: Path) -> pd.DataFrame:
    """A site's export mapped back to canonical names and months, as node.yaml says."""
    config: NodeConfig = load_node_config(node_yaml)
    columns = config.data.columns
    frame = (
        pd.read_parquet(config.data_path)
        if config.data.format == "parquet"
        else pd.read_csv(config.data_path)
    )
    names = {
        getattr(columns, c): c
        for c in ("unit_id", "segment", "equipment_class", "duration", "failed")
    }
    if columns.entry_age is not None:
        names[columns.entry_age] = "entry_age"
    names |= {site: canonical for canonical, site in columns.covariates.items()}
    frame = frame.rename(columns=names)
    for column in ("duration", "entry_age"):
        if column in frame:
            frame[column] = frame[column] * config.data.duration_scale
    return frame


def _pooled(manifest: FederationManifest) -> pd.DataFrame:
    return pd.concat([_canonical(p) for p in manifest.node_configs], ignore_index=True)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "secrets" not in p.parts
    }


def _km_z_scores(pooled: pd.DataFrame, truth: dict, spec: ModelSpec, delayed: bool) -> np.ndarray:
    """(KM estimate of F - F_federation) / KM standard error, per segment and check edge."""
    edges = np.asarray(spec.time_grid.edges)
    at = [2, 6, 10, 16, 20]
    scores = []
    for segment in spec.segments:
        units = pooled[pooled["segment"] == segment]
        km = KaplanMeierFitter().fit(
            units["duration"], units["failed"], entry=units["entry_age"] if delayed else None
        )
        estimate = 1.0 - km.survival_function_at_times(edges[at]).to_numpy()
        band = km.confidence_interval_survival_function_
        width = np.interp(edges[at], band.index, band.iloc[:, 1] - band.iloc[:, 0])
        expected = np.asarray(truth["segments"][segment]["F_federation"])[at]
        scores.append((estimate - expected) / (width / (2 * 1.959964)))
    return np.asarray(scores)


def test_same_seed_gives_identical_files_and_other_seed_differs(spec, tmp_path):
    # Prepare / Execute
    first = generate_federation(tmp_path / "a", spec, SMALL)
    second = generate_federation(tmp_path / "b", spec, SMALL)
    other = generate_federation(tmp_path / "c", spec, dataclasses.replace(SMALL, seed=1))
    # Assert
    files_a, files_b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert files_a == files_b
    assert len(files_a) == 4 * 2 + 2
    assert first.truth_path.read_bytes() == second.truth_path.read_bytes()
    assert (first.enterprise_dirs[0] / "units.csv").read_bytes() != (
        other.enterprise_dirs[0] / "units.csv"
    ).read_bytes()
    assert first.holdout_path.read_bytes() != other.holdout_path.read_bytes()


def test_sizes_segments_and_truth_counts(spec, shared):
    # Prepare / Execute
    manifest = shared
    truth = json.loads(manifest.truth_path.read_text())
    # Assert
    for i, node_yaml in enumerate(manifest.node_configs):
        units = _canonical(node_yaml)
        record = truth["enterprises"][i]
        assert 300 <= len(units) <= 600
        assert len(units) == record["n_units"]
        counts = units["segment"].value_counts()
        assert set(counts.index) == set(spec.segments)
        primary = spec.segments[i % len(spec.segments)]
        assert record["primary_segment"] == primary
        assert counts[primary] / len(units) == pytest.approx(0.7, abs=0.01)
        assert counts.to_dict() == record["segment_counts"]
        assert units["unit_id"].is_unique
    sizes = {e["n_units"] for e in truth["enterprises"]}
    assert len(sizes) > 1


def test_node_yaml_maps_different_site_columns_back(spec, shared):
    # Prepare / Execute
    manifest = shared
    # Assert
    duration_columns = set()
    medians = []
    for node_yaml in manifest.node_configs:
        config = load_node_config(node_yaml)
        header = (
            pd.read_parquet(config.data_path)
            if config.data.format == "parquet"
            else pd.read_csv(config.data_path, nrows=1)
        ).columns
        mapped = [
            config.data.columns.unit_id,
            config.data.columns.segment,
            config.data.columns.equipment_class,
            config.data.columns.duration,
            config.data.columns.failed,
            *config.data.columns.covariates.values(),
        ]
        assert sorted(mapped) == sorted(header)
        assert set(config.data.columns.covariates) == set(spec.feature_names)
        assert config.data.columns.entry_age is None
        assert config.privacy.epsilon == 5.0 and config.privacy.delta == 1e-5
        duration_columns.add(config.data.columns.duration)
        units = _canonical(node_yaml)
        assert set(units["failed"].unique()) <= {0, 1}
        assert set(units["vendor_origin"].unique()) <= {"domestic", "imported"}
        for feature in spec.features[:3]:
            assert units[feature.name].between(feature.lower, feature.upper).all()
        medians.append(units["duration"].median())
        secret = config.site_secret_path
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert len(bytes.fromhex(secret.read_text().strip())) == 32
    assert duration_columns == {"duration", "hours_run", "DaysInService"}
    assert max(medians) / min(medians) < 2.0  # every site's time unit was scaled to months
    days = load_node_config(manifest.node_configs[2])
    assert days.data.duration_scale == pytest.approx(1 / 30.4375)


def test_parquet_every_second_enterprise(shared):
    # Prepare / Execute
    manifest = shared
    # Assert
    formats = [load_node_config(p).data.format for p in manifest.node_configs]
    assert formats == ["csv", "parquet"] * 3
    assert (manifest.enterprise_dirs[1] / "units.parquet").exists()
    assert not (manifest.enterprise_dirs[1] / "units.csv").exists()


def test_pooled_kaplan_meier_matches_f_federation(spec, tmp_path):
    # Prepare
    config = SyntheticConfig(
        n_enterprises=6, min_units=8000, max_units=10000, holdout_units=0, parquet_every=2, seed=3
    )
    manifest = generate_federation(tmp_path, spec, config)
    truth = json.loads(manifest.truth_path.read_text())
    # Execute
    scores = _km_z_scores(_pooled(manifest), truth, spec, delayed=False)
    # Assert
    assert np.abs(scores).max() < 4.0


def test_delayed_entry_is_left_truncation_and_km_with_entry_matches(spec, tmp_path):
    # Prepare
    config = SyntheticConfig(
        n_enterprises=6,
        min_units=8000,
        max_units=10000,
        holdout_units=0,
        delayed_entry=True,
        seed=4,
    )
    manifest = generate_federation(tmp_path, spec, config)
    truth = json.loads(manifest.truth_path.read_text())
    pooled = _pooled(manifest)
    # Execute
    scores = _km_z_scores(pooled, truth, spec, delayed=True)
    # Assert
    assert np.abs(scores).max() < 4.0
    assert (pooled["entry_age"] < pooled["duration"]).all()
    assert 0.2 < (pooled["entry_age"] > 0).mean() < 0.32
    assert all(s["n_drawn"] > s["n_units"] for s in truth["segments"].values())
    assert load_node_config(manifest.node_configs[1]).data.columns.entry_age == "hours_at_start"


def test_federation_equals_superpopulation_only_when_iid(spec, tmp_path):
    # Prepare
    iid = SyntheticConfig(
        n_enterprises=3,
        min_units=5000,
        max_units=5000,
        holdout_units=0,
        frailty_variance=0.0,
        covariate_shift=False,
    )
    non_iid = dataclasses.replace(iid, frailty_variance=0.3, covariate_shift=True)
    # Execute
    truth_iid = json.loads(generate_federation(tmp_path / "a", spec, iid).truth_path.read_text())
    truth_non = json.loads(
        generate_federation(tmp_path / "b", spec, non_iid).truth_path.read_text()
    )

    # Assert
    def gaps(truth: dict) -> list[float]:
        return [
            float(np.max(np.abs(np.subtract(s["F_federation"], s["F_superpopulation"]))))
            for s in truth["segments"].values()
        ]

    assert max(gaps(truth_iid)) < 0.015
    assert max(gaps(truth_non)) > 0.05


def test_truth_shape_matches_the_brief(shared):
    # Prepare / Execute
    truth = json.loads(shared.truth_path.read_text())
    # Assert
    curves = {s: np.asarray(v["F_superpopulation"]) for s, v in truth["segments"].items()}
    for curve in curves.values():
        assert curve[0] == 0.0 and np.all(np.diff(curve) > 0)
        assert 0.4 <= curve[-1] <= 0.8
    names = list(curves)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert np.abs(curves[a] - curves[b]).max() > 0.05
    assert len(truth["enterprises"]) == 6
    assert truth["config"] == dataclasses.asdict(SHARED)
    assert {"weibull_shape", "weibull_scale", "coefficients", "class_effects"} <= set(
        truth["segments"]["nev_battery"]
    )


def test_reference_unit_and_frailty_average_known_answers(spec):
    # Prepare
    truths = segment_truths(spec)
    horizon = np.array([120.0])
    rng = np.random.default_rng(0)
    # Execute
    reference = [cumulative_failure(t, np.zeros(1), 1.0, horizon)[0, 0] for t in truths]
    closed = marginal_cumulative_failure(truths[0], np.array([0.3]), horizon, 0.5)[0, 0]
    z = rng.gamma(1 / 0.5, 0.5, 400_000)
    monte_carlo = cumulative_failure(truths[0], np.full(z.size, 0.3), z, horizon).mean()
    # Assert
    assert reference == pytest.approx([0.55, 0.72, 0.45])
    assert closed == pytest.approx(monte_carlo, abs=0.002)
    assert closed < cumulative_failure(truths[0], np.array([0.3]), 1.0, horizon)[0, 0]


def test_superpopulation_curve_equals_plain_monte_carlo(spec):
    # Prepare: units of new enterprises drawn step by step, each with its own frailty
    truth = segment_truths(spec)[1]
    rng = np.random.default_rng(11)
    m = 100_000
    covariates = draw_covariates(rng, spec, draw_profiles(rng, spec, m), m)
    eta = linear_predictor(truth, spec, draw_classes(rng, truth, m), covariates)
    z = draw_frailty(rng, 0.3, m)
    times = np.array([30.0, 60.0, 120.0])
    # Execute
    plain = cumulative_failure(truth, eta, z, times).mean(axis=0)
    curves = superpopulation_failure(np.random.default_rng(12), spec, times, frailty_variance=0.3)
    # Assert
    assert curves[truth.segment] == pytest.approx(plain, abs=0.006)


def test_holdout_is_canonical_and_covariates_carry_moderate_signal(spec, shared):
    # Prepare
    manifest = shared
    holdout = pd.read_csv(manifest.holdout_path)
    # Execute
    risk = oracle_failure_probability(holdout, spec, [120.0], frailty_variance=0.3)[:, 0]
    c_index = concordance_index(holdout["duration"], -risk, holdout["failed"])
    # Assert
    assert list(holdout.columns) == [
        "unit_id",
        "segment",
        "equipment_class",
        "duration",
        "failed",
        "entry_age",
        *spec.feature_names,
    ]
    assert len(holdout) == 5000 and holdout["entry_age"].isna().all()
    assert set(holdout["segment"]) == set(spec.segments)
    assert not (manifest.holdout_path.parent / "node.yaml").exists()
    assert 0.70 < c_index < 0.82


def test_generation_is_fast(spec, tmp_path):
    # Prepare
    config = SyntheticConfig(min_units=5000, max_units=5000)
    # Execute
    start = time.perf_counter()
    generate_federation(tmp_path, spec, config)
    elapsed = time.perf_counter() - start
    # Assert: about 1.3 s on a 2-core machine; the bound leaves room for a busy one
    assert elapsed < 5.0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"min_units": 500, "max_units": 100}, "min_units"),
        ({"n_enterprises": 0}, "n_enterprises"),
        ({"frailty_variance": -0.1}, "frailty_variance"),
        ({"delta_cap": 2.0}, "delta_cap"),
    ],
)
def test_bad_config_is_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        SyntheticConfig(**changes)
