"""Secure aggregation (Bonawitz et al. 2017, SecAgg / SecAgg+ masking): node side.

Why our own message-API workflow on Flower's building blocks, not Flower's SecAgg+:
Flower 1.42's ``SecAggPlusWorkflow`` + ``secaggplus_mod`` run only in the legacy API
(``LegacyContext``, ``NumPyClient``) and fail with the message API fedrisk uses; they
return a weighted *mean* (exact integer sums need tricks, values below 2^31); and their
masks come from ``pseudo_rand_gen``, which folds the agreed key to a 32-bit seed for
numpy's non-cryptographic RNG (brute-forceable). Here: Shamir sharing is ours over
GF(2^521 - 1) (``secagg/shamir.py``; Flower's, PyCryptodome's GF(2^128) behind a thread
pool per call, took 10-15 s of a 50-node round), key agreement is X25519, share
encryption ChaCha20-Poly1305, and masks a ChaCha20 stream keyed by HKDF of the full
secret (``secagg/masking.py``); the sum is exact over Z_{2^k}
(``secagg/quantization.py``). The coordinator (``secagg/server.py``) only
relays messages and learns only the sum of the survivors' inputs.

Round: (1) ``advertise_keys``; (2) ``share_keys``: Shamir shares (threshold t) of the
self-mask seed b_u and of the mask private key s_u, encrypted to each peer; (3)
``masked_input``: y_u = x_u + PRG(b_u) + sum_{v>u} PRG(s_uv) - sum_{v<u} PRG(s_uv);
(4) ``unmask_response``: shares of b_u for survivors, of s_v for dropped nodes.
The peers v are u's neighbourhood N(u): every node (SecAgg), or with ``num_shares`` = k
the k nodes of a public graph around u (SecAgg+, Bell et al., CCS 2020; the graph is
``SecAggConfig.neighbours``), so shares, masks and reveals all stay within N(u).

Between stages a Flower ClientApp process ends, so the client is saved in
``context.state``: ``to_config_record`` / ``from_config_record`` (``state_dict`` /
``from_state_dict``). The record holds private keys and the self-mask seed: it must
stay on the node. Compatibility rule: state keys are never removed and their meanings
never change; ``STATE_FORMAT`` names the layout (v2: ``held_*_shares`` are
``secagg/shamir.py`` shares; v1's were Flower's, and a v1 state is refused).
``num_shares`` is optional (absent: the complete graph, the layout before SecAgg+);
``peer_*`` hold the keys of N(u).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NotRequired

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from flwr.app import ConfigRecord
from flwr.common.secure_aggregation.secaggplus_utils import (
    share_keys_plaintext_concat,
    share_keys_plaintext_separate,
)
from typing_extensions import TypedDict

from common.errors import ConfigError
from secagg.masking import (
    LABEL_PAIRWISE_MASK,
    LABEL_SELF_MASK,
    LABEL_SHARE_ENCRYPTION,
    agree,
    derive_key,
    expand_mask,
)
from secagg.messages import (
    EncryptedShare,
    PublicKeys,
    SecAggConfig,
    SecAggError,
    UnmaskRequest,
    UnmaskResponse,
    WireDict,
    key_directory_from_dict,
    key_directory_to_dict,
    read_wire,
)
from secagg.quantization import field_add, field_sub
from secagg.shamir import ShareError, create_shares, verify_share

__all__ = [
    "STATE_FORMAT",
    "SecAggClient",
    "from_config_record",
    "to_config_record",
    "pair_context",
    "pairwise_mask",
    "self_mask",
    "share_aad",
    "raw_private",
    "raw_public",
]


def raw_public(key: X25519PrivateKey) -> bytes:
    """The 32 raw bytes of a private key's public key."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def raw_private(key: X25519PrivateKey) -> bytes:
    """The 32 raw bytes of a private key (what gets Shamir-shared)."""
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def pair_context(a: int, b: int) -> bytes:
    """Order-independent context of a node pair for key derivation."""
    low, high = sorted((a, b))
    return low.to_bytes(8, "big") + high.to_bytes(8, "big")


def share_aad(round_id: str, src: int, dst: int) -> bytes:
    """Associated data binding an encrypted share to its round, sender and receiver."""
    return round_id.encode("utf-8") + b"|" + src.to_bytes(8, "big") + dst.to_bytes(8, "big")


