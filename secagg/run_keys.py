"""A node's secure-aggregation keys for a whole run: advertised once, used round by round.

Why: a round of SecAgg+ needs both key pairs of every node before anything else, and
advertising them was a Flower exchange of its own in every round (in a deployment, a
fresh process per node: about a fifth of a round). Here the keys are set up once per run
(Flamingo, Ma et al., S&P 2023: one set-up for many rounds of secure aggregation): each
node makes one encryption key pair for the run and one mask key pair for each round the
coordinator names, and advertises all their public halves in one message; each later
round starts at the share stage, under that round's keys.

Why a mask key per round and not one for the run: to remove a dropout's pairwise masks the
coordinator reconstructs the dropout's mask private key. With one key for the run that
would also strip its pairwise masks of every earlier round, in which it survived and its
self-mask was removed: its inputs of those rounds would be exposed. With one mask key per
round, a revealed key opens only its own round, where the node's self-mask stays hidden
(no honest peer reveals both kinds of share for one node in a round). So no key needs
replacing after a dropout; a round's security is that of a SecAgg+ round with fresh keys
(the README, "Secure aggregation", gives the argument). The share-encryption key pair
serves the whole run: each round's channel key is derived from it with the round id
(HKDF, ``secagg.masking.derive_key``), and it is never revealed.

The coordinator's side is :class:`KeyBook`: who advertised which keys, for which rounds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from typing_extensions import TypedDict

from secagg.masking import raw_private, raw_public
from secagg.messages import PublicKeys, SecAggError, WireDict, read_wire

__all__ = [
    "MAX_SETUP_ROUNDS",
    "RUN_KEYS_FORMAT",
    "KeyBook",
    "RunKeys",
    "RunPublicKeys",
    "SetupRequest",
    "run_keys_from_wire",
    "run_keys_to_wire",
    "run_public_keys_from_dict",
    "run_public_keys_to_dict",
    "setup_request_from_dict",
    "setup_request_to_dict",
]

#: The most rounds one set-up may name: a bound on the keys a request can make a node
#: generate and store (a run's rounds are far fewer).
MAX_SETUP_ROUNDS = 1000
RUN_KEYS_FORMAT = "fedrisk/secagg/run-keys/v1"
_KEY_BYTES = 32
_MAX_ID_CHARS = 200


@dataclass(frozen=True)
class SetupRequest:
    """Coordinator -> node: make keys for these rounds under set-up ``setup_id``."""

    setup_id: str
    round_ids: tuple[str, ...]


@dataclass(frozen=True)
class RunPublicKeys:
    """Node -> coordinator: the public halves of a set-up's keys (raw X25519 bytes)."""

    setup_id: str
    encryption_key: bytes
    mask_keys: Mapping[str, bytes]

    def for_round(self, node_id: int, round_id: str) -> PublicKeys | None:
        """The node's keys in round ``round_id`` under graph position ``node_id`` (None:
        this set-up made no mask key for that round)."""
        mask = self.mask_keys.get(round_id)
        return None if mask is None else PublicKeys(node_id, self.encryption_key, mask)


@dataclass(frozen=True)
class RunKeys:
    """A node's private keys of one set-up (secret: they stay in its ``context.state``)."""

    setup_id: str
    encryption_key: X25519PrivateKey
    mask_keys: Mapping[str, X25519PrivateKey]

    @classmethod
    def generate(cls, request: SetupRequest) -> RunKeys:
        """Fresh key pairs: one for share encryption, one for masks per round named."""
        masks = {r: X25519PrivateKey.generate() for r in request.round_ids}
        return cls(request.setup_id, X25519PrivateKey.generate(), masks)

    def public(self) -> RunPublicKeys:
        masks = {r: raw_public(k) for r, k in self.mask_keys.items()}
        return RunPublicKeys(self.setup_id, raw_public(self.encryption_key), masks)

    def mask_key(self, round_id: str) -> X25519PrivateKey:
        """The mask key of ``round_id``; SecAggError when this set-up made none."""
        key = self.mask_keys.get(round_id)
        if key is None:
            raise SecAggError(
                f"no mask key for round {round_id!r} in key set-up {self.setup_id!r}: "
                "the coordinator must set keys up again"
            )
        return key


class _SetupWire(TypedDict):
    setup_id: str
    round_ids: list[str]


class _PublicWire(TypedDict):
    setup_id: str
    encryption_key: bytes
    round_ids: list[str]
    mask_keys: list[bytes]


class _PrivateWire(TypedDict):
    format: str
    setup_id: str
    encryption_private_key: bytes
    round_ids: list[str]
    mask_private_keys: list[bytes]


def _round_ids(ids: list[str], what: str) -> tuple[str, ...]:
    if not 1 <= len(ids) <= MAX_SETUP_ROUNDS:
        raise SecAggError(f"{what}: key 'round_ids' needs 1 to {MAX_SETUP_ROUNDS} rounds")
    if len(set(ids)) != len(ids) or any(not 0 < len(r) <= _MAX_ID_CHARS for r in ids):
        raise SecAggError(f"{what}: key 'round_ids' has repeated, empty or overlong ids")
    return tuple(ids)


