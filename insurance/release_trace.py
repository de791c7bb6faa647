"""Where the coordinator's signed ledger records a run's published outputs, so that a price
can be traced to a signed run (the provenance of the product sheet).

The ledger is the one the run's ``run_request.json`` names (``ledger_dir`` and
``ledger_key``, as :class:`coordinator.run_request.RunRequest` writes them, read here as
JSON because the coordinator is a layer above); paths recorded before a run directory was
moved together with its ledger are followed by the same relative path. The run's last
``outputs_published`` entry carries the SHA-256 of curves.json and global_model.npz; the
first signed tree head whose size exceeds the entry's seq covers it (RFC 9162: the
entry is provably in that tree).

The ledger is verified against the public key beside the coordinator's signing key: that
is the coordinator's own word, not a third party's. The trace names the key id, and an
auditor repeats the check with a key they trust (``fedrisk-audit verify``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ledger.log import Entry, LedgerContents, LedgerError, TreeHead, read_ledger
from ledger.records import OutputsPublished, record_from_entry
from ledger.signing import SigningKeyError, key_id, load_public_key, public_key_path
from ledger.verification import verify_ledger

__all__ = ["REQUEST_FILE", "ReleaseTrace", "Untraced", "trace_release"]

REQUEST_FILE = "run_request.json"


@dataclass(frozen=True)
class ReleaseTrace:
    """The coordinator ledger ``directory``, its ``verdict`` (verified against the key at
    ``key_path``, or why not); the run's last outputs_published ``entry`` (None: the ledger
    records no outputs of the run) and the first signed ``head`` covering it (None: none
    yet, the entry is in the unsigned tail)."""

    directory: Path
    key_path: Path
    verdict: str
    entry: Entry | None
    head: TreeHead | None


@dataclass(frozen=True)
class Untraced:
    """No ledger to trace to, and the ``reason`` as a clause ("... is not there")."""

    reason: str


def trace_release(run_dir: Path, run_id: str) -> ReleaseTrace | Untraced:
    """Where the ledger of run ``run_dir`` records the outputs of ``run_id``."""
    located = _ledger_paths(Path(run_dir))
    if isinstance(located, Untraced):
        return located
    directory, key_path = located
    try:
        contents = read_ledger(directory)
        entry = _release_entry(contents, run_id)
        heads = contents.tree_heads()
    except LedgerError as err:
        return Untraced(f"the coordinator ledger {directory} cannot be read ({err})")
    head = None if entry is None else next((h for h in heads if h.tree_size > entry.seq), None)
    return ReleaseTrace(directory, key_path, _verdict(contents, key_path), entry, head)


def _ledger_paths(run_dir: Path) -> tuple[Path, Path] | Untraced:
    """(ledger directory, coordinator public key) as the run request names them."""
    path = run_dir / REQUEST_FILE
    try:
        request = json.loads(path.read_text(encoding="utf-8"))
        ledger_dir, key, recorded_run = (
            request["ledger_dir"], request["ledger_key"], request["run_dir"])  # fmt: skip
    except FileNotFoundError:
        return Untraced(f"{path} is not there to name the ledger")
    except (OSError, ValueError, KeyError, TypeError) as err:
        return Untraced(f"{path} cannot be read ({err!r})")
    if ledger_dir is None or key is None:
        return Untraced(f"{path} names no ledger (the run kept none)")
    directory = _followed(ledger_dir, recorded_run, run_dir)
    if not directory.is_dir():
        return Untraced(f"the ledger {ledger_dir} that {path} names is not there")
    return directory, public_key_path(_followed(key, recorded_run, run_dir))


def _followed(recorded: str, recorded_run: str, run_dir: Path) -> Path:
    """``recorded`` if it exists, else the same path relative to the run directory now."""
    path = Path(recorded)
    if path.exists():
        return path
    return Path(os.path.normpath(run_dir / os.path.relpath(path, recorded_run)))


def _release_entry(contents: LedgerContents, run_id: str) -> Entry | None:
    """The last outputs_published entry of ``run_id`` (a resumed run may have several); a
    malformed one is a LedgerError."""
    found = [
        e
        for e in contents.entries()
        if e.kind == OutputsPublished.KIND and e.body.get("run_id") == run_id
    ]
    for entry in found:
        record_from_entry(entry)
    return found[-1] if found else None


def _verdict(contents: LedgerContents, key_path: Path) -> str:
    try:
        key = load_public_key(key_path)
    except SigningKeyError as err:
        return f"NOT verified: {err}"
    errors = verify_ledger(contents, key).errors
    if errors:
        return "FAILED verification: " + "; ".join(str(f) for f in errors[:3])
    return f"verified against the coordinator's own key {key_path} (key id {key_id(key)})"