def pairwise_mask(secret: bytes, a: int, b: int, round_id: str, config: SecAggConfig) -> np.ndarray:
    """The mask nodes a and b share (added by the lower id, subtracted by the higher)."""
    key = derive_key(
        secret, label=LABEL_PAIRWISE_MASK, round_id=round_id, context=pair_context(a, b)
    )
    return expand_mask(key, config.vector_length, config.modulus_bits)


def self_mask(seed: bytes, node_id: int, round_id: str, config: SecAggConfig) -> np.ndarray:
    """A node's private self mask, reconstructible from t shares of its seed."""
    key = derive_key(
        seed, label=LABEL_SELF_MASK, round_id=round_id, context=node_id.to_bytes(8, "big")
    )
    return expand_mask(key, config.vector_length, config.modulus_bits)


STATE_FORMAT = "fedrisk/secagg/client-state/v2"
_STAGES = ("new", "advertised", "shared", "masked", "unmasked")


class _ClientState(TypedDict):
    """The wire form of a client's state (see ``SecAggClient.state_dict``)."""

    format: str
    num_nodes: int
    threshold: int
    vector_length: int
    modulus_bits: int
    node_id: int
    round_id: str
    stage: str
    encryption_private_key: bytes
    mask_private_key: bytes
    self_mask_seed: bytes
    peer_node_ids: list[int]
    peer_encryption_keys: list[bytes]
    peer_mask_keys: list[bytes]
    held_node_ids: list[int]
    held_seed_shares: list[bytes]
    held_key_shares: list[bytes]
    revealed_seed_node_ids: list[int]
    revealed_key_node_ids: list[int]
    num_shares: NotRequired[int]


_WHAT = "secure-aggregation client state"


@dataclass(frozen=True)
class _HeldShares:
    seed_share: bytes
    key_share: bytes


