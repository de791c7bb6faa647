"""Append-only, signed, tamper-evident ledgers on disk (Certificate Transparency style).

A ledger directory holds ``entries.jsonl`` (one canonical JSON :class:`Entry` per line) and
``tree_heads.jsonl`` (one :class:`TreeHead` per line). The Merkle leaf of an entry is its
canonical line (RFC 9162 §2.1.1 via :mod:`ledger.merkle`); after every append the
writer signs a tree head over all entries with its Ed25519 key. An auditor holding only
the public key can then detect any edit, insertion, deletion, reordering or truncation of
signed entries, and any forked or reordered tree head (:func:`verify_ledger`).

Writes are durable in order: entry lines are flushed and fsynced before the tree head that
covers them. A crash can leave a torn final line (dropped on open) or entries without a
tree head (signed on open), never a ledger that fails verification.

Compatibility rule: the keys of entries and tree heads are never removed and their
meanings never change, because auditors replay old ledgers; the record bodies follow the
rule of :mod:`ledger.records`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Protocol, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from common.codec import Count, ExactFloat, decode, decode_json, hex_digits
from common.errors import StateError
from ledger.merkle import MerkleError, MerkleTree, leaf_hash, verify_consistency
from ledger.signing import SignatureError, key_id, sign, verify_signature

__all__ = [
    "ENTRIES_FILE",
    "TREE_HEADS_FILE",
    "LedgerError",
    "LedgerVerificationError",
    "Record",
    "Entry",
    "TreeHead",
    "Finding",
    "LedgerReport",
    "LedgerContents",
    "Ledger",
    "canonical_json",
    "read_ledger",
    "verify_ledger",
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
        """Parse a line of ``entries.jsonl``, checking keys and types."""
        return decode_json(cls, line, "entry", LedgerError)


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
        """Parse a line of ``tree_heads.jsonl``, checking keys, types and hex fields."""
        return decode_json(cls, line, "tree head", LedgerError)


Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One verification result: a stable ``kind`` code, its ``severity``, ``where``
    (file:line or seq) and a ``message`` naming what was expected and what was found."""

    kind: str
    severity: Severity
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity} [{self.kind}] {self.where}: {self.message}"


@dataclass(frozen=True)
class LedgerReport:
    """Every finding of :func:`verify_ledger`, with the sizes it saw."""

    findings: tuple[Finding, ...]
    entries: int
    tree_heads: int
    signed_size: int

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def ok(self) -> bool:
        """True when there are no error-level findings (warnings allowed)."""
        return not self.errors

    def raise_for_errors(self) -> None:
        """Raise one LedgerVerificationError listing every error, if there is any."""
        if self.errors:
            lines = "\n".join(f"  {f}" for f in self.errors)
            raise LedgerVerificationError(f"{len(self.errors)} ledger error(s):\n{lines}")


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


