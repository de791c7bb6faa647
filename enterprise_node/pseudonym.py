"""Pseudonymous unit ids: HMAC-SHA256 (RFC 2104, FIPS 198-1) of the site's unit id.

The key is the site secret, 32 random bytes kept on the node (hex text, file mode 0600).
Without the secret nobody can link a pseudonym back to a unit id or test a guessed id;
with the same secret the same unit always gets the same pseudonym, across runs. Losing
the secret changes every pseudonym, so back it up with the node's other state.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import stat
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path

from common.errors import StateError, permission_denied

__all__ = ["SECRET_BYTES", "pseudonymise", "pseudonymise_many", "load_or_create_site_secret"]

#: Length of a new site secret (256 bits, the HMAC-SHA256 block-size-safe key length).
SECRET_BYTES = 32


def pseudonymise(unit_id: str, secret: bytes) -> str:
    """Hex HMAC-SHA256 of the UTF-8 unit id under ``secret`` (64 hex characters)."""
    return hmac.digest(secret, unit_id.encode("utf-8"), "sha256").hex()


def pseudonymise_many(unit_ids: Iterable[str], secret: bytes) -> list[str]:
    """:func:`pseudonymise` over many ids, in order."""
    return [pseudonymise(unit_id, secret) for unit_id in unit_ids]


def load_or_create_site_secret(path: Path) -> bytes:
    """Read the site secret at ``path``; create it (0600, atomically) if it does not exist.

    Creation never replaces an existing secret, even when two processes race: the new
    file is linked into place, which fails if another process got there first.
    """
    path = Path(path)
    if not path.exists():
        _create_secret(path)
    return _read_secret(path)


def _create_secret(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_bytes(SECRET_BYTES).hex() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o600)
        with contextlib.suppress(FileExistsError):  # another process won the race: keep theirs
            os.link(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_secret(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii").strip()
    except PermissionError:
        raise permission_denied(path, "read the site secret") from None
    except (OSError, UnicodeDecodeError) as err:
        raise StateError(f"{path}: cannot read the site secret: {err}") from None
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise StateError(f"{path}: the site secret is not hex text") from None
    if len(secret) < SECRET_BYTES:
        raise StateError(
            f"{path}: the site secret is {len(secret)} bytes, expected at least {SECRET_BYTES}"
        )
    _warn_if_exposed(path)
    return secret


def _warn_if_exposed(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.warn(
            f"{path}: the site secret is readable by other users (mode {oct(mode & 0o777)}); "
            f"run `chmod 600 {path}`",
            UserWarning,
            stacklevel=3,
        )