class SecAggClient:
    """One node's side of one round; stages must be called in order, each once."""

    def __init__(self, config: SecAggConfig, node_id: int, round_id: str) -> None:
        config.check_node(node_id)
        self.config, self.node_id, self.round_id = config, node_id, round_id
        self._enc_key = X25519PrivateKey.generate()
        self._mask_key = X25519PrivateKey.generate()
        self._seed = secrets.token_bytes(32)
        self._stage = "new"
        self._peers: dict[int, PublicKeys] = {}
        self._held: dict[int, _HeldShares] = {}
        self._revealed: dict[int, str] = {}

    def state_dict(self) -> WireDict:
        """Everything the next stage needs, as a flat ConfigRecord-compatible dict.

        Secret: it holds both private keys, the self-mask seed and the held shares.
        """
        held = sorted(self._held.items())
        peers = {f"peer_{k}": v for k, v in key_directory_to_dict(self._peers).items()}
        return {
            "format": STATE_FORMAT,
            "num_nodes": self.config.num_nodes,
            "threshold": self.config.threshold,
            "vector_length": self.config.vector_length,
            "modulus_bits": self.config.modulus_bits,
            "node_id": self.node_id,
            "round_id": self.round_id,
            "stage": self._stage,
            "encryption_private_key": raw_private(self._enc_key),
            "mask_private_key": raw_private(self._mask_key),
            "self_mask_seed": self._seed,
            **peers,
            "held_node_ids": [p for p, _ in held],
            "held_seed_shares": [h.seed_share for _, h in held],
            "held_key_shares": [h.key_share for _, h in held],
            "revealed_seed_node_ids": sorted(p for p, k in self._revealed.items() if k == "seed"),
            "revealed_key_node_ids": sorted(p for p, k in self._revealed.items() if k == "key"),
            **({} if self.config.num_shares is None else {"num_shares": self.config.num_shares}),
        }

    @classmethod
    def from_state_dict(cls, d: Mapping[str, Any], *, round_id: str) -> SecAggClient:
        """Rebuild a client saved by ``state_dict`` for round ``round_id``.

        Every key is validated (the missing or malformed one is named) and so is the
        state's consistency; a state saved in another round is refused.
        """
        state = read_wire(_ClientState, d, _WHAT)
        if state["format"] != STATE_FORMAT:
            raise SecAggError(f"{_WHAT}: key 'format' is {state['format']!r}, not {STATE_FORMAT!r}")
        if state["round_id"] != round_id:
            raise SecAggError(
                f"{_WHAT}: saved in round {state['round_id']!r}, refused for round {round_id!r}"
            )
        client = cls.__new__(cls)
        client.config, client.node_id, client.round_id = (
            _state_config(state),
            state["node_id"],
            round_id,
        )
        client._stage = _state_stage(state)
        client._enc_key = _state_private_key(
            state["encryption_private_key"], "encryption_private_key"
        )
        client._mask_key = _state_private_key(state["mask_private_key"], "mask_private_key")
        client._seed = _state_seed(state)
        client._peers = key_directory_from_dict(
            {k.removeprefix("peer_"): v for k, v in state.items() if k.startswith("peer_")},
            what=f"{_WHAT} (peer_* keys)",
        )
        client._held = _state_held(state)
        client._revealed = _state_revealed(state)
        client._check_restored()
        return client

    def _check_restored(self) -> None:
        """The restored fields agree with each other and with the stage."""
        if not 0 <= self.node_id < 2**64:
            raise SecAggError(f"{_WHAT}: key 'node_id' is outside [0, 2^64)")
        self.config.check_node(self.node_id)
        if self._neighbours(self._peers) != self._peers.keys():
            raise SecAggError(f"{_WHAT}: key 'peer_node_ids' names nodes outside the neighbourhood")
        started = _STAGES.index(self._stage) >= _STAGES.index("shared")
        if started:
            self._check_public_keys(self._peers)
        if bool(self._peers) != started or (self.node_id in self._held) != started:
            raise SecAggError(
                f"{_WHAT}: key 'stage' is {self._stage!r} but peer_node_ids/held_node_ids "
                "do not match it"
            )
        if not self._held.keys() <= self._peers.keys():
            raise SecAggError(f"{_WHAT}: key 'held_node_ids' names nodes that are not peers")
        if not self._revealed.keys() <= self._held.keys() or (
            self._revealed and self._stage != "unmasked"
        ):
            raise SecAggError(
                f"{_WHAT}: keys 'revealed_*_node_ids' name shares not held or not yet revealed"
            )

    def _advance(self, expected: str, nxt: str) -> None:
        if self._stage != expected:
            raise SecAggError(f"node {self.node_id}: stage '{nxt}' called after '{self._stage}'")
        self._stage = nxt

    def advertise_keys(self) -> PublicKeys:
        """Stage 1: the two public keys."""
        self._advance("new", "advertised")
        return PublicKeys(self.node_id, raw_public(self._enc_key), raw_public(self._mask_key))

    def share_keys(self, all_public: Mapping[int, PublicKeys]) -> dict[int, EncryptedShare]:
        """Stage 2: check the advertised keys, then encrypt one pair of shares to each
        neighbour that advertised (entries outside the neighbourhood are ignored)."""
        self._advance("advertised", "shared")
        self._check_public_keys(all_public)
        self._peers = {p: all_public[p] for p in sorted(self._neighbours(all_public))}
        ids = sorted(self._peers)
        seed_shares = create_shares(self._seed, self.config.threshold, len(ids))
        key_shares = create_shares(raw_private(self._mask_key), self.config.threshold, len(ids))
        out: dict[int, EncryptedShare] = {}
        for peer, seed_share, key_share in zip(ids, seed_shares, key_shares, strict=True):
            if peer == self.node_id:
                self._held[peer] = _HeldShares(seed_share, key_share)
                continue
            plain = share_keys_plaintext_concat(self.node_id, peer, seed_share, key_share)
            nonce = secrets.token_bytes(12)
            aead = ChaCha20Poly1305(self._channel_key(peer))
            cipher = aead.encrypt(nonce, plain, share_aad(self.round_id, self.node_id, peer))
            out[peer] = EncryptedShare(self.node_id, peer, nonce, cipher)
        return out

    def masked_input(
        self, field_vector: np.ndarray, received: Mapping[int, EncryptedShare]
    ) -> np.ndarray:
        """Stage 3: decrypt the received shares, then return the masked field vector."""
        self._advance("shared", "masked")
        self._check_field_vector(field_vector)
        for src, share in received.items():
            self._held[src] = self._decrypt(src, share)
        if len(self._held) < self.config.threshold:
            raise SecAggError(
                f"node {self.node_id}: shares from only {len(self._held)} nodes "
                f"(threshold {self.config.threshold}); no masked input sent"
            )
        masked = field_add(
            field_vector,
            self_mask(self._seed, self.node_id, self.round_id, self.config),
            self.config.modulus_bits,
        )
        for peer in self._held:
            if peer == self.node_id:
                continue
            secret = agree(self._mask_key, self._peers[peer].mask_key)
            mask = pairwise_mask(secret, self.node_id, peer, self.round_id, self.config)
            op = field_add if self.node_id < peer else field_sub
            masked = op(masked, mask, self.config.modulus_bits)
        return masked

    def unmask_response(self, request: UnmaskRequest) -> UnmaskResponse:
        """Stage 4: seed shares of survivors, key shares of dropped nodes, among its
        neighbours only (the request may name every node); never both for a peer."""
        if self._stage not in ("masked", "unmasked"):
            raise SecAggError(f"node {self.node_id}: unmask requested before masked input")
        self._stage = "unmasked"
        self._check_request(request)
        survivors, dropped = self._neighbours(request.survivors), self._neighbours(request.dropped)
        wanted = {p: "seed" for p in survivors} | {p: "key" for p in dropped}
        clash = sorted(p for p, kind in wanted.items() if self._revealed.get(p, kind) != kind)
        if clash:
            raise SecAggError(
                f"node {self.node_id}: refusing to reveal both the self-mask seed share "
                f"and the mask-key share of node(s) {clash}"
            )
        self._revealed.update(wanted)
        return UnmaskResponse(
            self.node_id,
            seed_shares={p: self._held[p].seed_share for p in sorted(survivors)},
            key_shares={p: self._held[p].key_share for p in sorted(dropped)},
        )

    def _neighbours(self, among: Iterable[int]) -> frozenset[int]:
        return self.config.neighbours(self.node_id, among)

    def _channel_key(self, peer: int) -> bytes:
        secret = agree(self._enc_key, self._peers[peer].encryption_key)
        return derive_key(
            secret,
            label=LABEL_SHARE_ENCRYPTION,
            round_id=self.round_id,
            context=pair_context(self.node_id, peer),
        )

    def _decrypt(self, src: int, share: EncryptedShare) -> _HeldShares:
        if (
            src not in self._peers
            or src == self.node_id
            or (share.src, share.dst) != (src, self.node_id)
        ):
            raise SecAggError(f"node {self.node_id}: share from unexpected sender {src}")
        aead = ChaCha20Poly1305(self._channel_key(src))
        try:
            plain = aead.decrypt(
                share.nonce, share.ciphertext, share_aad(self.round_id, src, self.node_id)
            )
        except InvalidTag:
            raise SecAggError(
                f"node {self.node_id}: share from node {src} failed authentication "
                "(tampered, wrong key or wrong round)"
            ) from None
        psrc, pdst, seed_share, key_share = share_keys_plaintext_separate(plain)
        if (psrc, pdst) != (src, self.node_id):
            raise SecAggError(f"node {self.node_id}: share header {psrc}->{pdst} does not match")
        _verify_shares(f"node {self.node_id}: share from node {src}", seed_share, key_share)
        return _HeldShares(seed_share, key_share)

    def _check_public_keys(self, all_public: Mapping[int, PublicKeys]) -> None:
        mine = PublicKeys(self.node_id, raw_public(self._enc_key), raw_public(self._mask_key))
        if all_public.get(self.node_id) != mine:
            raise SecAggError(f"node {self.node_id}: own public keys missing or altered")
        count = len(self._neighbours(all_public))
        if count < self.config.threshold:
            scope = (
                "" if self.config.num_shares is None else f" in node {self.node_id}'s neighbourhood"
            )
            raise SecAggError(
                f"only {count} nodes{scope} advertised keys (threshold {self.config.threshold})"
            )
        keys = [k for pk in all_public.values() for k in (pk.encryption_key, pk.mask_key)]
        if len(set(keys)) != len(keys) or any(pk.node_id != i for i, pk in all_public.items()):
            raise SecAggError(f"node {self.node_id}: duplicate public keys or mislabelled node ids")

    def _check_field_vector(self, vector: np.ndarray) -> None:
        if vector.dtype != np.uint64 or vector.shape != (self.config.vector_length,):
            raise SecAggError(
                f"masked input needs uint64 shape ({self.config.vector_length},), "
                f"got {vector.dtype} {vector.shape}; encode it with a codec first"
            )
        if self.config.modulus_bits < 64 and int(vector.max()) >> self.config.modulus_bits:
            raise SecAggError(f"masked input has elements >= 2^{self.config.modulus_bits}")

    def _check_request(self, request: UnmaskRequest) -> None:
        survivors, dropped = request.survivors, request.dropped
        if survivors & dropped:
            raise SecAggError(
                f"node {self.node_id}: nodes {sorted(survivors & dropped)} "
                "are listed both as survivors and as dropped"
            )
        named = survivors | dropped
        if self.config.num_shares is None:
            outside: list[int] = []  # the complete graph: every named node is a neighbour
        else:
            outside = sorted(p for p in named if not 1 <= p <= self.config.num_nodes)
        if (
            self.node_id not in survivors
            or outside
            or not self._neighbours(named) <= self._held.keys()
        ):
            raise SecAggError(
                f"node {self.node_id}: unmask request names nodes it holds no shares of"
            )
        count = len(self._neighbours(survivors))
        if count < self.config.threshold:
            scope = "" if self.config.num_shares is None else " among its neighbours"
            raise SecAggError(
                f"node {self.node_id}: only {count} survivors{scope} "
                f"(threshold {self.config.threshold}); nothing revealed"
            )


