"""The writer of one party's ledger: append records, sign a tree head after every append.

Writes are durable in order: entry lines are flushed and fsynced before the tree head that
covers them. A crash can leave a torn final line (dropped on open) or entries without a
tree head (signed on open), never a ledger that fails verification.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.log import (
    ENTRIES_FILE,
    TREE_HEADS_FILE,
    Entry,
    LedgerContents,
    LedgerError,
    Record,
    TreeHead,
    read_ledger,
)
from ledger.merkle import MerkleTree, leaf_hash
from ledger.ranges import out_of_range_numbers, out_of_range_time
from ledger.verification import verify_ledger

__all__ = ["Ledger"]


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
        last = self._entries[-1].time if self._entries else 0.0
        new = [
            _new_entry(record, self.size + i, max(float(self._clock()), last))
            for i, record in enumerate(records)
        ]
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


def _new_entry(record: Record, seq: int, when: float) -> Entry:
    """The entry of ``record`` at ``seq``; LedgerError if its body is not JSON, or its time
    or a number of its body is outside the ranges verification accepts."""
    entry = Entry(seq, when, record.KIND, record.VERSION, record.to_body())
    try:
        entry.canonical()
    except (TypeError, ValueError) as err:
        raise LedgerError(f"a {record.KIND} record is not JSON-serialisable: {err}") from None
    problem = out_of_range_numbers(entry.body)
    time_problem = out_of_range_time(when)
    if problem is not None or time_problem is not None:
        problem = problem or f"the entry time {time_problem}"
        raise LedgerError(f"a {record.KIND} record is out of range: {problem}")
    return entry
