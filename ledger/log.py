"""Append-only, signed, tamper-evident ledgers on disk (Certificate Transparency style):
the file format and its reading. Writing is :mod:`ledger.writer`'s, verifying
:mod:`ledger.verification`'s.

A ledger directory holds ``entries.jsonl`` (one canonical JSON :class:`Entry` per line) and
``tree_heads.jsonl`` (one :class:`TreeHead` per line). The Merkle leaf of an entry is its
canonical line (RFC 9162 §2.1.1 via :mod:`ledger.merkle`); after every append the
writer signs a tree head over all entries with its Ed25519 key. An auditor holding only
the public key can then detect any edit, insertion, deletion, reordering or truncation of
signed entries, and any forked or reordered tree head
(:func:`ledger.verification.verify_ledger`).

Writes are durable in order: entry lines are flushed and fsynced before the tree head that
covers them. A crash can leave a torn final line (dropped on open) or entries without a
tree head (signed on open), never a ledger that fails verification.

Compatibility rule: the keys of entries and tree heads are never removed and their
meanings never change, because auditors replay old ledgers; the record bodies follow the
rule of :mod:`ledger.records`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Annotated, Any, ClassVar, Protocol, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from common.codec import Count, ExactFloat, decode, decode_json, hex_digits
from common.errors import StateError
from ledger.merkle import leaf_hash
from ledger.ranges import MAX_LINE_BYTES
from ledger.signing import SignatureError, key_id, sign, verify_signature

__all__ = [
    "ENTRIES_FILE",
    "TREE_HEADS_FILE",
    "LedgerError",
    "LedgerVerificationError",
    "Record",
    "Entry",
    "TreeHead",
    "LedgerContents",
    "canonical_json",
    "read_ledger",
]

ENTRIES_FILE = "entries.jsonl"
TREE_HEADS_FILE = "tree_heads.jsonl"

T = TypeVar("T")


class LedgerError(StateError):
    """A ledger cannot be read or appended to (corrupt line, tampered, wrong key)."""

    advice = "Do not edit ledgers by hand; run the ledger verification to see every finding."


class LedgerVerificationError(LedgerError):
    """Verification found error-level findings; the message lists all of them."""


def canonical_json(obj: Any) -> bytes:
    """The one serialisation that is hashed and signed: sorted keys, no spaces, UTF-8."""
    text = json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


class Record(Protocol):
    """What a ledger stores: a typed record with a stable kind and version."""

    KIND: ClassVar[str]
    VERSION: ClassVar[int]

    def to_body(self) -> dict[str, Any]: ...


def _as_json(obj: Entry | TreeHead) -> dict[str, Any]:
    """The fields as a JSON object (shallow: ``dataclasses.asdict`` deep-copies bodies)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _bounded(line: bytes, what: str) -> bytes:
    """``line``, or LedgerError when it is longer than a ledger line may be."""
    if len(line) > MAX_LINE_BYTES:
        raise LedgerError(f"{what} line of {len(line)} bytes, longer than {MAX_LINE_BYTES}")
    return line


@dataclass(frozen=True)
class Entry:
    """One ledger entry: ``seq`` (0-based, consecutive), ``time`` (UNIX seconds, never
    decreasing), the record's ``kind`` and ``version``, and its JSON ``body``."""

    seq: Count
    time: ExactFloat
    kind: str
    version: Count
    body: dict[str, Any]

    def canonical(self) -> bytes:
        """The entry's line (without newline), which is also its Merkle leaf data."""
        return canonical_json(_as_json(self))

    def leaf_hash(self) -> bytes:
        """SHA-256(0x00 || canonical bytes): what an inclusion proof proves."""
        return leaf_hash(self.canonical())

    @classmethod
    def from_json(cls, obj: Any) -> Entry:
        """Parse a decoded line, checking keys and types (LedgerError names the problem)."""
        return decode(cls, obj, "entry", LedgerError)

    @classmethod
    def from_line(cls, line: bytes) -> Entry:
        """Parse a line of ``entries.jsonl``, checking size, keys and types."""
        return decode_json(cls, _bounded(line, "entry"), "entry", LedgerError)


