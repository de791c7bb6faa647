"""The node as a witness of the coordinator's ledger: it never accepts a rewritten history.

The node keeps, in ``state/witness/coordinator.json``, the last coordinator tree head it
verified (signature checked against the coordinator's key), how far it has read the
coordinator's ledger, and the entries of that ledger it needs later: its own
MessageReceived entries, the runs' RunResumed rounds and which runs ended (RunEnded, so
``join`` knows when to check). Every newer head it is shown must
extend the kept one, proven by an RFC 9162 consistency proof; a smaller head, a different
root at the same size or a failed proof means the coordinator rewrote or rolled back its
ledger, and :meth:`Witness.advance` raises (the head kept is not moved). Only the entries
after the part already read are fetched. One checker at a time: :meth:`Witness.held` takes
a file lock (``join``'s automatic checks and a ``verify-inclusion`` by hand may overlap).

The file is the node's own bookkeeping, not evidence: the evidence is the signed head kept
in every InclusionChecked record of the node's signed ledger.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from common.atomic import atomic_write_bytes
from common.codec import decode_json, encode
from common.errors import StateError
from enterprise_node.config import NodeConfig
from ledger.client import LedgerClient
from ledger.log import Entry, TreeHead, canonical_json
from ledger.records import MessageReceived, RunEnded, RunResumed

__all__ = ["WITNESS_FILE", "WitnessError", "WitnessState", "Witness"]

WITNESS_FILE = Path("witness") / "coordinator.json"


class WitnessError(StateError):
    """The coordinator's ledger does not extend the head this node verified before."""

    advice = (
        "Keep this node's ledger and state/witness as evidence: the coordinator showed two "
        "histories of its ledger. An auditor can verify both signed heads."
    )


@dataclass(frozen=True)
class WitnessState:
    """``head``: the last verified coordinator head (None before the first check);
    ``scanned``: entries ``0 <= seq < scanned`` were read; ``mine``: this node's
    MessageReceived entries (canonical lines) by run; ``resumed``: each run's RunResumed
    ``from_round`` values; ``ended``: the runs whose last RunEnded no RunResumed follows."""

    head: TreeHead | None = None
    scanned: int = 0
    mine: dict[str, tuple[str, ...]] = field(default_factory=dict)
    resumed: dict[str, tuple[int, ...]] = field(default_factory=dict)
    ended: tuple[str, ...] = ()


class Witness:
    """Loads, advances and saves a node's witness state."""

    def __init__(self, config: NodeConfig, node_id: str) -> None:
        self.path = config.state_dir / WITNESS_FILE
        self.node_id = node_id
        self.state = (
            decode_json(WitnessState, self.path.read_bytes(), str(self.path), StateError)
            if self.path.exists()
            else WitnessState()
        )

    @classmethod
    @contextmanager
    def held(cls, config: NodeConfig, node_id: str) -> Iterator[Witness]:
        """The witness state, loaded under an exclusive lock held until the block ends."""
        lock_path = config.state_dir / WITNESS_FILE.parent / ".lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield cls(config, node_id)
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def advance(self, client: LedgerClient, head: TreeHead) -> int:
        """Check ``head`` (already signature-checked by ``client``) extends the kept head,
        read the entries after the part already read, and keep ``head``. Returns the size
        of the head kept before (0 for none). WitnessError if ``head`` does not extend it."""
        old = self.state.head
        if old is not None:
            _require_extends(client, old, head)
        mine = {run: list(lines) for run, lines in self.state.mine.items()}
        resumed = {run: list(rounds) for run, rounds in self.state.resumed.items()}
        ended = list(self.state.ended)
        start = min(self.state.scanned, head.tree_size)
        for entry in client.entries(start, head.tree_size):
            body = entry.body
            if entry.kind == MessageReceived.KIND and body.get("node") == self.node_id:
                mine.setdefault(str(body.get("run_id")), []).append(entry.canonical().decode())
            elif entry.kind == RunResumed.KIND:
                run = str(body.get("run_id"))
                resumed.setdefault(run, []).append(int(body.get("from_round", 0)))
                ended = [r for r in ended if r != run]  # running again
            elif entry.kind == RunEnded.KIND and str(body.get("run_id")) not in ended:
                ended.append(str(body.get("run_id")))
        self.state = WitnessState(
            head=head,
            scanned=max(head.tree_size, self.state.scanned),
            mine={run: tuple(lines) for run, lines in mine.items()},
            resumed={run: tuple(rounds) for run, rounds in resumed.items()},
            ended=tuple(ended),
        )
        return old.tree_size if old is not None else 0

    def received(self, run_id: str) -> list[Entry]:
        """The coordinator's MessageReceived entries naming this node in ``run_id``
        (unverified here: prove each against a head)."""
        return [Entry.from_line(line.encode()) for line in self.state.mine.get(run_id, ())]

    def rerun_rounds(self, run_id: str) -> set[int]:
        return set(self.state.resumed.get(run_id, ()))

    def has_ended(self, run_id: str) -> bool:
        """Whether the coordinator's ledger, as far as read, records ``run_id``'s end."""
        return run_id in self.state.ended

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, canonical_json(encode(self.state)) + b"\n")


def _require_extends(client: LedgerClient, old: TreeHead, new: TreeHead) -> None:
    where = f"the head this node verified before (size {old.tree_size}, root {old.root_hash})"
    if new.tree_size < old.tree_size:
        raise WitnessError(
            f"the coordinator's ledger was rolled back: its head now signs {new.tree_size} "
            f"entries, fewer than {where}"
        )
    if new.tree_size == old.tree_size:
        if new.root_hash != old.root_hash:
            raise WitnessError(
                f"the coordinator's ledger was rewritten: root {new.root_hash} at size "
                f"{new.tree_size} differs from {where}"
            )
        return
    try:
        client.check_consistent(old, new)
    except StateError as err:
        raise WitnessError(
            f"the coordinator's ledger was rewritten: its head of size {new.tree_size} does "
            f"not extend {where} ({err})"
        ) from None
