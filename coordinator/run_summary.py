"""The run summary, ``summary.json``: one typed record for a run's end, completed or failed.

The ServerApp writes it when the run ends (:mod:`coordinator.outputs` for a completed
run, the coordinator's failure path for a failed one); a local federation then adds the
nodes' ledger inclusion checks (:mod:`harness.federation`). ``status``, ``run`` views,
reports, the demo and the benchmarks read it back through :func:`read_summary`.

A failed run's summary has only ``run_id``, ``status``, ``error``, ``plan_digest``,
``rounds``, ``privacy`` and ``seconds``; a completed run's has every field but ``error``,
and ``inclusion_checks`` once checked. A field whose value is None is not written. The
file is key-sorted, indented JSON (:func:`common.atomic.atomic_write_json`).

Compatibility rule: summaries are read long after they are written, so a field is never
removed or renamed and its meaning never changes; a new field is added only with a
default (older files still read), and then the record's VERSION goes up and the file
gains a "format_version" key (a file without one is version 1). A reader refuses a
summary with a key it does not know or a value of the wrong type, naming the file and the
key, rather than guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from common.atomic import atomic_write_json
from common.codec import decode_json, encode
from common.errors import StateError
from coordinator.privacy_notes import ModelNoise
from coordinator.round_summary import RoundSummary

__all__ = [
    "SUMMARY_FILE",
    "ReleaseFigures",
    "NodePrivacy",
    "RunPrivacy",
    "WithheldSegment",
    "RunSummary",
    "read_summary",
    "require_summary",
    "write_summary",
]

SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class ReleaseFigures:
    """One release a node's receipt accounted: the round and task, the mechanism, its
    noise multiplier, sample rate and steps, and its epsilon alone."""

    round: int
    task: str
    mechanism: str
    noise_multiplier: float
    sample_rate: float
    steps: int
    epsilon_task: float


@dataclass(frozen=True)
class NodePrivacy:
    """A node's record-level privacy figures: ``epsilon_run`` this run's, at the plan's
    delta ``delta_run``; ``epsilon_total`` its lifetime spend and ``epsilon_cap`` its cap,
    at its own cap delta (``delta_total`` = ``delta_cap``); its ``releases`` this run.
    See :mod:`coordinator.privacy_summary`."""

    epsilon_run: float
    delta_run: float
    epsilon_total: float
    delta_total: float
    epsilon_cap: float
    delta_cap: float
    releases: tuple[ReleaseFigures, ...]


@dataclass(frozen=True)
class RunPrivacy:
    """summary.json's "privacy": the receipts' figures per node (``unit``, ``accountant``,
    ``deltas`` and ``notes`` say how to read them) and the extra notes of
    :class:`coordinator.privacy_notes.PrivacyNotes` (``enterprise`` and ``curve_noise``
    as those write them)."""

    unit: str
    accountant: str
    deltas: str
    nodes: Mapping[str, NodePrivacy]
    notes: tuple[str, ...]
    model_noise: ModelNoise | None = None
    enterprise: Mapping[str, Any] | None = None
    curve_noise: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class WithheldSegment:
    """A segment whose curve the publication rules withheld, and why."""

    segment: str
    reason: str


@dataclass(frozen=True)
class RunSummary:
    """How a run ended: ``status`` ("completed" or "failed", then ``error``), its plan,
    every exchange (``rounds``), privacy, ``seconds`` of wall time; for a completed run
    the model, nodes, refusals and failures, curve segments and output files; and, after a
    local federation, each node's ledger ``inclusion_checks`` verdict by name."""

    VERSION: ClassVar[int] = 1
    run_id: str
    status: str
    plan_digest: str
    rounds: tuple[RoundSummary, ...]
    privacy: RunPrivacy
    seconds: float
    error: str | None = None
    record_dp: bool | None = None
    model_spec_digest: str | None = None
    model_digest: str | None = None
    nodes: tuple[str, ...] | None = None
    refusals: int | None = None
    failures: int | None = None
    published_segments: tuple[str, ...] | None = None
    withheld_segments: tuple[WithheldSegment, ...] | None = None
    outputs: tuple[str, ...] | None = None
    inclusion_checks: Mapping[str, str] | None = None

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def with_inclusion_checks(self, checks: Mapping[str, str]) -> RunSummary:
        """The summary with each node's inclusion verdict added."""
        return replace(self, inclusion_checks=dict(checks))


def write_summary(path: Path, summary: RunSummary) -> None:
    """Write ``summary`` to ``path`` atomically (None fields left out)."""
    atomic_write_json(path, encode(summary, omit_none=True))


def read_summary(path: Path) -> RunSummary | None:
    """The summary in ``path`` (None when there is none yet); StateError names the file
    and what in it is wrong."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        text = path.read_bytes()
    except OSError as err:
        raise StateError(f"{path}: cannot read the run summary: {err}") from None
    return decode_json(RunSummary, text, f"run summary {path}", StateError)


def require_summary(path: Path) -> RunSummary:
    """The summary in ``path``, which a finished run has written; StateError otherwise."""
    summary = read_summary(path)
    if summary is None:
        raise StateError(f"{path} is missing: the run wrote no summary")
    return summary
