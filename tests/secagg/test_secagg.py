"""Secure aggregation: exact sums with dropouts, nothing below threshold, masks that hide.

Reference answers: plain numpy sums of the inputs; RFC 8439 (A.1) for the ChaCha20 stream.
"""

from __future__ import annotations

import secrets

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict
from flwr.common.secure_aggregation.crypto.shamir import create_shares as flower_create_shares
from flwr.common.secure_aggregation.secaggplus_utils import pseudo_rand_gen
from flwr.common.serde import config_record_from_proto, config_record_to_proto
from inprocess_grid import InProcessGrid, run_coordinator, small_federation
from pydantic import ValidationError
from scipy import stats

import secagg.client as secagg
from common.errors import ConfigError
from coordinator.config import FederationSettings, load_config_or_default
from coordinator.progress_events import SecureSumDone
from coordinator.run_store import RunStore
from coordinator.secure_round import round_num_shares, round_threshold, run_secure_round
from protocols.messages import (
    ARRAYS_KEY,
    CURVE_TASK,
    MODEL_TASK,
    SECAGG_KEYS,
    SECAGG_SHARES,
    SECAGG_UNMASK,
    TaskHeader,
)
from protocols.secure_round import SECAGG_KEY, SECAGG_PAYLOAD_KEY, SecureRoundSettings
from secagg.client import (
    SecAggClient,
    client_with_run_keys,
    from_config_record,
    to_config_record,
)
from secagg.graph import neighbourhood
from secagg.masking import LABEL_PAIRWISE_MASK, derive_key, expand_mask
from secagg.messages import (
    EncryptedShare,
    SecAggConfig,
    SecAggError,
    UnmaskRequest,
    UnmaskResponse,
    encrypted_shares_from_dict,
    encrypted_shares_to_dict,
    key_directory_from_dict,
    key_directory_to_dict,
    public_keys_from_dict,
    public_keys_to_dict,
    unmask_request_from_dict,
    unmask_request_to_dict,
    unmask_response_from_dict,
    unmask_response_to_dict,
)
from secagg.quantization import (
    IntegerCodec,
    QuantizationRangeError,
    to_signed,
)
from secagg.run_keys import RunKeys, run_public_keys_to_dict, setup_request_from_dict
from secagg.server import SecAggServer, simulate_round

ROUND = "run-1/round-3"


def counts(n_nodes: int, length: int, bound: int, seed: int = 0) -> dict[int, np.ndarray]:
    """Factory: per-node signed integer vectors in [-bound, bound], node ids 11, 12, ..."""
    rng = np.random.default_rng(seed)
    return {11 + i: rng.integers(-bound, bound + 1, length) for i in range(n_nodes)}


def staged(config: SecAggConfig, node_ids: list[int]):
    """Factory: clients and server after key advertisement and share routing."""
    clients = {i: SecAggClient(config, i, ROUND) for i in node_ids}
    server = SecAggServer(config, ROUND)
    directory = server.collect_public_keys(c.advertise_keys() for c in clients.values())
    inbox = server.route_shares({i: c.share_keys(directory) for i, c in clients.items()})
    return clients, server, inbox


def test_five_nodes_threshold_three_give_the_exact_integer_sum() -> None:
    # Prepare: large signed counts (two's complement) near the declared bound
    config = SecAggConfig(num_nodes=5, threshold=3, vector_length=200)
    codec = IntegerCodec(modulus_bits=64, num_nodes=5, bound=10**15)
    values = counts(5, 200, 10**15)
    # Execute
    field_sum = simulate_round(
        config, {i: codec.encode(v) for i, v in values.items()}, round_id=ROUND
    )
    # Assert
    np.testing.assert_array_equal(codec.decode_sum(field_sum), sum(values.values()))


def test_a_node_dropping_after_key_sharing_leaves_the_exact_survivor_sum() -> None:
    # Prepare
    config = SecAggConfig(num_nodes=5, threshold=3, vector_length=50)
    codec = IntegerCodec(modulus_bits=64, num_nodes=5, bound=50_000)
    values = counts(5, 50, 50_000, seed=1)
    # Execute: node 13 shared its keys, then never sent its masked input
    field_sum = simulate_round(
        config,
        {i: codec.encode(v) for i, v in values.items()},
        round_id=ROUND,
        drop_after_sharing={13},
    )
    # Assert
    expected = sum(v for i, v in values.items() if i != 13)
    np.testing.assert_array_equal(codec.decode_sum(field_sum), expected)
    assert not np.array_equal(codec.decode_sum(field_sum), sum(values.values()))


def test_three_of_five_dropping_releases_nothing() -> None:
    # Prepare
    config = SecAggConfig(num_nodes=5, threshold=3, vector_length=10)
    codec = IntegerCodec(modulus_bits=64, num_nodes=5, bound=100)
    vectors = {i: codec.encode(v) for i, v in counts(5, 10, 100).items()}
    # Execute / Assert: the server refuses to go on with 2 masked inputs
    with pytest.raises(SecAggError, match="only 2 masked inputs arrived .*releases nothing"):
        simulate_round(config, vectors, round_id=ROUND, drop_after_sharing={11, 12, 13})


def test_survivors_reveal_nothing_below_threshold() -> None:
    # Prepare: two survivors sent masked inputs, three dropped
    config = SecAggConfig(num_nodes=5, threshold=3, vector_length=4)
    clients, _, inbox = staged(config, [1, 2, 3, 4, 5])
    zero = np.zeros(4, dtype=np.uint64)
    for i in (1, 2):
        clients[i].masked_input(zero, inbox[i])
    request = UnmaskRequest(survivors=frozenset({1, 2}), dropped=frozenset({3, 4, 5}))
    # Execute / Assert
    with pytest.raises(SecAggError, match="only 2 survivors .*nothing revealed"):
        clients[1].unmask_response(request)


