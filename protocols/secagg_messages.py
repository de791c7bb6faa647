"""The messages of fedrisk's secure-aggregation round, and its configuration and error.

Compatibility rule: fields are never removed and their meanings never change, because
these records travel between node and coordinator versions.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.errors import ConfigError, RunFailedError

__all__ = [
    "SecAggError",
    "SecAggConfig",
    "PublicKeys",
    "EncryptedShare",
    "UnmaskRequest",
    "UnmaskResponse",
]


class SecAggError(RunFailedError):
    """The secure-aggregation round cannot complete safely; it releases nothing."""

    advice = "The round released nothing; see the message (dropouts, tampering, protocol misuse)."


@dataclass(frozen=True)
class SecAggConfig:
    """One round: ``threshold`` of the ``num_nodes`` shares reconstruct a secret.

    Every node shares with every other node (complete graph). ``threshold`` must be a
    strict majority so that no two disjoint survivor sets can each reach it.
    """

    num_nodes: int
    threshold: int
    vector_length: int
    modulus_bits: int = 64

    def __post_init__(self) -> None:
        if self.num_nodes < 3:
            raise ConfigError(f"secure aggregation needs >= 3 nodes, got {self.num_nodes}")
        if not self.num_nodes // 2 < self.threshold <= self.num_nodes:
            raise ConfigError(
                f"reconstruction threshold {self.threshold} must be in "
                f"({self.num_nodes // 2}, {self.num_nodes}] for {self.num_nodes} nodes"
            )
        if self.vector_length < 1:
            raise ConfigError(f"vector_length must be >= 1, got {self.vector_length}")
        if not 8 <= self.modulus_bits <= 64:
            raise ConfigError(f"modulus_bits must be in [8, 64], got {self.modulus_bits}")


@dataclass(frozen=True)
class PublicKeys:
    """Stage 1, node -> all: raw X25519 public keys for share encryption and for masks."""

    node_id: int
    encryption_key: bytes
    mask_key: bytes


@dataclass(frozen=True)
class EncryptedShare:
    """Stage 2, node -> node via the coordinator: ChaCha20-Poly1305 of the two shares.

    The plaintext (Flower's ``share_keys_plaintext_concat``) holds src, dst, a share of
    the sender's self-mask seed and a share of its mask private key; the AAD binds the
    round id, src and dst.
    """

    src: int
    dst: int
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class UnmaskRequest:
    """Stage 4, coordinator -> survivors: who sent a masked input and who dropped."""

    survivors: frozenset[int]
    dropped: frozenset[int]


@dataclass(frozen=True)
class UnmaskResponse:
    """Stage 4, survivor -> coordinator: self-mask-seed shares of survivors and
    mask-key shares of dropped nodes (never both for one peer)."""

    node_id: int
    seed_shares: dict[int, bytes]
    key_shares: dict[int, bytes]
