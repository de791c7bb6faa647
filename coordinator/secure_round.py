"""A securely aggregated round: three Flower exchanges (four when keys are set up), after
which the coordinator holds only the sum of the nodes' vectors (noised histograms, or model
updates).

Stages (message types ``query.sa_keys``, ``query.sa_shares``, then the round's own task
``query.curve`` or ``train``, then ``query.sa_unmask``): collect public keys (once per
run: the run's key book, :mod:`secagg.run_keys`, holds every node's keys for the rounds
ahead), route encrypted Shamir shares, collect masked vectors, collect the shares that
remove the masks. A node that fails after sharing keys is a dropout: its pairwise masks are
cancelled from the others' shares, and the sum is exactly that of the survivors. Fewer
than ``threshold`` at any stage: SecAggError (a RunFailedError), and nothing is
released. The cryptography lives in secagg/client*.py.

With ``num_shares`` = k < n (SecAgg+, Bell et al. 2020) each node shares with and masks
against only its k-node neighbourhood (``SecAggConfig.neighbours``) and receives only its
neighbours' public keys; a num_shares of n or more is the complete graph (SecAgg).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, RecordDict

from protocols.messages import (
    ARRAYS_KEY,
    SECAGG_KEYS,
    SECAGG_SHARES,
    SECAGG_UNMASK,
    TASK_KEY,
    TaskHeader,
)
from protocols.secure_round import (
    SECAGG_KEY,
    SECAGG_PAYLOAD_KEY,
    VALUE_BOUND,
    SecureRoundSettings,
    noise_shares,
)
from secagg.messages import (
    SecAggConfig,
    SecAggError,
    encrypted_shares_from_dict,
    encrypted_shares_to_dict,
    key_directory_to_dict,
    unmask_request_to_dict,
    unmask_response_from_dict,
)
from secagg.quantization import IntegerCodec
from secagg.run_keys import (
    KeyBook,
    SetupRequest,
    run_public_keys_from_dict,
    setup_request_to_dict,
)
from secagg.server import SecAggServer

__all__ = [
    "VALUE_BOUND",
    "MODULUS_BITS",
    "SecureTotal",
    "RoundRunner",
    "run_secure_round",
    "round_num_shares",
    "round_threshold",
]

MODULUS_BITS = 64

#: Runs one exchange: (stage, message type, nodes, content per node) -> {node: ok reply},
#: recording refusals and failures; given by coordinator.secure_sums.SecureSums.
RoundRunner = Callable[[str, str, list[int], Callable[[int], RecordDict]], dict[int, RecordDict]]


@dataclass(frozen=True)
class SecureTotal:
    """What the round released: the exact integer sum of the survivors' vectors;
    ``threshold`` t and ``noise_shares``, the fewest inputs the round would release
    (the noise shares were planned for it; at least t)."""

    total: np.ndarray
    survivor_ids: frozenset[int]
    dropped_ids: frozenset[int]
    threshold: int
    noise_shares: int

    @property
    def survivors(self) -> int:
        return len(self.survivor_ids)

    @property
    def dropped(self) -> int:
        return len(self.dropped_ids)


def round_num_shares(n_nodes: int, num_shares: int | None) -> int | None:
    """The neighbourhood size a round of ``n_nodes`` uses: None (every node) when
    ``num_shares`` is unset or at least ``n_nodes``."""
    return num_shares if num_shares is not None and num_shares < n_nodes else None


def round_threshold(n_nodes: int, *, threshold: int | None, num_shares: int | None) -> int:
    """t: the configured threshold, else a strict majority of the neighbourhood,
    k // 2 + 1 (k = n_nodes for the complete graph). It is also the fewest inputs a
    released sum can hold (the coordinator aborts below t survivors)."""
    if threshold is not None:
        return threshold
    k = round_num_shares(n_nodes, num_shares)
    return (n_nodes if k is None else k) // 2 + 1


def _payload(content: RecordDict) -> dict:
    return dict(content.config_records[SECAGG_PAYLOAD_KEY])


def run_secure_round(
    exchange: RoundRunner,
    node_ids: list[int],
    *,
    header: TaskHeader,
    task: tuple[str, str],
    vector_length: int,
    bound: int,
    threshold: int | None,
    num_shares: int | None = None,
    arrays: ArrayRecord | None = None,
    release_fraction: float | None = None,
    keys: KeyBook | None = None,
    setup_rounds: Sequence[str] = (),
) -> SecureTotal:
    """Run the stages over ``node_ids`` through ``exchange``; return the secure sum.

    ``keys``: the run's key book (:mod:`secagg.run_keys`); nodes without keys for this
    round advertise them first, for this round and ``setup_rounds`` (the run's later
    rounds, so that they skip the key stage there). None: keys for this round only.

    ``task`` is (stage name, message type) of the masked-input stage; ``arrays`` (the
    global model, for model rounds) go with that stage's message; with the plan's
    ``release_fraction`` the round releases nothing when fewer inputs survive than the
    noise shares were planned for (:func:`protocols.secure_round.noise_shares`).
    ``threshold`` None is
    a strict majority of the neighbourhood (``round_threshold``).
    """
    index = {nid: i + 1 for i, nid in enumerate(sorted(node_ids))}
    n = len(index)
    k = round_num_shares(n, num_shares)
    t = round_threshold(n, threshold=threshold, num_shares=num_shares)
    round_id = f"{header.run_id}:{header.round}"

    def settings(nid: int) -> ConfigRecord:
        return SecureRoundSettings(
            round_id, index[nid], n, t, MODULUS_BITS, bound, vector_length, k
        ).to_record()

    def content(nid: int, payload: dict | None = None, with_arrays: bool = False) -> RecordDict:
        records = RecordDict({TASK_KEY: header.to_record(), SECAGG_KEY: settings(nid)})
        if payload is not None:
            records[SECAGG_PAYLOAD_KEY] = ConfigRecord(payload)
        if with_arrays and arrays is not None:
            records[ARRAYS_KEY] = arrays
        return records

    codec = IntegerCodec(MODULUS_BITS, n, bound)  # refuses a setting whose sum could wrap
    graph = SecAggConfig(n, t, vector_length, MODULUS_BITS, k, graph_seed=round_id)
    server = SecAggServer(graph, round_id)
    book = KeyBook() if keys is None else keys
    missing = book.missing(sorted(index), round_id)
    if missing:
        setup = SetupRequest(round_id, tuple(dict.fromkeys((round_id, *setup_rounds))))
        advertised = exchange(
            "secagg-keys",
            SECAGG_KEYS,
            missing,
            lambda nid: content(nid, setup_request_to_dict(setup)),
        )
        for nid, c in advertised.items():
            book.record(nid, setup, run_public_keys_from_dict(_payload(c)))
    directory = server.collect_public_keys(
        [pk for nid in sorted(index) if (pk := book.for_round(nid, index[nid], round_id))]
    )
    holders = [nid for nid in sorted(index) if index[nid] in directory]
    shares = exchange(
        "secagg-shares",
        SECAGG_SHARES,
        holders,
        lambda nid: content(nid, key_directory_to_dict(server.directory_for(index[nid]))),
    )
    inbox = server.route_shares(
        {index[nid]: encrypted_shares_from_dict(_payload(c)) for nid, c in shares.items()}
    )
    sharers = [nid for nid in shares if index[nid] in inbox]
    for nid in set(holders) - set(sharers):  # lost its keys, perhaps: set up again next time
        book.forget(nid)
    masked_replies = exchange(
        task[0],
        task[1],
        sharers,
        lambda nid: content(
            nid, encrypted_shares_to_dict(inbox.get(index[nid], {})), with_arrays=True
        ),
    )
    masked = {}
    for nid, c in masked_replies.items():
        record = c.array_records.get(ARRAYS_KEY)
        if record is None or "masked" not in record:
            continue
        vector = record["masked"].numpy()
        if nid in sharers and vector.dtype == np.uint64 and vector.shape == (vector_length,):
            masked[index[nid]] = vector
    request = server.collect_masked_inputs(masked)
    minimum = noise_shares(release_fraction, n, t)
    if len(request.survivors) < minimum:
        raise SecAggError(
            f"only {len(request.survivors)} of {n} nodes sent masked inputs; the plan "
            f"releases sums of at least {minimum} (plan.release_fraction "
            f"{release_fraction}), the noise shares were sized for that: nothing is released"
        )
    wire_request = unmask_request_to_dict(request)
    by_index = {index[nid]: nid for nid in index}
    survivors = [by_index[i] for i in sorted(request.survivors)]
    answers = exchange(
        "secagg-unmask",
        SECAGG_UNMASK,
        survivors,
        lambda nid: content(nid, wire_request),
    )
    responses = [
        r
        for nid, c in answers.items()
        if (r := unmask_response_from_dict(_payload(c))).node_id == index[nid]
    ]
    field = server.unmask(responses)
    return SecureTotal(
        codec.decode_sum(field),
        frozenset(by_index[i] for i in request.survivors),
        frozenset(by_index[i] for i in request.dropped),
        t,
        minimum,
    )
