"""The messages of fedrisk's secure-aggregation round, and its configuration and error.

Compatibility rule: fields are never removed and their meanings never change, because
these records travel between node and coordinator versions. The same holds for the keys of
their wire dicts (``*_to_dict`` / ``*_from_dict``): flat dicts of int, str, bytes and lists
of them, so that they fit a Flower ``ConfigRecord``; every reader checks them with
:func:`common.codec.decode_wire` (each missing, unknown or mistyped key named), then
checks sizes, ranges and lengths.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from flwr.app.typing import ConfigRecordValues
from typing_extensions import TypedDict

from common.codec import decode_wire
from common.errors import ConfigError, RunFailedError
from secagg.graph import GraphError, neighbourhood

__all__ = [
    "SecAggError",
    "SecAggConfig",
    "PublicKeys",
    "EncryptedShare",
    "UnmaskRequest",
    "UnmaskResponse",
    "WireDict",
    "read_wire",
    "public_keys_to_dict",
    "public_keys_from_dict",
    "key_directory_to_dict",
    "key_directory_from_dict",
    "encrypted_shares_to_dict",
    "encrypted_shares_from_dict",
    "unmask_request_to_dict",
    "unmask_request_from_dict",
    "unmask_response_to_dict",
    "unmask_response_from_dict",
]

WireDict = dict[str, ConfigRecordValues]
"""A flat, ConfigRecord-compatible dict (``flwr.app.ConfigRecord(d)`` accepts it); fedrisk
uses only int, str, bytes, list[int] and list[bytes] values."""

_KEY_BYTES = 32  # raw X25519 keys
_NONCE_BYTES = 12  # ChaCha20-Poly1305


class SecAggError(RunFailedError):
    """The secure-aggregation round cannot complete safely; it releases nothing."""

    advice = "The round released nothing; see the message (dropouts, tampering, protocol misuse)."


@dataclass(frozen=True)
class SecAggConfig:
    """One round: ``threshold`` of the shares a node hands out reconstruct its secrets.

    ``num_shares`` (k) is SecAgg+ (Bell et al., CCS 2020, "Secure Single-Server Aggregation
    with (Poly)Logarithmic Overhead"): each node shares keys with, and masks against, only
    its neighbourhood, k nodes of a public graph including itself, so its cost grows with
    k, not with ``num_nodes`` (n). ``None`` is the complete graph of SecAgg (Bonawitz et
    al. 2017): every node that advertised keys, whatever its id. With k set, node ids are
    the positions 1..n of the graph (see ``neighbours``); k == n is the complete graph.

    ``threshold`` (t) must be a strict majority of the neighbourhood, k // 2 < t <= k
    (n for ``None``): no two disjoint sets of a node's neighbours can each reach t, so the
    coordinator cannot gather t shares of both its self-mask seed and its mask key.
    Privacy holds against the coordinator together with fewer than t members of any one
    neighbourhood (with the complete graph: fewer than t nodes in all).
    """

    num_nodes: int
    threshold: int
    vector_length: int
    modulus_bits: int = 64
    num_shares: int | None = None
    #: The public randomness that places the nodes on the graph: the round id
    #: (:mod:`secagg.graph`; "" keeps the plain labelling, for tests).
    graph_seed: str = ""

    def __post_init__(self) -> None:
        n, k, t = self.num_nodes, self.num_shares, self.threshold
        if n < 3:
            raise ConfigError(f"secure aggregation needs >= 3 nodes, got {n}")
        if k is not None and not 3 <= k <= n:
            raise ConfigError(f"num_shares {k} must be in [3, {n}] for {n} nodes (null: all)")
        size = n if k is None else k
        if not size // 2 < t <= size:
            scope = f"{n} nodes" if k is None else f"num_shares {k} ({n} nodes)"
            raise ConfigError(
                f"reconstruction threshold {t} must be in ({size // 2}, {size}] for {scope}"
            )
        if self.vector_length < 1:
            raise ConfigError(f"vector_length must be >= 1, got {self.vector_length}")
        if not 8 <= self.modulus_bits <= 64:
            raise ConfigError(f"modulus_bits must be in [8, 64], got {self.modulus_bits}")

    def neighbours(self, node: int, among: Iterable[int]) -> frozenset[int]:
        """The members of ``among`` in the closed neighbourhood N(node) (node included):
        every node for the complete graph (``num_shares`` None), else the round's random
        Harary graph (:mod:`secagg.graph`)."""
        if self.num_shares is None:
            return frozenset(among)
        try:
            members = neighbourhood(node, self.num_nodes, self.num_shares, self.graph_seed)
        except GraphError as err:
            raise SecAggError(str(err)) from None
        return members.intersection(among)

    def check_node(self, node: int) -> None:
        """A node id must be a graph position 1..n when ``num_shares`` is set."""
        if self.num_shares is not None and not 1 <= node <= self.num_nodes:
            raise SecAggError(
                f"node id {node} is not a position 1..{self.num_nodes} of the "
                f"num_shares={self.num_shares} graph"
            )


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


class _PublicKeysWire(TypedDict):
    node_id: int
    encryption_key: bytes
    mask_key: bytes


class _DirectoryWire(TypedDict):
    node_ids: list[int]
    encryption_keys: list[bytes]
    mask_keys: list[bytes]


class _SharesWire(TypedDict):
    keys: list[int]
    src: list[int]
    dst: list[int]
    nonce: list[bytes]
    ciphertext: list[bytes]


class _RequestWire(TypedDict):
    survivors: list[int]
    dropped: list[int]


class _ResponseWire(TypedDict):
    node_id: int
    seed_share_ids: list[int]
    seed_shares: list[bytes]
    key_share_ids: list[int]
    key_shares: list[bytes]


W = TypeVar("W")


def read_wire(shape: type[W], d: Mapping[str, object], what: str) -> W:
    """``d`` checked against ``shape`` (a TypedDict of int, str, bytes and lists of them):
    SecAggError names every missing, unknown or mistyped key."""
    return decode_wire(shape, dict(d), what, SecAggError)


def _node_id(value: int, key: str, what: str) -> int:
    if not 0 <= value < 2**64:
        raise SecAggError(f"{what}: key '{key}' is outside [0, 2^64)")
    return value


def _node_ids(ids: list[int], key: str, what: str) -> list[int]:
    if len(set(ids)) != len(ids) or any(not 0 <= i < 2**64 for i in ids):
        raise SecAggError(f"{what}: key '{key}' has repeated node ids or ids outside [0, 2^64)")
    return ids


def _sized(value: bytes, key: str, size: int, what: str) -> bytes:
    if len(value) != size:
        raise SecAggError(f"{what}: key '{key}' needs {size} bytes, got {len(value)}")
    return value


def _byte_strings(values: list[bytes], key: str, size: int, what: str) -> list[bytes]:
    if any(len(v) != size for v in values):
        raise SecAggError(f"{what}: key '{key}' needs {size}-byte values")
    return values


def _parallel(what: str, **columns: list[Any]) -> None:
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) > 1:
        raise SecAggError(f"{what}: keys {sorted(lengths)} differ in length {lengths}")


def public_keys_to_dict(keys: PublicKeys) -> WireDict:
    """Stage 1 wire form of one node's advertisement."""
    return {
        "node_id": keys.node_id,
        "encryption_key": keys.encryption_key,
        "mask_key": keys.mask_key,
    }


def public_keys_from_dict(d: Mapping[str, object]) -> PublicKeys:
    """Inverse of ``public_keys_to_dict``; keys must be 32 raw bytes."""
    what = "public keys"
    wire = read_wire(_PublicKeysWire, d, what)
    return PublicKeys(
        _node_id(wire["node_id"], "node_id", what),
        _sized(wire["encryption_key"], "encryption_key", _KEY_BYTES, what),
        _sized(wire["mask_key"], "mask_key", _KEY_BYTES, what),
    )


def key_directory_to_dict(directory: Mapping[int, PublicKeys]) -> WireDict:
    """Stage 1 broadcast (node id -> PublicKeys) as parallel lists."""
    items = sorted(directory.items())
    if any(i != pk.node_id for i, pk in items):
        raise SecAggError("key directory: an entry is filed under another node's id")
    return {
        "node_ids": [i for i, _ in items],
        "encryption_keys": [pk.encryption_key for _, pk in items],
        "mask_keys": [pk.mask_key for _, pk in items],
    }


def key_directory_from_dict(
    d: Mapping[str, object], what: str = "key directory"
) -> dict[int, PublicKeys]:
    """Inverse of ``key_directory_to_dict``; keys must be 32 raw bytes."""
    wire = read_wire(_DirectoryWire, d, what)
    ids = _node_ids(wire["node_ids"], "node_ids", what)
    enc = _byte_strings(wire["encryption_keys"], "encryption_keys", _KEY_BYTES, what)
    mask = _byte_strings(wire["mask_keys"], "mask_keys", _KEY_BYTES, what)
    _parallel(what, node_ids=ids, encryption_keys=enc, mask_keys=mask)
    return {i: PublicKeys(i, e, m) for i, e, m in zip(ids, enc, mask, strict=True)}


def encrypted_shares_to_dict(shares: Mapping[int, EncryptedShare]) -> WireDict:
    """Stage 2 shares, filed by receiver (outgoing) or by sender (inbox), as parallel lists."""
    items = sorted(shares.items())
    return {
        "keys": [k for k, _ in items],
        "src": [s.src for _, s in items],
        "dst": [s.dst for _, s in items],
        "nonce": [s.nonce for _, s in items],
        "ciphertext": [s.ciphertext for _, s in items],
    }


def encrypted_shares_from_dict(d: Mapping[str, object]) -> dict[int, EncryptedShare]:
    """Inverse of ``encrypted_shares_to_dict``; each share is filed under its src or dst."""
    what = "encrypted shares"
    wire = read_wire(_SharesWire, d, what)
    keys = _node_ids(wire["keys"], "keys", what)
    src, dst = wire["src"], wire["dst"]
    nonce = _byte_strings(wire["nonce"], "nonce", _NONCE_BYTES, what)
    cipher = wire["ciphertext"]
    _parallel(what, keys=keys, src=src, dst=dst, nonce=nonce, ciphertext=cipher)
    if any(k not in (s, t) for k, s, t in zip(keys, src, dst, strict=True)):
        raise SecAggError(f"{what}: key 'keys' files a share under neither its src nor its dst")
    return {
        k: EncryptedShare(s, t, n, c)
        for k, s, t, n, c in zip(keys, src, dst, nonce, cipher, strict=True)
    }


def unmask_request_to_dict(request: UnmaskRequest) -> WireDict:
    """Stage 4 request as two sorted id lists."""
    return {"survivors": sorted(request.survivors), "dropped": sorted(request.dropped)}


def unmask_request_from_dict(d: Mapping[str, object]) -> UnmaskRequest:
    """Inverse of ``unmask_request_to_dict`` (the overlap check is the node's own)."""
    what = "unmask request"
    wire = read_wire(_RequestWire, d, what)
    survivors = _node_ids(wire["survivors"], "survivors", what)
    dropped = _node_ids(wire["dropped"], "dropped", what)
    return UnmaskRequest(frozenset(survivors), frozenset(dropped))


def unmask_response_to_dict(response: UnmaskResponse) -> WireDict:
    """Stage 4 response as id lists parallel to share lists."""
    seeds, keys = sorted(response.seed_shares.items()), sorted(response.key_shares.items())
    return {
        "node_id": response.node_id,
        "seed_share_ids": [i for i, _ in seeds],
        "seed_shares": [s for _, s in seeds],
        "key_share_ids": [i for i, _ in keys],
        "key_shares": [s for _, s in keys],
    }


def unmask_response_from_dict(d: Mapping[str, object]) -> UnmaskResponse:
    """Inverse of ``unmask_response_to_dict``."""
    what = "unmask response"
    wire = read_wire(_ResponseWire, d, what)
    node_id = _node_id(wire["node_id"], "node_id", what)
    seed_ids = _node_ids(wire["seed_share_ids"], "seed_share_ids", what)
    key_ids = _node_ids(wire["key_share_ids"], "key_share_ids", what)
    seeds, keys = wire["seed_shares"], wire["key_shares"]
    _parallel(what, seed_share_ids=seed_ids, seed_shares=seeds)
    _parallel(what, key_share_ids=key_ids, key_shares=keys)
    return UnmaskResponse(
        node_id, dict(zip(seed_ids, seeds, strict=True)), dict(zip(key_ids, keys, strict=True))
    )
