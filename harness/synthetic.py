"""Synthetic factories with known ground truth: a seeded federation of enterprise exports.

Each enterprise folder looks like a real site's export (its own column names, time unit,
CSV or Parquet) plus a node.yaml that maps it back to the canonical unit table. The true
model is in ``harness/synthetic_truth.py``; ``ground_truth.json`` records it, the true
F(t) of the generated federation and of the super-population, and who got what.

Censoring is drawn identically for every unit, independent of failure, covariates and
enterprise, so the pooled Kaplan-Meier / life table is consistent for ``F_federation``.

>>> import tempfile
>>> from coordinator.config import load_coordinator_config
>>> spec = load_coordinator_config(Path("configs/coordinator.yaml")).plan.model_spec
>>> out = Path(tempfile.mkdtemp())
>>> small = SyntheticConfig(n_enterprises=3, min_units=100, max_units=200, holdout_units=50)
>>> manifest = generate_federation(out, spec, small)
>>> [d.name for d in manifest.enterprise_dirs]
['enterprise-01', 'enterprise-02', 'enterprise-03']
>>> import shutil; shutil.rmtree(out)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.atomic import atomic_write_json, atomic_write_text
from common.errors import ConfigError
from harness.site_export import DIALECTS, SiteExport, write_site
from harness.synthetic_truth import (
    SegmentTruth,
    covariate_scaling,
    cumulative_failure,
    draw_classes,
    draw_covariates,
    draw_failure_times,
    draw_frailty,
    draw_profiles,
    linear_predictor,
    segment_truths,
    superpopulation_failure,
)
from models.spec import CategoryFeature, ModelSpec

__all__ = ["SyntheticConfig", "FederationManifest", "generate_federation"]

_MODEL = (
    "S(t|x,z) = exp(-z * (t/weibull_scale)^weibull_shape * exp(eta)); eta = class_effect"
    " + sum_f coef_f * (x_f - centre_f) / per_f + sum coef_{f=level} * [x_f == level];"
    " z ~ Gamma(mean 1, variance frailty_variance), one per enterprise"
)
_F_FEDERATION = (
    "mean over the federation's units of their true F_i(t) given covariates and their"
    " enterprise's frailty (with delayed entry: over every unit drawn, including those that"
    " failed before observation began, the population a delayed-entry life table estimates)"
)
_F_SUPERPOPULATION = (
    "F(t) for units of new enterprises: profiles, classes and covariates by Monte Carlo"
    " (200,000 draws per segment), frailty averaged exactly"
)

#: A synthetic enterprise registers (declares in node.yaml) the segments where it runs at
#: least this many units; real enterprises declare their industries themselves.
_PRIMARY_SHARE = 0.7  # share of an enterprise's units in its primary segment
_DELAYED_SHARE = 0.3  # with delayed_entry: share of units already in service at start
_ENTRY_MAX = 0.5  # entry ages ~ U(0, 0.5 horizon)
_WINDOW = 1.25  # administrative window after entry ~ U(0, 1.25 horizon): install dates
_LOSS_MEAN = 4.0  # loss to follow-up ~ Exp(mean 4 horizons)
_SUPERPOPULATION_DRAWS = 200_000


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate. ``parquet_every`` = k: every k-th enterprise writes Parquet
    (0: all CSV). ``covariate_shift`` = False gives every enterprise the super-population's
    covariate distribution (each unit draws its own profile)."""

    n_enterprises: int = 8
    min_units: int = 2000
    max_units: int = 5000
    seed: int = 0
    delayed_entry: bool = False
    frailty_variance: float = 0.3
    holdout_units: int = 5000
    parquet_every: int = 0
    epsilon_cap: float = 5.0
    delta_cap: float = 1e-5
    covariate_shift: bool = True

    def __post_init__(self) -> None:
        if self.n_enterprises < 1:
            raise ConfigError("n_enterprises must be >= 1")
        if not 10 <= self.min_units <= self.max_units:
            raise ConfigError("need 10 <= min_units <= max_units")
        if self.frailty_variance < 0 or self.holdout_units < 0 or self.parquet_every < 0:
            raise ConfigError("frailty_variance, holdout_units and parquet_every must be >= 0")
        if self.epsilon_cap <= 0 or not 0 < self.delta_cap < 1:
            raise ConfigError("epsilon_cap must be > 0 and delta_cap in (0, 1)")


@dataclass(frozen=True)
class FederationManifest:
    """Where generate_federation put everything."""

    enterprise_dirs: tuple[Path, ...]
    node_configs: tuple[Path, ...]
    truth_path: Path
    holdout_path: Path


@dataclass(frozen=True)
class _Site:
    """One written enterprise: its folder and node.yaml, its sums of true F_i(edges) and
    unit counts per segment, and its record for ground_truth.json."""

    folder: Path
    node_yaml: Path
    f_sums: dict[str, np.ndarray]
    n_drawn: dict[str, int]
    record: dict[str, object]