def test_too_few_unmask_responses_release_nothing() -> None:
    # Prepare: all 5 sent masked inputs, only 2 answer the unmask request
    config = SecAggConfig(num_nodes=5, threshold=3, vector_length=4)
    clients, server, inbox = staged(config, [1, 2, 3, 4, 5])
    zero = np.zeros(4, dtype=np.uint64)
    request = server.collect_masked_inputs(
        {i: c.masked_input(zero, inbox[i]) for i, c in clients.items()}
    )
    responses = [clients[i].unmask_response(request) for i in (1, 2)]
    # Execute / Assert
    with pytest.raises(SecAggError, match="only 2 unmask responses arrived"):
        server.unmask(responses)


def test_large_count_out_of_range_is_an_error_not_a_wrap() -> None:
    # Prepare
    codec = IntegerCodec(modulus_bits=32, num_nodes=8, bound=2**27)
    histogram = np.array([5, -3, 2**27, -(2**27), 0, 0, 0, 2**27 + 1])
    # Execute / Assert
    with pytest.raises(QuantizationRangeError, match=r"index 7 .*\[-134217728, 134217728\]"):
        codec.encode(histogram)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: IntegerCodec(modulus_bits=32, num_nodes=50, bound=2**26), "may wrap: 50 nodes"),
        (lambda: IntegerCodec(modulus_bits=16, num_nodes=3, bound=2**15), "may wrap: 3 nodes"),
    ],
)
def test_configuration_that_could_wrap_is_refused_at_setup(make, match: str) -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match=match):
        make()


def test_sum_at_the_edge_of_the_no_wrap_bound_is_exact() -> None:
    # Prepare: 3 * 10922 = 32766 < 2^15 in a 16-bit field, both signs
    config = SecAggConfig(num_nodes=3, threshold=2, vector_length=2, modulus_bits=16)
    codec = IntegerCodec(modulus_bits=16, num_nodes=3, bound=10922)
    vectors = {i: codec.encode(np.array([10922, -10922])) for i in (1, 2, 3)}
    # Execute
    field_sum = simulate_round(config, vectors, round_id=ROUND)
    # Assert
    assert field_sum.max() < 2**16
    np.testing.assert_array_equal(codec.decode_sum(field_sum), [32766, -32766])
    with pytest.raises(ConfigError, match="may wrap"):
        IntegerCodec(modulus_bits=16, num_nodes=3, bound=10923)


def test_what_the_server_receives_is_uniform_and_uncorrelated_with_the_input() -> None:
    # Prepare: strongly structured plaintext (a ramp) over a long vector
    length = 20_000
    config = SecAggConfig(num_nodes=5, threshold=3, vector_length=length)
    codec = IntegerCodec(modulus_bits=64, num_nodes=5, bound=10**9)
    ramp = np.linspace(-(10**9), 10**9, length).astype(np.int64)
    plain = {i: np.roll(ramp, 1000 * i) for i in range(1, 6)}
    clients, server, inbox = staged(config, list(plain))
    # Execute
    received = {i: c.masked_input(codec.encode(plain[i]), inbox[i]) for i, c in clients.items()}
    request = server.collect_masked_inputs(received)
    field_sum = server.unmask(clients[i].unmask_response(request) for i in sorted(clients))
    # Assert: each masked vector looks uniform on [0, 2^64) and is uncorrelated with its input
    for i, masked in received.items():
        unit = masked.astype(np.float64) / 2.0**64
        assert stats.kstest(unit, "uniform").statistic < 0.02
        assert abs(np.corrcoef(unit, plain[i])[0, 1]) < 0.05
        assert not np.any(masked == codec.encode(plain[i]))
    np.testing.assert_array_equal(codec.decode_sum(field_sum), sum(plain.values()))


def test_chacha20_mask_stream_matches_rfc8439_known_answer() -> None:
    # Execute: all-zero key, zero nonce, counter 0 (RFC 8439, appendix A.1, test vector 1)
    mask = expand_mask(bytes(32), 2, 64)
    # Assert
    expected = np.frombuffer(bytes.fromhex("76b8e0ada0f13d90405d6ae55386bd28"), dtype="<u8")
    np.testing.assert_array_equal(mask, expected)
    assert expand_mask(bytes(32), 2, 32).max() < 2**32


def test_keys_equal_in_their_low_32_bits_give_unrelated_masks() -> None:
    # Prepare: key_b differs from key_a only in words 1 and 2, by the same XOR, so both
    # share their low 32 bits and the XOR of their 32-bit words (Flower's seed fold)
    rng = np.random.default_rng(3)
    key_a = bytearray(rng.bytes(32))
    key_b = bytearray(key_a)
    for pos in range(4, 12):
        key_b[pos] ^= 0xA5
    key_a, key_b = bytes(key_a), bytes(key_b)
    assert key_a[:4] == key_b[:4] and key_a != key_b
    # Execute
    flower_a, flower_b = (pseudo_rand_gen(k, 2**32, [(5000,)])[0] for k in (key_a, key_b))
    ours_a, ours_b = (
        expand_mask(derive_key(k, label=LABEL_PAIRWISE_MASK, round_id=ROUND), 5000, 64)
        for k in (key_a, key_b)
    )
    # Assert: Flower's masks collide, ours are unrelated
    np.testing.assert_array_equal(flower_a, flower_b)
    assert not np.any(ours_a == ours_b)
    unit_a, unit_b = (m.astype(np.float64) / 2.0**64 for m in (ours_a, ours_b))
    assert abs(np.corrcoef(unit_a, unit_b)[0, 1]) < 0.05


def test_masks_are_separated_by_round_and_label() -> None:
    # Prepare
    secret = bytes(range(32))
    # Execute
    masks = [
        expand_mask(derive_key(secret, label=label, round_id=r), 64, 64)
        for label, r in [(b"a", "r1"), (b"a", "r2"), (b"b", "r1")]
    ]
    # Assert
    assert not np.any(masks[0] == masks[1]) and not np.any(masks[0] == masks[2])
    np.testing.assert_array_equal(
        masks[0], expand_mask(derive_key(secret, label=b"a", round_id="r1"), 64, 64)
    )


