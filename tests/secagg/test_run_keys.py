"""Keys set up once per run: later rounds skip the key stage, sums stay exact with
dropouts, a revealed mask key opens only its own round, and hostile set-ups are refused."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from coordinator.secure_round import run_secure_round
from protocols.messages import (
    ARRAYS_KEY,
    CURVE_TASK,
    SECAGG_KEYS,
    SECAGG_SHARES,
    SECAGG_UNMASK,
    TaskHeader,
)
from protocols.secure_round import SECAGG_KEY, SECAGG_PAYLOAD_KEY, SecureRoundSettings
from secagg.client import SecAggClient, client_with_run_keys
from secagg.messages import (
    SecAggError,
    encrypted_shares_from_dict,
    encrypted_shares_to_dict,
    key_directory_from_dict,
    unmask_request_from_dict,
    unmask_response_to_dict,
)
from secagg.quantization import IntegerCodec
from secagg.run_keys import (
    MAX_SETUP_ROUNDS,
    KeyBook,
    RunKeys,
    SetupRequest,
    run_keys_from_wire,
    run_keys_to_wire,
    run_public_keys_from_dict,
    run_public_keys_to_dict,
    setup_request_from_dict,
    setup_request_to_dict,
)

RUN = "run-9"


class Federation:
    """Fake nodes answering a secure round's stages from their run keys; ``drop`` maps a
    round number to the node that never sends its masked input in it."""

    def __init__(self, values: dict[int, np.ndarray], drop: dict[int, int]) -> None:
        self.values, self.drop = values, drop
        self.keys: dict[int, RunKeys] = {}
        self.clients: dict[int, SecAggClient] = {}
        self.stages: list[tuple[int, str, int]] = []

    def exchange(self, stage, message_type, nodes, content_for) -> dict[int, RecordDict]:
        replies = {nid: self.node(nid, message_type, content_for(nid)) for nid in nodes}
        return {nid: r for nid, r in replies.items() if r is not None}

    def node(self, nid: int, message_type: str, content: RecordDict) -> RecordDict | None:
        settings = SecureRoundSettings.from_record(content.config_records[SECAGG_KEY])
        round_number = int(settings.round_id.rsplit(":", 1)[1])
        self.stages.append((round_number, message_type, nid))
        payload = dict(content.config_records.get(SECAGG_PAYLOAD_KEY, ConfigRecord()))
        if message_type == SECAGG_KEYS:
            self.keys[nid] = RunKeys.generate(setup_request_from_dict(payload))
            out = run_public_keys_to_dict(self.keys[nid].public())
        elif message_type == SECAGG_SHARES:
            config = settings.secagg_config()
            client = client_with_run_keys(
                config, settings.index, settings.round_id, self.keys[nid]
            )
            self.clients[nid] = client
            out = encrypted_shares_to_dict(client.share_keys(key_directory_from_dict(payload)))
        elif message_type == SECAGG_UNMASK:
            request = unmask_request_from_dict(payload)
            out = unmask_response_to_dict(self.clients[nid].unmask_response(request))
        else:
            if self.drop.get(round_number) == nid:
                return None
            codec = IntegerCodec(settings.modulus_bits, settings.num_nodes, settings.bound)
            masked = self.clients[nid].masked_input(
                codec.encode(self.values[nid] * round_number), encrypted_shares_from_dict(payload)
            )
            return RecordDict({ARRAYS_KEY: ArrayRecord({"masked": Array(masked)})})
        return RecordDict({SECAGG_PAYLOAD_KEY: ConfigRecord(out)})


def _round(federation: Federation, book: KeyBook, number: int, rounds: tuple[str, ...]):
    return run_secure_round(
        federation.exchange,
        sorted(federation.values),
        header=TaskHeader(RUN, number, "curve", "{}", "digest"),
        task=("curve", CURVE_TASK),
        vector_length=5,
        bound=10_000,
        threshold=None,
        num_shares=5,
        keys=book,
        setup_rounds=rounds,
    )


def test_three_rounds_set_keys_up_once_and_sum_exactly_despite_dropouts() -> None:
    # Prepare: 8 nodes, SecAgg+ with k = 5; node 102 drops in round 1 (its round-1 mask
    # key is reconstructed), node 105 in round 2; every node takes part in every round
    rng = np.random.default_rng(3)
    values = {100 + i: rng.integers(-50, 50, 5) for i in range(8)}
    federation = Federation(values, drop={1: 102, 2: 105})
    book = KeyBook()
    rounds = tuple(f"{RUN}:{r}" for r in (1, 2, 3))
    # Execute
    totals = [_round(federation, book, r, rounds[r - 1 :]) for r in (1, 2, 3)]
    # Assert: the key stage ran in round 1 only, for every node
    key_stages = [(r, nid) for r, kind, nid in federation.stages if kind == SECAGG_KEYS]
    assert key_stages == [(1, nid) for nid in sorted(values)]
    for number, total in zip((1, 2, 3), totals, strict=True):
        gone = federation.drop.get(number)
        expected = sum(v * number for nid, v in values.items() if nid != gone)
        np.testing.assert_array_equal(total.total, expected)
        assert total.dropped_ids == (set() if gone is None else {gone})


def test_a_node_that_failed_the_share_stage_sets_keys_up_again_next_round() -> None:
    # Prepare: node 101 loses its keys after round 1 (a restarted node)
    rng = np.random.default_rng(4)
    values = {100 + i: rng.integers(-50, 50, 5) for i in range(6)}
    federation = Federation(values, drop={})
    book = KeyBook()
    rounds = tuple(f"{RUN}:{r}" for r in (1, 2, 3))
    _round(federation, book, 1, rounds)
    del federation.keys[101]
    original = federation.node

    def forgetful(nid: int, message_type: str, content: RecordDict) -> RecordDict | None:
        if nid == 101 and message_type == SECAGG_SHARES and 101 not in federation.keys:
            return None  # "no keys set up in this run": a failure
        return original(nid, message_type, content)

    federation.node = forgetful  # type: ignore[method-assign]
    # Execute: round 2 goes on without it; round 3 sets its keys up again
    second = _round(federation, book, 2, rounds[1:])
    third = _round(federation, book, 3, rounds[2:])
    # Assert
    assert 101 not in second.survivor_ids and 101 in third.survivor_ids
    key_stages = [(r, nid) for r, kind, nid in federation.stages if kind == SECAGG_KEYS]
    assert key_stages[-1] == (3, 101) and len(key_stages) == 7
    np.testing.assert_array_equal(third.total, sum(v * 3 for v in values.values()))


def test_each_round_has_its_own_mask_key_and_one_encryption_key_serves_the_run() -> None:
    keys = RunKeys.generate(SetupRequest("s", (f"{RUN}:1", f"{RUN}:2")))
    public = keys.public()
    first, second = public.for_round(1, f"{RUN}:1"), public.for_round(1, f"{RUN}:2")
    assert first is not None and second is not None
    assert first.mask_key != second.mask_key and first.encryption_key == second.encryption_key
    assert public.for_round(1, f"{RUN}:3") is None
    with pytest.raises(SecAggError, match="no mask key for round"):
        keys.mask_key(f"{RUN}:3")
    restored = run_keys_from_wire(run_keys_to_wire(keys))
    assert restored.public() == public


def test_key_book_keeps_only_answers_to_its_own_request() -> None:
    request = SetupRequest("setup-a", (f"{RUN}:1", f"{RUN}:2"))
    other = RunKeys.generate(SetupRequest("setup-a", (f"{RUN}:1",))).public()
    book = KeyBook()
    assert not book.record(7, request, other)  # too few rounds
    assert book.missing([7], f"{RUN}:1") == [7]
    good = RunKeys.generate(request).public()
    assert book.record(7, request, good) and book.missing([7], f"{RUN}:2") == []
    book.forget(7)
    assert book.missing([7], f"{RUN}:1") == [7]


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"setup_id": "s", "round_ids": []}, "1 to"),
        ({"setup_id": "s", "round_ids": ["r"] * 2}, "repeated"),
        ({"setup_id": "s", "round_ids": [f"r{i}" for i in range(MAX_SETUP_ROUNDS + 1)]}, "1 to"),
        ({"setup_id": "", "round_ids": ["r"]}, "setup_id"),
        ({"setup_id": "s", "round_ids": ["r"], "extra": 1}, "extra"),
    ],
)
def test_hostile_setup_requests_are_refused_naming_the_key(payload, match) -> None:
    with pytest.raises(SecAggError, match=match):
        setup_request_from_dict(payload)


def test_advertised_keys_of_the_wrong_size_are_refused() -> None:
    keys = run_public_keys_to_dict(RunKeys.generate(SetupRequest("s", ("r1", "r2"))).public())
    keys["mask_keys"] = [b"\x00" * 31, b"\x00" * 32]
    with pytest.raises(SecAggError, match="mask_keys"):
        run_public_keys_from_dict(keys)
    assert setup_request_to_dict(SetupRequest("s", ("r1",))) == {
        "setup_id": "s",
        "round_ids": ["r1"],
    }