def generate_federation(
    out_dir: Path, spec: ModelSpec, config: SyntheticConfig
) -> FederationManifest:
    """Write N enterprise folders, ground_truth.json and holdout/units.csv under out_dir."""
    out_dir = Path(out_dir)
    n_seg = len(spec.segments)
    if round(config.min_units * (1 - _PRIMARY_SHARE)) < n_seg - 1:
        raise ConfigError(f"min_units={config.min_units} is too small to reach {n_seg} segments")
    n = config.n_enterprises
    meta, holdout_seq, super_seq, *site_seqs = np.random.SeedSequence(config.seed).spawn(3 + n)
    rng = np.random.default_rng(meta)
    sizes = rng.integers(config.min_units, config.max_units + 1, n)
    frailties = draw_frailty(rng, config.frailty_variance, n)
    profiles = draw_profiles(rng, spec, n)
    sites = [
        _make_site(
            out_dir,
            i,
            np.random.default_rng(site_seqs[i]),
            spec,
            config,
            int(sizes[i]),
            float(frailties[i]),
            {name: v[i : i + 1] for name, v in profiles.items()},
        )
        for i in range(n)
    ]
    holdout_path = out_dir / "holdout" / "units.csv"
    holdout = _draw_holdout(np.random.default_rng(holdout_seq), spec, config)
    atomic_write_text(holdout_path, holdout.to_csv(index=False))
    superpop = superpopulation_failure(
        np.random.default_rng(super_seq),
        spec,
        np.asarray(spec.time_grid.edges),
        frailty_variance=config.frailty_variance,
        draws=_SUPERPOPULATION_DRAWS,
    )
    truth_path = out_dir / "ground_truth.json"
    atomic_write_json(truth_path, _truth_json(spec, config, sites, superpop))
    return FederationManifest(
        tuple(s.folder for s in sites),
        tuple(s.node_yaml for s in sites),
        truth_path,
        holdout_path,
    )


def _make_site(
    out_dir: Path,
    i: int,
    rng: np.random.Generator,
    spec: ModelSpec,
    config: SyntheticConfig,
    size: int,
    frailty: float,
    profile: dict[str, np.ndarray],
) -> _Site:
    """Generate enterprise i (0-based) and write its folder."""
    name = f"enterprise-{i + 1:0{max(2, len(str(config.n_enterprises)))}d}"
    dialect = DIALECTS[i % len(DIALECTS)]
    parquet = config.parquet_every > 0 and (i + 1) % config.parquet_every == 0
    primary = i % len(spec.segments)
    counts = _segment_counts(size, primary, len(spec.segments))
    own = profile if config.covariate_shift else None
    parts, f_sums, n_drawn = [], {}, {}
    for truth, count in zip(segment_truths(spec), counts, strict=True):
        units, f_sums[truth.segment], n_drawn[truth.segment] = _draw_cell(
            rng, spec, truth, count, own, frailty, config.delayed_entry
        )
        parts.append(units)
    units = pd.concat(parts, ignore_index=True)
    units = units.iloc[rng.permutation(len(units))].reset_index(drop=True)
    node_yaml = write_site(
        out_dir / name,
        name,
        units,
        spec,
        SiteExport(dialect, parquet, i + 1, config.delayed_entry),
        privacy={"epsilon": config.epsilon_cap, "delta": config.delta_cap, "accountant": "rdp"},
    )
    record = {
        "name": name,
        "frailty": round(frailty, 10),
        "n_units": len(units),
        "primary_segment": spec.segments[primary],
        "segment_counts": dict(zip(spec.segments, counts, strict=True)),
        "export_dialect": dialect.name,
        "duration_unit": dialect.time_unit,
        "format": "parquet" if parquet else "csv",
        "covariate_profile": _profile_json(spec, own) if own is not None else None,
    }
    return _Site(out_dir / name, node_yaml, f_sums, n_drawn, record)


