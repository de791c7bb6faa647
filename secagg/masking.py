"""Key agreement, key derivation and mask expansion for secure aggregation.

Masks come from a cryptographic stream: ChaCha20 (RFC 8439, from ``cryptography``) keyed
by HKDF-SHA256 (RFC 5869) of the FULL agreed secret, with a domain-separation label and
the round id in HKDF's ``info``. This replaces Flower's ``pseudo_rand_gen``, which folds the
key to a 32-bit seed for numpy's ``RandomState`` (brute-forceable; flwrlabs/flower#7522).
Each derived key is used for one stream only, so ChaCha20's nonce is fixed at zero.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from secagg.quantization import field_reduce

if TYPE_CHECKING:
    from secagg.messages import SecAggConfig

__all__ = [
    "LABEL_PAIRWISE_MASK",
    "LABEL_SELF_MASK",
    "LABEL_SHARE_ENCRYPTION",
    "agree",
    "derive_key",
    "expand_mask",
    "pair_context",
    "pairwise_mask",
    "raw_private",
    "raw_public",
    "self_mask",
    "share_aad",
]

LABEL_PAIRWISE_MASK = b"fedrisk/secagg/v1/pairwise-mask"
LABEL_SELF_MASK = b"fedrisk/secagg/v1/self-mask"
LABEL_SHARE_ENCRYPTION = b"fedrisk/secagg/v1/share-encryption"
_ZERO_NONCE = bytes(16)  # cryptography's ChaCha20 nonce: 4-byte counter || 12-byte nonce


def agree(private_key: X25519PrivateKey, peer_public: bytes) -> bytes:
    """The 32-byte X25519 shared secret with a peer's raw public key (RFC 7748)."""
    return private_key.exchange(X25519PublicKey.from_public_bytes(peer_public))


def _length_prefixed(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def derive_key(secret: bytes, *, label: bytes, round_id: str, context: bytes = b"") -> bytes:
    """HKDF-SHA256 of the whole secret into a 32-byte key bound to label, round and context."""
    info = _length_prefixed(label, round_id.encode("utf-8"), context)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def expand_mask(key: bytes, length: int, modulus_bits: int) -> np.ndarray:
    """``length`` uniform elements of Z_{2^k} (uint64): the ChaCha20 keystream under ``key``.

    Each element is 8 little-endian keystream bytes reduced mod 2^k; since 2^k divides
    2^64 the reduction keeps the distribution uniform.
    """
    if len(key) != 32:
        raise ValueError(f"mask key must be 32 bytes, got {len(key)}")
    encryptor = Cipher(algorithms.ChaCha20(key, _ZERO_NONCE), mode=None).encryptor()
    stream = encryptor.update(bytes(8 * length))
    return field_reduce(np.frombuffer(stream, dtype="<u8").astype(np.uint64), modulus_bits)


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