@pytest.mark.parametrize("field", ["ciphertext", "nonce"])
def test_tampered_encrypted_share_fails_decryption(field: str) -> None:
    # Prepare: flip one bit of the share node 1 sent to node 2
    config = SecAggConfig(num_nodes=3, threshold=2, vector_length=4)
    clients, _, inbox = staged(config, [1, 2, 3])
    share = inbox[2][1]
    raw = bytearray(getattr(share, field))
    raw[0] ^= 0x01
    kwargs = {"src": share.src, "dst": share.dst, "nonce": share.nonce}
    kwargs |= {"ciphertext": share.ciphertext, field: bytes(raw)}
    inbox[2][1] = EncryptedShare(**kwargs)
    # Execute / Assert
    with pytest.raises(SecAggError, match="share from node 1 failed authentication"):
        clients[2].masked_input(np.zeros(4, dtype=np.uint64), inbox[2])


def test_share_replayed_in_another_round_fails_decryption() -> None:
    # Prepare: node 2 of round B receives node 1's share from round A
    config = SecAggConfig(num_nodes=3, threshold=2, vector_length=4)
    _, _, inbox_a = staged(config, [1, 2, 3])
    clients_b, _, inbox_b = staged(config, [1, 2, 3])
    inbox_b[2][1] = inbox_a[2][1]
    # Execute / Assert
    with pytest.raises(SecAggError, match="failed authentication"):
        clients_b[2].masked_input(np.zeros(4, dtype=np.uint64), inbox_b[2])


def test_a_peer_sending_flower_shares_is_refused_at_decryption(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare: node 1 still splits with Flower's Shamir (52-byte shares), the others ours
    config = SecAggConfig(num_nodes=3, threshold=2, vector_length=4)
    clients = {i: SecAggClient(config, i, ROUND) for i in (1, 2, 3)}
    server = SecAggServer(config, ROUND)
    directory = server.collect_public_keys(c.advertise_keys() for c in clients.values())
    with monkeypatch.context() as patch:
        patch.setattr(secagg, "create_shares", flower_create_shares)
        outgoing = {1: clients[1].share_keys(directory)}
    outgoing |= {i: clients[i].share_keys(directory) for i in (2, 3)}
    inbox = server.route_shares(outgoing)
    # Execute / Assert
    with pytest.raises(
        SecAggError, match="node 2: share from node 1: share is 52 bytes, expected 69"
    ):
        clients[2].masked_input(np.zeros(4, dtype=np.uint64), inbox[2])


def test_state_holding_a_malformed_share_is_refused() -> None:
    # Prepare: node 1's state with a Flower-sized share in place of one it holds
    config = SecAggConfig(num_nodes=3, threshold=2, vector_length=4)
    clients, _, _ = staged(config, [1, 2, 3])
    state = clients[1].state_dict()
    state["held_key_shares"] = [bytes(52), *state["held_key_shares"][1:]]
    # Execute / Assert
    with pytest.raises(SecAggError, match=r"keys 'held_\*_shares': share is 52 bytes, expected 69"):
        SecAggClient.from_state_dict(state, round_id=ROUND)


def test_a_garbled_revealed_share_makes_the_round_release_nothing() -> None:
    # Prepare: node 1 reveals a random value as its share of node 2's self-mask seed
    # (a deliberate small shift would pass: combining is no authenticity check)
    config = SecAggConfig(num_nodes=5, threshold=3, vector_length=4)
    clients, server, inbox = staged(config, [1, 2, 3, 4, 5])
    zero = np.zeros(4, dtype=np.uint64)
    request = server.collect_masked_inputs(
        {i: c.masked_input(zero, inbox[i]) for i, c in clients.items()}
    )
    responses = [clients[i].unmask_response(request) for i in sorted(clients)]
    honest = responses[0].seed_shares[2]
    garbled = honest[:3] + secrets.randbelow(2**521 - 1).to_bytes(66, "big")
    responses[0] = UnmaskResponse(1, responses[0].seed_shares | {2: garbled}, {})
    # Execute / Assert
    with pytest.raises(
        SecAggError, match="seed shares of node 2 do not combine: .*too few, mixed or altered"
    ):
        server.unmask(responses)


def test_a_node_never_reveals_both_kinds_of_share_for_one_peer() -> None:
    # Prepare: node 1 already gave the self-mask seed share of node 2 (a survivor)
    config = SecAggConfig(num_nodes=5, threshold=3, vector_length=4)
    clients, _, inbox = staged(config, [1, 2, 3, 4, 5])
    clients[1].masked_input(np.zeros(4, dtype=np.uint64), inbox[1])
    everyone = frozenset({1, 2, 3, 4, 5})
    first = clients[1].unmask_response(UnmaskRequest(everyone, frozenset()))
    # Execute / Assert: a later request calling node 2 dropped is refused
    with pytest.raises(SecAggError, match=r"refusing to reveal both .*node\(s\) \[2\]"):
        clients[1].unmask_response(UnmaskRequest(everyone - {2}, frozenset({2})))
    with pytest.raises(SecAggError, match="both as survivors and as dropped"):
        clients[1].unmask_response(UnmaskRequest(everyone, frozenset({3})))
    assert set(first.seed_shares) == everyone and not first.key_shares


def test_stages_out_of_order_are_refused() -> None:
    # Prepare
    config = SecAggConfig(num_nodes=3, threshold=2, vector_length=4)
    client = SecAggClient(config, 1, ROUND)
    # Execute / Assert
    with pytest.raises(SecAggError, match="stage 'masked' called after 'new'"):
        client.masked_input(np.zeros(4, dtype=np.uint64), {})


@pytest.mark.parametrize(("nodes", "threshold"), [(5, 2), (5, 6), (2, 2)])
def test_threshold_must_be_a_strict_majority(nodes: int, threshold: int) -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match="threshold|needs >= 3 nodes"):
        SecAggConfig(num_nodes=nodes, threshold=threshold, vector_length=1)


def test_twos_complement_reading_of_field_elements() -> None:
    # Execute / Assert: known answers at the edges of a 16-bit and a 64-bit field
    field16 = np.array([0, 1, 2**15 - 1, 2**15, 2**16 - 1], dtype=np.uint64)
    np.testing.assert_array_equal(to_signed(field16, 16), [0, 1, 32767, -32768, -1])
    field64 = np.array([2**63, 2**64 - 1], dtype=np.uint64)
    np.testing.assert_array_equal(to_signed(field64, 64), [-(2**63), -1])


