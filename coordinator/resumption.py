"""Where a resumed run starts: after its last completed model round, never before it.

A run restarted with ``RunRequest.resume`` keeps its run id, plan and configuration. Where
it continues is decided from its checkpoint (:mod:`coordinator.checkpoint`) and from the
run's history in the coordinator's ledger (for a run kept without a ledger, from its
progress events):

- the run completed: nothing to resume, an error;
- a checkpoint: it must be intact, of this run and plan, and not older than the last
  completed round the history records (an older one would run a recorded round again);
  the run continues with the round after it, or with the curve round once training is
  done;
- no checkpoint: allowed only if no round was recorded as completed; the run starts
  again at round 1.

The interrupted attempt's records of the round it was in stay in the ledger; the
RunResumed record says that rounds from ``from_round`` on were run again, so that an
auditor counts them once (``auditor/rounds.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from common.errors import ConfigError, StateError
from coordinator.checkpoint import CHECKPOINT_FILE, Checkpoint, read_checkpoint
from coordinator.config import CoordinatorConfig
from coordinator.progress_events import CheckpointSaved, ProgressEvent, RunEnd, RunStart
from coordinator.run_request import RunRequest, read_run_request, write_run_request
from coordinator.run_summary import SUMMARY_FILE, read_summary
from ledger.log import Entry
from ledger.records import CheckpointWritten, RunEnded, RunStarted

__all__ = ["RunHistory", "ResumePoint", "resume_point", "resumable_request"]


@dataclass(frozen=True)
class RunHistory:
    """What the ledger (or the progress events) records of one run: whether it
    ``started`` and ``completed``, and its last completed round's checkpoint (round,
    digest), None when no round completed."""

    started: bool
    completed: bool
    last_checkpoint: tuple[int, str] | None

    @classmethod
    def from_ledger(cls, entries: Iterable[Entry], run_id: str) -> RunHistory:
        """The history of ``run_id`` in the coordinator's ledger entries."""
        started = completed = False
        last: tuple[int, str] | None = None
        for entry in entries:
            body = entry.body
            if body.get("run_id") != run_id:
                continue
            if entry.kind == RunStarted.KIND:
                started = True
            elif entry.kind == RunEnded.KIND and body.get("status") == "completed":
                completed = True
            elif entry.kind == CheckpointWritten.KIND:
                last = (int(body["round"]), str(body["sha256"]))
        return cls(started, completed, last)

    @classmethod
    def from_events(cls, events: Iterable[ProgressEvent], run_id: str) -> RunHistory:
        """The history of ``run_id`` in its run directory's progress events."""
        started = completed = False
        last: tuple[int, str] | None = None
        for event in events:
            if isinstance(event, RunStart):
                started = started or event.run_id == run_id
            elif isinstance(event, RunEnd) and event.completed:
                completed = True
            elif isinstance(event, CheckpointSaved):
                last = (event.round, event.sha256)
        return cls(started, completed, last)


@dataclass(frozen=True)
class ResumePoint:
    """Where a resumed run continues: its ``checkpoint`` (None: from scratch) with digest
    ``sha256``, the first round to run (``from_round``), and whether the checkpoint still
    has to be recorded (``record_checkpoint``: the crash came between writing it and
    recording it)."""

    checkpoint: Checkpoint | None
    sha256: str
    from_round: int
    record_checkpoint: bool

    @property
    def checkpoint_round(self) -> int:
        """The last completed model round (0 when none)."""
        return 0 if self.checkpoint is None else self.checkpoint.round


def resume_point(request: RunRequest, history: RunHistory) -> ResumePoint:
    """Where run ``request.run_id`` continues; StateError when it must not be resumed."""
    run_id, plan = request.run_id, request.config.plan
    path = Path(request.run_dir) / CHECKPOINT_FILE
    if history.completed:
        raise StateError(f"run {run_id!r} completed; there is nothing to resume")
    last = history.last_checkpoint
    if not path.exists():
        if last is not None:
            raise StateError(
                f"{path} is missing, but round {last[0]} of run {run_id!r} is recorded as "
                "completed: starting again would run recorded rounds twice",
                advice="Restore checkpoint.json from backup, or start a new run.",
            )
        return ResumePoint(None, "", 1, False)
    checkpoint, sha256 = read_checkpoint(path, run_id=run_id, plan_digest=plan.digest)
    if not history.started:
        raise StateError(f"{path}: a checkpoint of run {run_id!r}, which has no recorded start")
    if last is not None and checkpoint.round < last[0]:
        raise StateError(
            f"{path} holds round {checkpoint.round}, but round {last[0]} of run {run_id!r} is "
            "recorded as completed: resuming from it would run recorded rounds twice",
            advice="Restore the latest checkpoint.json, or start a new run.",
        )
    from_round = plan.training.rounds + 1 if checkpoint.training_done else checkpoint.round + 1
    return ResumePoint(checkpoint, sha256, from_round, last != (checkpoint.round, sha256))


def resumable_request(run_dir: Path, config: CoordinatorConfig, expected_nodes: int) -> RunRequest:
    """The run request in ``run_dir`` marked for resumption (same run id, configuration
    and ledger), after checking that ``config`` is the run's and the run did not complete.
    The interrupted attempt's progress events move to ``progress.interrupted.jsonl``."""
    path = Path(run_dir) / "run_request.json"
    if not path.exists():
        raise StateError(f"{path} is missing: there is no run to resume in {run_dir}")
    request = read_run_request(path)
    if config.model_dump_json() != request.config.model_dump_json():
        raise ConfigError(
            f"the configuration given differs from run {request.run_id!r}'s ({path}); a run "
            "resumes with its own configuration (plan digest "
            f"{request.config.plan.digest[:12]}, given {config.plan.digest[:12]})"
        )
    summary = read_summary(Path(run_dir) / SUMMARY_FILE)
    if summary is not None and summary.completed:
        raise StateError(f"run {request.run_id!r} in {run_dir} completed; nothing to resume")
    _set_aside_progress(Path(run_dir))
    resumed = request.model_copy(update={"resume": True, "expected_nodes": expected_nodes})
    write_run_request(path, resumed)
    return resumed


def _set_aside_progress(run_dir: Path) -> None:
    """Append the interrupted attempt's events to progress.interrupted.jsonl; a resumed
    attempt starts a fresh progress.jsonl (followers stop at its first run_end)."""
    progress = run_dir / "progress.jsonl"
    if progress.exists():
        with open(run_dir / "progress.interrupted.jsonl", "a", encoding="utf-8") as kept:
            kept.write(progress.read_text(encoding="utf-8"))
            kept.flush()
            os.fsync(kept.fileno())
        progress.unlink()
    (run_dir / SUMMARY_FILE).unlink(missing_ok=True)