class _Verifier:
    """Collects the findings of one verification pass (see :func:`verify_ledger`)."""

    def __init__(self, contents: LedgerContents, public_key: Ed25519PublicKey) -> None:
        self.contents, self.public_key = contents, public_key
        self.findings: list[Finding] = []
        self.tree = MerkleTree([leaf_hash(line) for line in contents.entry_lines])

    def add(self, kind: str, where: str, message: str, severity: Severity = "error") -> None:
        self.findings.append(Finding(kind, severity, where, message))

    def parse(self, line: bytes, parse: Callable[[bytes], Any], where: str) -> Any:
        """The parsed line, or None after a "parse" finding; notes a non-canonical line."""
        try:
            value = parse(line)
        except LedgerError as err:
            self.add("parse", where, f"cannot parse line: {err}")
            return None
        try:
            again = value.canonical()
        except ValueError as err:
            again = f"unserialisable ({err})".encode()
        if again != line:
            at = next(
                (i for i, (a, b) in enumerate(zip(again, line, strict=False)) if a != b), len(line)
            )
            window = slice(max(at - 24, 0), at + 24)
            self.add(
                "non-canonical",
                where,
                f"differs from its canonical form at byte {at}: "
                f"expected {again[window]!r}, got {line[window]!r}",
            )
        return value

    def entries(self) -> None:
        previous: Entry | None = None
        expected_seq = 0
        for number, line in enumerate(self.contents.entry_lines, start=1):
            where = f"{ENTRIES_FILE}:{number}"
            entry = self.parse(line, Entry.from_line, where)
            if entry is None:
                expected_seq += 1
                continue
            if previous is not None and entry.seq == previous.seq:
                self.add(
                    "seq-duplicate", where, f"expected seq {expected_seq}, got {entry.seq} again"
                )
            elif entry.seq != expected_seq:
                code = "seq-gap" if entry.seq > expected_seq else "seq-order"
                self.add(code, where, f"expected seq {expected_seq}, got {entry.seq}")
            if previous is not None and entry.time < previous.time:
                self.add(
                    "time-order",
                    where,
                    f"entry time {entry.time} is before the previous {previous.time}",
                )
            previous, expected_seq = entry, entry.seq + 1

    def heads(self, ledger_id: str | None) -> int:
        """Check every tree head; return the largest signed size."""
        previous: tuple[TreeHead, str] | None = None
        roots: dict[int, tuple[str, str]] = {}
        matched = [0]
        for number, line in enumerate(self.contents.head_lines, start=1):
            where = f"{TREE_HEADS_FILE}:{number}"
            head = self.parse(line, TreeHead.from_line, where)
            if head is None:
                continue
            try:
                head.verify(self.public_key)
            except SignatureError as err:
                self.add("signature", where, str(err))
            ledger_id = ledger_id or head.ledger_id
            if head.ledger_id != ledger_id:
                self.add(
                    "ledger-id", where, f"expected ledger {ledger_id!r}, got {head.ledger_id!r}"
                )
            self.root(head, where, matched)
            seen = roots.setdefault(head.tree_size, (head.root_hash, where))
            if seen[0] != head.root_hash:
                self.add(
                    "fork",
                    where,
                    f"size {head.tree_size} has root {head.root_hash}, but "
                    f"{seen[1]} signed {seen[0]} for the same size",
                )
            if previous is not None:
                self.successive(previous[0], previous[1], head, where)
            previous = (head, where)
        return max(roots, default=0)

    def root(self, head: TreeHead, where: str, matched: list[int]) -> None:
        size = head.tree_size
        if size > self.tree.size:
            self.add(
                "truncated", where, f"signs {size} entries, {ENTRIES_FILE} has {self.tree.size}"
            )
            return
        computed = self.tree.root(size).hex()
        if computed != head.root_hash:
            intact = max((s for s in matched if s < size), default=0)
            self.add(
                "root-mismatch",
                where,
                f"root of the first {size} entries: expected "
                f"(signed) {head.root_hash}, got (computed) {computed}; an entry in seq "
                f"{intact}..{size - 1} differs from what was signed",
            )
        else:
            matched.append(size)

    def successive(self, old: TreeHead, old_where: str, new: TreeHead, where: str) -> None:
        if new.tree_size < old.tree_size:
            self.add(
                "order",
                where,
                f"tree size decreased from {old.tree_size} ({old_where}) to {new.tree_size}",
            )
        elif old.tree_size >= 1 and new.tree_size <= self.tree.size:
            proof = self.tree.consistency_proof(old.tree_size, new.tree_size)
            try:
                verify_consistency(
                    old.tree_size,
                    new.tree_size,
                    bytes.fromhex(old.root_hash),
                    bytes.fromhex(new.root_hash),
                    proof,
                )
            except MerkleError as err:
                self.add("consistency", where, f"not an extension of {old_where}: {err}")
        if new.timestamp < old.timestamp:
            self.add(
                "time-order",
                where,
                f"timestamp {new.timestamp} is before {old.timestamp} of {old_where}",
            )


def verify_ledger(
    source: Path | LedgerContents, public_key: Ed25519PublicKey, *, ledger_id: str | None = None
) -> LedgerReport:
    """Check a ledger against its owner's public key and collect every finding.

    Lines parse and are canonical; seqs run 0, 1, 2, ... and entry times never decrease;
    each tree head is signed by ``public_key``, names one ledger (``ledger_id`` if given),
    has the root of its first ``tree_size`` entries, extends the previous head (RFC 9162
    consistency proof), is not older than it, and no two heads of one size differ (fork).
    Entries after the last head are an "unsigned-tail" warning.
    """
    contents = source if isinstance(source, LedgerContents) else read_ledger(source)
    check = _Verifier(contents, public_key)
    check.entries()
    signed = check.heads(ledger_id)
    for name, torn in ((ENTRIES_FILE, contents.torn_entry), (TREE_HEADS_FILE, contents.torn_head)):
        if torn:
            check.add(
                "torn-line",
                f"{name}:end",
                f"final line has no newline ({len(torn)} "
                "bytes): an interrupted write, dropped when the ledger is opened",
                "warning",
            )
    if check.tree.size > signed:
        check.add(
            "unsigned-tail",
            f"seq {signed}",
            f"entries {signed}..{check.tree.size - 1} are not covered by a signed tree head",
            "warning",
        )
    return LedgerReport(tuple(check.findings), check.tree.size, len(contents.head_lines), signed)


def _append_bytes(path: Path, data: bytes) -> None:
    """Append, flush and fsync (and fsync the directory when the file is new)."""
    new = not path.exists()
    with open(path, "ab") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    if new:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _drop_torn_line(path: Path) -> bool:
    """Truncate a final line without a newline (an interrupted append); True if one was."""
    if not path.exists():
        return False
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    with open(path, "r+b") as handle:
        handle.truncate(data.rfind(b"\n") + 1)
        handle.flush()
        os.fsync(handle.fileno())
    return True