def through_flower(d: dict) -> dict:
    """What survives a ConfigRecord's trip through Flower's protobuf (context.state, messages)."""
    return dict(config_record_from_proto(config_record_to_proto(ConfigRecord(d))))


def reborn(client: SecAggClient) -> SecAggClient:
    """A fresh process: the client saved to a ConfigRecord and rebuilt from it."""
    record = config_record_from_proto(config_record_to_proto(to_config_record(client)))
    return from_config_record(record, round_id=ROUND)


@pytest.mark.parametrize("dropped", [set(), {13}])
def test_round_with_clients_rebuilt_between_every_stage_gives_the_exact_sum(dropped) -> None:
    # Prepare: every message crosses the wire as a ConfigRecord dict, every client is
    # rebuilt from its saved state before each stage
    config = SecAggConfig(num_nodes=5, threshold=3, vector_length=40)
    codec = IntegerCodec(modulus_bits=64, num_nodes=5, bound=10**12)
    values = counts(5, 40, 10**12, seed=4)
    server = SecAggServer(config, ROUND)
    saved = {i: to_config_record(SecAggClient(config, i, ROUND)) for i in values}

    def stage(i: int, run):
        client = from_config_record(through_flower(dict(saved[i])), round_id=ROUND)
        out = run(client)
        saved[i] = to_config_record(client)
        return through_flower(out)

    # Execute
    adverts = {i: stage(i, lambda c: public_keys_to_dict(c.advertise_keys())) for i in values}
    directory = through_flower(
        key_directory_to_dict(
            server.collect_public_keys(public_keys_from_dict(a) for a in adverts.values())
        )
    )
    outgoing = {
        i: stage(
            i, lambda c: encrypted_shares_to_dict(c.share_keys(key_directory_from_dict(directory)))
        )
        for i in values
    }
    inbox = server.route_shares({i: encrypted_shares_from_dict(o) for i, o in outgoing.items()})
    wired_inbox = {i: through_flower(encrypted_shares_to_dict(s)) for i, s in inbox.items()}
    masked = {}
    for i in sorted(set(values) - dropped):
        client = from_config_record(through_flower(dict(saved[i])), round_id=ROUND)
        masked[i] = client.masked_input(
            codec.encode(values[i]), encrypted_shares_from_dict(wired_inbox[i])
        )
        saved[i] = to_config_record(client)
    request = through_flower(unmask_request_to_dict(server.collect_masked_inputs(masked)))
    responses = [
        stage(
            i,
            lambda c: unmask_response_to_dict(c.unmask_response(unmask_request_from_dict(request))),
        )
        for i in sorted(masked)
    ]
    field_sum = server.unmask(unmask_response_from_dict(r) for r in responses)
    # Assert
    expected = sum(v for i, v in values.items() if i not in dropped)
    np.testing.assert_array_equal(codec.decode_sum(field_sum), expected)
    assert all(dict(saved[i])["stage"] == "unmasked" for i in masked)


def test_missing_state_key_is_named() -> None:
    # Prepare
    config = SecAggConfig(num_nodes=3, threshold=2, vector_length=4)
    state = SecAggClient(config, 1, ROUND).state_dict()
    del state["self_mask_seed"]
    # Execute / Assert
    with pytest.raises(SecAggError, match=r"client state misses key\(s\) 'self_mask_seed'"):
        SecAggClient.from_state_dict(state, round_id=ROUND)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("held_seed_shares", [1], r"state.held_seed_shares\[0\] must be bytes, got int 1"),
        ("node_id", True, "state.node_id must be int, got bool True"),
        ("mask_private_key", bytes(31), "key 'mask_private_key' needs 32 bytes, got 31"),
        ("stage", "done", "key 'stage' is 'done', not one of"),
        ("threshold", 1, r"keys \['num_nodes', 'threshold'.* not a valid config"),
        ("format", "other/v9", "key 'format' is 'other/v9'"),
        ("revealed_key_node_ids", [2], "revealed_seed_node_ids' and 'revealed_key_node_ids' both"),
        ("extra", 1, r"state has unknown key\(s\) 'extra'"),
    ],
)
def test_malformed_state_key_is_named(key: str, value: object, match: str) -> None:
    # Prepare: a node that revealed node 2's seed share
    config = SecAggConfig(num_nodes=3, threshold=2, vector_length=4)
    clients, _, inbox = staged(config, [1, 2, 3])
    clients[1].masked_input(np.zeros(4, dtype=np.uint64), inbox[1])
    clients[1].unmask_response(UnmaskRequest(frozenset({1, 2}), frozenset({3})))
    state = clients[1].state_dict()
    assert state["revealed_seed_node_ids"] == [1, 2]
    state[key] = value
    # Execute / Assert
    with pytest.raises(SecAggError, match=match):
        SecAggClient.from_state_dict(state, round_id=ROUND)


def test_state_whose_keys_do_not_match_its_advertised_keys_is_refused() -> None:
    # Prepare: node 1's state with node 2's mask private key swapped in
    config = SecAggConfig(num_nodes=3, threshold=2, vector_length=4)
    clients, _, _ = staged(config, [1, 2, 3])
    state = clients[1].state_dict()
    state["mask_private_key"] = clients[2].state_dict()["mask_private_key"]
    # Execute / Assert
    with pytest.raises(SecAggError, match="own public keys missing or altered"):
        SecAggClient.from_state_dict(state, round_id=ROUND)


def test_state_saved_in_another_round_is_refused() -> None:
    # Prepare
    config = SecAggConfig(num_nodes=3, threshold=2, vector_length=4)
    clients, _, _ = staged(config, [1, 2, 3])
    record = to_config_record(clients[1])
    # Execute / Assert
    with pytest.raises(
        SecAggError, match="saved in round 'run-1/round-3', refused for round 'run-1/round-4'"
    ):
        from_config_record(record, round_id="run-1/round-4")
    assert from_config_record(record, round_id=ROUND).state_dict() == clients[1].state_dict()


