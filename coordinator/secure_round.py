"""A securely aggregated curve round: four Flower exchanges, after which the coordinator
holds only the sum of the nodes' noised histograms.

Stages (message types ``query.sa_keys``, ``query.sa_shares``, ``query.curve``,
``query.sa_unmask``): collect public keys, route encrypted Shamir shares, collect masked
vectors, collect the shares that remove the masks. A node that fails after sharing keys
is a dropout: its pairwise masks are cancelled from the others' shares, and the sum is
exactly that of the survivors. Fewer than ``threshold`` at any stage: SecAggError (a
RunFailedError), and nothing is released. The cryptography lives in protocols/secagg*.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from flwr.app import ConfigRecord, RecordDict

from models.histogram import ExitCounts
from protocols.messages import ARRAYS_KEY, CURVE_TASK, TASK_KEY, TaskHeader
from protocols.model_spec import ModelSpec
from protocols.quantization import IntegerCodec
from protocols.secagg_messages import (
    SecAggConfig,
    encrypted_shares_from_dict,
    encrypted_shares_to_dict,
    key_directory_to_dict,
    public_keys_from_dict,
    unmask_request_to_dict,
    unmask_response_from_dict,
)
from protocols.secagg_server import SecAggServer
from protocols.secure_curve import (
    SECAGG_KEY,
    SECAGG_PAYLOAD_KEY,
    SecureCurveSettings,
    decode_curve_vector,
)

__all__ = ["VALUE_BOUND", "MODULUS_BITS", "SecureSum", "RoundRunner", "run_secure_curve_round"]

#: Largest |count| a node may put in any cell (noised); with 64-bit arithmetic the sum of
#: up to 2**22 nodes cannot wrap. A larger value is an error at the node, never a wrap.
VALUE_BOUND = 2**40
MODULUS_BITS = 64

#: Runs one exchange: (stage, message type, nodes, content per node) -> {node: ok reply},
#: recording refusals and failures; given by the Coordinator.
RoundRunner = Callable[[str, str, list[int], Callable[[int], RecordDict]], dict[int, RecordDict]]


@dataclass(frozen=True)
class SecureSum:
    """What the round released: summed histograms and contributors per segment."""

    counts: ExitCounts
    contributors: np.ndarray
    survivor_ids: frozenset[int]
    dropped_ids: frozenset[int]

    @property
    def survivors(self) -> int:
        return len(self.survivor_ids)

    @property
    def dropped(self) -> int:
        return len(self.dropped_ids)


def _payload(content: RecordDict) -> dict:
    return dict(content.config_records[SECAGG_PAYLOAD_KEY])


def run_secure_curve_round(
    exchange: RoundRunner,
    node_ids: list[int],
    *,
    header: TaskHeader,
    spec: ModelSpec,
    threshold: int | None,
    min_units_per_enterprise: float,
) -> SecureSum:
    """Run the four stages over ``node_ids`` through ``exchange``; return the secure sum."""
    index = {nid: i + 1 for i, nid in enumerate(sorted(node_ids))}
    n = len(index)
    t = threshold if threshold is not None else n // 2 + 1
    round_id = f"{header.run_id}:{header.round}"

    def settings(nid: int) -> ConfigRecord:
        return SecureCurveSettings(
            round_id=round_id,
            index=index[nid],
            num_nodes=n,
            threshold=t,
            modulus_bits=MODULUS_BITS,
            bound=VALUE_BOUND,
            min_units_per_enterprise=min_units_per_enterprise,
        ).to_record()

    def content(nid: int, payload: dict | None = None) -> RecordDict:
        records = RecordDict({TASK_KEY: header.to_record(), SECAGG_KEY: settings(nid)})
        if payload is not None:
            records[SECAGG_PAYLOAD_KEY] = ConfigRecord(payload)
        return records

    length = SecureCurveSettings(round_id, 1, n, t, MODULUS_BITS, VALUE_BOUND, 0).vector_length(
        spec
    )
    server = SecAggServer(SecAggConfig(n, t, length, MODULUS_BITS), round_id)
    keys = exchange("secagg-keys", "query.sa_keys", sorted(index), content)
    directory = server.collect_public_keys(
        [
            pk
            for nid, c in keys.items()
            if (pk := public_keys_from_dict(_payload(c))).node_id == index[nid]
        ]
    )
    wire_directory = key_directory_to_dict(directory)
    holders = [nid for nid in keys if index[nid] in directory]
    shares = exchange(
        "secagg-shares",
        "query.sa_shares",
        holders,
        lambda nid: content(nid, wire_directory),
    )
    inbox = server.route_shares(
        {index[nid]: encrypted_shares_from_dict(_payload(c)) for nid, c in shares.items()}
    )
    sharers = [nid for nid in shares if index[nid] in inbox]
    masked_replies = exchange(
        "curve",
        CURVE_TASK,
        sharers,
        lambda nid: content(nid, encrypted_shares_to_dict(inbox.get(index[nid], {}))),
    )
    masked = {}
    for nid, c in masked_replies.items():
        vector = c.array_records[ARRAYS_KEY]["masked"].numpy()
        if nid in sharers and vector.dtype == np.uint64 and vector.shape == (length,):
            masked[index[nid]] = vector
    request = server.collect_masked_inputs(masked)
    wire_request = unmask_request_to_dict(request)
    by_index = {index[nid]: nid for nid in index}
    survivors = [by_index[i] for i in sorted(request.survivors)]
    answers = exchange(
        "secagg-unmask",
        "query.sa_unmask",
        survivors,
        lambda nid: content(nid, wire_request),
    )
    responses = [
        r
        for nid, c in answers.items()
        if (r := unmask_response_from_dict(_payload(c))).node_id == index[nid]
    ]
    field = server.unmask(responses)
    total = IntegerCodec(MODULUS_BITS, n, VALUE_BOUND).decode_sum(field)
    counts, contributors = decode_curve_vector(total, spec)
    return SecureSum(
        counts,
        contributors,
        frozenset(by_index[i] for i in request.survivors),
        frozenset(by_index[i] for i in request.dropped),
    )
