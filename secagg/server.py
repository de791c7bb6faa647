"""Secure aggregation, coordinator side: relay messages, then recover only the sum.

The coordinator sums the masked inputs of the survivors, rebuilds each survivor's self
mask from t shares of its seed and each dropped node's mask private key from t shares,
and removes those masks. Below the threshold at any stage it raises ``SecAggError`` and
releases nothing. ``simulate_round`` runs a whole round in one process (tests, bench).

With ``num_shares`` (SecAgg+, Bell et al., CCS 2020) everything happens within the
public neighbourhoods N(u) of ``SecAggConfig.neighbours``: shares are routed only
between neighbours, u's seed and key come from its surviving neighbours' shares, and a
dropped node's masks are cancelled only with its surviving neighbours. Before asking
for any share, every node that shared keys must keep >= t surviving neighbours holding
its shares (itself included if it survived), and the survivors must stay connected in
the graph: in a split, the masks between the parts are gone, and the seeds would give
the coordinator the sum of each part. Otherwise nothing is revealed or released.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from secagg.client import SecAggClient
from secagg.masking import agree, pairwise_mask, raw_public, self_mask
from secagg.messages import (
    EncryptedShare,
    PublicKeys,
    SecAggConfig,
    SecAggError,
    UnmaskRequest,
    UnmaskResponse,
)
from secagg.quantization import field_add, field_sub
from secagg.shamir import ShareError, combine_shares

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
        public = {pk.node_id: pk for pk in keys}
        for node in sorted(public):
            self.config.check_node(node)
        self._public = public
        self._require(len(self._public), "nodes advertised keys")
        return dict(self._public)

    def directory_for(self, node: int) -> dict[int, PublicKeys]:
        """The part of the key directory ``node`` needs: its neighbours' keys (all keys
        under the complete graph)."""
        return {p: self._public[p] for p in sorted(self.config.neighbours(node, self._public))}

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
                if not self.config.neighbours(src, (dst,)):
                    raise SecAggError(
                        f"share {src}->{dst} refused: node {dst} is not a neighbour of node "
                        f"{src} (num_shares={self.config.num_shares})"
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
        self._check_neighbourhoods(survivors)
        self._check_connected(survivors)
        self._request = UnmaskRequest(survivors, self._sharers - survivors)
        return self._request

    def _check_neighbourhoods(self, survivors: frozenset[int]) -> None:
        """Each sharer's shares must be held by >= t surviving neighbours (always true
        under the complete graph once t masked inputs arrived)."""
        if self.config.num_shares is None:
            return
        held = {u: len(self.config.neighbours(u, survivors)) for u in sorted(self._sharers)}
        short = {u: c for u, c in held.items() if c < self.config.threshold}
        if short:
            counts = ", ".join(f"node {u}: {c}" for u, c in short.items())
            raise SecAggError(
                f"fewer than threshold {self.config.threshold} surviving neighbours hold the "
                f"shares of node(s) {sorted(short)} ({counts}): the round is aborted and "
                "releases nothing"
            )

    def _check_connected(self, survivors: frozenset[int]) -> None:
        """The survivors form one connected part of the graph (always, when complete)."""
        if self.config.num_shares is None:
            return
        parts: list[list[int]] = []
        left = set(survivors)
        while left:
            frontier, part = [min(left)], {min(left)}
            while frontier:
                fresh = self.config.neighbours(frontier.pop(), left) - part
                part |= fresh
                frontier.extend(fresh)
            left -= part
            parts.append(sorted(part))
        if len(parts) > 1:
            raise SecAggError(
                f"the survivors split into {len(parts)} parts of the num_shares="
                f"{self.config.num_shares} graph {parts}: unmasking would reveal the sum of "
                "each part, so the round is aborted and releases nothing"
            )

    def unmask(self, responses: Iterable[UnmaskResponse]) -> np.ndarray:
        """Stage 4: the field sum of the survivors' inputs (decode it with the codec)."""
        if self._request is None or self._masked_sum is None:
            raise SecAggError("unmask called before the masked inputs were collected")
        request = self._request
        answers = [r for r in responses if r.node_id in request.survivors]
        self._require(len({r.node_id for r in answers}), "unmask responses arrived")
        total = self._masked_sum
        for node in sorted(request.survivors):
            seed = self._reconstruct(node, self._shares(node, answers, "seed"), "seed")
            total = field_sub(
                total, self_mask(seed, node, self.round_id, self.config), self.config.modulus_bits
            )
        for node in sorted(request.dropped):
            shares = self._shares(node, answers, "key")
            total = self._cancel_dropped(total, node, shares, request.survivors)
        return total

    def _shares(self, node: int, answers: list[UnmaskResponse], kind: str) -> list[bytes | None]:
        """The shares of ``node``'s seed or key revealed by its neighbours (others hold none)."""
        holders = self.config.neighbours(node, (r.node_id for r in answers))
        return [
            (r.seed_shares if kind == "seed" else r.key_shares).get(node)
            for r in answers
            if r.node_id in holders
        ]

    def _reconstruct(self, node: int, shares: list[bytes | None], kind: str) -> bytes:
        present = sorted({s for s in shares if s is not None})
        self._require(len(present), f"{kind} shares of node {node}")
        try:  # any t shares determine the secret; more only slow combine_shares (O(t^2))
            secret = combine_shares(present[: self.config.threshold])
        except ShareError as error:
            raise SecAggError(f"the {kind} shares of node {node} do not combine: {error}") from None
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
        for survivor in sorted(self.config.neighbours(node, survivors)):
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
    server.collect_public_keys(c.advertise_keys() for c in clients.values())
    inbox = server.route_shares(
        {i: c.share_keys(server.directory_for(i)) for i, c in clients.items()}
    )
    alive = {i: c for i, c in clients.items() if i not in drop_after_sharing}
    request = server.collect_masked_inputs(
        {i: c.masked_input(field_vectors[i], inbox[i]) for i, c in alive.items()}
    )
    return server.unmask(alive[i].unmask_response(request) for i in sorted(request.survivors))
