"""The true failure model behind the synthetic factories: Weibull proportional hazards.

For a unit in segment s with covariates x in an enterprise with frailty z,

    S(t | x, z) = exp(-z * (t / lambda_s) ** k_s * exp(eta)),
    eta = class_effect[class] + sum_f beta_s[f] * (x_f - centre_f) / per_f + category effects,

and z ~ Gamma(mean 1, variance v) is shared by all units of one enterprise. Averaging
over z gives the closed form E_z[S] = (1 + v * H) ** (-1 / v) with H the conditional
cumulative hazard at z = 1 (the Gamma Laplace transform). Everything here is a pure
function of the model spec, so the truth can be rebuilt from the spec alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.spec import ModelSpec, NumericFeature

__all__ = [
    "SegmentTruth",
    "segment_truths",
    "draw_profiles",
    "draw_covariates",
    "linear_predictor",
    "baseline_cumulative_hazard",
    "cumulative_failure",
    "marginal_cumulative_failure",
    "draw_failure_times",
    "oracle_failure_probability",
    "covariate_scaling",
    "draw_frailty",
    "draw_classes",
    "superpopulation_failure",
]

#: Target F(horizon) of a reference unit (covariates at centre, z = 1), Weibull shape and
#: log hazard ratios per segment, cycled over the spec's segments by position.
_ARCHETYPES: tuple[dict[str, float], ...] = (
    {
        "f_ref": 0.55,
        "shape": 1.5,
        "load_pct": 0.65,
        "ambient_temp_c": 0.80,
        "maintenance_interval_days": 0.60,
        "vendor_origin=imported": -0.20,
    },
    {
        "f_ref": 0.72,
        "shape": 1.9,
        "load_pct": 0.90,
        "ambient_temp_c": 0.55,
        "maintenance_interval_days": 0.50,
        "vendor_origin=imported": 0.20,
    },
    {
        "f_ref": 0.45,
        "shape": 1.2,
        "load_pct": 0.70,
        "ambient_temp_c": 0.35,
        "maintenance_interval_days": 0.85,
        "vendor_origin=imported": -0.15,
    },
)
#: Equipment-class log hazard ratios span [-_CLASS_SPREAD, +_CLASS_SPREAD] within a segment.
_CLASS_SPREAD = 0.5
_ETA_BINS = 4096


@dataclass(frozen=True)
class _NumericDesign:
    """How a numeric covariate is drawn and scaled: x = (value - centre) / per.

    An enterprise's typical value is U(typical_low, typical_high); units spread around it
    by ``spread`` (additive sd, or multiplicative log-sd when ``multiplicative``).
    """

    centre: float
    per: float
    typical_low: float
    typical_high: float
    spread: float
    multiplicative: bool
    decimals: int


_KNOWN_NUMERIC: dict[str, _NumericDesign] = {
    "load_pct": _NumericDesign(62.5, 15.0, 45.0, 80.0, 10.0, False, 1),
    "ambient_temp_c": _NumericDesign(26.0, 6.0, 18.0, 34.0, 3.0, False, 1),
    "maintenance_interval_days": _NumericDesign(140.0, 70.0, 45.0, 240.0, 0.25, True, 0),
}


@dataclass(frozen=True)
class SegmentTruth:
    """True Weibull PH model of one segment (time in the grid's unit).

    ``coefficients`` are log hazard ratios: per ``per`` units of a numeric feature
    (see ``scaling``), or ``"name=level"`` against the first level of a category.
    """

    segment: str
    shape: float
    scale: float
    classes: tuple[str, ...]
    class_effects: tuple[float, ...]
    coefficients: dict[str, float]

    def to_json(self) -> dict[str, object]:
        return {
            "weibull_shape": self.shape,
            "weibull_scale": self.scale,
            "class_effects": dict(zip(self.classes, self.class_effects, strict=True)),
            "coefficients": dict(self.coefficients),
        }


def _numeric_design(feature: NumericFeature) -> _NumericDesign:
    """The known design of a demo feature, or a neutral one inside the public bounds."""
    if feature.name in _KNOWN_NUMERIC:
        return _KNOWN_NUMERIC[feature.name]
    width = feature.upper - feature.lower
    middle = feature.lower + width / 2
    return _NumericDesign(
        middle, width / 4, middle - width / 4, middle + width / 4, width / 8, False, 2
    )


def _segment_classes(spec: ModelSpec) -> list[tuple[str, ...]]:
    """Contiguous blocks of equipment classes per segment (9 classes, 3 segments: 3 each)."""
    n_classes = len(spec.equipment_classes)
    blocks = np.array_split(np.arange(n_classes), len(spec.segments))
    return [
        tuple(spec.equipment_classes[i] for i in block)
        if len(block)
        else (spec.equipment_classes[s % n_classes],)
        for s, block in enumerate(blocks)
    ]


def covariate_scaling(spec: ModelSpec) -> dict[str, dict[str, float]]:
    """centre and per of each numeric feature: x = (value - centre) / per in eta."""
    return {
        f.name: {"centre": _numeric_design(f).centre, "per": _numeric_design(f).per}
        for f in spec.features
        if isinstance(f, NumericFeature)
    }


def segment_truths(spec: ModelSpec) -> tuple[SegmentTruth, ...]:
    """The true model of every segment, in spec order; a pure function of the spec."""
    horizon = spec.time_grid.horizon
    truths = []
    for position, (segment, classes) in enumerate(
        zip(spec.segments, _segment_classes(spec), strict=True)
    ):
        arch = _ARCHETYPES[position % len(_ARCHETYPES)]
        shape = arch["shape"]
        scale = horizon / (-math.log(1.0 - arch["f_ref"])) ** (1.0 / shape)
        effects = np.linspace(-_CLASS_SPREAD, _CLASS_SPREAD, len(classes)) * (len(classes) > 1)
        coefficients = {}
        for feature in spec.features:
            if isinstance(feature, NumericFeature):
                coefficients[feature.name] = arch.get(feature.name, 0.0)
            else:
                for level in feature.levels[1:]:
                    key = f"{feature.name}={level}"
                    coefficients[key] = arch.get(key, 0.0)
        truths.append(
            SegmentTruth(
                segment,
                shape,
                scale,
                classes,
                tuple(round(float(e), 6) for e in effects),
                coefficients,
            )
        )
    return tuple(truths)


def draw_profiles(rng: np.random.Generator, spec: ModelSpec, n: int) -> dict[str, np.ndarray]:
    """n enterprise covariate profiles: typical value per numeric feature, level
    probabilities (n, levels) per category feature (Dirichlet(2, ..., 2))."""
    profiles: dict[str, np.ndarray] = {}
    for feature in spec.features:
        if isinstance(feature, NumericFeature):
            design = _numeric_design(feature)
            profiles[feature.name] = rng.uniform(design.typical_low, design.typical_high, n)
        else:
            profiles[feature.name] = rng.dirichlet(np.full(len(feature.levels), 2.0), n)
    return profiles


def draw_covariates(
    rng: np.random.Generator, spec: ModelSpec, profiles: dict[str, np.ndarray], n: int
) -> dict[str, np.ndarray]:
    """n units' covariates around their profiles (one profile, or one per unit),
    clipped to the public bounds and rounded as a plant would record them."""
    values: dict[str, np.ndarray] = {}
    for feature in spec.features:
        profile = profiles[feature.name]
        if isinstance(feature, NumericFeature):
            design = _numeric_design(feature)
            noise = rng.standard_normal(n) * design.spread
            raw = profile * np.exp(noise) if design.multiplicative else profile + noise
            clipped = np.clip(raw, feature.lower, feature.upper)
            values[feature.name] = np.round(clipped, design.decimals)
        else:
            cumulative = np.cumsum(np.broadcast_to(profile, (n, len(feature.levels))), axis=1)
            index = (rng.random(n)[:, None] > cumulative[:, :-1]).sum(axis=1)
            values[feature.name] = np.asarray(feature.levels, dtype=object)[index]
    return values


def linear_predictor(
    truth: SegmentTruth, spec: ModelSpec, class_names: np.ndarray, covariates: dict[str, np.ndarray]
) -> np.ndarray:
    """eta = class effect + beta . x for each unit (log hazard ratio against reference)."""
    position = pd.Index(truth.classes).get_indexer(np.asarray(class_names, dtype=object))
    eta = np.append(np.asarray(truth.class_effects, dtype=float), 0.0)[position]
    for feature in spec.features:
        column = covariates[feature.name]
        if isinstance(feature, NumericFeature):
            design = _numeric_design(feature)
            x = (np.asarray(column, dtype=float) - design.centre) / design.per
            eta += truth.coefficients[feature.name] * x
        else:
            for level in feature.levels[1:]:
                beta = truth.coefficients[f"{feature.name}={level}"]
                eta += beta * (np.asarray(column) == level)
    return eta


def draw_frailty(rng: np.random.Generator, variance: float, n: int) -> np.ndarray:
    """z ~ Gamma(shape 1/v, scale v): mean 1, variance v; v = 0 gives z = 1."""
    return np.ones(n) if variance == 0 else rng.gamma(1.0 / variance, variance, n)


def draw_classes(rng: np.random.Generator, truth: SegmentTruth, n: int) -> np.ndarray:
    """n equipment classes, uniform over the segment's classes."""
    return np.asarray(truth.classes, dtype=object)[rng.integers(len(truth.classes), size=n)]


def baseline_cumulative_hazard(truth: SegmentTruth, times: np.ndarray) -> np.ndarray:
    """H0(t) = (t / lambda) ** k."""
    return (np.asarray(times, dtype=float) / truth.scale) ** truth.shape


def cumulative_failure(
    truth: SegmentTruth, eta: np.ndarray, frailty: np.ndarray | float, times: np.ndarray
) -> np.ndarray:
    """F_i(t) = 1 - exp(-z H0(t) e^eta), shape (units, times)."""
    risk = np.asarray(frailty, dtype=float) * np.exp(eta)
    return -np.expm1(
        -np.multiply.outer(
            np.broadcast_to(risk, np.shape(eta)), baseline_cumulative_hazard(truth, times)
        )
    )


def marginal_cumulative_failure(
    truth: SegmentTruth, eta: np.ndarray, times: np.ndarray, frailty_variance: float
) -> np.ndarray:
    """F_i(t) averaged over z ~ Gamma(1, v): 1 - (1 + v H)^(-1/v); v = 0 gives 1 - exp(-H)."""
    hazard = np.multiply.outer(np.exp(eta), baseline_cumulative_hazard(truth, times))
    if frailty_variance == 0:
        return -np.expm1(-hazard)
    return -np.expm1(-np.log1p(frailty_variance * hazard) / frailty_variance)


def draw_failure_times(
    rng: np.random.Generator, truth: SegmentTruth, eta: np.ndarray, frailty: np.ndarray | float
) -> np.ndarray:
    """Inverse transform: T = lambda * (E / (z e^eta))^(1/k), E ~ Exp(1)."""
    risk = np.asarray(frailty, dtype=float) * np.exp(eta)
    with np.errstate(divide="ignore"):
        return truth.scale * (rng.standard_exponential(np.shape(eta)) / risk) ** (1.0 / truth.shape)


def oracle_failure_probability(
    units: pd.DataFrame, spec: ModelSpec, times: np.ndarray, *, frailty_variance: float
) -> np.ndarray:
    """The best possible prediction F(t | x) for canonical units of an unknown enterprise
    (frailty averaged out), shape (units, times): the yardstick for C-index / Brier."""
    result = np.full((len(units), len(np.atleast_1d(times))), np.nan)
    for truth in segment_truths(spec):
        rows = np.flatnonzero(units["segment"].to_numpy() == truth.segment)
        if rows.size == 0:
            continue
        part = units.iloc[rows]
        covariates = {f.name: part[f.name].to_numpy() for f in spec.features}
        eta = linear_predictor(truth, spec, part["equipment_class"].to_numpy(), covariates)
        result[rows] = marginal_cumulative_failure(
            truth, eta, np.atleast_1d(times), frailty_variance
        )
    return result


def superpopulation_failure(
    rng: np.random.Generator,
    spec: ModelSpec,
    times: np.ndarray,
    *,
    frailty_variance: float,
    draws: int = 200_000,
) -> dict[str, np.ndarray]:
    """F(t) per segment for units of new enterprises: profile, class and covariates by
    Monte Carlo (``draws`` per segment), frailty exactly (Gamma Laplace transform)."""
    result = {}
    for truth in segment_truths(spec):
        classes = draw_classes(rng, truth, draws)
        covariates = draw_covariates(rng, spec, draw_profiles(rng, spec, draws), draws)
        eta = linear_predictor(truth, spec, classes, covariates)
        # the mean of a smooth function of eta, over a fine histogram (error ~1e-7)
        counts, bounds = np.histogram(eta, bins=_ETA_BINS)
        centres = (bounds[:-1] + bounds[1:]) / 2
        result[truth.segment] = (
            counts
            @ marginal_cumulative_failure(
                truth, centres, np.asarray(times, dtype=float), frailty_variance
            )
            / draws
        )
    return result
