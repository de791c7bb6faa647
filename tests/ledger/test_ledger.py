"""The signed ledger: keys, append and verify, crash recovery, and a file-level tamper corpus.

The corpus (:func:`tamper_corpus`) mutates the files of a 20-entry ledger with 7 signed
tree heads in every way listed in the issue; each case must be caught by an error-level
finding of the expected kind whose message names what was changed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.log import (
    ENTRIES_FILE,
    TREE_HEADS_FILE,
    Entry,
    LedgerError,
    LedgerVerificationError,
    TreeHead,
    canonical_json,
    read_ledger,
)
from ledger.merkle import MerkleTree, leaf_hash, verify_consistency, verify_inclusion
from ledger.records import (
    NodeReason,
    PrivacySpent,
    ReleaseAccounted,
    RoundRecorded,
    RunEnded,
    RunStarted,
    record_from_entry,
)
from ledger.signing import (
    SignatureError,
    SigningKeyError,
    generate_key_pair,
    generate_private_key,
    key_id,
    load_private_key,
    load_public_key,
    sign,
    verify_signature,
    write_private_key,
)
from ledger.verification import LedgerReport, verify_ledger
from ledger.writer import Ledger
from privacy.mechanisms import Mechanism

DIGEST = "cd" * 32
#: Tree sizes signed by :func:`build_ledger` (append, append_many and single appends mixed).
SIGNED_SIZES = [1, 5, 6, 7, 8, 14, 20]
#: The tree head fields written as hex.
HEX = ("root_hash", "key_id", "signature")
#: The mutation kinds of the corpus: every one the issue lists, and a few more.
MUTATION_KINDS = {
    "field-edit",
    "byte-flip",
    "truncate",
    "reorder",
    "reorder-renumbered",
    "insert",
    "insert-renumbered",
    "delete",
    "delete-renumbered",
    "non-canonical",
    "garbage-line",
    "epsilon-edit",
    "noise-edit",
    "wrong-key",
    "forged-signature",
    "head-field-edit",
    "swapped-heads",
    "fork",
    "head-byte-flip",
}


def clock(start: float = 1_700_000_000.0) -> Callable[[], float]:
    """Factory: a fake wall clock that advances 0.5 s per call."""
    now = [start]

    def tick() -> float:
        now[0] += 0.5
        return now[0]

    return tick


def released(round_number: int, node: str, epsilon: float) -> ReleaseAccounted:
    """Factory: the coordinator's claim for one node's DP-SGD release."""
    return ReleaseAccounted(
        "run-1",
        round_number,
        "model",
        node,
        "record",
        "dp_sgd",
        1.1,
        0.01,
        40,
        1.0,
        1,
        epsilon,
        epsilon * round_number,
        8.0,
        1e-5,
        DIGEST,
    )


def spent(round_number: int) -> PrivacySpent:
    """Factory: a node's own accounting of a curve release."""
    return PrivacySpent(
        "run-1",
        round_number,
        "curve",
        "record",
        Mechanism.CURVE_HISTOGRAM,
        3.0,
        1.0,
        1,
        1.0,
        5,
        0.3,
        0.3 * round_number,
        8.0 - 0.3 * round_number,
        8.0,
        1e-5,
    )


def round_recorded(round_number: int) -> RoundRecorded:
    return RoundRecorded(
        "run-1",
        round_number,
        "model",
        ("node-a", "node-b"),
        (NodeReason("node-c", "budget cap"),),
        (),
        ("node-d",),
        1.25 * round_number,
    )


def build_ledger(directory: Path, key: Ed25519PrivateKey) -> Ledger:
    """Factory: 20 entries of several record types under 7 tree heads (SIGNED_SIZES)."""
    ledger = Ledger.open(directory, key, "coordinator", clock=clock())
    ledger.append(RunStarted("run-1", DIGEST, DIGEST, DIGEST, 2.0, 1e-5, 8.0, 1e-3, 3, True))
    ledger.append_many(
        [round_recorded(1), released(1, "node-a", 0.5), released(1, "node-b", 0.5), spent(1)]
    )
    for r in (2, 3, 4):
        ledger.append(released(r, "node-a", 0.25))
    ledger.append_many([round_recorded(r) for r in (5, 6, 7)] + [spent(r) for r in (5, 6, 7)])
    ledger.append_many(
        [released(8, "node-a", 0.125) for _ in range(5)] + [RunEnded("run-1", "completed", None)]
    )
    return ledger


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return generate_private_key()


