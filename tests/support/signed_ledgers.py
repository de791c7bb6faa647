"""Small signed ledgers for hostile-input tests: one run, a coordinator and two nodes.

Every ledger is written by the real writer (:class:`ledger.writer.Ledger`) and signed with
the party's real Ed25519 key (:mod:`ledger.signing`), with a clock the test chooses, so a
test can date a valid ledger anywhere. :func:`write_raw_ledger` writes entry lines as
given (any bytes) and signs tree heads over them with the owner's key: what an attacker
holding that key can produce.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.log import ENTRIES_FILE, TREE_HEADS_FILE, Entry, TreeHead, read_ledger
from ledger.merkle import MerkleTree, leaf_hash
from ledger.records import (
    LedgerRecord,
    MessageReceived,
    MessageSent,
    OutputsPublished,
    PlanApproved,
    PrivacySpent,
    ReleaseAccounted,
    RoundRecorded,
    RunEnded,
    RunStarted,
    record_from_entry,
)
from ledger.signing import generate_private_key, key_id, load_private_key, write_public_key
from ledger.writer import Ledger
from privacy.mechanisms import Mechanism

__all__ = [
    "SignedParty",
    "SignedRun",
    "digest",
    "node_records",
    "coordinator_records",
    "signed_run",
    "write_raw_ledger",
    "sign_heads",
    "redate",
    "resign_ledger",
]

RUN = "run-1"
DELTA = 1e-5
MECHANISM: str = Mechanism.DISTRIBUTED_GLM


@dataclass(frozen=True)
class SignedParty:
    """One party: its ledger directory, public key file, private key and ledger id."""

    ledger: Path
    public_key: Path
    key: Ed25519PrivateKey
    ledger_id: str


@dataclass(frozen=True)
class SignedRun:
    """A coordinator and its nodes, each with a signed ledger of one run."""

    coordinator: SignedParty
    nodes: tuple[SignedParty, ...]

    @property
    def parties(self) -> tuple[SignedParty, ...]:
        return (self.coordinator, *self.nodes)

    def ledger_dirs(self) -> list[Path]:
        return [p.ledger for p in self.parties]

    def key_paths(self) -> list[Path]:
        return [p.public_key for p in self.parties]


def _party(root: Path, name: str, coordinator: bool) -> SignedParty:
    key = generate_private_key()
    public = root / f"{name}.pub.pem"
    write_public_key(public, key.public_key())
    ledger_id = "coordinator" if coordinator else key_id(key.public_key())
    return SignedParty(root / name, public, key, ledger_id)


def _spent(epsilon: float, total: float) -> PrivacySpent:
    return PrivacySpent(
        RUN, 1, "model", "record", MECHANISM, 1.2, 1.0, 1, 1.0, 2, epsilon, total, 10.0 - total,
        10.0, DELTA,
    )  # fmt: skip


def _accounted(node: str, epsilon: float, digest: str) -> ReleaseAccounted:
    return ReleaseAccounted(
        RUN, 1, "model", node, "record", MECHANISM, 1.2, 1.0, 1, 1.0, 2, epsilon, epsilon, 10.0,
        DELTA, digest,
    )  # fmt: skip


def digest(node: str) -> str:
    """The digest of ``node``'s reply in the run."""
    return hashlib.sha256(node.encode()).hexdigest()


def node_records(node: str, epsilon: float) -> list[LedgerRecord]:
    """A node's ledger of the run: plan approved, one release spent, its reply sent."""
    return [
        PlanApproved("a" * 64, "tests", ""),
        _spent(epsilon, epsilon),
        MessageSent(RUN, 1, "model", "fit", "ok", digest(node), 100),
    ]


