"""A node's noised contributions, kept so that a round the coordinator re-runs after a
crash is never charged twice.

A node charges its budget when it serves a task. If the coordinator dies after nodes
served round r but before round r was complete, the resumed run asks for round r again.
The release is therefore idempotent per (run id, round, task kind): the first time, the
node computes its contribution, charges it, and keeps it here (``state/releases/``,
atomic, fsynced, 0600) before it leaves; on a retry it re-sends the SAME noised values
(under secure aggregation re-masked with the new round's fresh keys), charges nothing,
and its ledger records a ContributionResent instead of a PrivacySpent. A retry under
another plan, or a model round on another global model (or another enterprise-noise
threshold), is refused: the contribution would not fit, and a fresh one would be a
second charge for one round. The charge is written before the contribution is kept, and
the contribution is kept before it leaves: a crash between the two leaves a charge with
nothing released, and the retry is refused rather than charged again.

What a re-send reveals:

- Model rounds. The update is the output of DP-SGD at the node (record-level DP, noise
  added before anything leaves), so any later use of it, in one sum or in two, is
  post-processing: record-level privacy costs nothing more. The enterprise-level noise
  share is kept and re-sent too, never redrawn. If both attempts are unmasked over the
  same survivors, the two sums are identical and nothing new is learnt; if the survivors
  differ, the difference of the sums shows the updates of the nodes in one set and not
  the other, with only their enterprise-level noise shares. That is a limit of
  enterprise-level protection for a round interrupted after its unmasking; record-level
  guarantees are untouched.
- Curve rounds under secure aggregation. A node's distributed noise share is weak alone
  (it is sized so that the threshold many shares of a released sum are as private as the
  plan asks). Two sums over different survivor sets could be differenced down to a few
  nodes' histograms with fewer than threshold shares of noise. A node cannot tell from
  its own view whether an interrupted attempt was unmasked: the coordinator needs only a
  threshold of the OTHER nodes' unmasking shares to remove its masks, so "I was never
  asked to unmask" proves nothing. The safe rule is therefore: a secure curve
  contribution is released at most once; a retry of a curve round whose masked input
  already left is refused (the node stays charged, which only over-counts). A crash
  during a curve round's last two stages loses that run's curves, never privacy.
- Curve rounds in the clear carry the node's whole noise; re-sending the identical
  histogram shows nothing new.

Only releases that carry DP noise (a record-level receipt, or an enterprise-level noise
share) are kept; a non-private task is simply computed again. Cached releases are
deleted when the run completes (:meth:`ReleaseCache.forget_run`), and at most
:data:`MAX_RUNS` runs are kept (the oldest go first).

File format (version 1; compatibility rule: keys are never removed or re-meant)::

    {"version": 1, "run_id", "round", "kind", "plan_digest", "basis",
     "arrays": {name: array (common.array_json)}, "metrics": {...}, "receipt": {...}|null}
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from common.array_json import decode_array, encode_array
from common.atomic import atomic_write_json
from common.codec import decode_json, encode
from common.errors import StateError
from protocols.messages import PrivacyReceipt

__all__ = ["RELEASES_DIR", "MAX_RUNS", "TASK_KINDS", "CachedRelease", "ReleaseCache"]

RELEASES_DIR = "releases"
#: Most runs whose releases are kept (a run is normally forgotten when it completes).
MAX_RUNS = 8
#: The task kinds a release is kept for (also the file names' suffixes).
TASK_KINDS = ("model", "curve")
_VERSION: Literal[1] = 1


@dataclass(frozen=True)
class CachedRelease:
    """One released contribution: its task (``run_id``, ``round``, ``kind``), the plan it
    was made under, the ``basis`` it was computed on (e.g. the global model's digest),
    and the arrays, metrics and privacy receipt that left."""

    run_id: str
    round: int
    kind: str
    plan_digest: str
    basis: str
    arrays: dict[str, np.ndarray]
    metrics: dict[str, float]
    receipt: PrivacyReceipt | None


class ReleaseCache:
    """The cached releases under ``state_dir/releases``, one directory per run."""

    def __init__(self, state_dir: Path) -> None:
        self.root = Path(state_dir) / RELEASES_DIR

    def _run_dir(self, run_id: str) -> Path:
        # the run id comes from the coordinator: never let it name a path
        return self.root / hashlib.sha256(run_id.encode("utf-8")).hexdigest()[:24]

    def _path(self, run_id: str, round_number: int, kind: str) -> Path:
        if kind not in TASK_KINDS:
            raise ValueError(f"no release is kept for task kind {kind!r}")
        return self._run_dir(run_id) / f"{int(round_number):06d}-{kind}.json"

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive use of the cache: a check and a store of one task do not interleave."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def get(self, run_id: str, round_number: int, kind: str) -> CachedRelease | None:
        """The release kept for this task, or None; StateError for a corrupt file."""
        path = self._path(run_id, round_number, kind)
        if not path.exists():
            return None
        try:
            release = _from_json(path.read_bytes(), "cached release")
        except (OSError, StateError) as err:
            raise StateError(f"{path}: cached release unreadable: {err}") from None
        if (release.run_id, release.round, release.kind) != (run_id, round_number, kind):
            raise StateError(f"{path}: holds another task's release")
        return release

    def put(self, release: CachedRelease) -> None:
        """Keep ``release`` (atomically, fsynced, 0600), then drop the oldest runs."""
        path = self._path(release.run_id, release.round, release.kind)
        atomic_write_json(path, _to_json(release), mode=0o600)
        self._prune(keep=path.parent)

    def forget_run(self, run_id: str) -> None:
        """Delete every release kept for ``run_id`` (the run completed)."""
        shutil.rmtree(self._run_dir(run_id), ignore_errors=True)

    def runs(self) -> list[Path]:
        """The run directories kept, oldest first."""
        if not self.root.exists():
            return []
        dirs = [p for p in self.root.iterdir() if p.is_dir()]
        return sorted(dirs, key=lambda p: p.stat().st_mtime_ns)

    def _prune(self, keep: Path) -> None:
        others = [p for p in self.runs() if p != keep]
        for stale in others[: max(0, len(others) - (MAX_RUNS - 1))]:
            shutil.rmtree(stale, ignore_errors=True)


@dataclass(frozen=True)
class _ReleaseFile:
    """The file form of a CachedRelease (arrays as :mod:`common.array_json` objects)."""

    version: Literal[1]
    run_id: str
    round: int
    kind: str
    plan_digest: str
    basis: str
    arrays: dict[str, dict[str, Any]]
    metrics: dict[str, float]
    receipt: PrivacyReceipt | None


def _to_json(release: CachedRelease) -> dict[str, Any]:
    file = _ReleaseFile(
        version=_VERSION,
        run_id=release.run_id,
        round=release.round,
        kind=release.kind,
        plan_digest=release.plan_digest,
        basis=release.basis,
        arrays={name: encode_array(a) for name, a in release.arrays.items()},
        metrics={k: float(v) for k, v in release.metrics.items()},
        receipt=release.receipt,
    )
    body = encode(file)
    assert isinstance(body, dict)
    return body


def _from_json(text: bytes, where: str) -> CachedRelease:
    file = decode_json(_ReleaseFile, text, where, StateError)
    return CachedRelease(
        run_id=file.run_id,
        round=file.round,
        kind=file.kind,
        plan_digest=file.plan_digest,
        basis=file.basis,
        arrays={k: decode_array(v, f"{where}.arrays[{k}]") for k, v in file.arrays.items()},
        metrics=file.metrics,
        receipt=file.receipt,
    )
