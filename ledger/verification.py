"""Verification of a ledger from its public key alone: every entry line parsed, canonical
and in sequence; every tree head signed by the key, over the Merkle root of its prefix of
entries, and consistent with the heads before it (RFC 9162 §2.1.4 consistency proofs).
Each problem is a :class:`Finding` with a stable ``kind`` code; nothing raises on bad
input, so an auditor sees every problem at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.log import (
    ENTRIES_FILE,
    TREE_HEADS_FILE,
    Entry,
    LedgerContents,
    LedgerError,
    LedgerVerificationError,
    TreeHead,
    read_ledger,
)
from ledger.merkle import MerkleError, MerkleTree, leaf_hash, verify_consistency
from ledger.ranges import out_of_range_numbers, out_of_range_time
from ledger.signing import SignatureError

__all__ = ["Finding", "LedgerReport", "Severity", "verify_ledger"]

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

    def ranges(self, where: str, what: str, time: float, body: dict[str, Any] | None) -> None:
        """An "out-of-range" finding for a date or a body number outside the sane ranges."""
        problem = out_of_range_time(time)
        if problem is not None:
            self.add("out-of-range", where, f"{what} {problem}")
        problem = out_of_range_numbers(body) if body is not None else None
        if problem is not None:
            self.add("out-of-range", where, problem)

    def entries(self) -> None:
        previous: Entry | None = None
        expected_seq = 0
        for number, line in enumerate(self.contents.entry_lines, start=1):
            where = f"{ENTRIES_FILE}:{number}"
            entry = self.parse(line, Entry.from_line, where)
            if entry is None:
                expected_seq += 1
                continue
            self.ranges(where, "entry time", entry.time, entry.body)
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
            self.ranges(where, "tree head timestamp", head.timestamp, None)
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

    Lines parse and are canonical and hold dates and numbers in the sane ranges of
    :mod:`ledger.ranges` ("out-of-range"); seqs run 0, 1, 2, ... and entry times never decrease;
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
