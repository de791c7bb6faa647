"""Secure aggregation, coordinator side: relay messages, then recover only the sum.

The coordinator sums the masked inputs of the survivors, rebuilds each survivor's self
mask from t shares of its seed and each dropped node's mask private key from t shares,
and removes those masks. Below the threshold at any stage it raises ``SecAggError`` and
releases nothing. ``simulate_round`` runs a whole round in one process (tests, bench).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flwr.common.secure_aggregation.crypto.shamir import combine_shares

from protocols.masking import agree
from protocols.quantization import field_add, field_sub
from protocols.secagg import SecAggClient, pairwise_mask, raw_public, self_mask
from protocols.secagg_messages import (
    EncryptedShare,
    PublicKeys,
    SecAggConfig,
    SecAggError,
    UnmaskRequest,
    UnmaskResponse,
)

__all__ = ["SecAggServer", "simulate_round"]


class SecAggServer:
    """The coordinator's state for one round; it never sees a node's unmasked input."""

    def __init__(self, config: SecAggConfig, round_id: str) -> None:
        self.config, self.round_id = config, round_id
        self._public: dict[int, PublicKeys] = {}
        self._sharers: frozenset[int] = frozenset()
        self._request: UnmaskRequest | None = None
        self._masked_sum: np.ndarray | None = None

    def _require(self, count: int, what: str) -> None:
        if count < self.config.threshold:
            raise SecAggError(
                f"only {count} {what} (threshold {self.config.threshold}): "
                "the round is aborted and releases nothing"
            )

    def collect_public_keys(self, keys: Iterable[PublicKeys]) -> dict[int, PublicKeys]:
        """Stage 1: the key directory broadcast to every node."""
        self._public = {pk.node_id: pk for pk in keys}
        self._require(len(self._public), "nodes advertised keys")
        return dict(self._public)

    def route_shares(
        self, outgoing: Mapping[int, Mapping[int, EncryptedShare]]
    ) -> dict[int, dict[int, EncryptedShare]]:
        """Stage 2: forward each encrypted share to its receiver, among nodes that shared."""
        self._sharers = frozenset(outgoing) & self._public.keys()
        self._require(len(self._sharers), "nodes shared keys")
        inbox: dict[int, dict[int, EncryptedShare]] = {dst: {} for dst in self._sharers}
        for src in self._sharers:
            for dst, share in outgoing[src].items():
                if (share.src, share.dst) != (src, dst):
                    raise SecAggError(
                        f"share labelled {share.src}->{share.dst} sent as {src}->{dst}"
                    )
                if dst in self._sharers:
                    inbox[dst][src] = share
        return inbox

    def collect_masked_inputs(self, masked: Mapping[int, np.ndarray]) -> UnmaskRequest:
        """Stage 3: add the masked inputs; senders survive, the other sharers dropped."""
        unknown = masked.keys() - self._sharers
        if unknown:
            raise SecAggError(f"masked input from nodes {sorted(unknown)} that did not share keys")
        self._require(len(masked), "masked inputs arrived")
        total = np.zeros(self.config.vector_length, dtype=np.uint64)
        for vector in masked.values():
            total = field_add(total, vector, self.config.modulus_bits)
        self._masked_sum = total
        survivors = frozenset(masked)
        self._request = UnmaskRequest(survivors, self._sharers - survivors)
        return self._request

    def unmask(self, responses: Iterable[UnmaskResponse]) -> np.ndarray:
        """Stage 4: the field sum of the survivors' inputs (decode it with the codec)."""
        if self._request is None or self._masked_sum is None:
            raise SecAggError("unmask called before the masked inputs were collected")
        request = self._request
        answers = [r for r in responses if r.node_id in request.survivors]
        self._require(len({r.node_id for r in answers}), "unmask responses arrived")
        total = self._masked_sum
        for node in sorted(request.survivors):
            seed = self._reconstruct(node, [r.seed_shares.get(node) for r in answers], "seed")
            total = field_sub(
                total, self_mask(seed, node, self.round_id, self.config), self.config.modulus_bits
            )
        for node in sorted(request.dropped):
            shares = [r.key_shares.get(node) for r in answers]
            total = self._cancel_dropped(total, node, shares, request.survivors)
        return total

    def _reconstruct(self, node: int, shares: list[bytes | None], kind: str) -> bytes:
        present = sorted({s for s in shares if s is not None})
        self._require(len(present), f"{kind} shares of node {node}")
        try:  # any t shares determine the secret; more only slow Shamir.combine (O(t^2))
            secret = combine_shares(present[: self.config.threshold])
        except ValueError:
            raise SecAggError(f"the {kind} shares of node {node} do not combine") from None
        if len(secret) != 32:
            raise SecAggError(f"the {kind} of node {node} reconstructed to {len(secret)} bytes")
        return secret

    def _cancel_dropped(
        self, total: np.ndarray, node: int, shares: list[bytes | None], survivors: frozenset[int]
    ) -> np.ndarray:
        key = X25519PrivateKey.from_private_bytes(self._reconstruct(node, shares, "mask-key"))
        if raw_public(key) != self._public[node].mask_key:
            raise SecAggError(
                f"the reconstructed mask key of node {node} does not match its public key"
            )
        bits = self.config.modulus_bits
        for survivor in sorted(survivors):
            mask = pairwise_mask(
                agree(key, self._public[survivor].mask_key),
                survivor,
                node,
                self.round_id,
                self.config,
            )
            total = (
                field_sub(total, mask, bits) if survivor < node else field_add(total, mask, bits)
            )
        return total


def simulate_round(
    config: SecAggConfig,
    field_vectors: Mapping[int, np.ndarray],
    *,
    round_id: str,
    drop_after_sharing: Collection[int] = (),
) -> np.ndarray:
    """Run one round in process with the given nodes; returns the unmasked field sum."""
    clients = {i: SecAggClient(config, i, round_id) for i in field_vectors}
    server = SecAggServer(config, round_id)
    directory = server.collect_public_keys(c.advertise_keys() for c in clients.values())
    inbox = server.route_shares({i: c.share_keys(directory) for i, c in clients.items()})
    alive = {i: c for i, c in clients.items() if i not in drop_after_sharing}
    request = server.collect_masked_inputs(
        {i: c.masked_input(field_vectors[i], inbox[i]) for i, c in alive.items()}
    )
    return server.unmask(alive[i].unmask_response(request) for i in sorted(request.survivors))