@dataclass(frozen=True)
class TreeHead:
    """A signed tree head: ledger ``ledger_id`` (a party: "coordinator" or a node's
    pseudonymous id) had ``tree_size`` entries with Merkle root ``root_hash`` (hex) at
    ``timestamp``; ``signature`` is the hex Ed25519 signature by key ``key_id`` over the
    canonical JSON of the other five fields."""

    tree_size: Count
    root_hash: Annotated[str, hex_digits(64)]
    timestamp: ExactFloat
    ledger_id: str
    key_id: Annotated[str, hex_digits(16)]
    signature: Annotated[str, hex_digits(128)]

    @classmethod
    def create(
        cls,
        key: Ed25519PrivateKey,
        *,
        tree_size: int,
        root_hash: str,
        timestamp: float,
        ledger_id: str,
    ) -> TreeHead:
        """Sign a new tree head with ``key``."""
        head = cls(tree_size, root_hash, timestamp, ledger_id, key_id(key.public_key()), "")
        return replace(head, signature=sign(key, head.payload()).hex())

    def payload(self) -> bytes:
        """The signed bytes: canonical JSON of every field but ``signature``."""
        return canonical_json({k: v for k, v in _as_json(self).items() if k != "signature"})

    def verify(self, public_key: Ed25519PublicKey) -> None:
        """Raise SignatureError unless ``public_key`` made this head's signature."""
        expected = key_id(public_key)
        if self.key_id != expected:
            raise SignatureError(f"signed by key {self.key_id}, expected key {expected}")
        verify_signature(public_key, self.payload(), bytes.fromhex(self.signature))

    def canonical(self) -> bytes:
        """The tree head's line (without newline)."""
        return canonical_json(_as_json(self))

    @classmethod
    def from_json(cls, obj: Any) -> TreeHead:
        """Parse a decoded line, checking keys, types and hex fields."""
        return decode(cls, obj, "tree head", LedgerError)

    @classmethod
    def from_line(cls, line: bytes) -> TreeHead:
        """Parse a line of ``tree_heads.jsonl``, checking size, keys, types and hex fields."""
        return decode_json(cls, _bounded(line, "tree head"), "tree head", LedgerError)


@dataclass(frozen=True)
class LedgerContents:
    """A ledger's raw lines (no newline), unverified; a final line without a newline (an
    interrupted write) is kept apart as ``torn_entry`` / ``torn_head``."""

    entry_lines: tuple[bytes, ...]
    head_lines: tuple[bytes, ...]
    torn_entry: bytes = b""
    torn_head: bytes = b""

    def entries(self) -> list[Entry]:
        """Parsed entries; LedgerError names the first bad line."""
        return _parse_all(self.entry_lines, Entry.from_line, ENTRIES_FILE)

    def tree_heads(self) -> list[TreeHead]:
        """Parsed tree heads; LedgerError names the first bad line."""
        return _parse_all(self.head_lines, TreeHead.from_line, TREE_HEADS_FILE)


def _parse_all(lines: tuple[bytes, ...], parse: Callable[[bytes], T], name: str) -> list[T]:
    parsed = []
    for number, line in enumerate(lines, start=1):
        try:
            parsed.append(parse(line))
        except LedgerError as err:
            raise LedgerError(f"{name}:{number}: {err}") from None
    return parsed


def _read_lines(path: Path) -> tuple[tuple[bytes, ...], bytes]:
    data = path.read_bytes() if path.exists() else b""
    *lines, torn = data.split(b"\n")
    return tuple(lines), torn


def read_ledger(directory: Path) -> LedgerContents:
    """Read a ledger directory without verifying it (missing files read as empty)."""
    if not Path(directory).is_dir():
        raise LedgerError(f"no ledger directory at {directory}")
    entry_lines, torn_entry = _read_lines(Path(directory) / ENTRIES_FILE)
    head_lines, torn_head = _read_lines(Path(directory) / TREE_HEADS_FILE)
    return LedgerContents(entry_lines, head_lines, torn_entry, torn_head)
