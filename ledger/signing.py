"""Ed25519 keys for signing ledger tree heads (RFC 8032, through ``cryptography``).

Each party (the coordinator, every node) signs its own ledger with its own key; auditors
need only the public keys. A key is named by its key id, the first 16 hex characters of
SHA-256 over the raw 32-byte public key, so findings and tree heads say which key signed.
Private keys are written as unencrypted PKCS#8 PEM with mode 0600, atomically, and are
never overwritten: losing the key that signed a ledger would orphan it.
"""

from __future__ import annotations

import hashlib
import stat
import warnings
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from common.atomic import atomic_write_bytes
from common.errors import ConfigError, StateError

__all__ = [
    "public_key_path",
    "SigningKeyError",
    "SignatureError",
    "generate_private_key",
    "generate_key_pair",
    "write_private_key",
    "write_public_key",
    "load_private_key",
    "load_public_key",
    "key_id",
    "sign",
    "verify_signature",
]


class SigningKeyError(ConfigError):
    """A key file is missing, not PEM, or holds a key that is not Ed25519."""

    advice = "Check the key path; create keys with the fedrisk key generation command."


class SignatureError(StateError):
    """A signature does not verify under the named key."""

    advice = "The signed data was altered or signed by another key; do not trust it."


def generate_private_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key, in memory."""
    return Ed25519PrivateKey.generate()


def public_key_path(private_path: Path) -> Path:
    """Where the public half of a key file is kept: ``<name>.pub.pem`` beside it."""
    return Path(private_path).with_name(Path(private_path).stem + ".pub.pem")


def generate_key_pair(private_path: Path, public_path: Path) -> Ed25519PrivateKey:
    """Create a key, write the private (0600) and public (0644) PEM files, return the key."""
    key = generate_private_key()
    write_private_key(private_path, key)
    write_public_key(public_path, key.public_key())
    return key


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write ``key`` as PKCS#8 PEM, mode 0600, atomically; refuse to replace a key file."""
    path = Path(path)
    if path.exists():
        raise SigningKeyError(f"{path} already exists; a signing key is never overwritten")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    atomic_write_bytes(path, pem, mode=0o600)


def write_public_key(path: Path, key: Ed25519PublicKey) -> None:
    """Write ``key`` as SubjectPublicKeyInfo PEM (mode 0644), atomically."""
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    atomic_write_bytes(Path(path), pem)


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise SigningKeyError(f"no {what} key file at {path}") from None
    except OSError as err:
        raise SigningKeyError(f"cannot read {what} key file {path}: {err}") from None


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Load an Ed25519 private key from PEM; warn if others may read the file."""
    data = _read(path, "private")
    mode = Path(path).stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.warn(
            f"private key {path} is accessible by group or others (mode {oct(mode & 0o777)}); "
            "chmod 600 it",
            stacklevel=2,
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise SigningKeyError(f"{path} is not an unencrypted PEM private key: {err}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} holds a {type(key).__name__}, expected an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Load an Ed25519 public key from PEM."""
    data = _read(path, "public")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as err:
        raise SigningKeyError(f"{path} is not a PEM public key: {err}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{path} holds a {type(key).__name__}, expected an Ed25519 key")
    return key


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex characters of SHA-256 over the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(private_key: Ed25519PrivateKey, data: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``data``."""
    return private_key.sign(data)


def verify_signature(public_key: Ed25519PublicKey, data: bytes, signature: bytes) -> None:
    """Return None if ``signature`` is ``public_key``'s over ``data``, else raise."""
    try:
        public_key.verify(signature, data)
    except InvalidSignature:
        raise SignatureError(f"signature does not verify under key {key_id(public_key)}") from None