def test_never_both_shares_survives_a_save_and_restore() -> None:
    # Prepare: node 1 reveals node 2's seed share, then its process ends
    config = SecAggConfig(num_nodes=5, threshold=3, vector_length=4)
    clients, _, inbox = staged(config, [1, 2, 3, 4, 5])
    clients[1].masked_input(np.zeros(4, dtype=np.uint64), inbox[1])
    everyone = frozenset({1, 2, 3, 4, 5})
    clients[1].unmask_response(UnmaskRequest(everyone, frozenset()))
    restored = reborn(clients[1])
    # Execute / Assert: the restored node refuses node 2's key share
    with pytest.raises(SecAggError, match=r"refusing to reveal both .*node\(s\) \[2\]"):
        restored.unmask_response(UnmaskRequest(everyone - {2}, frozenset({2})))
    again = restored.unmask_response(UnmaskRequest(everyone, frozenset()))
    assert again.seed_shares.keys() == everyone


def test_wire_messages_round_trip_through_config_records() -> None:
    # Prepare
    config = SecAggConfig(num_nodes=3, threshold=2, vector_length=4)
    clients, _, inbox = staged(config, [1, 2, 3])
    keys = SecAggClient(config, 7, ROUND).advertise_keys()
    directory = {i: SecAggClient(config, i, ROUND).advertise_keys() for i in (4, 5, 6)}
    request = UnmaskRequest(frozenset({1, 2}), frozenset({3}))
    for i in (1, 2):
        clients[i].masked_input(np.zeros(4, dtype=np.uint64), inbox[i])
    response = clients[1].unmask_response(request)
    # Execute / Assert
    assert key_directory_from_dict(through_flower(key_directory_to_dict(directory))) == directory
    assert public_keys_from_dict(through_flower(public_keys_to_dict(keys))) == keys
    assert (
        encrypted_shares_from_dict(through_flower(encrypted_shares_to_dict(inbox[2]))) == inbox[2]
    )
    assert unmask_request_from_dict(through_flower(unmask_request_to_dict(request))) == request
    assert unmask_response_from_dict(through_flower(unmask_response_to_dict(response))) == response
    assert response.key_shares.keys() == {3} and response.seed_shares.keys() == {1, 2}


@pytest.mark.parametrize(
    ("read", "wire", "match"),
    [
        (
            public_keys_from_dict,
            {"node_id": 1, "encryption_key": bytes(32)},
            r"public keys misses key\(s\) 'mask_key'",
        ),
        (
            public_keys_from_dict,
            {"node_id": 1, "encryption_key": bytes(31), "mask_key": bytes(32)},
            "key 'encryption_key' needs 32 bytes",
        ),
        (
            encrypted_shares_from_dict,
            {"keys": [2], "src": [1], "dst": [2], "nonce": [bytes(11)], "ciphertext": [b"x"]},
            "key 'nonce' needs 12-byte values",
        ),
        (
            encrypted_shares_from_dict,
            {"keys": [3], "src": [1], "dst": [2], "nonce": [bytes(12)], "ciphertext": [b"x"]},
            "files a share under neither its src nor its dst",
        ),
        (
            unmask_request_from_dict,
            {"survivors": [1, 1], "dropped": []},
            "key 'survivors' has repeated",
        ),
        (
            unmask_request_from_dict,
            {"survivors": "1,2", "dropped": []},
            "unmask request.survivors must be a list, got str '1,2'",
        ),
        (
            unmask_response_from_dict,
            {
                "node_id": 1,
                "seed_share_ids": [1, 2],
                "seed_shares": [b"a"],
                "key_share_ids": [],
                "key_shares": [],
            },
            "seed_share_ids.* differ in length",
        ),
        (
            key_directory_from_dict,
            {"node_ids": [1], "encryption_keys": [bytes(32)]},
            r"key directory misses key\(s\) 'mask_keys'",
        ),
    ],
)
def test_malformed_wire_message_is_refused_naming_the_key(read, wire: dict, match: str) -> None:
    # Execute / Assert
    with pytest.raises(SecAggError, match=match):
        read(wire)


# ---- SecAgg+ neighbourhoods (num_shares; Bell et al., CCS 2020) ---------------------


def ring(n: int = 12, k: int | None = 5, t: int = 3, length: int = 30) -> SecAggConfig:
    """Factory: a SecAgg+ config over node ids 1..n (k None: the complete graph)."""
    return SecAggConfig(num_nodes=n, threshold=t, vector_length=length, num_shares=k)


def positions(n: int, length: int, bound: int, seed: int = 0) -> dict[int, np.ndarray]:
    """Factory: per-node signed integer vectors for node ids 1..n (the graph positions)."""
    rng = np.random.default_rng(seed)
    return {i: rng.integers(-bound, bound + 1, length) for i in range(1, n + 1)}


def shared(config: SecAggConfig) -> tuple[SecAggServer, dict[int, dict[int, EncryptedShare]]]:
    """Factory: the server after key advertisement, and every node's encrypted shares
    (node ids 1..n, each given its part of the directory), not yet routed."""
    clients = {i: SecAggClient(config, i, ROUND) for i in range(1, config.num_nodes + 1)}
    server = SecAggServer(config, ROUND)
    server.collect_public_keys(c.advertise_keys() for c in clients.values())
    return server, {i: c.share_keys(server.directory_for(i)) for i, c in clients.items()}


def share_bytes(config: SecAggConfig) -> dict[int, int]:
    """Bytes of encrypted shares (nonce + ciphertext) each node sends."""
    return {
        i: sum(len(s.nonce) + len(s.ciphertext) for s in out.values())
        for i, out in shared(config)[1].items()
    }


def test_neighbourhoods_follow_the_documented_ring_rule() -> None:
    # Execute / Assert: known answers, odd k (h = 2 each side) and even k (h = 1 + opposite)
    everyone = range(1, 13)
    assert ring(12, 5).neighbours(1, everyone) == {11, 12, 1, 2, 3}
    assert ring(12, 4).neighbours(1, everyone) == {12, 1, 2, 7}
    assert ring(11, 4).neighbours(6, range(1, 12)) == {5, 6, 7, 1, 11}  # odd n: position m
    assert ring(12, 5).neighbours(1, {2, 6, 12}) == {2, 12}