class Ledger:
    """The writer of one party's ledger; open it with :meth:`open`, then append records.

    Only one process may write a ledger at a time (the owner's); readers use
    :func:`read_ledger` and :func:`verify_ledger`.
    """

    def __init__(
        self,
        directory: Path,
        private_key: Ed25519PrivateKey,
        ledger_id: str,
        contents: LedgerContents,
        clock: Callable[[], float],
    ) -> None:
        self.directory, self.ledger_id = directory, ledger_id
        self._key, self._clock = private_key, clock
        self._entries = contents.entries()
        self._heads = contents.tree_heads()
        self._tree = MerkleTree([leaf_hash(line) for line in contents.entry_lines])
        self._broken = False
        self.recovered: list[str] = []

    @classmethod
    def open(
        cls,
        directory: Path,
        private_key: Ed25519PrivateKey,
        ledger_id: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> Ledger:
        """Open (or create) a ledger, recovering from a crash, and refuse a tampered one.

        A torn final line is truncated away and entries after the last tree head get a
        new one (both noted in ``recovered``); any error-level finding of
        :func:`verify_ledger` under this key raises LedgerVerificationError, because
        signing a new head over altered entries would launder them.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torn = [
            name for name in (ENTRIES_FILE, TREE_HEADS_FILE) if _drop_torn_line(directory / name)
        ]
        contents = read_ledger(directory)
        verify_ledger(contents, private_key.public_key(), ledger_id=ledger_id).raise_for_errors()
        ledger = cls(directory, private_key, ledger_id, contents, clock)
        ledger.recovered = [f"dropped a torn final line of {name}" for name in torn]
        if ledger.size > ledger.signed_size:
            ledger.recovered.append(f"signed {ledger.size - ledger.signed_size} unsigned entries")
            ledger._sign_head()
        return ledger

    @property
    def size(self) -> int:
        """Number of entries."""
        return len(self._entries)

    @property
    def signed_size(self) -> int:
        """Entries covered by the latest tree head."""
        return self._heads[-1].tree_size if self._heads else 0

    def append(self, record: Record) -> Entry:
        """Append one record and sign a tree head over all entries."""
        return self.append_many([record])[0]

    def append_many(self, records: Iterable[Record]) -> list[Entry]:
        """Append records in one write and sign one tree head over all entries."""
        if self._broken:
            raise LedgerError(f"an earlier write to {self.directory} failed; open it again")
        new = [self._entry(record, self.size + i) for i, record in enumerate(records)]
        if not new:
            return []
        lines = [entry.canonical() for entry in new]
        self._write(ENTRIES_FILE, b"".join(line + b"\n" for line in lines))
        self._entries.extend(new)
        for line in lines:
            self._tree.append(line)
        self._sign_head()
        return new

    def entries_range(self, start: int, end: int) -> list[Entry]:
        """Entries with ``start <= seq < end``."""
        if not 0 <= start <= end <= self.size:
            raise LedgerError(f"entry range {start}..{end} is outside 0..{self.size}")
        return self._entries[start:end]

    def inclusion_proof_for(self, seq: int, tree_size: int) -> list[bytes]:
        """Audit path of entry ``seq`` in the tree of the first ``tree_size`` entries."""
        if not 0 <= seq < tree_size <= self.size:
            raise LedgerError(
                f"no entry {seq} in a tree of size {tree_size} (ledger has {self.size})"
            )
        return self._tree.inclusion_proof(seq, tree_size)

    def consistency_proof_between(self, old_size: int, new_size: int) -> list[bytes]:
        """Proof that the tree of ``old_size`` entries is a prefix of that of ``new_size``."""
        if not 1 <= old_size <= new_size <= self.size:
            raise LedgerError(f"need 1 <= {old_size} <= {new_size} <= {self.size}")
        return self._tree.consistency_proof(old_size, new_size)

    def latest_tree_head(self) -> TreeHead | None:
        """The newest signed tree head (None for an empty ledger)."""
        return self._heads[-1] if self._heads else None

    def _entry(self, record: Record, seq: int) -> Entry:
        last = self._entries[-1].time if self._entries else 0.0
        entry = Entry(
            seq, max(float(self._clock()), last), record.KIND, record.VERSION, record.to_body()
        )
        try:
            entry.canonical()
        except (TypeError, ValueError) as err:
            raise LedgerError(f"a {record.KIND} record is not JSON-serialisable: {err}") from None
        return entry

    def _sign_head(self) -> None:
        floor = max(self._heads[-1].timestamp if self._heads else 0.0, self._entries[-1].time)
        head = TreeHead.create(
            self._key,
            tree_size=self.size,
            root_hash=self._tree.root().hex(),
            timestamp=max(float(self._clock()), floor),
            ledger_id=self.ledger_id,
        )
        self._write(TREE_HEADS_FILE, head.canonical() + b"\n")
        self._heads.append(head)

    def _write(self, name: str, data: bytes) -> None:
        try:
            _append_bytes(self.directory / name, data)
        except BaseException:
            self._broken = True
            raise
