"""RFC 6962 / 9162 Merkle tree: known answers, every proof up to 64 leaves, tampered proofs.

Known answers are the Certificate Transparency test vectors (certificate-transparency's
merkle_tree_test.cc, also in transparency-dev/merkle testonly/constants.go and
proof/verify_test.go). A second, naive recursive implementation of RFC 9162 §2.1 written
here checks every tree size and proof the vectors do not cover.
"""

from __future__ import annotations

import hashlib
import time

import pytest

from ledger.merkle import (
    EMPTY_ROOT,
    MerkleError,
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, audit path) and (old size, new size, proof), from the same suites.
INCLUSION_VECTORS = [
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]  # fmt: skip

MAX = 64


def hashes(n: int) -> list[bytes]:
    """Factory: leaf hashes of n distinct leaves."""
    return [leaf_hash(i.to_bytes(2, "big")) for i in range(n)]


def naive_root(leaves: list[bytes]) -> bytes:
    """MTH of RFC 9162 §2.1.1, literally (leaf hashes in)."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + naive_root(leaves[:k]) + naive_root(leaves[k:])).digest()


def naive_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1, literally."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return naive_path(m, leaves[:k]) + [naive_root(leaves[k:])]
    return naive_path(m - k, leaves[k:]) + [naive_root(leaves[:k])]


def test_hash_known_answers() -> None:
    # Assert: empty tree, empty leaf and the rfc6962 hasher vectors
    assert EMPTY_ROOT.hex() == ROOTS[0]
    assert leaf_hash(b"").hex() == ROOTS[1]
    assert leaf_hash(b"L123456").hex() == (
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )
    assert node_hash(b"N123", b"N456").hex() == (
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )


@pytest.mark.parametrize("size", range(9))
def test_roots_match_the_ct_vectors(size: int) -> None:
    # Prepare
    leaves = [leaf_hash(d) for d in LEAVES[:size]]
    tree = MerkleTree()
    for data in LEAVES[:size]:
        tree.append(data)
    # Execute / Assert: function, incremental tree, and the root of every prefix
    assert root(leaves).hex() == ROOTS[size]
    assert tree.root().hex() == ROOTS[size]
    assert MerkleTree([leaf_hash(d) for d in LEAVES]).root(size).hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION_VECTORS)
def test_inclusion_proofs_match_the_ct_vectors(index: int, size: int, path: list[str]) -> None:
    leaves = [leaf_hash(d) for d in LEAVES[:size]]
    proof = inclusion_proof(index, leaves)
    assert [p.hex() for p in proof] == path
    verify_inclusion(leaves[index], index, size, proof, bytes.fromhex(ROOTS[size]))


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY_VECTORS)
def test_consistency_proofs_match_the_ct_vectors(old: int, new: int, path: list[str]) -> None:
    leaves = [leaf_hash(d) for d in LEAVES[:new]]
    proof = consistency_proof(old, leaves)
    assert [p.hex() for p in proof] == path
    verify_consistency(old, new, bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new]), proof)


def test_every_root_and_inclusion_proof_up_to_64_leaves() -> None:
    # Prepare
    leaves = hashes(MAX)
    tree = MerkleTree(leaves)
    for size in range(1, MAX + 1):
        expected_root = naive_root(leaves[:size])
        assert tree.root(size) == expected_root
        for index in range(size):
            # Execute
            proof = tree.inclusion_proof(index, size)
            # Assert: the RFC's path, and it verifies
            assert proof == naive_path(index, leaves[:size])
            verify_inclusion(leaves[index], index, size, proof, expected_root)


def test_every_consistency_proof_up_to_64_leaves() -> None:
    leaves = hashes(MAX)
    tree = MerkleTree(leaves)
    for new in range(1, MAX + 1):
        for old in range(1, new + 1):
            proof = tree.consistency_proof(old, new)
            verify_consistency(old, new, tree.root(old), tree.root(new), proof)


def _flip(digest: bytes) -> bytes:
    """The digest with bit 3 of its first byte flipped."""
    return bytes([digest[0] ^ 8]) + digest[1:]


def _inclusion_case(index: int = 5, size: int = 13) -> tuple[list[bytes], list[bytes], bytes]:
    leaves = hashes(size)
    return leaves, inclusion_proof(index, leaves), root(leaves)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda leaf, i, n, p, r: (leaf, i, n, p, hashes(1)[0]), "root mismatch"),
        (lambda leaf, i, n, p, r: (leaf, i + 1, n, p, r), "root mismatch"),
        (lambda leaf, i, n, p, r: (leaf, i ^ 2, n, p, r), "root mismatch"),
        (lambda leaf, i, n, p, r: (hashes(1)[0], i, n, p, r), "root mismatch"),
        (lambda leaf, i, n, p, r: (leaf, i, n, [_flip(p[0]), *p[1:]], r), "root mismatch"),
        (lambda leaf, i, n, p, r: (leaf, i, n, p[:-1], r), "too short"),
        (lambda leaf, i, n, p, r: (leaf, i, n, [*p, r], r), "too long"),
        (lambda leaf, i, n, p, r: (leaf, i, n * 2, p, r), "too short"),
        (lambda leaf, i, n, p, r: (leaf, n, n, p, r), "outside a tree of size 13"),
    ],
    ids=["wrong root", "index+1", "index^2", "wrong leaf", "altered", "short", "long", "size*2",
         "index=size"],
)  # fmt: skip
def test_tampered_inclusion_is_refused(change, message: str) -> None:
    # Prepare
    leaves, proof, good_root = _inclusion_case()
    args = change(leaves[5], 5, 13, proof, good_root)
    # Execute / Assert
    with pytest.raises(MerkleError, match=message):
        verify_inclusion(*args)


def test_root_mismatch_names_expected_and_got() -> None:
    leaves, proof, good_root = _inclusion_case()
    wrong = hashes(1)[0]
    got = good_root.hex()
    with pytest.raises(MerkleError, match=f"expected {wrong.hex()}, got {got}"):
        verify_inclusion(leaves[5], 5, 13, proof, wrong)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda o, n, ro, rn, p: (o, n, hashes(1)[0], rn, p), "old root mismatch"),
        (lambda o, n, ro, rn, p: (o, n, ro, hashes(1)[0], p), "new root mismatch"),
        (lambda o, n, ro, rn, p: (o, n, ro, rn, [p[0], _flip(p[1]), *p[2:]]), "root mismatch"),
        (lambda o, n, ro, rn, p: (o, n, ro, rn, p[:-1]), "too short"),
        (lambda o, n, ro, rn, p: (o, n, ro, rn, [*p, rn]), "too long"),
        (lambda o, n, ro, rn, p: (o, n, ro, rn, []), "too short"),
        (lambda o, n, ro, rn, p: (o + 1, n, ro, rn, p), "mismatch|too"),
        (lambda o, n, ro, rn, p: (n, o, rn, ro, p), "old size <= new size"),
        (lambda o, n, ro, rn, p: (n, n, ro, rn, []), "root mismatch"),
    ],
    ids=["old root", "new root", "altered", "short", "long", "empty", "old+1", "swapped",
         "equal sizes"],
)  # fmt: skip
def test_tampered_consistency_is_refused(change, message: str) -> None:
    # Prepare: 6 -> 13 leaves (old size not a power of two, so the proof has 4 hashes)
    leaves = hashes(13)
    tree = MerkleTree(leaves)
    args = change(6, 13, tree.root(6), tree.root(13), tree.consistency_proof(6, 13))
    # Execute / Assert
    with pytest.raises(MerkleError, match=message):
        verify_consistency(*args)


def test_proof_requests_outside_the_tree_are_value_errors() -> None:
    tree = MerkleTree(hashes(4))
    with pytest.raises(ValueError, match="outside a tree of size 4"):
        tree.inclusion_proof(4)
    with pytest.raises(ValueError, match="need 1 <= old size <= new size"):
        tree.consistency_proof(0)
    with pytest.raises(ValueError, match="tree size 5 is outside 0..4"):
        tree.root(5)


def test_a_10000_leaf_tree_is_fast() -> None:
    # Execute
    start = time.perf_counter()
    tree = MerkleTree()
    for i in range(10_000):
        tree.append(i.to_bytes(4, "big"))
    top = tree.root()
    seconds = time.perf_counter() - start
    # Assert: well under a second, and equal to the naive definition
    assert seconds < 1.0
    assert top == naive_root([leaf_hash(i.to_bytes(4, "big")) for i in range(10_000)])