def to_config_record(client: SecAggClient) -> ConfigRecord:
    """The client's state as a Flower ConfigRecord (for ``context.state``; never sent)."""
    return ConfigRecord(client.state_dict())


def from_config_record(record: ConfigRecord, *, round_id: str) -> SecAggClient:
    """The client saved by ``to_config_record``, for round ``round_id``."""
    return SecAggClient.from_state_dict(dict(record), round_id=round_id)


def _state_config(d: _ClientState) -> SecAggConfig:
    keys = ("num_nodes", "threshold", "vector_length", "modulus_bits", "num_shares")
    try:
        return SecAggConfig(
            d["num_nodes"],
            d["threshold"],
            d["vector_length"],
            d["modulus_bits"],
            d.get("num_shares"),
        )
    except ConfigError as error:
        raise SecAggError(f"{_WHAT}: keys {list(keys)} are not a valid config: {error}") from None


def _state_stage(d: _ClientState) -> str:
    stage: str = d["stage"]
    if stage not in _STAGES:
        raise SecAggError(f"{_WHAT}: key 'stage' is {stage!r}, not one of {list(_STAGES)}")
    return stage


def _state_private_key(raw: bytes, key: str) -> X25519PrivateKey:
    if len(raw) != 32:
        raise SecAggError(f"{_WHAT}: key '{key}' needs 32 bytes, got {len(raw)}")
    return X25519PrivateKey.from_private_bytes(raw)


