"""Canaries of a one-run privacy audit: worst-case units, each in or out by a secret coin.

The auditor adds to the federation's model spec what makes each canary stand alone, so
the release can say as much about it as any unit's can:

- canary segments (``canary_00`` ...) with one canary failing in each interval, so every
  canary owns a cell of the exit histogram that no other unit fills: the released hazard
  of that cell is its curve score;
- a category feature ``audit_canary`` with one level per canary (``no_canary`` for every other
  unit, and ``c_reference`` for none at all), so the model has a coefficient that only that
  canary moves: how far it moved from the coefficient of the level nobody has is its
  model score.

The DP guarantee is per unit whatever the spec (every unit's contribution is clipped to
the same public bounds), so a spec built this way audits the plan's mechanisms as they
are; only what the release can reveal about one unit is made as large as it can be.
Covariates sit at the spec's public centres, where the clipped gradient puts the most
of its norm on the canary's own coefficient. Canaries fail at the middle of their interval.

The coin flips stay with the auditor (:func:`save_plant`, mode 0600): the federation
only ever sees the canaries that were flipped in, as the data of canary enterprises.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.atomic import atomic_write_text
from common.errors import ConfigError
from models.spec import CategoryFeature, ModelSpec, NumericFeature

__all__ = [
    "CANARY_FEATURE",
    "CANARY_SEGMENT_PREFIX",
    "NO_CANARY",
    "REFERENCE_LEVEL",
    "Canary",
    "CanaryPlant",
    "audit_spec",
    "plant_canaries",
    "canary_units",
    "with_no_canary",
    "without_canaries",
    "save_plant",
    "load_plant",
]

#: The audit-only category feature that gives each canary its own coefficient.
CANARY_FEATURE = "audit_canary"
#: Its level for every unit that is not a canary.
NO_CANARY = "no_canary"  # not "none": ingest reads that as a missing value
#: A level no unit has: the model's coefficient for a canary that is not in the data.
REFERENCE_LEVEL = "c_reference"
#: Canary segments are named this plus a two-digit number.
CANARY_SEGMENT_PREFIX = "canary_"
_PLANT_VERSION = 1


@dataclass(frozen=True)
class Canary:
    """Canary ``index``: fails in ``interval`` (1-based) of ``segment``; its own ``level``
    of :data:`CANARY_FEATURE`."""

    index: int
    segment: str
    interval: int
    level: str


@dataclass(frozen=True, eq=False)
class CanaryPlant:
    """The audit spec, the canaries and the secret coins (``included[i]``: canary i is in
    the federation's data)."""

    spec: ModelSpec
    canaries: tuple[Canary, ...]
    included: np.ndarray

    @property
    def m(self) -> int:
        return len(self.canaries)


def audit_spec(spec: ModelSpec, m: int) -> ModelSpec:
    """``spec`` with the canary segments and the canary feature for ``m`` canaries."""
    if m < 2:
        raise ConfigError(f"a one-run audit needs at least 2 canaries, got {m}")
    if CANARY_FEATURE in spec.feature_names or any(
        s.startswith(CANARY_SEGMENT_PREFIX) for s in spec.segments
    ):
        raise ConfigError(f"the spec already has canaries ({CANARY_FEATURE} or canary_ segments)")
    n_segments = math.ceil(m / spec.time_grid.n_intervals)
    segments = tuple(f"{CANARY_SEGMENT_PREFIX}{k:02d}" for k in range(n_segments))
    levels = (NO_CANARY, REFERENCE_LEVEL, *(_level(i) for i in range(m)))
    feature = CategoryFeature(name=CANARY_FEATURE, levels=levels)
    return spec.model_copy(
        update={"segments": (*spec.segments, *segments), "features": (*spec.features, feature)}
    )


def plant_canaries(spec: ModelSpec, m: int, *, seed: int | None = None) -> CanaryPlant:
    """``m`` canaries for the federation of ``spec``, each included with probability 1/2
    (``seed`` None: coins from the OS's entropy, as an audit must; a seed for tests)."""
    planted = audit_spec(spec, m)
    n_intervals = spec.time_grid.n_intervals
    canaries = tuple(
        Canary(
            index=i,
            segment=f"{CANARY_SEGMENT_PREFIX}{i // n_intervals:02d}",
            interval=i % n_intervals + 1,
            level=_level(i),
        )
        for i in range(m)
    )
    included = np.random.default_rng(seed).random(m) < 0.5
    return CanaryPlant(spec=planted, canaries=canaries, included=included)


def canary_units(plant: CanaryPlant, *, only_included: bool = True) -> pd.DataFrame:
    """The canaries as units of the factory data contract (canonical columns and the
    audit spec's features): the included ones, or all of them (to score)."""
    spec, edges = plant.spec, plant.spec.time_grid.edges
    chosen = [c for c in plant.canaries if plant.included[c.index] or not only_included]
    frame = pd.DataFrame(
        {
            "unit_id": [f"canary-{c.index:05d}" for c in chosen],
            "segment": [c.segment for c in chosen],
            "equipment_class": spec.equipment_classes[0],
            "duration": [(edges[c.interval - 1] + edges[c.interval]) / 2 for c in chosen],
            "failed": np.ones(len(chosen), dtype=np.int64),
            "entry_age": np.full(len(chosen), np.nan),
        }
    )
    for feature in spec.features:
        if feature.name == CANARY_FEATURE:
            frame[feature.name] = [c.level for c in chosen]
        elif isinstance(feature, NumericFeature):
            frame[feature.name] = (feature.lower + feature.upper) / 2
        else:
            frame[feature.name] = feature.levels[0]
    return frame


def with_no_canary(units: pd.DataFrame) -> pd.DataFrame:
    """Ordinary units with the audit feature set to :data:`NO_CANARY`."""
    return units.assign(**{CANARY_FEATURE: NO_CANARY})


def without_canaries(spec: ModelSpec) -> ModelSpec:
    """The federation's own spec: ``spec`` without the canary segments and feature."""
    return spec.model_copy(
        update={
            "segments": tuple(s for s in spec.segments if not s.startswith(CANARY_SEGMENT_PREFIX)),
            "features": tuple(f for f in spec.features if f.name != CANARY_FEATURE),
        }
    )


def save_plant(plant: CanaryPlant, path: Path) -> None:
    """The plant, coins included, as JSON readable by its owner only (0600)."""
    document = {
        "version": _PLANT_VERSION,
        "spec": plant.spec.model_dump(mode="json"),
        "canaries": [
            {"index": c.index, "segment": c.segment, "interval": c.interval, "level": c.level}
            for c in plant.canaries
        ],
        "included": [bool(x) for x in plant.included],
    }
    atomic_write_text(Path(path), json.dumps(document, indent=1), mode=0o600)


def load_plant(path: Path) -> CanaryPlant:
    """A plant written by :func:`save_plant`; ConfigError naming the file otherwise."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("version") != _PLANT_VERSION:
            raise ValueError(f"unknown version {document.get('version')!r}")
        canaries = tuple(Canary(**c) for c in document["canaries"])
        included = np.array(document["included"], dtype=bool)
        spec = ModelSpec.model_validate(document["spec"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{path}: not a canary plant: {err}") from None
    if len(included) != len(canaries):
        raise ConfigError(f"{path}: {len(canaries)} canaries but {len(included)} coins")
    return CanaryPlant(spec=spec, canaries=canaries, included=included)


def _level(index: int) -> str:
    return f"c{index:05d}"