def _setup_id(value: str, what: str) -> str:
    if not 0 < len(value) <= _MAX_ID_CHARS:
        raise SecAggError(f"{what}: key 'setup_id' must have 1 to {_MAX_ID_CHARS} characters")
    return value


def _keys(values: list[bytes], key: str, count: int, what: str) -> list[bytes]:
    if len(values) != count or any(len(v) != _KEY_BYTES for v in values):
        raise SecAggError(f"{what}: key '{key}' needs {count} values of {_KEY_BYTES} bytes")
    return values


def setup_request_to_dict(request: SetupRequest) -> WireDict:
    return {"setup_id": request.setup_id, "round_ids": list(request.round_ids)}


def setup_request_from_dict(d: Mapping[str, object]) -> SetupRequest:
    """Inverse of ``setup_request_to_dict``: ids checked (count, repeats, length)."""
    what = "key set-up request"
    wire = read_wire(_SetupWire, d, what)
    return SetupRequest(_setup_id(wire["setup_id"], what), _round_ids(wire["round_ids"], what))


def run_public_keys_to_dict(keys: RunPublicKeys) -> WireDict:
    rounds = sorted(keys.mask_keys)
    return {
        "setup_id": keys.setup_id,
        "encryption_key": keys.encryption_key,
        "round_ids": rounds,
        "mask_keys": [keys.mask_keys[r] for r in rounds],
    }


def run_public_keys_from_dict(d: Mapping[str, object]) -> RunPublicKeys:
    """Inverse of ``run_public_keys_to_dict``: every key 32 bytes, one per round id."""
    what = "advertised run keys"
    wire = read_wire(_PublicWire, d, what)
    rounds = _round_ids(wire["round_ids"], what)
    masks = _keys(wire["mask_keys"], "mask_keys", len(rounds), what)
    encryption = _keys([wire["encryption_key"]], "encryption_key", 1, what)[0]
    return RunPublicKeys(
        _setup_id(wire["setup_id"], what), encryption, dict(zip(rounds, masks, strict=True))
    )


def run_keys_to_wire(keys: RunKeys) -> WireDict:
    """The node's saved form of its keys (secret: for ``context.state`` only)."""
    rounds = sorted(keys.mask_keys)
    return {
        "format": RUN_KEYS_FORMAT,
        "setup_id": keys.setup_id,
        "encryption_private_key": raw_private(keys.encryption_key),
        "round_ids": rounds,
        "mask_private_keys": [raw_private(keys.mask_keys[r]) for r in rounds],
    }


def run_keys_from_wire(d: Mapping[str, Any]) -> RunKeys:
    """Inverse of ``run_keys_to_wire``; a saved form of another format is refused."""
    what = "saved run keys"
    wire = read_wire(_PrivateWire, d, what)
    if wire["format"] != RUN_KEYS_FORMAT:
        raise SecAggError(f"{what}: key 'format' is {wire['format']!r}, not {RUN_KEYS_FORMAT!r}")
    rounds = _round_ids(wire["round_ids"], what)
    raw_masks = _keys(wire["mask_private_keys"], "mask_private_keys", len(rounds), what)
    raw_enc = _keys([wire["encryption_private_key"]], "encryption_private_key", 1, what)[0]
    return RunKeys(
        _setup_id(wire["setup_id"], what),
        X25519PrivateKey.from_private_bytes(raw_enc),
        {r: X25519PrivateKey.from_private_bytes(k) for r, k in zip(rounds, raw_masks, strict=True)},
    )


class KeyBook:
    """The coordinator's record of the nodes' advertised run keys, by Flower node id.

    A node's entry is replaced when it advertises again (a new set-up); a round's key
    directory takes each node's keys for that round (:meth:`for_round`).
    """

    def __init__(self) -> None:
        self._keys: dict[int, RunPublicKeys] = {}

    def missing(self, node_ids: Iterable[int], round_id: str) -> list[int]:
        """The nodes of ``node_ids`` without keys for ``round_id`` (to set up first)."""
        return [n for n in node_ids if round_id not in self._rounds(n)]

    def _rounds(self, node_id: int) -> Mapping[str, bytes]:
        keys = self._keys.get(node_id)
        return {} if keys is None else keys.mask_keys

    def record(self, node_id: int, request: SetupRequest, keys: RunPublicKeys) -> bool:
        """Keep ``keys`` if they answer ``request`` exactly (same set-up id and rounds);
        False (nothing kept) when they do not."""
        if keys.setup_id != request.setup_id or set(keys.mask_keys) != set(request.round_ids):
            return False
        self._keys[node_id] = keys
        return True

    def forget(self, node_id: int) -> None:
        """Drop a node's keys (it failed a round's share stage: it may have lost them),
        so that its next round sets keys up again."""
        self._keys.pop(node_id, None)

    def for_round(self, node_id: int, position: int, round_id: str) -> PublicKeys | None:
        """Node ``node_id``'s keys for ``round_id`` at graph ``position`` (None: none)."""
        keys = self._keys.get(node_id)
        return None if keys is None else keys.for_round(position, round_id)