# -- signing ---------------------------------------------------------------------------------


def test_key_files_round_trip_with_private_mode_0600(tmp_path: Path) -> None:
    # Execute
    private = generate_key_pair(tmp_path / "keys" / "ledger.pem", tmp_path / "keys" / "ledger.pub")
    # Assert
    assert (tmp_path / "keys" / "ledger.pem").stat().st_mode & 0o777 == 0o600
    loaded = load_private_key(tmp_path / "keys" / "ledger.pem")
    public = load_public_key(tmp_path / "keys" / "ledger.pub")
    assert key_id(public) == key_id(private.public_key()) == key_id(loaded.public_key())
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert key_id(public) == hashlib.sha256(raw).hexdigest()[:16]
    verify_signature(public, b"data", sign(loaded, b"data"))


def test_key_file_errors_are_clear(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    # Prepare
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    rsa_pem = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "rsa.pem").write_bytes(rsa_pem)
    os.chmod(tmp_path / "rsa.pem", 0o600)
    (tmp_path / "junk.pem").write_text("not a key")
    generate_key_pair(tmp_path / "k.pem", tmp_path / "k.pub")
    # Execute / Assert
    with pytest.raises(SigningKeyError, match="no private key file at .*missing.pem"):
        load_private_key(tmp_path / "missing.pem")
    with pytest.raises(SigningKeyError, match="holds a .*RSAPrivateKey.*expected an Ed25519 key"):
        load_private_key(tmp_path / "rsa.pem")
    with pytest.raises(SigningKeyError, match="junk.pem is not a PEM public key"):
        load_public_key(tmp_path / "junk.pem")
    os.chmod(tmp_path / "k.pub", 0o600)
    with pytest.raises(SigningKeyError, match="k.pub is not an unencrypted PEM private key"):
        load_private_key(tmp_path / "k.pub")
    with pytest.raises(SigningKeyError, match="k.pem already exists; .* never overwritten"):
        write_private_key(tmp_path / "k.pem", key)
    os.chmod(tmp_path / "k.pem", 0o644)
    with pytest.warns(UserWarning, match="accessible by group or others"):
        load_private_key(tmp_path / "k.pem")


def test_a_bad_signature_names_the_key(key: Ed25519PrivateKey) -> None:
    other = generate_private_key()
    expected = f"does not verify under key {key_id(key.public_key())}"
    with pytest.raises(SignatureError, match=expected):
        verify_signature(key.public_key(), b"data", sign(other, b"data"))


# -- append, read, verify, serve ---------------------------------------------------------------


