"""What a securely aggregated curve round carries: settings, and the vector layout.

The vector each node masks is, for S segments and J intervals::

    [ exits (S*J*2, row-major as (segment, interval, failed|censored)) |
      survivors (S) | present (S) ]

``present[s]`` is 1 when the node's own *noised* unit total in segment s reaches
``min_units_per_enterprise`` (post-processing of its DP release, so free of privacy
cost); its sum is the number of contributing enterprises the publication rules need.

Compatibility rule: keys and layout are never changed in meaning; add new ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from flwr.app import ConfigRecord

from models.histogram import ExitCounts
from protocols.model_spec import ModelSpec

__all__ = [
    "SECAGG_KEY",
    "SECAGG_PAYLOAD_KEY",
    "STATE_KEY",
    "SecureCurveSettings",
    "curve_vector",
    "decode_curve_vector",
]

SECAGG_KEY = "secagg"
SECAGG_PAYLOAD_KEY = "secagg-payload"
STATE_KEY = "fedrisk-secagg-client"


@dataclass(frozen=True)
class SecureCurveSettings:
    """One secure round: this node's index (1..n), n, threshold, field and value bound."""

    round_id: str
    index: int
    num_nodes: int
    threshold: int
    modulus_bits: int
    bound: int
    min_units_per_enterprise: float

    def vector_length(self, spec: ModelSpec) -> int:
        segments, intervals = len(spec.segments), spec.time_grid.n_intervals
        return segments * intervals * 2 + 2 * segments

    def to_record(self) -> ConfigRecord:
        return ConfigRecord(asdict(self))

    @classmethod
    def from_record(cls, record: ConfigRecord) -> SecureCurveSettings:
        data = dict(record)
        missing = sorted({f for f in cls.__dataclass_fields__} - set(data))
        if missing:
            raise ValueError(f"secure-aggregation settings: missing key(s) {missing}")
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})  # type: ignore[arg-type]


def curve_vector(exits: np.ndarray, survivors: np.ndarray, min_units: float) -> np.ndarray:
    """A node's int64 vector in the layout above, from its noised exits and survivors."""
    present = (exits.sum(axis=(1, 2)) + survivors >= min_units).astype(np.int64)
    return np.concatenate([exits.ravel(), survivors, present]).astype(np.int64)


def decode_curve_vector(total: np.ndarray, spec: ModelSpec) -> tuple[ExitCounts, np.ndarray]:
    """Summed vector -> (summed histograms, contributing enterprises per segment)."""
    segments, intervals = len(spec.segments), spec.time_grid.n_intervals
    cut = segments * intervals * 2
    exits = total[:cut].reshape(segments, intervals, 2).astype(np.int64)
    survivors = total[cut : cut + segments].astype(np.int64)
    present = total[cut + segments : cut + 2 * segments].astype(np.int64)
    return ExitCounts(exits=exits, entries=None, survivors=survivors), present
