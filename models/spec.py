"""The model spec the coordinator publishes (time grid, segments, features and bounds) and
the settings the hazard model is trained with.

Compatibility rule: fields are never removed and their meaning never changes, because
plans and ledgers that name a spec hash are replayed later. Add fields with defaults.

Nothing in a spec may be derived from one site's data (local min/max or quantiles): the
bounds are public, chosen by the broker, and every node scales with them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from common.config_file import StrictModel

__all__ = [
    "UNIT_DAYS",
    "TimeGrid",
    "NumericFeature",
    "CategoryFeature",
    "ModelSpec",
    "TrainingSettings",
]


#: Calendar time units a grid may count in, finest first, with their length in days (a
#: month is a twelfth of a Julian year).
UNIT_DAYS: dict[str, float] = {
    "hours": 1.0 / 24.0,
    "days": 1.0,
    "weeks": 7.0,
    "months": 30.4375,
    "years": 365.25,
}


class TimeGrid(StrictModel):
    """Interval edges 0 = t_0 < t_1 < ... < t_J; interval j (1-based) is (t_{j-1}, t_j].

    A unit observed to ``duration`` d falls in interval j with t_{j-1} < d <= t_j;
    d = 0 falls in interval 1 and d > t_J is administratively censored at t_J.
    """

    unit: str = "months"
    edges: tuple[float, ...]

    @model_validator(mode="after")
    def _check_edges(self) -> TimeGrid:
        if len(self.edges) < 2:
            raise ValueError("edges: need at least two edges")
        if self.edges[0] != 0.0:
            raise ValueError("edges: the first edge must be 0")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError("edges: must be strictly increasing")
        return self

    @property
    def n_intervals(self) -> int:
        return len(self.edges) - 1

    @property
    def horizon(self) -> float:
        return self.edges[-1]

    @property
    def days_per_unit(self) -> float | None:
        """Days in one unit of the grid ("month" or "months": 30.4375); None for a unit
        that is not a calendar unit (e.g. operating cycles)."""
        unit = self.unit.strip().lower()
        return UNIT_DAYS.get(unit if unit.endswith("s") else f"{unit}s")

    def interval_index(self, durations: np.ndarray) -> np.ndarray:
        """0-based interval index of each duration (clipped to the last interval)."""
        edges = np.asarray(self.edges, dtype=float)
        idx = np.searchsorted(edges, np.asarray(durations, dtype=float), side="left") - 1
        return np.clip(idx, 0, self.n_intervals - 1).astype(np.int64)

    def exit_status(self, durations: np.ndarray, failed: np.ndarray) -> np.ndarray:
        """1 where the unit failed within the grid, 0 where censored (incl. past t_J)."""
        durations = np.asarray(durations, dtype=float)
        return ((np.asarray(failed) == 1) & (durations <= self.horizon)).astype(np.int64)


class NumericFeature(StrictModel):
    """A numeric covariate scaled to [0, 1] with public bounds; values outside are clipped."""

    name: str
    kind: Literal["numeric"] = "numeric"
    lower: float
    upper: float

    @model_validator(mode="after")
    def _check_bounds(self) -> NumericFeature:
        if not self.upper > self.lower:
            raise ValueError(f"feature {self.name}: upper must be > lower")
        return self

    @property
    def width(self) -> int:
        return 1


class CategoryFeature(StrictModel):
    """A categorical covariate, one-hot over its published levels."""

    name: str
    kind: Literal["category"] = "category"
    levels: tuple[str, ...]

    @property
    def width(self) -> int:
        return len(self.levels)


class ModelSpec(StrictModel):
    """What every node needs to shape its data identically: grid, segments, features."""

    time_grid: TimeGrid
    segments: tuple[str, ...]
    equipment_classes: tuple[str, ...]
    features: tuple[Annotated[NumericFeature | CategoryFeature, Field(discriminator="kind")], ...]
    #: Hidden layers of the risk score; empty = linear (the GLM hazard model that
    #: ``training.method: newton`` fits). Non-empty needs ``dp_sgd``.
    hidden_units: tuple[int, ...] = ()

    @model_validator(mode="after")
    def _check_names(self) -> ModelSpec:
        names = [f.name for f in self.features]
        reserved = {"unit_id", "segment", "equipment_class", "duration", "failed", "entry_age"}
        clash = sorted(set(names) & reserved)
        if clash:
            raise ValueError(f"features: names reserved for the data contract: {clash}")
        if len(set(names)) != len(names):
            raise ValueError("features: duplicate feature names")
        if len(set(self.segments)) != len(self.segments) or not self.segments:
            raise ValueError("segments: must be a non-empty list of distinct names")
        return self

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def input_width(self) -> int:
        """Width of the encoded input: segment + class one-hots, then the features."""
        return (
            len(self.segments) + len(self.equipment_classes) + sum(f.width for f in self.features)
        )

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical JSON form; plans and ledgers name the spec by it."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class TrainingSettings(StrictModel):
    """Federated training of the hazard model, by ``method``:

    - ``newton``: the GLM hazard model (``model_spec.hidden_units: []``) fitted by
      ``rounds`` Newton steps on securely summed, clipped per-unit gradients and
      information matrices, noised ONCE in the sum (:class:`NewtonSettings`); the noise
      does not grow with the number of enterprises.
    - ``dp_sgd``: rounds of local DP-SGD (Opacus) at each node, combined by FedAvgM (FedAvg
      with server momentum, Hsu et al. 2019; momentum 0 is plain FedAvg); each node adds
      its own noise, so the aggregate carries sqrt(n) times one release's noise. Needed for
      a neural risk score (``hidden_units``) and for enterprise-level DP.

    ``local_epochs`` .. ``server_momentum`` apply to ``dp_sgd`` only. Every default that
    touches utility was chosen by ``bench/tuning.py`` on real data (README, "The model on
    real data"): SGD, not Adam, whose per-coordinate normalisation walks noise at lr per step.
    """

    method: Literal["newton", "dp_sgd"] = "newton"
    rounds: int = Field(10, ge=1, le=1000)
    local_epochs: float = Field(2.0, gt=0, le=100)
    batch_size: int = Field(128, ge=1)
    learning_rate: float = Field(0.3, gt=0)
    optimizer: Literal["sgd", "adam"] = "sgd"
    server_learning_rate: float = Field(1.0, gt=0)
    server_momentum: float = Field(0.5, ge=0, lt=1)
    seed: int = 0