def _state_seed(d: _ClientState) -> bytes:
    seed: bytes = d["self_mask_seed"]
    if len(seed) != 32:
        raise SecAggError(f"{_WHAT}: key 'self_mask_seed' needs 32 bytes, got {len(seed)}")
    return seed


def _state_held(d: _ClientState) -> dict[int, _HeldShares]:
    ids, seeds, keys = d["held_node_ids"], d["held_seed_shares"], d["held_key_shares"]
    if len(set(ids)) != len(ids) or not len(ids) == len(seeds) == len(keys):
        raise SecAggError(
            f"{_WHAT}: keys 'held_node_ids', 'held_seed_shares', 'held_key_shares' "
            f"have repeated ids or differ in length ({len(ids)}, {len(seeds)}, {len(keys)})"
        )
    _verify_shares(f"{_WHAT}: keys 'held_*_shares'", *seeds, *keys)
    return {i: _HeldShares(s, k) for i, s, k in zip(ids, seeds, keys, strict=True)}


def _verify_shares(what: str, *shares: bytes) -> None:
    try:
        for share in shares:
            verify_share(share)
    except ShareError as error:
        raise SecAggError(f"{what}: {error}") from None


def _state_revealed(d: _ClientState) -> dict[int, str]:
    seed, key = d["revealed_seed_node_ids"], d["revealed_key_node_ids"]
    both = sorted(set(seed) & set(key))
    if both:
        raise SecAggError(
            f"{_WHAT}: keys 'revealed_seed_node_ids' and 'revealed_key_node_ids' "
            f"both name node(s) {both}"
        )
    return {p: "seed" for p in seed} | {p: "key" for p in key}
