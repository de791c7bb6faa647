"""What a secure-aggregation client keeps between the stages of a round, and its saved form.

Between stages a Flower ClientApp process ends, so the client is saved in
``context.state`` (:func:`secagg.client.to_config_record`). The saved form holds private
keys and the self-mask seed: it must stay on the node. Compatibility rule: state keys are
never removed and their meanings never change; ``STATE_FORMAT`` names the layout (v2:
``held_*_shares`` are ``secagg/shamir.py`` shares; v1's were Flower's, and a v1 state is
refused). ``num_shares`` is optional (absent: the complete graph, the layout before
SecAgg+), and so is ``graph_seed`` (absent: the plain labelling); ``peer_*`` hold the keys
of N(u).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NotRequired

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from typing_extensions import TypedDict

from common.errors import ConfigError
from secagg.masking import raw_private, raw_public
from secagg.messages import (
    PublicKeys,
    SecAggConfig,
    SecAggError,
    WireDict,
    key_directory_from_dict,
    key_directory_to_dict,
    read_wire,
)
from secagg.shamir import ShareError, verify_share

__all__ = [
    "STAGES",
    "STATE_FORMAT",
    "ClientState",
    "HeldShares",
    "check_public_keys",
    "state_from_wire",
    "state_to_wire",
    "verify_shares",
]

STATE_FORMAT = "fedrisk/secagg/client-state/v2"
STAGES = ("new", "advertised", "shared", "masked", "unmasked")
_WHAT = "secure-aggregation client state"


@dataclass(frozen=True)
class HeldShares:
    """The shares a node holds of one peer's self-mask seed and mask private key."""

    seed_share: bytes
    key_share: bytes


@dataclass
class ClientState:
    """One node's keys, seed and progress in one round (mutable: the stages advance it)."""

    config: SecAggConfig
    node_id: int
    round_id: str
    stage: str = "new"
    enc_key: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)
    mask_key: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)
    seed: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    peers: dict[int, PublicKeys] = field(default_factory=dict)
    held: dict[int, HeldShares] = field(default_factory=dict)
    revealed: dict[int, str] = field(default_factory=dict)

    def public_keys(self) -> PublicKeys:
        """This node's advertised keys."""
        return PublicKeys(self.node_id, raw_public(self.enc_key), raw_public(self.mask_key))

    def neighbours(self, among: Iterable[int]) -> frozenset[int]:
        """The nodes of ``among`` in this node's neighbourhood (itself included)."""
        return self.config.neighbours(self.node_id, among)


class _ClientState(TypedDict):
    """The wire form of a client's state (see :func:`state_to_wire`)."""

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
    graph_seed: NotRequired[str]


def state_to_wire(state: ClientState) -> WireDict:
    """Everything the next stage needs, as a flat ConfigRecord-compatible dict.

    Secret: it holds both private keys, the self-mask seed and the held shares.
    """
    held = sorted(state.held.items())
    peers = {f"peer_{k}": v for k, v in key_directory_to_dict(state.peers).items()}
    config = state.config
    return {
        "format": STATE_FORMAT,
        "num_nodes": config.num_nodes,
        "threshold": config.threshold,
        "vector_length": config.vector_length,
        "modulus_bits": config.modulus_bits,
        "node_id": state.node_id,
        "round_id": state.round_id,
        "stage": state.stage,
        "encryption_private_key": raw_private(state.enc_key),
        "mask_private_key": raw_private(state.mask_key),
        "self_mask_seed": state.seed,
        **peers,
        "held_node_ids": [p for p, _ in held],
        "held_seed_shares": [h.seed_share for _, h in held],
        "held_key_shares": [h.key_share for _, h in held],
        "revealed_seed_node_ids": sorted(p for p, k in state.revealed.items() if k == "seed"),
        "revealed_key_node_ids": sorted(p for p, k in state.revealed.items() if k == "key"),
        **({} if config.num_shares is None else {"num_shares": config.num_shares}),
        **({"graph_seed": config.graph_seed} if config.graph_seed else {}),
    }


def state_from_wire(d: Mapping[str, Any], *, round_id: str) -> ClientState:
    """The state saved by :func:`state_to_wire`, for round ``round_id``.

    Every key is validated (the missing or malformed one is named) and so is the state's
    consistency; a state saved in another round is refused.
    """
    wire = read_wire(_ClientState, d, _WHAT)
    if wire["format"] != STATE_FORMAT:
        raise SecAggError(f"{_WHAT}: key 'format' is {wire['format']!r}, not {STATE_FORMAT!r}")
    if wire["round_id"] != round_id:
        raise SecAggError(
            f"{_WHAT}: saved in round {wire['round_id']!r}, refused for round {round_id!r}"
        )
    state = ClientState(
        config=_config(wire),
        node_id=wire["node_id"],
        round_id=round_id,
        stage=_stage(wire),
        enc_key=_private_key(wire["encryption_private_key"], "encryption_private_key"),
        mask_key=_private_key(wire["mask_private_key"], "mask_private_key"),
        seed=_seed(wire),
        peers=key_directory_from_dict(
            {k.removeprefix("peer_"): v for k, v in wire.items() if k.startswith("peer_")},
            what=f"{_WHAT} (peer_* keys)",
        ),
        held=_held(wire),
        revealed=_revealed(wire),
    )
    _check_consistent(state)
    return state


