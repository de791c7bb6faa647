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

Round: (1) ``advertise_keys`` (in a run, once for all its rounds: ``client_with_run_keys``,
:mod:`secagg.run_keys`); (2) ``share_keys``: Shamir shares (threshold t) of the
self-mask seed b_u and of the mask private key s_u, encrypted to each peer; (3)
``masked_input``: y_u = x_u + PRG(b_u) + sum_{v>u} PRG(s_uv) - sum_{v<u} PRG(s_uv);
(4) ``unmask_response``: shares of b_u for survivors, of s_v for dropped nodes.
The peers v are u's neighbourhood N(u): every node (SecAgg), or with ``num_shares`` = k
the k nodes of a public graph around u (SecAgg+, Bell et al., CCS 2020; the graph is
``SecAggConfig.neighbours``), so shares, masks and reveals all stay within N(u).

Between stages a Flower ClientApp process ends, so the client is saved in
``context.state``: ``to_config_record`` / ``from_config_record`` (``state_dict`` /
``from_state_dict``; the state and its compatibility rule: :mod:`secagg.client_state`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from flwr.app import ConfigRecord
from flwr.common.secure_aggregation.secaggplus_utils import (
    share_keys_plaintext_concat,
    share_keys_plaintext_separate,
)

from secagg.client_state import (
    STATE_FORMAT,
    ClientState,
    HeldShares,
    check_public_keys,
    state_from_wire,
    state_to_wire,
    verify_shares,
)
from secagg.masking import (
    LABEL_SHARE_ENCRYPTION,
    agree,
    derive_key,
    pair_context,
    pairwise_mask,
    raw_private,
    self_mask,
    share_aad,
)
from secagg.messages import (
    EncryptedShare,
    PublicKeys,
    SecAggConfig,
    SecAggError,
    UnmaskRequest,
    UnmaskResponse,
    WireDict,
)
from secagg.quantization import field_add, field_sub
from secagg.run_keys import RunKeys
from secagg.shamir import create_shares

__all__ = [
    "STATE_FORMAT",
    "SecAggClient",
    "client_with_run_keys",
    "from_config_record",
    "to_config_record",
]


class SecAggClient:
    """One node's side of one round; stages must be called in order, each once."""

    def __init__(
        self, config: SecAggConfig, node_id: int, round_id: str, state: ClientState | None = None
    ) -> None:
        config.check_node(node_id)
        self.config, self.node_id, self.round_id = config, node_id, round_id
        self._state = ClientState(config, node_id, round_id) if state is None else state

    def state_dict(self) -> WireDict:
        """The client's state, saved for its next stage (secret: it must stay on the node)."""
        return state_to_wire(self._state)

    @classmethod
    def from_state_dict(cls, d: Mapping[str, Any], *, round_id: str) -> SecAggClient:
        """Rebuild a client saved by ``state_dict`` for round ``round_id`` (every key and
        the state's consistency checked; a state saved in another round is refused)."""
        state = state_from_wire(d, round_id=round_id)
        return cls(state.config, state.node_id, round_id, state)

    def _advance(self, expected: str, nxt: str) -> None:
        if self._state.stage != expected:
            raise SecAggError(
                f"node {self.node_id}: stage '{nxt}' called after '{self._state.stage}'"
            )
        self._state.stage = nxt

    def advertise_keys(self) -> PublicKeys:
        """Stage 1: the two public keys."""
        self._advance("new", "advertised")
        return self._state.public_keys()

    def share_keys(self, all_public: Mapping[int, PublicKeys]) -> dict[int, EncryptedShare]:
        """Stage 2: check the advertised keys, then encrypt one pair of shares to each
        neighbour that advertised (entries outside the neighbourhood are ignored)."""
        self._advance("advertised", "shared")
        state = self._state
        check_public_keys(state, all_public)
        state.peers = {p: all_public[p] for p in sorted(state.neighbours(all_public))}
        ids = sorted(state.peers)
        seed_shares = create_shares(state.seed, self.config.threshold, len(ids))
        key_shares = create_shares(raw_private(state.mask_key), self.config.threshold, len(ids))
        out: dict[int, EncryptedShare] = {}
        for peer, seed_share, key_share in zip(ids, seed_shares, key_shares, strict=True):
            if peer == self.node_id:
                state.held[peer] = HeldShares(seed_share, key_share)
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
        state, bits = self._state, self.config.modulus_bits
        for src, share in received.items():
            state.held[src] = self._decrypt(src, share)
        if len(state.held) < self.config.threshold:
            raise SecAggError(
                f"node {self.node_id}: shares from only {len(state.held)} nodes "
                f"(threshold {self.config.threshold}); no masked input sent"
            )
        own = self_mask(state.seed, self.node_id, self.round_id, self.config)
        masked = field_add(field_vector, own, bits)
        for peer in state.held:
            if peer == self.node_id:
                continue
            secret = agree(state.mask_key, state.peers[peer].mask_key)
            mask = pairwise_mask(secret, self.node_id, peer, self.round_id, self.config)
            masked = (field_add if self.node_id < peer else field_sub)(masked, mask, bits)
        return masked

    def unmask_response(self, request: UnmaskRequest) -> UnmaskResponse:
        """Stage 4: seed shares of survivors, key shares of dropped nodes, among its
        neighbours only (the request may name every node); never both for a peer."""
        state = self._state
        if state.stage not in ("masked", "unmasked"):
            raise SecAggError(f"node {self.node_id}: unmask requested before masked input")
        state.stage = "unmasked"
        self._check_request(request)
        survivors, dropped = state.neighbours(request.survivors), state.neighbours(request.dropped)
        wanted = {p: "seed" for p in survivors} | {p: "key" for p in dropped}
        clash = sorted(p for p, kind in wanted.items() if state.revealed.get(p, kind) != kind)
        if clash:
            raise SecAggError(
                f"node {self.node_id}: refusing to reveal both the self-mask seed share "
                f"and the mask-key share of node(s) {clash}"
            )
        state.revealed.update(wanted)
        return UnmaskResponse(
            self.node_id,
            seed_shares={p: state.held[p].seed_share for p in sorted(survivors)},
            key_shares={p: state.held[p].key_share for p in sorted(dropped)},
        )

    def _channel_key(self, peer: int) -> bytes:
        secret = agree(self._state.enc_key, self._state.peers[peer].encryption_key)
        return derive_key(
            secret,
            label=LABEL_SHARE_ENCRYPTION,
            round_id=self.round_id,
            context=pair_context(self.node_id, peer),
        )

    def _decrypt(self, src: int, share: EncryptedShare) -> HeldShares:
        if (
            src not in self._state.peers
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
        verify_shares(f"node {self.node_id}: share from node {src}", seed_share, key_share)
        return HeldShares(seed_share, key_share)

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
            or not self._state.neighbours(named) <= self._state.held.keys()
        ):
            raise SecAggError(
                f"node {self.node_id}: unmask request names nodes it holds no shares of"
            )
        count = len(self._state.neighbours(survivors))
        if count < self.config.threshold:
            scope = "" if self.config.num_shares is None else " among its neighbours"
            raise SecAggError(
                f"node {self.node_id}: only {count} survivors{scope} "
                f"(threshold {self.config.threshold}); nothing revealed"
            )


def client_with_run_keys(
    config: SecAggConfig, node_id: int, round_id: str, keys: RunKeys
) -> SecAggClient:
    """A client for round ``round_id`` under keys advertised at the run's set-up
    (:mod:`secagg.run_keys`): it starts at the share stage, its keys already known."""
    state = ClientState(
        config,
        node_id,
        round_id,
        stage="advertised",
        enc_key=keys.encryption_key,
        mask_key=keys.mask_key(round_id),
    )
    return SecAggClient(config, node_id, round_id, state)


def to_config_record(client: SecAggClient) -> ConfigRecord:
    """The client's state as a Flower ConfigRecord (for ``context.state``; never sent)."""
    return ConfigRecord(client.state_dict())


def from_config_record(record: ConfigRecord, *, round_id: str) -> SecAggClient:
    """The client saved by ``to_config_record``, for round ``round_id``."""
    return SecAggClient.from_state_dict(dict(record), round_id=round_id)