def _segment_counts(size: int, primary: int, n_segments: int) -> list[int]:
    """~70 % in the primary segment, the rest split evenly (at least one each)."""
    if n_segments == 1:
        return [size]
    rest = size - round(size * _PRIMARY_SHARE)
    others = n_segments - 1
    counts = [rest // others + (k < rest % others) for k in range(others)]
    counts.insert(primary, size - rest)
    return counts


def _draw_cell(
    rng: np.random.Generator,
    spec: ModelSpec,
    truth: SegmentTruth,
    count: int,
    profile: dict[str, np.ndarray] | None,
    frailty: float | np.ndarray,
    delayed: bool,
) -> tuple[pd.DataFrame, np.ndarray, int]:
    """``count`` kept units of one segment; with delayed entry only units with T > entry
    are kept (left truncation). Returns the units, the sum of true F_i at the edges over
    every unit drawn (kept or truncated: the population a delayed-entry life table
    estimates) and how many were drawn."""
    edges = np.asarray(spec.time_grid.edges, dtype=float)
    parts, f_sum, drawn, kept = [], np.zeros(len(edges)), 0, 0
    if count == 0:
        return _draw_units(rng, spec, truth, 0, profile, frailty, delayed)[0], f_sum, 0
    while kept < count:
        need = count - kept
        m = int(need * 1.3) + 16 if delayed else need
        units, eta, z, t = _draw_units(rng, spec, truth, m, profile, frailty, delayed)
        keep = t > units["entry_age"].fillna(0.0).to_numpy()
        cut = min(m, int(np.searchsorted(np.cumsum(keep), need)) + 1)
        f_sum += cumulative_failure(truth, eta[:cut], z[:cut], edges).sum(axis=0)
        drawn += cut
        kept += int(keep[:cut].sum())
        parts.append(units.iloc[:cut][keep[:cut]])
    return pd.concat(parts, ignore_index=True), f_sum, drawn


def _draw_units(
    rng: np.random.Generator,
    spec: ModelSpec,
    truth: SegmentTruth,
    m: int,
    profile: dict[str, np.ndarray] | None,
    frailty: float | np.ndarray,
    delayed: bool,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """m canonical units (grid time unit), with their eta, frailty and true failure time.

    No profile: each unit draws its own (the super-population). Censoring is the same
    for every unit: C = entry + min(U(0, 1.25 horizon), Exp(mean 4 horizons))."""
    horizon = spec.time_grid.horizon
    classes = draw_classes(rng, truth, m)
    own = profile if profile is not None else draw_profiles(rng, spec, m)
    covariates = draw_covariates(rng, spec, own, m)
    eta = linear_predictor(truth, spec, classes, covariates)
    z = np.broadcast_to(np.asarray(frailty, dtype=float), (m,))
    t = draw_failure_times(rng, truth, eta, z)
    entry = np.zeros(m)
    if delayed:
        late = rng.random(m) < _DELAYED_SHARE
        entry = np.where(late, rng.uniform(0, _ENTRY_MAX * horizon, m), 0.0)
    window = rng.uniform(0, _WINDOW * horizon, m)
    lost = rng.exponential(_LOSS_MEAN * horizon, m)
    censor = entry + np.minimum(window, lost)
    units = pd.DataFrame(
        {
            "unit_id": "",
            "segment": truth.segment,
            "equipment_class": classes,
            "duration": np.minimum(t, censor),
            "failed": (t <= censor).astype(np.int64),
            "entry_age": entry if delayed else np.nan,
            **covariates,
        }
    )
    return units, eta, z, t


def _draw_holdout(
    rng: np.random.Generator, spec: ModelSpec, config: SyntheticConfig
) -> pd.DataFrame:
    """Canonical units of new enterprises from the super-population (own profile and
    frailty each, no delayed entry), segments uniform."""
    truths = segment_truths(spec)
    segment_of = rng.integers(len(truths), size=config.holdout_units)
    parts = []
    for k, truth in enumerate(truths):
        m = int((segment_of == k).sum())
        z = draw_frailty(rng, config.frailty_variance, m)
        parts.append(_draw_cell(rng, spec, truth, m, None, z, delayed=False)[0])
    holdout = pd.concat(parts, ignore_index=True)
    holdout = holdout.iloc[rng.permutation(len(holdout))].reset_index(drop=True)
    holdout["unit_id"] = [f"H{k + 1:07d}" for k in range(len(holdout))]
    holdout["duration"] = holdout["duration"].round(6)
    return holdout


def _profile_json(spec: ModelSpec, profile: dict[str, np.ndarray]) -> dict[str, object]:
    """An enterprise's typical numeric values and category probabilities."""
    result: dict[str, object] = {}
    for feature in spec.features:
        value = profile[feature.name][0]
        if isinstance(feature, CategoryFeature):
            result[feature.name] = dict(
                zip(feature.levels, np.round(value, 6).tolist(), strict=True)
            )
        else:
            result[feature.name] = round(float(value), 6)
    return result


def _truth_json(
    spec: ModelSpec, config: SyntheticConfig, sites: list[_Site], superpop: dict[str, np.ndarray]
) -> dict[str, object]:
    """Everything known about the generated federation, for tests and benchmarks."""
    edges = [float(e) for e in spec.time_grid.edges]
    segments = {}
    for truth in segment_truths(spec):
        segment = truth.segment
        n_drawn = sum(s.n_drawn[segment] for s in sites)
        segments[segment] = {
            "edges": edges,
            "F_federation": _rounded(np.sum([s.f_sums[segment] for s in sites], axis=0) / n_drawn),
            "F_superpopulation": _rounded(superpop[segment]),
            "n_units": sum(s.record["segment_counts"][segment] for s in sites),  # type: ignore[index]
            "n_drawn": n_drawn,
            **truth.to_json(),
        }
    return {
        "model": _MODEL,
        "F_federation": _F_FEDERATION,
        "F_superpopulation": _F_SUPERPOPULATION,
        "time_unit": spec.time_grid.unit,
        "edges": edges,
        "covariate_scaling": covariate_scaling(spec),
        "segments": segments,
        "enterprises": [s.record for s in sites],
        "config": dataclasses.asdict(config),
    }


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 10) for v in values]