@pytest.mark.parametrize(("n", "k"), [(12, 5), (12, 4), (11, 4), (11, 6), (9, 3), (7, 7)])
def test_neighbourhoods_are_symmetric_and_of_size_k(n: int, k: int) -> None:
    # Prepare
    config = ring(n, k, k // 2 + 1)
    # Execute
    hood = {i: config.neighbours(i, range(1, n + 1)) for i in range(1, n + 1)}
    # Assert: v in N(u) iff u in N(v); |N(u)| = k, except one node for even k and odd n
    assert all(u in hood[v] for u in hood for v in hood[u])
    sizes = sorted(len(h) for h in hood.values())
    assert sizes == ([k] * (n - 1) + [k + 1] if k % 2 == 0 and n % 2 and k < n else [k] * n)


def test_twelve_nodes_five_shares_threshold_three_give_the_exact_sum() -> None:
    # Prepare
    config = ring(12, 5, 3, length=100)
    codec = IntegerCodec(modulus_bits=64, num_nodes=12, bound=10**12)
    values = positions(12, 100, 10**12)
    # Execute
    field_sum = simulate_round(
        config, {i: codec.encode(v) for i, v in values.items()}, round_id=ROUND
    )
    # Assert
    np.testing.assert_array_equal(codec.decode_sum(field_sum), sum(values.values()))


@pytest.mark.parametrize("dropped", [{4}, {4, 5}, {1, 7}, {12, 2}])
def test_one_or_two_dropouts_leave_the_exact_survivor_sum(dropped: set[int]) -> None:
    # Prepare
    config = ring(12, 5, 3)
    codec = IntegerCodec(modulus_bits=64, num_nodes=12, bound=50_000)
    values = positions(12, 30, 50_000, seed=1)
    # Execute
    field_sum = simulate_round(
        config,
        {i: codec.encode(v) for i, v in values.items()},
        round_id=ROUND,
        drop_after_sharing=dropped,
    )
    # Assert
    expected = sum(v for i, v in values.items() if i not in dropped)
    np.testing.assert_array_equal(codec.decode_sum(field_sum), expected)


def test_a_node_left_with_fewer_than_t_surviving_neighbours_releases_nothing() -> None:
    # Prepare: 2, 4 and 5 drop; survivor 3 keeps {1, 3} of {1..5}, dropped 4 keeps {3, 6}
    config = ring(12, 5, 3, length=4)
    clients, server, inbox = staged(config, list(range(1, 13)))
    zero = np.zeros(4, dtype=np.uint64)
    masked = {i: c.masked_input(zero, inbox[i]) for i, c in clients.items() if i not in (2, 4, 5)}
    # Execute / Assert: refused before any unmask request, so no share is revealed
    with pytest.raises(
        SecAggError,
        match=r"threshold 3 .* node\(s\) \[3, 4\] \(node 3: 2, node 4: 2\).*releases nothing",
    ):
        server.collect_masked_inputs(masked)
    with pytest.raises(SecAggError, match="unmask called before"):
        server.unmask([])


def test_survivors_split_into_parts_of_the_graph_release_nothing() -> None:
    # Prepare: 3, 4, 9 and 10 drop; every node keeps >= 3 surviving neighbours, but the
    # survivors fall apart into 5..8 and 11, 12, 1, 2 (each part's sum would be exposed)
    config = ring(12, 5, 3, length=4)
    clients, server, inbox = staged(config, list(range(1, 13)))
    zero = np.zeros(4, dtype=np.uint64)
    masked = {
        i: c.masked_input(zero, inbox[i]) for i, c in clients.items() if i not in (3, 4, 9, 10)
    }
    # Execute / Assert
    with pytest.raises(
        SecAggError, match=r"split into 2 parts .* \[\[1, 2, 11, 12\], \[5, 6, 7, 8\]\]"
    ):
        server.collect_masked_inputs(masked)


def test_a_share_routed_to_a_non_neighbour_is_refused() -> None:
    # Prepare: node 1 (neighbours 11, 12, 2, 3) also addresses a share to node 6
    server, outgoing = shared(ring(12, 5, 3))
    forged = outgoing[1][2]
    outgoing[1][6] = EncryptedShare(1, 6, forged.nonce, forged.ciphertext)
    # Execute / Assert
    with pytest.raises(SecAggError, match=r"share 1->6 refused: node 6 is not a neighbour of"):
        server.route_shares(outgoing)


def test_a_node_refuses_a_share_from_a_non_neighbour() -> None:
    # Prepare: node 6 finds node 1's share in its inbox (a relay that ignored the graph)
    config = ring(12, 5, 3, length=4)
    clients, _, inbox = staged(config, list(range(1, 13)))
    inbox[6][1] = inbox[2][1]
    # Execute / Assert
    with pytest.raises(SecAggError, match="node 6: share from unexpected sender 1"):
        clients[6].masked_input(np.zeros(4, dtype=np.uint64), inbox[6])


def test_unmask_response_reveals_only_shares_of_neighbours() -> None:
    # Prepare: every node survives but 7, the request names all twelve nodes
    config = ring(12, 5, 3, length=4)
    clients, server, inbox = staged(config, list(range(1, 13)))
    zero = np.zeros(4, dtype=np.uint64)
    request = server.collect_masked_inputs(
        {i: c.masked_input(zero, inbox[i]) for i, c in clients.items() if i != 7}
    )
    # Execute
    near, far = clients[5].unmask_response(request), clients[1].unmask_response(request)
    # Assert: node 5 (neighbours 3..7) reveals 7's key share; node 1 nothing of 7
    assert near.seed_shares.keys() == {3, 4, 5, 6} and near.key_shares.keys() == {7}
    assert far.seed_shares.keys() == {11, 12, 1, 2, 3} and not far.key_shares


def test_bytes_per_node_grow_with_num_shares_not_with_nodes() -> None:
    # Execute
    k5_n12, k5_n30 = share_bytes(ring(12, 5, 3)), share_bytes(ring(30, 5, 3))
    all_n12, all_n30 = share_bytes(ring(12, None, 7)), share_bytes(ring(30, None, 16))
    # Assert: k - 1 = 4 shares of equal size either way; n - 1 = 11 vs 29 without num_shares
    per_share = k5_n12[1] // 4
    assert set(k5_n12.values()) == set(k5_n30.values()) == {4 * per_share}
    assert set(all_n12.values()) == {11 * per_share} and set(all_n30.values()) == {29 * per_share}
    print(
        f"\nencrypted share bytes per node: k=5: n=12 {k5_n12[1]}, n=30 {k5_n30[1]}; "
        f"complete: n=12 {all_n12[1]}, n=30 {all_n30[1]}"
    )


def test_num_shares_equal_to_nodes_is_the_complete_graph() -> None:
    # Prepare
    values = positions(7, 20, 10**6, seed=5)
    codec = IntegerCodec(modulus_bits=64, num_nodes=7, bound=10**6)
    vectors = {i: codec.encode(v) for i, v in values.items()}
    full, complete = ring(7, 7, 4, length=20), ring(7, None, 4, length=20)
    # Execute
    sums = [
        codec.decode_sum(simulate_round(c, vectors, round_id=ROUND, drop_after_sharing={3}))
        for c in (full, complete)
    ]
    counts_ = [{i: len(o) for i, o in shared(c)[1].items()} for c in (full, complete)]
    # Assert: same survivor sum, same 6 shares per node, same neighbourhoods
    expected = sum(v for i, v in values.items() if i != 3)
    np.testing.assert_array_equal(sums[0], expected)
    np.testing.assert_array_equal(sums[1], expected)
    assert counts_[0] == counts_[1] == {i: 6 for i in range(1, 8)}
    assert all(full.neighbours(i, range(1, 8)) == set(range(1, 8)) for i in range(1, 8))


@pytest.mark.parametrize(
    ("n", "k", "t", "match"),
    [
        (12, 2, 2, r"num_shares 2 must be in \[3, 12\] for 12 nodes"),
        (12, 13, 7, r"num_shares 13 must be in \[3, 12\] for 12 nodes"),
        (12, 5, 2, r"threshold 2 must be in \(2, 5\] for num_shares 5 \(12 nodes\)"),
        (12, 5, 6, r"threshold 6 must be in \(2, 5\] for num_shares 5 \(12 nodes\)"),
        (12, 4, 2, r"threshold 2 must be in \(2, 4\] for num_shares 4"),
        (12, None, 6, r"threshold 6 must be in \(6, 12\] for 12 nodes"),
    ],
)
def test_num_shares_and_threshold_are_validated(n: int, k: int | None, t: int, match) -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match=match):
        ring(n, k, t)