def check_public_keys(state: ClientState, all_public: Mapping[int, PublicKeys]) -> None:
    """The advertised keys include this node's own, unaltered; enough neighbours
    advertised; no key is repeated and every entry is labelled with its node id."""
    node, config = state.node_id, state.config
    if all_public.get(node) != state.public_keys():
        raise SecAggError(f"node {node}: own public keys missing or altered")
    count = len(state.neighbours(all_public))
    if count < config.threshold:
        scope = "" if config.num_shares is None else f" in node {node}'s neighbourhood"
        raise SecAggError(
            f"only {count} nodes{scope} advertised keys (threshold {config.threshold})"
        )
    keys = [k for pk in all_public.values() for k in (pk.encryption_key, pk.mask_key)]
    if len(set(keys)) != len(keys) or any(pk.node_id != i for i, pk in all_public.items()):
        raise SecAggError(f"node {node}: duplicate public keys or mislabelled node ids")


def verify_shares(what: str, *shares: bytes) -> None:
    """SecAggError naming ``what`` unless every share is a well-formed Shamir share."""
    try:
        for share in shares:
            verify_share(share)
    except ShareError as error:
        raise SecAggError(f"{what}: {error}") from None


def _check_consistent(state: ClientState) -> None:
    """The restored fields agree with each other and with the stage."""
    if not 0 <= state.node_id < 2**64:
        raise SecAggError(f"{_WHAT}: key 'node_id' is outside [0, 2^64)")
    state.config.check_node(state.node_id)
    if state.neighbours(state.peers) != state.peers.keys():
        raise SecAggError(f"{_WHAT}: key 'peer_node_ids' names nodes outside the neighbourhood")
    started = STAGES.index(state.stage) >= STAGES.index("shared")
    if started:
        check_public_keys(state, state.peers)
    if bool(state.peers) != started or (state.node_id in state.held) != started:
        raise SecAggError(
            f"{_WHAT}: key 'stage' is {state.stage!r} but peer_node_ids/held_node_ids "
            "do not match it"
        )
    if not state.held.keys() <= state.peers.keys():
        raise SecAggError(f"{_WHAT}: key 'held_node_ids' names nodes that are not peers")
    if not state.revealed.keys() <= state.held.keys() or (
        state.revealed and state.stage != "unmasked"
    ):
        raise SecAggError(
            f"{_WHAT}: keys 'revealed_*_node_ids' name shares not held or not yet revealed"
        )


def _config(d: _ClientState) -> SecAggConfig:
    keys = ("num_nodes", "threshold", "vector_length", "modulus_bits", "num_shares", "graph_seed")
    try:
        return SecAggConfig(
            d["num_nodes"],
            d["threshold"],
            d["vector_length"],
            d["modulus_bits"],
            d.get("num_shares"),
            d.get("graph_seed", ""),
        )
    except ConfigError as error:
        raise SecAggError(f"{_WHAT}: keys {list(keys)} are not a valid config: {error}") from None


def _stage(d: _ClientState) -> str:
    stage: str = d["stage"]
    if stage not in STAGES:
        raise SecAggError(f"{_WHAT}: key 'stage' is {stage!r}, not one of {list(STAGES)}")
    return stage


def _private_key(raw: bytes, key: str) -> X25519PrivateKey:
    if len(raw) != 32:
        raise SecAggError(f"{_WHAT}: key '{key}' needs 32 bytes, got {len(raw)}")
    return X25519PrivateKey.from_private_bytes(raw)


def _seed(d: _ClientState) -> bytes:
    seed: bytes = d["self_mask_seed"]
    if len(seed) != 32:
        raise SecAggError(f"{_WHAT}: key 'self_mask_seed' needs 32 bytes, got {len(seed)}")
    return seed


def _held(d: _ClientState) -> dict[int, HeldShares]:
    ids, seeds, keys = d["held_node_ids"], d["held_seed_shares"], d["held_key_shares"]
    if len(set(ids)) != len(ids) or not len(ids) == len(seeds) == len(keys):
        raise SecAggError(
            f"{_WHAT}: keys 'held_node_ids', 'held_seed_shares', 'held_key_shares' "
            f"have repeated ids or differ in length ({len(ids)}, {len(seeds)}, {len(keys)})"
        )
    verify_shares(f"{_WHAT}: keys 'held_*_shares'", *seeds, *keys)
    return {i: HeldShares(s, k) for i, s, k in zip(ids, seeds, keys, strict=True)}


def _revealed(d: _ClientState) -> dict[int, str]:
    seed, key = d["revealed_seed_node_ids"], d["revealed_key_node_ids"]
    both = sorted(set(seed) & set(key))
    if both:
        raise SecAggError(
            f"{_WHAT}: keys 'revealed_seed_node_ids' and 'revealed_key_node_ids' "
            f"both name node(s) {both}"
        )
    return {p: "seed" for p in seed} | {p: "key" for p in key}
