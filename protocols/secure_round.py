"""What every securely aggregated round carries: its settings and the record keys.

One secure round (shares, masked input, unmask; keys once per run) sums one int64 vector
per node. The vector's meaning depends on the round: curve histograms
(:mod:`protocols.secure_curve`), model updates (:mod:`protocols.secure_update`) or a
Newton round's GLM statistics (:mod:`models.glm`).

Compatibility rule: keys are never changed in meaning; add new ones.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from flwr.app import ConfigRecord

from protocols.plan import SecureGraph
from secagg.messages import SecAggConfig
from secagg.parameters import graph_parameters

__all__ = [
    "SECAGG_KEY",
    "SECAGG_PAYLOAD_KEY",
    "STATE_KEY",
    "THETA_KEY",
    "VALUE_BOUND",
    "SecureRoundSettings",
    "noise_shares",
    "plan_graph",
]

SECAGG_KEY = "secagg"
SECAGG_PAYLOAD_KEY = "secagg-payload"
STATE_KEY = "fedrisk-secagg-client"
#: The one array of a Newton round's task: the GLM parameters theta (float64).
THETA_KEY = "theta"

#: Largest |value| a node may put in a curve cell or GLM statistic (noised); with 64-bit
#: arithmetic the sum of up to 2**22 nodes cannot wrap. A larger value is an error at the
#: node, never a wrap.
VALUE_BOUND = 2**40


@dataclass(frozen=True)
class SecureRoundSettings:
    """One secure round: this node's index (1..n), n, the threshold t, the field
    (2^modulus_bits), the bound on |value| of each integer a node puts in, the vector
    length, and ``num_shares`` (SecAgg+ neighbourhood size k; None: every node).

    ``num_shares`` was added later: a record without it means None, and None is left
    out of the record (a ConfigRecord holds no None).
    """

    round_id: str
    index: int
    num_nodes: int
    threshold: int
    modulus_bits: int
    bound: int
    vector_length: int
    num_shares: int | None = None

    def secagg_config(self) -> SecAggConfig:
        """The round's secure-aggregation configuration, its graph drawn from the round
        id (the round's public randomness, :mod:`secagg.graph`)."""
        return SecAggConfig(
            num_nodes=self.num_nodes,
            threshold=self.threshold,
            vector_length=self.vector_length,
            modulus_bits=self.modulus_bits,
            num_shares=self.num_shares,
            graph_seed=self.round_id,
        )

    def to_record(self) -> ConfigRecord:
        return ConfigRecord({k: v for k, v in asdict(self).items() if v is not None})

    @classmethod
    def from_record(cls, record: ConfigRecord) -> SecureRoundSettings:
        data = dict(record)
        required = {f for f in cls.__dataclass_fields__} - set(_OPTIONAL)
        missing = sorted(required - set(data))
        if missing:
            raise ValueError(f"secure-aggregation settings: missing key(s) {missing}")
        present = [k for k in cls.__dataclass_fields__ if k in data]
        return cls(**{k: data[k] for k in present})  # type: ignore[arg-type]


_OPTIONAL = ("num_shares",)


def noise_shares(release_fraction: float | None, n_nodes: int, threshold: int) -> int:
    """The fewest inputs a released secure sum over ``n_nodes`` may hold, which every node
    plans its noise share for: the threshold t, or max(t, ceil(f n)) with the plan's
    ``release_fraction`` f (the coordinator then releases nothing with fewer survivors).

    >>> noise_shares(None, 1000, 56), noise_shares(0.9, 1000, 56), noise_shares(0.5, 4, 3)
    (56, 900, 3)
    """
    if release_fraction is None:
        return threshold
    return max(threshold, math.ceil(release_fraction * n_nodes - 1e-9))


def plan_graph(graph: SecureGraph | None, n_nodes: int) -> tuple[int | None, int] | None:
    """(k, t) of a round of ``n_nodes`` under the plan's ``secure_graph`` (k None: the
    complete graph), or None when the plan sets none. ConfigError when no k meets it."""
    if graph is None:
        return None
    chosen = graph_parameters(
        n_nodes,
        corrupt=graph.corrupt_fraction,
        dropout=graph.dropout_fraction,
        failure=graph.failure_probability,
    )
    k = chosen.num_shares if chosen.num_shares < n_nodes else None
    return k, chosen.threshold