def test_node_ids_must_be_graph_positions_with_num_shares() -> None:
    # Prepare
    config = ring(12, 5, 3)
    stranger = SecAggClient(ring(13, 5, 3), 13, ROUND).advertise_keys()
    # Execute / Assert
    with pytest.raises(SecAggError, match=r"node id 13 is not a position 1..12"):
        SecAggClient(config, 13, ROUND)
    with pytest.raises(SecAggError, match=r"node id 13 is not a position 1..12"):
        SecAggServer(config, ROUND).collect_public_keys([stranger])


def test_federation_settings_validate_num_shares_against_the_threshold() -> None:
    # Execute / Assert
    with pytest.raises(ValidationError, match="greater than or equal to 3"):
        FederationSettings(num_shares=2)
    with pytest.raises(ValidationError, match=r"reconstruction_threshold 2 must be in \(2, 5\]"):
        FederationSettings(num_shares=5, reconstruction_threshold=2)
    assert FederationSettings(num_shares=5, reconstruction_threshold=3).num_shares == 5
    assert FederationSettings().num_shares is None


@pytest.mark.parametrize(
    ("n", "threshold", "num_shares", "expected"),
    [
        (12, None, None, 7),
        (12, None, 5, 3),
        (12, None, 9, 5),
        (12, None, 12, 7),
        (5, None, 9, 3),
        (12, 4, 5, 4),
    ],
)
def test_default_threshold_is_a_majority_of_the_neighbourhood(
    n: int, threshold: int | None, num_shares: int | None, expected: int
) -> None:
    # Execute / Assert: num_shares >= n is the complete graph
    assert round_threshold(n, threshold=threshold, num_shares=num_shares) == expected
    assert round_num_shares(n, num_shares) == (
        num_shares if num_shares and num_shares < n else None
    )


def test_num_shares_survives_save_and_restore_and_is_absent_without_it() -> None:
    # Prepare
    clients, _, _ = staged(ring(12, 5, 3, length=4), list(range(1, 13)))
    complete, _, _ = staged(ring(5, None, 3, length=4), [1, 2, 3, 4, 5])
    # Execute
    restored = reborn(clients[1])
    # Assert: the complete graph keeps the layout from before SecAgg+ (no num_shares key)
    assert restored.config.num_shares == 5 and clients[1].state_dict()["num_shares"] == 5
    assert restored.state_dict() == clients[1].state_dict()
    assert sorted(restored.state_dict()["peer_node_ids"]) == [1, 2, 3, 11, 12]
    assert "num_shares" not in complete[1].state_dict()
    assert reborn(complete[1]).config.num_shares is None


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("num_shares", "5", "state.num_shares must be int, got str '5'"),
        ("num_shares", 2, r"keys \[.*'num_shares'.*\] are not a valid config: num_shares 2"),
        ("peer_node_ids", [1, 2, 3, 6, 12], "names nodes outside the neighbourhood"),
    ],
)
def test_malformed_num_shares_state_is_named(key: str, value: object, match: str) -> None:
    # Prepare
    clients, _, _ = staged(ring(12, 5, 3, length=4), list(range(1, 13)))
    state = clients[1].state_dict()
    state[key] = value
    # Execute / Assert
    with pytest.raises(SecAggError, match=match):
        SecAggClient.from_state_dict(state, round_id=ROUND)