def test_append_then_verify_round_trip(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    # Execute
    ledger = build_ledger(tmp_path / "ledger", key)
    report = verify_ledger(tmp_path / "ledger", key.public_key(), ledger_id="coordinator")
    contents = read_ledger(tmp_path / "ledger")
    # Assert
    assert report.findings == () and report.ok
    assert (report.entries, report.tree_heads, report.signed_size) == (20, 7, 20)
    assert [h.tree_size for h in contents.tree_heads()] == SIGNED_SIZES
    entries = contents.entries()
    assert [e.seq for e in entries] == list(range(20))
    assert all(a.time <= b.time for a, b in zip(entries, entries[1:], strict=False))
    assert record_from_entry(entries[2]) == released(1, "node-a", 0.5)
    head = ledger.latest_tree_head()
    assert head is not None and head == contents.tree_heads()[-1]
    head.verify(key.public_key())


def test_reopening_continues_the_same_ledger(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    build_ledger(tmp_path / "ledger", key)
    again = Ledger.open(tmp_path / "ledger", key, "coordinator", clock=clock(1_800_000_000.0))
    entry = again.append(RunEnded("run-2", "failed", "too few nodes"))
    assert (entry.seq, again.size, again.recovered) == (20, 21, [])
    assert verify_ledger(tmp_path / "ledger", key.public_key()).findings == ()


def test_service_helpers_give_verifiable_proofs(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    # Prepare
    ledger = build_ledger(tmp_path / "ledger", key)
    heads = read_ledger(tmp_path / "ledger").tree_heads()
    # Execute / Assert: every entry is in every head that covers it, heads are consistent
    for head in heads:
        root = bytes.fromhex(head.root_hash)
        for entry in ledger.entries_range(0, head.tree_size):
            proof = ledger.inclusion_proof_for(entry.seq, head.tree_size)
            verify_inclusion(entry.leaf_hash(), entry.seq, head.tree_size, proof, root)
    for old, new in zip(heads, heads[1:], strict=False):
        proof = ledger.consistency_proof_between(old.tree_size, new.tree_size)
        verify_consistency(
            old.tree_size,
            new.tree_size,
            bytes.fromhex(old.root_hash),
            bytes.fromhex(new.root_hash),
            proof,
        )
    assert [e.seq for e in ledger.entries_range(3, 6)] == [3, 4, 5]
    with pytest.raises(LedgerError, match="entry range 15..25 is outside 0..20"):
        ledger.entries_range(15, 25)
    with pytest.raises(LedgerError, match="no entry 8 in a tree of size 8"):
        ledger.inclusion_proof_for(8, 8)
    with pytest.raises(LedgerError, match="need 1 <= 6 <= 21 <= 20"):
        ledger.consistency_proof_between(6, 21)


def test_append_edge_cases(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    ledger = Ledger.open(tmp_path / "ledger", key, "node-7f3a", clock=clock())
    assert ledger.append_many([]) == [] and ledger.latest_tree_head() is None
    with pytest.raises(LedgerError, match="a release_accounted record is not JSON-serialisable"):
        ledger.append(replace(released(1, "node-a", 0.5), epsilon_claimed=math.nan))
    assert ledger.size == 0 and not (tmp_path / "ledger" / ENTRIES_FILE).exists()


def test_the_reader_names_a_bad_line(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    build_ledger(tmp_path / "ledger", key)
    path = tmp_path / "ledger" / ENTRIES_FILE
    lines = path.read_bytes().split(b"\n")
    lines[3] = b'{"seq": 3}'
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(LedgerError, match="entries.jsonl:4: entry misses key\\(s\\) 'time'"):
        read_ledger(tmp_path / "ledger").entries()
    with pytest.raises(LedgerError, match="no ledger directory at .*elsewhere"):
        verify_ledger(tmp_path / "elsewhere", key.public_key())


# -- crash recovery ------------------------------------------------------------------------------


def _next_line(seq: int) -> bytes:
    """A whole, canonical entry line for ``seq``, as a crashed writer left it."""
    entry = Entry(seq, 1_900_000_000.0, "run_ended", 1, RunEnded("r", "completed", None).to_body())
    return entry.canonical() + b"\n"


@pytest.mark.parametrize("torn_file", [ENTRIES_FILE, TREE_HEADS_FILE])
def test_a_torn_final_line_is_dropped_on_open(
    tmp_path: Path, key: Ed25519PrivateKey, torn_file: str
) -> None:
    # Prepare: a crash in the middle of writing a line
    build_ledger(tmp_path / "ledger", key)
    with open(tmp_path / "ledger" / torn_file, "ab") as handle:
        handle.write(b'{"seq":20,"ti')
    before = verify_ledger(tmp_path / "ledger", key.public_key())
    # Execute
    ledger = Ledger.open(tmp_path / "ledger", key, "coordinator")
    # Assert: a warning before, a clean ledger of the same 20 entries after
    assert before.ok and [f.kind for f in before.findings] == ["torn-line"]
    assert ledger.recovered == [f"dropped a torn final line of {torn_file}"]
    assert ledger.size == 20
    assert verify_ledger(tmp_path / "ledger", key.public_key()).findings == ()


def test_entries_without_a_tree_head_are_signed_on_open(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    # Prepare: two whole entries written, the crash came before their tree head (and tore it)
    build_ledger(tmp_path / "ledger", key)
    with open(tmp_path / "ledger" / ENTRIES_FILE, "ab") as handle:
        handle.write(_next_line(20) + _next_line(21))
    with open(tmp_path / "ledger" / TREE_HEADS_FILE, "ab") as handle:
        handle.write(b'{"key_id":"')
    before = verify_ledger(tmp_path / "ledger", key.public_key())
    # Execute
    ledger = Ledger.open(tmp_path / "ledger", key, "coordinator")
    # Assert
    assert before.ok and {f.kind for f in before.findings} == {"torn-line", "unsigned-tail"}
    assert "entries 20..21 are not covered" in str(before.findings)
    assert ledger.recovered[-1] == "signed 2 unsigned entries"
    assert ledger.latest_tree_head().tree_size == 22  # type: ignore[union-attr]
    assert verify_ledger(tmp_path / "ledger", key.public_key()).findings == ()


def test_a_failed_tree_head_write_is_recovered(
    tmp_path: Path, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    ledger = build_ledger(tmp_path / "ledger", key)

    def crash(*args: Any, **kwargs: Any) -> TreeHead:
        raise OSError("disk gone")

    monkeypatch.setattr(TreeHead, "create", crash)
    # Execute: the entry is durable, its head is not; the writer refuses to go on
    with pytest.raises(OSError, match="disk gone"):
        ledger.append(RunEnded("run-2", "failed", "crash"))
    monkeypatch.undo()
    reopened = Ledger.open(tmp_path / "ledger", key, "coordinator")
    # Assert
    assert reopened.size == 21 and reopened.signed_size == 21
    assert verify_ledger(tmp_path / "ledger", key.public_key()).findings == ()


def test_open_refuses_a_tampered_ledger_or_another_key(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    # Prepare
    build_ledger(tmp_path / "ledger", key)
    # Execute / Assert: another key, another ledger id
    with pytest.raises(LedgerVerificationError, match="signature.*expected key"):
        Ledger.open(tmp_path / "ledger", generate_private_key(), "coordinator")
    with pytest.raises(LedgerVerificationError, match="expected ledger 'node-1', got 'coord"):
        Ledger.open(tmp_path / "ledger", key, "node-1")
    # Execute / Assert: an edited epsilon claim is not laundered by a new signature
    path = tmp_path / "ledger" / ENTRIES_FILE
    path.write_bytes(path.read_bytes().replace(b'"epsilon_claimed":0.5', b'"epsilon_claimed":0.1'))
    with pytest.raises(LedgerVerificationError, match="root-mismatch.*seq 1..4 differs"):
        Ledger.open(tmp_path / "ledger", key, "coordinator")


# -- tamper corpus ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One tampered copy of the ledger files and the error finding it must produce:
    one of the finding kinds ``expect`` ("a|b"), whose message contains ``names`` or whose
    location is ``names``."""

    kind: str
    name: str
    entries: bytes
    heads: bytes
    expect: str
    names: str


def _mutate(value: Any) -> Any:
    """The smallest change of a JSON value of the same type (one bit or one character)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value ^ 1
    if isinstance(value, float):
        (bits,) = struct.unpack("<q", struct.pack("<d", value))
        return struct.unpack("<d", struct.pack("<q", bits ^ 1))[0]
    if isinstance(value, str):
        return chr(ord(value[0]) ^ 1) + value[1:] if value else "x"
    if isinstance(value, list):
        return [_mutate(value[0]), *value[1:]] if value else ["x"]
    if isinstance(value, dict):
        first = sorted(value)[0]
        return {**value, first: _mutate(value[first])}
    return "x"  # None


def _edit(value: Any, *, hex_digits: bool) -> Any:
    """A changed value; hex strings stay hex (their last digit changes)."""
    if hex_digits:
        return value[:-1] + ("1" if value[-1] == "0" else "0")
    return _mutate(value)


def _bracket(seq: int) -> str:
    """The seq range the verifier names for a change to entry ``seq``."""
    covering = min(size for size in SIGNED_SIZES if size > seq)
    intact = max((size for size in SIGNED_SIZES if size <= seq), default=0)
    return f"an entry in seq {intact}..{covering - 1} differs"


def _join(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def _field_edits(entries: list[bytes], heads: bytes) -> Iterator[Case]:
    for seq, line in enumerate(entries):
        obj = json.loads(line)
        paths = [(k,) for k in obj if k != "body"] + [("body", k) for k in obj["body"]]
        for path in paths:
            edited = json.loads(line)
            target = edited["body"] if path[0] == "body" else edited
            target[path[-1]] = _mutate(target[path[-1]])
            changed = [*entries[:seq], canonical_json(edited), *entries[seq + 1 :]]
            yield Case(
                "field-edit",
                f"seq {seq} {'.'.join(path)}",
                _join(changed),
                heads,
                "root-mismatch",
                _bracket(seq),
            )


def _byte_flips(entries: list[bytes], heads: bytes) -> Iterator[Case]:
    for seq in (0, 9, 19):
        for at in range(len(entries[seq])):
            line = bytearray(entries[seq])
            line[at] ^= 1
            changed = [*entries[:seq], bytes(line), *entries[seq + 1 :]]
            yield Case(
                "byte-flip",
                f"seq {seq} byte {at}",
                _join(changed),
                heads,
                "root-mismatch",
                _bracket(seq),
            )


def _renumber(lines: list[bytes]) -> list[bytes]:
    out = []
    for seq, line in enumerate(lines):
        obj = json.loads(line)
        out.append(canonical_json({**obj, "seq": seq}))
    return out


def _structural(entries: list[bytes], heads: bytes) -> Iterator[Case]:
    for k in (1, 2, 6, 12, 19):
        yield Case(
            "truncate",
            f"drop last {k}",
            _join(entries[:-k]),
            heads,
            "truncated",
            f"signs 20 entries, entries.jsonl has {20 - k}",
        )
    for i in (0, 4, 7, 13, 18):
        swapped = [*entries[:i], entries[i + 1], entries[i], *entries[i + 2 :]]
        yield Case(
            "reorder",
            f"swap {i},{i + 1}",
            _join(swapped),
            heads,
            "seq-gap",
            f"expected seq {i}, got {i + 1}",
        )
        yield Case(
            "reorder-renumbered",
            f"swap {i},{i + 1}",
            _join(_renumber(swapped)),
            heads,
            "root-mismatch",
            _bracket(i),
        )
    forged = canonical_json({**json.loads(entries[2]), "seq": 0})
    for i in (0, 3, 10, 19):
        inserted = [*entries[:i], forged, *entries[i:]]
        yield Case("insert", f"before {i}", _join(inserted), heads, "root-mismatch", _bracket(i))
        yield Case(
            "insert-renumbered",
            f"before {i}",
            _join(_renumber(inserted)),
            heads,
            "root-mismatch",
            _bracket(i),
        )
        deleted = [*entries[:i], *entries[i + 1 :]]
        last = i == 19  # deleting the last entry is a truncation
        gap = ("truncated", "has 19") if last else ("seq-gap", f"expected seq {i}, got {i + 1}")
        yield Case("delete", f"seq {i}", _join(deleted), heads, *gap)
        renumbered = ("truncated", "has 19") if last else ("root-mismatch", _bracket(i))
        yield Case("delete-renumbered", f"seq {i}", _join(_renumber(deleted)), heads, *renumbered)
    yield Case(
        "non-canonical",
        "spaces after colons",
        _join(
            [
                *entries[:5],
                json.dumps(json.loads(entries[5]), sort_keys=True).encode(),
                *entries[6:],
            ]
        ),
        heads,
        "non-canonical",
        'differs from its canonical form at byte 8: expected b\'{"body":{"delta',
    )
    yield Case(
        "garbage-line",
        "seq 5",
        _join([*entries[:5], b"\x00garbage", *entries[6:]]),
        heads,
        "parse",
        "cannot parse line",
    )


def _head_byte_flips(entries: bytes, heads: list[bytes]) -> Iterator[Case]:
    for i in (0, 6):
        for at in range(len(heads[i])):
            line = bytearray(heads[i])
            line[at] ^= 1
            changed = _join([*heads[:i], bytes(line), *heads[i + 1 :]])
            yield Case(
                "head-byte-flip",
                f"line {i + 1} byte {at}",
                entries,
                changed,
                "signature|parse|non-canonical",
                f"tree_heads.jsonl:{i + 1}",
            )


def _head_cases(entries: bytes, heads: list[bytes], key: Ed25519PrivateKey) -> Iterator[Case]:
    other = generate_private_key()
    parsed = [TreeHead.from_json(json.loads(h)) for h in heads]
    for i, head in enumerate(parsed):
        where = f"tree_heads.jsonl:{i + 1}"

        def swap(new: TreeHead, i: int = i) -> bytes:
            return _join([*heads[:i], new.canonical(), *heads[i + 1 :]])

        fields = {k: v for k, v in vars(head).items() if k != "signature"}
        resigned = TreeHead.create(other, **{k: v for k, v in fields.items() if k != "key_id"})
        yield Case(
            "wrong-key",
            where,
            entries,
            swap(resigned),
            "signature",
            f"signed by key {key_id(other.public_key())}, expected key {key_id(key.public_key())}",
        )
        forged = replace(head, signature=resigned.signature)
        yield Case(
            "forged-signature",
            where,
            entries,
            swap(forged),
            "signature",
            "does not verify under key",
        )
        for name in ("tree_size", "root_hash", "timestamp", "ledger_id", "key_id", "signature"):
            edited = replace(head, **{name: _edit(getattr(head, name), hex_digits=name in HEX)})
            names = "expected key" if name == "key_id" else "does not verify under key"
            yield Case(
                "head-field-edit", f"{where} {name}", entries, swap(edited), "signature", names
            )
    for i in range(len(heads) - 1):
        swapped = [*heads[:i], heads[i + 1], heads[i], *heads[i + 2 :]]
        yield Case(
            "swapped-heads",
            f"lines {i + 1},{i + 2}",
            entries,
            _join(swapped),
            "order",
            f"tree size decreased from {SIGNED_SIZES[i + 1]}",
        )
    # A fork: a validly signed head for size 14 over altered entries (equivocation).
    lines = entries.split(b"\n")[:-1]
    forked = lines[6].replace(b'"epsilon_claimed":0.25', b'"epsilon_claimed":0.025')
    assert forked != lines[6]
    lines[6] = forked
    tree = MerkleTree([leaf_hash(line) for line in lines])
    fork = TreeHead.create(
        key,
        tree_size=14,
        root_hash=tree.root(14).hex(),
        timestamp=parsed[-1].timestamp,
        ledger_id="coordinator",
    )
    yield Case(
        "fork", "size 14", entries, _join([*heads, fork.canonical()]), "fork", "size 14 has root"
    )


CLAIMS = ("epsilon_claimed", "epsilon_total_claimed", "epsilon_total", "noise_multiplier")


def _claim_edits(entries: list[bytes], heads: bytes) -> Iterator[Case]:
    for seq, line in enumerate(entries):
        body = json.loads(line)["body"]
        for name in CLAIMS:
            if name in body:
                for new in (body[name] * 0.5, body[name] * 2, body[name] + 1e-9):
                    old = f'"{name}":{json.dumps(body[name])}'.encode()
                    changed = line.replace(old, f'"{name}":{json.dumps(new)}'.encode())
                    assert changed != line
                    kind = "noise-edit" if name == "noise_multiplier" else "epsilon-edit"
                    yield Case(
                        kind,
                        f"seq {seq} {name}={new}",
                        _join([*entries[:seq], changed, *entries[seq + 1 :]]),
                        heads,
                        "root-mismatch",
                        _bracket(seq),
                    )


def tamper_corpus(directory: Path, key: Ed25519PrivateKey) -> Iterator[Case]:
    """Every tampered copy of a freshly built 20-entry, 7-head ledger."""
    build_ledger(directory, key)
    entries_bytes = (directory / ENTRIES_FILE).read_bytes()
    heads_bytes = (directory / TREE_HEADS_FILE).read_bytes()
    entries = entries_bytes.split(b"\n")[:-1]
    heads = heads_bytes.split(b"\n")[:-1]
    yield from _field_edits(entries, heads_bytes)
    yield from _byte_flips(entries, heads_bytes)
    yield from _structural(entries, heads_bytes)
    yield from _claim_edits(entries, heads_bytes)
    yield from _head_cases(entries_bytes, heads, key)
    yield from _head_byte_flips(entries_bytes, heads)


def run_case(directory: Path, case: Case, key: Ed25519PrivateKey) -> LedgerReport:
    """Write the tampered files over those of the previous case and verify them from disk."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ENTRIES_FILE).write_bytes(case.entries)
    (directory / TREE_HEADS_FILE).write_bytes(case.heads)
    return verify_ledger(directory, key.public_key(), ledger_id="coordinator")


def detected(case: Case, report: LedgerReport) -> bool:
    """An error finding of the expected kind naming what changed."""
    return any(
        f.kind in case.expect.split("|") and (case.names in f.message or case.names == f.where)
        for f in report.errors
    )


@pytest.mark.integration
def test_every_tampering_in_the_corpus_is_detected(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    # Prepare
    cases = list(tamper_corpus(tmp_path / "original", key))
    # Execute
    missed = []
    for case in cases:
        report = run_case(tmp_path / "tampered", case, key)
        if not detected(case, report):
            missed.append(f"{case.kind} {case.name}: {[str(f) for f in report.findings]}")
    # Assert: 100 % detection, over every mutation kind of the issue
    kinds = {case.kind for case in cases}
    assert missed == [], f"{len(missed)} of {len(cases)} missed:\n" + "\n".join(missed[:10])
    assert kinds == MUTATION_KINDS and len(cases) > 1000
