"""The broker's register of admitted nodes: their Flower authentication public keys.

`fedrisk-coordinator register-node` admits a node's ECDSA P-384 public key (OpenSSH
format, the ``.pub`` that ``fedrisk-node init`` made), ``list-nodes`` shows them and
``revoke-node`` withdraws one; the SuperLink started with node authentication admits only
registered, unrevoked keys. The register is ``nodes.json`` in the coordinator's state
directory, written atomically; revoked entries are kept (who was admitted, and when).

Compatibility rule: keys of a node entry are never removed or re-meant; add new ones.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm as UnsupportedAlgorithmError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from common.atomic import atomic_write_text
from common.errors import ConfigError, StateError
from common.tls import auth_key_fingerprint as fingerprint

__all__ = ["RegisteredNode", "NodeRegistry", "fingerprint"]

REGISTRY_FILE = "nodes.json"


@dataclass(frozen=True)
class RegisteredNode:
    """An admitted node: ``name`` (the broker's label), its OpenSSH ``public_key``, its
    SHA256 ``fingerprint`` (as ssh-keygen -l prints it), when it was registered and, once
    revoked, when."""

    name: str
    public_key: str
    fingerprint: str
    registered_at: float
    revoked_at: float | None = None
    #: The id the SuperLink gave this key when ``start`` registered it there.
    flower_node_id: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _read_public_key(path: Path) -> str:
    """The key in ``path`` as one OpenSSH line, refusing anything but ECDSA P-384."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the node's public key: {err.strerror}") from None
    try:
        key = serialization.load_ssh_public_key(text.encode())
    except (ValueError, UnsupportedAlgorithmError):
        raise ConfigError(f"{path}: not an OpenSSH public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise ConfigError(f"{path}: Flower node authentication needs an ECDSA P-384 key")
    return " ".join(text.split()[:2])


class NodeRegistry:
    """``nodes.json`` under the coordinator's state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / REGISTRY_FILE

    def nodes(self) -> list[RegisteredNode]:
        if not self.path.exists():
            return []
        try:
            rows = json.loads(self.path.read_text(encoding="utf-8"))
            return [RegisteredNode(**row) for row in rows]
        except (ValueError, TypeError) as err:
            raise StateError(f"{self.path}: corrupt node register: {err}") from None

    def active(self) -> list[RegisteredNode]:
        return [n for n in self.nodes() if n.active]

    def register(self, public_key_path: Path, name: str) -> RegisteredNode:
        """Admit the key in ``public_key_path`` as ``name``; a key or name already active
        is an error (revoke first)."""
        key = _read_public_key(public_key_path)
        node = RegisteredNode(name, key, fingerprint(key), time.time())
        for other in self.active():
            if other.fingerprint == node.fingerprint or other.name == name:
                raise ConfigError(
                    f"node {other.name!r} ({other.fingerprint}) is already registered",
                    advice="Revoke it first with `fedrisk-coordinator revoke-node`.",
                )
        self._write([*self.nodes(), node])
        return node

    def revoke(self, name_or_fingerprint: str) -> RegisteredNode:
        """Revoke the active node with that name or fingerprint."""
        nodes = self.nodes()
        for i, node in enumerate(nodes):
            if node.active and name_or_fingerprint in (node.name, node.fingerprint):
                nodes[i] = RegisteredNode(**{**asdict(node), "revoked_at": time.time()})
                self._write(nodes)
                return nodes[i]
        raise ConfigError(f"no active node named or with fingerprint {name_or_fingerprint!r}")

    def set_flower_node_id(self, fingerprint: str, node_id: int | None) -> None:
        """Remember the SuperLink's id for the node with ``fingerprint``."""
        nodes = [
            RegisteredNode(**{**asdict(n), "flower_node_id": node_id})
            if n.fingerprint == fingerprint
            else n
            for n in self.nodes()
        ]
        self._write(nodes)

    def _write(self, nodes: list[RegisteredNode]) -> None:
        text = json.dumps([asdict(n) for n in nodes], indent=2, sort_keys=True)
        atomic_write_text(self.path, text + "\n")
