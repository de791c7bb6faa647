"""The coordinator's signed ledger read back and verified, for ``status`` and ``report``.

Verification is :func:`ledger.verification.verify_ledger` against the coordinator's own public
key (``keys/ledger_key.pub.pem`` beside the ledger); a ledger that fails is shown as such,
not raised, because showing it is the point of these commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.coordinator_ledger import COORDINATOR_LEDGER_ID, coordinator_key_paths
from coordinator.run_view import RunView
from ledger.log import Entry, LedgerError, read_ledger
from ledger.signing import SigningKeyError, load_public_key
from ledger.verification import verify_ledger

__all__ = ["LedgerView", "read_ledger_view", "ledger_state_of", "run_entries"]


@dataclass(frozen=True)
class LedgerView:
    """The ledger in ``directory``: ``entries`` on disk, the latest signed tree head
    (``signed_size`` entries, ``root_hash``, ``head_time``) and whether the whole ledger
    verified against the coordinator's key; ``problems`` lists the errors found."""

    directory: Path
    entries: int
    signed_size: int
    root_hash: str | None
    head_time: float | None
    verified: bool
    problems: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "entries": self.entries,
            "signed_size": self.signed_size,
            "root_hash": self.root_hash,
            "head_time": self.head_time,
            "verified": self.verified,
            "problems": list(self.problems),
        }


def read_ledger_view(state_dir: Path) -> LedgerView | None:
    """The ledger of the coordinator state ``state_dir``; None when it has none yet."""
    directory = Path(state_dir) / "ledger"
    if not directory.is_dir():
        return None
    try:
        contents = read_ledger(directory)
        entries, heads = len(contents.entry_lines), contents.tree_heads()
    except LedgerError as err:
        return LedgerView(directory, 0, 0, None, None, False, (str(err),))
    head = heads[-1] if heads else None
    problems: tuple[str, ...]
    try:
        public = load_public_key(coordinator_key_paths(state_dir)[1])
        report = verify_ledger(contents, public, ledger_id=COORDINATOR_LEDGER_ID)
        problems = tuple(str(f) for f in report.errors)
    except SigningKeyError as err:
        problems = (f"cannot verify: {err}",)
    return LedgerView(
        directory=directory,
        entries=entries,
        signed_size=0 if head is None else head.tree_size,
        root_hash=None if head is None else head.root_hash,
        head_time=None if head is None else head.timestamp,
        verified=not problems,
        problems=problems,
    )


def ledger_state_of(run: RunView) -> Path | None:
    """The coordinator state directory whose ledger records ``run``: the one named in its
    run request, else ``STATE`` of ``STATE/runs/<id>``, else ``coordinator`` beside it."""
    candidates = []
    if run.request is not None and run.request.ledger_dir is not None:
        candidates.append(Path(run.request.ledger_dir).parent)
    candidates += [run.run_dir.parent.parent, run.run_dir.parent / "coordinator"]
    for state in candidates:
        if (state / "ledger" / "tree_heads.jsonl").exists():
            return state
    return None


def run_entries(directory: Path, run_id: str) -> list[Entry]:
    """The ledger entries about ``run_id`` (unverified; check :class:`LedgerView` first)."""
    return [e for e in read_ledger(directory).entries() if e.body.get("run_id") == run_id]