def test_round_settings_record_leaves_out_num_shares_when_none() -> None:
    # Prepare
    plain = SecureRoundSettings("r", 1, 12, 7, 64, 100, 10)
    plus = SecureRoundSettings("r", 1, 12, 3, 64, 100, 10, num_shares=5)
    # Execute
    plain_record, plus_record = plain.to_record(), plus.to_record()
    # Assert: a record from before SecAgg+ (no num_shares key) still reads, as None
    assert "num_shares" not in plain_record and plus_record["num_shares"] == 5
    assert SecureRoundSettings.from_record(plain_record) == plain
    assert SecureRoundSettings.from_record(plus_record) == plus
    without_threshold = ConfigRecord({k: v for k, v in plus_record.items() if k != "threshold"})
    with pytest.raises(ValueError, match=r"missing key\(s\) \['threshold'\]"):
        SecureRoundSettings.from_record(without_threshold)


def test_run_secure_round_sends_each_node_only_its_neighbours_keys() -> None:
    # Prepare: 7 Flower nodes (ids 100..106 = positions 1..7), num_shares 3, default
    # threshold 3 // 2 + 1 = 2; node 104 (position 5) drops after sharing keys
    values = {100 + i: v for i, v in enumerate(positions(7, 6, 1000, seed=6).values())}
    clients: dict[int, SecAggClient] = {}
    run_keys: dict[int, RunKeys] = {}
    directories: dict[int, set[int]] = {}

    def node(nid: int, message_type: str, content: RecordDict) -> RecordDict | None:
        settings = SecureRoundSettings.from_record(content.config_records[SECAGG_KEY])
        payload = dict(content.config_records.get(SECAGG_PAYLOAD_KEY, ConfigRecord()))
        if message_type == SECAGG_KEYS:
            run_keys[nid] = RunKeys.generate(setup_request_from_dict(payload))
            out = run_public_keys_to_dict(run_keys[nid].public())
        elif message_type == SECAGG_SHARES:
            config = settings.secagg_config()
            clients[nid] = client_with_run_keys(
                config, settings.index, settings.round_id, run_keys[nid]
            )
            directory = key_directory_from_dict(payload)
            directories[nid] = set(directory)
            out = encrypted_shares_to_dict(clients[nid].share_keys(directory))
        elif message_type == SECAGG_UNMASK:
            request = unmask_request_from_dict(payload)
            out = unmask_response_to_dict(clients[nid].unmask_response(request))
        else:
            if nid == 104:
                return None
            codec = IntegerCodec(settings.modulus_bits, settings.num_nodes, settings.bound)
            masked = clients[nid].masked_input(
                codec.encode(values[nid]), encrypted_shares_from_dict(payload)
            )
            return RecordDict({ARRAYS_KEY: ArrayRecord({"masked": Array(masked)})})
        return RecordDict({SECAGG_PAYLOAD_KEY: ConfigRecord(out)})

    def exchange(stage, message_type, nodes, content_for) -> dict[int, RecordDict]:
        replies = {nid: node(nid, message_type, content_for(nid)) for nid in nodes}
        return {nid: r for nid, r in replies.items() if r is not None}

    header = TaskHeader("run-1", 3, "curve", "{}", "digest")
    # Execute
    secure = run_secure_round(
        exchange,
        list(values),
        header=header,
        task=("curve", CURVE_TASK),
        vector_length=6,
        bound=1000,
        threshold=None,
        num_shares=3,
    )
    # Assert
    assert secure.threshold == 2 and secure.dropped_ids == {104}
    np.testing.assert_array_equal(secure.total, sum(v for i, v in values.items() if i != 104))
    # each node got the keys of its neighbourhood in the round's random graph (node 100 is
    # position 1 of the sorted Flower ids; the graph is drawn from the round id)
    round_graph = neighbourhood(1, 7, 3, "run-1:3")
    assert directories[100] == set(round_graph) and all(len(d) == 3 for d in directories.values())


def test_fifty_nodes_with_nine_shares_give_the_exact_survivor_sum() -> None:
    # Prepare: 50 nodes, num_shares 9 (threshold 5), one dropout
    codec = IntegerCodec(modulus_bits=64, num_nodes=50, bound=1000)
    values = positions(50, 100, 1000, seed=7)
    vectors = {i: codec.encode(v) for i, v in values.items()}
    # Execute
    field_sum = simulate_round(
        ring(50, 9, 5, length=100), vectors, round_id=ROUND, drop_after_sharing={20}
    )
    # Assert
    expected = sum(v for i, v in values.items() if i != 20)
    np.testing.assert_array_equal(codec.decode_sum(field_sum), expected)


@pytest.mark.usefixtures("flower_identity")
def test_coordinator_and_nodes_run_secagg_plus_from_the_federation_settings(tmp_path) -> None:
    # Prepare: the real Coordinator and ClientApp in one process, 6 sites, num_shares 3
    # (threshold 2); node 103 (position 4) drops during the model round
    config = load_config_or_default(None)
    plan = config.plan
    training = plan.training.model_copy(update={"rounds": 1, "local_epochs": 1})
    record = plan.privacy.record.model_copy(update={"enabled": False})
    privacy = plan.privacy.model_copy(update={"record": record})
    plan = plan.model_copy(
        update={"training": training, "privacy": privacy, "secure_aggregation": True}
    )
    federation = config.federation.model_copy(update={"num_shares": 3})
    config = config.model_copy(update={"plan": plan, "federation": federation})
    nodes = small_federation(tmp_path / "fed", plan.model_spec, n=6, non_private=True)
    grid = InProcessGrid(nodes, drop={103: {MODEL_TASK}})
    # Execute
    run_coordinator(grid, config, tmp_path / "run")
    # Assert: each node sent shares to its 2 ring neighbours only, both rounds released
    share_replies = [m for m in grid.received if m.metadata.message_type == SECAGG_SHARES]
    sent = [len(dict(m.content.config_records[SECAGG_PAYLOAD_KEY])["keys"]) for m in share_replies]
    assert len(sent) == 12 and set(sent) == {2}
    events = RunStore(tmp_path / "run").read_events()
    sums = {e.task: (e.survivors, e.dropped) for e in events if isinstance(e, SecureSumDone)}
    assert sums == {"model": (5, 1), "curve": (6, 0)}
