"""Merkle tree hash, inclusion and consistency proofs of RFC 6962 / RFC 9162 (SHA-256).

The ledgers are append-only logs in the manner of Certificate Transparency, so that a
signed tree head commits to every entry before it and any later head can be proved to
extend it. Everything here follows RFC 9162 ("Certificate Transparency Version 2.0"):

- §2.1.1  MTH({}) = SHA-256(""); MTH({d}) = SHA-256(0x00 || d); for n > 1 and k the
  largest power of two < n, MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])).
  The 0x00 / 0x01 prefixes separate leaves from nodes (second-preimage resistance).
- §2.1.3.1 / §2.1.3.2  inclusion proof (audit path) generation and verification.
- §2.1.4.1 / §2.1.4.2  consistency proof generation and verification.

Functions take *leaf hashes* (:func:`leaf_hash` of each entry's bytes). Verifiers return
None or raise :class:`MerkleError` naming what was expected and what was got.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from common.errors import StateError

__all__ = [
    "EMPTY_ROOT",
    "MerkleError",
    "MerkleTree",
    "leaf_hash",
    "node_hash",
    "root",
    "inclusion_proof",
    "consistency_proof",
    "verify_inclusion",
    "verify_consistency",
]

#: MTH of the empty list, SHA-256 of the empty string (RFC 9162 §2.1.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()


class MerkleError(StateError):
    """A Merkle inclusion or consistency proof does not verify."""

    advice = "The ledger or proof was altered or belongs to another log; do not trust it."


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one leaf (RFC 9162 §2.1.1)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node (RFC 9162 §2.1.1)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly less than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only Merkle tree caching every complete subtree hash.

    ``_levels[h][i]`` is the hash of leaves [i * 2^h, (i + 1) * 2^h), so a root or a proof
    for any tree size is O(log n) (proofs O(log^2 n)) node hashes, and appending is O(1)
    amortised.
    """

    def __init__(self, leaf_hashes: Sequence[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for item in leaf_hashes:
            self.append_hash(item)

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._levels[0])

    def append(self, data: bytes) -> None:
        """Append a leaf given its bytes."""
        self.append_hash(leaf_hash(data))

    def append_hash(self, hashed: bytes) -> None:
        """Append a leaf given its leaf hash; completes any subtrees it closes."""
        self._levels[0].append(hashed)
        height = 0
        while len(self._levels[height]) % 2 == 0:
            level = self._levels[height]
            if height + 1 == len(self._levels):
                self._levels.append([])
            self._levels[height + 1].append(node_hash(level[-2], level[-1]))
            height += 1

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (all by default)."""
        return self._hash(0, self._size(size))

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[size]) of RFC 9162 §2.1.3.1."""
        size = self._size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} is outside a tree of size {size}")
        return self._path(index, 0, size)

    def consistency_proof(self, old_size: int, size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[size]) of RFC 9162 §2.1.4.1 (empty when old_size == size)."""
        size = self._size(size)
        if not 1 <= old_size <= size:
            raise ValueError(f"need 1 <= old size <= new size, got {old_size} and {size}")
        return self._subproof(old_size, 0, size, True)

    def _size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is outside 0..{self.size}")
        return size

    def _hash(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]); every complete subtree met here is aligned, so cached."""
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0:
            return self._levels[n.bit_length() - 1][start // n]
        k = _split(n)
        return node_hash(self._hash(start, start + k), self._hash(start + k, end))

    def _path(self, m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*self._path(m, start, start + k), self._hash(start + k, end)]
        return [*self._path(m - k, start + k, end), self._hash(start, start + k)]

    def _subproof(self, m: int, start: int, end: int, complete: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if complete else [self._hash(start, end)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, start, start + k, complete), self._hash(start + k, end)]
        return [*self._subproof(m - k, start + k, end, False), self._hash(start, start + k)]


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes (RFC 9162 §2.1.1)."""
    return MerkleTree(leaf_hashes).root()


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Audit path of leaf ``index`` in the tree of ``leaf_hashes`` (RFC 9162 §2.1.3.1)."""
    return MerkleTree(leaf_hashes).inclusion_proof(index)


def consistency_proof(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Proof that the first ``old_size`` leaves are a prefix (RFC 9162 §2.1.4.1)."""
    return MerkleTree(leaf_hashes).consistency_proof(old_size)


def _check_root(what: str, expected: bytes, got: bytes) -> None:
    if got != expected:
        raise MerkleError(f"{what} mismatch: expected {expected.hex()}, got {got.hex()}")


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], expected_root: bytes
) -> None:
    """Check that ``leaf`` (a leaf hash) is leaf ``index`` of the tree with that root.

    RFC 9162 §2.1.3.2, step by step; raises MerkleError on any failure.
    """
    if not 0 <= index < tree_size:
        raise MerkleError(f"leaf index {index} is outside a tree of size {tree_size}")
    fn, sn, r = index, tree_size - 1, leaf
    for p in proof:
        if sn == 0:
            raise MerkleError(f"inclusion proof too long: {len(proof)} hashes")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise MerkleError(f"inclusion proof too short: {len(proof)} hashes")
    _check_root("root", expected_root, r)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``old_root`` is a prefix of the tree of ``new_root``.

    RFC 9162 §2.1.4.2, step by step (old_size == new_size needs an empty proof and equal
    roots); raises MerkleError on any failure.
    """
    if not 1 <= old_size <= new_size:
        raise MerkleError(f"need 1 <= old size <= new size, got {old_size} and {new_size}")
    if old_size == new_size:
        if proof:
            raise MerkleError(f"consistency proof too long: {len(proof)} hashes for equal sizes")
        _check_root("root", old_root, new_root)
        return
    if not proof:
        raise MerkleError("consistency proof too short: 0 hashes")
    path = [old_root, *proof] if old_size & (old_size - 1) == 0 else list(proof)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise MerkleError(f"consistency proof too long: {len(proof)} hashes")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise MerkleError(f"consistency proof too short: {len(proof)} hashes")
    _check_root("old root", old_root, fr)
    _check_root("new root", new_root, sr)