def coordinator_records(nodes: Iterable[str], epsilon: float) -> list[LedgerRecord]:
    """The coordinator's ledger of the run: started, one round, releases, ended."""
    ids = tuple(nodes)
    return [
        RunStarted(RUN, "a" * 64, "c" * 64, "d" * 64, 10.0, DELTA, None, None, len(ids), True),
        *(MessageReceived(RUN, 1, "model", n, "ok", digest(n)) for n in ids),
        RoundRecorded(RUN, 1, "model", ids, (), (), (), 1.0),
        *(_accounted(n, epsilon, digest(n)) for n in ids),
        OutputsPublished(RUN, "e" * 64, None, (), ()),
        RunEnded(RUN, "completed", None),
    ]


def epsilon_of_one_release() -> float:
    """The epsilon the auditor recomputes for the nodes' single release."""
    from auditor.epsilon import Release, compose_epsilon

    return compose_epsilon([Release(MECHANISM, 1.2, 1.0, 1)], DELTA)


def signed_run(
    root: Path, *, nodes: int = 2, clock: Callable[[], float] = lambda: 1_700_000_000.0
) -> SignedRun:
    """Write a clean signed run under ``root`` (the audit passes it), every entry and
    tree head dated by ``clock``."""
    root.mkdir(parents=True, exist_ok=True)
    coordinator = _party(root, "coordinator", True)
    parties = tuple(_party(root, f"node-{i}", False) for i in range(nodes))
    epsilon = epsilon_of_one_release()
    for party in parties:
        ledger = Ledger.open(party.ledger, party.key, party.ledger_id, clock=clock)
        ledger.append_many(node_records(party.ledger_id, epsilon))
    ledger = Ledger.open(coordinator.ledger, coordinator.key, "coordinator", clock=clock)
    ledger.append_many(coordinator_records((p.ledger_id for p in parties), epsilon))
    return SignedRun(coordinator, parties)


def sign_heads(
    key: Ed25519PrivateKey, ledger_id: str, lines: list[bytes], timestamp: float = 1.7e9
) -> list[bytes]:
    """One tree head per prefix of ``lines``, signed with ``key`` over their Merkle roots."""
    tree = MerkleTree([leaf_hash(line) for line in lines])
    return [
        TreeHead.create(
            key, tree_size=size, root_hash=tree.root(size).hex(), timestamp=timestamp,
            ledger_id=ledger_id,
        ).canonical()
        for size in range(1, len(lines) + 1)
    ]  # fmt: skip


def write_raw_ledger(
    party: SignedParty, entry_lines: list[bytes], head_lines: list[bytes] | None = None
) -> None:
    """Replace ``party``'s ledger by ``entry_lines`` (any bytes) and tree heads over them
    signed with the party's key (or ``head_lines`` as given)."""
    party.ledger.mkdir(parents=True, exist_ok=True)
    heads = (
        sign_heads(party.key, party.ledger_id, entry_lines) if head_lines is None else head_lines
    )
    (party.ledger / ENTRIES_FILE).write_bytes(b"".join(line + b"\n" for line in entry_lines))
    (party.ledger / TREE_HEADS_FILE).write_bytes(b"".join(line + b"\n" for line in heads))


def redate(party: SignedParty, seconds: float) -> None:
    """Re-sign ``party``'s ledger with every entry and tree head dated ``seconds``
    (canonical lines, valid signatures: the owner's key can date a ledger anywhere)."""
    lines = (party.ledger / ENTRIES_FILE).read_bytes().splitlines()
    entries = [replace(Entry.from_line(line), time=seconds).canonical() for line in lines]
    write_raw_ledger(party, entries, sign_heads(party.key, party.ledger_id, entries, seconds))


def resign_ledger(
    directory: Path,
    private_key: Path,
    ledger_id: str,
    edit: Callable[[list[LedgerRecord]], list[LedgerRecord]],
) -> None:
    """Rewrite the ledger in ``directory`` with ``edit`` applied to its records, re-signed
    with the owner's real key: every signature and proof verifies, only the content changed."""
    records = [record_from_entry(e) for e in read_ledger(directory).entries()]
    shutil.rmtree(directory)
    Ledger.open(directory, load_private_key(private_key), ledger_id).append_many(edit(records))
