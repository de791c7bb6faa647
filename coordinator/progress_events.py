"""The typed progress events of a run, one record per kind, as ``progress.jsonl`` holds them.

The ServerApp appends one JSON line per event (:meth:`coordinator.run_store.RunStore.event`)
so that the command that submitted the run, ``status`` and the report can follow it. A
line is the object ``{"event": KIND, "time": <UNIX time>, <fields>}`` with sorted keys;
``KIND`` names the event (defined once, on its class, and nowhere else), the fields are
the dataclass's, and a field whose value is None is left out of the line.

Compatibility rule: runs are read back after the code that wrote them has changed, so an
event's KIND and its fields are never removed or renamed and their meanings never change;
a new field is added only with a default (older lines still read), a new kind only as a
new class. A reader refuses a line it cannot read (an unknown kind, a missing, unknown or
mistyped field) with an error naming the file and the line, rather than guess; only the
last line of a file, when it has no newline yet, is skipped: it is still being written.

Three events carry a record of their own with their time added: :class:`RoundEnd` is a
:class:`coordinator.round_summary.RoundSummary`, :class:`NewtonStepped` a
:class:`coordinator.newton_fit.NewtonFigures` and :class:`EnterpriseDPStated` a
:class:`coordinator.secure_summary.EnterpriseFigures`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from common.codec import decode, encode
from common.errors import StateError
from coordinator.newton_fit import NewtonFigures
from coordinator.round_summary import RoundSummary
from coordinator.secure_summary import EnterpriseFigures

__all__ = [
    "ProgressError",
    "ProgressEvent",
    "COMPLETED",
    "RunStart",
    "RunResumed",
    "RunEnd",
    "NodesReady",
    "CheckpointSaved",
    "ModelNoiseWarning",
    "NewtonStepped",
    "EnterpriseDPStated",
    "EnterpriseBudgetStop",
    "EnterpriseEpsilon",
    "SecureSumDone",
    "RoundStart",
    "RoundEnd",
    "EVENT_TYPES",
    "event_line",
    "event_from_line",
]


class ProgressError(StateError):
    """A progress line that is not a known event with the fields of its kind."""


@dataclass(frozen=True, kw_only=True)
class ProgressEvent:
    """Base of the event types: ``KIND`` names the event; ``time`` is when it happened
    (UNIX seconds; by default when the event is made, just before it is written)."""

    KIND: ClassVar[str]
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class RunStart(ProgressEvent):
    """The run began (or began again, resuming): its plan, model rounds and nodes invited."""

    KIND: ClassVar[str] = "run_start"
    run_id: str
    plan_digest: str
    rounds: int
    expected_nodes: int


@dataclass(frozen=True)
class RunResumed(ProgressEvent):
    """The run continues after a crash from its checkpoint of ``checkpoint_round``; the
    first round it runs now is ``from_round``."""

    KIND: ClassVar[str] = "run_resumed"
    run_id: str
    from_round: int
    checkpoint_round: int


#: RunEnd's status of a run that finished with its outputs written.
COMPLETED = "completed"


@dataclass(frozen=True)
class RunEnd(ProgressEvent):
    """The run ended: ``status`` "completed", "failed" or "resume_refused" (nothing ran),
    ``error`` the failure's message (None on success), after ``seconds`` of wall time."""

    KIND: ClassVar[str] = "run_end"
    status: str
    seconds: float
    error: str | None = None

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED


@dataclass(frozen=True)
class NodesReady(ProgressEvent):
    """``nodes`` nodes were connected when the wait for them ended."""

    KIND: ClassVar[str] = "nodes_ready"
    nodes: int


@dataclass(frozen=True)
class CheckpointSaved(ProgressEvent):
    """Model round ``round`` is complete; its checkpoint has digest ``sha256``."""

    KIND: ClassVar[str] = "checkpoint"
    round: int
    sha256: str


@dataclass(frozen=True)
class ModelNoiseWarning(ProgressEvent):
    """Model round ``round``'s update was mostly noise; ``warning`` says so in words."""

    KIND: ClassVar[str] = "model_noise_warning"
    round: int
    warning: str


@dataclass(frozen=True)
class NewtonStepped(ProgressEvent, NewtonFigures):
    """A Newton step's size next to its noise (fields of :class:`NewtonFigures`)."""

    KIND: ClassVar[str] = "newton_step"

    @classmethod
    def of(cls, figures: NewtonFigures) -> NewtonStepped:
        return cls(**asdict(figures))


@dataclass(frozen=True)
class EnterpriseDPStated(ProgressEvent, EnterpriseFigures):
    """Enterprise-level DP's settings and expected noise, before the first model round."""

    KIND: ClassVar[str] = "enterprise_dp"

    @classmethod
    def of(cls, figures: EnterpriseFigures) -> EnterpriseDPStated:
        return cls(**asdict(figures))


@dataclass(frozen=True)
class EnterpriseBudgetStop(ProgressEvent):
    """Training stopped before round ``round``: from ``epsilon`` spent, it would have
    reached ``projected``, over the enterprise cap."""

    KIND: ClassVar[str] = "enterprise_budget_stop"
    round: int
    epsilon: float
    projected: float
    delta: float | None = None


@dataclass(frozen=True)
class EnterpriseEpsilon(ProgressEvent):
    """Enterprise-level epsilon spent after round ``round``, at the enterprise budget's
    ``delta``."""

    KIND: ClassVar[str] = "enterprise_epsilon"
    round: int
    epsilon: float
    delta: float | None = None


@dataclass(frozen=True)
class SecureSumDone(ProgressEvent):
    """Round ``round``'s secure sum of ``task`` holds ``survivors`` nodes' inputs;
    ``dropped`` nodes left after sharing keys."""

    KIND: ClassVar[str] = "secure_sum"
    round: int
    task: str
    survivors: int
    dropped: int


@dataclass(frozen=True)
class RoundStart(ProgressEvent):
    """Tasks of exchange ``task`` of round ``round`` went to ``nodes`` nodes."""

    KIND: ClassVar[str] = "round_start"
    round: int
    task: str
    nodes: int


@dataclass(frozen=True)
class RoundEnd(ProgressEvent, RoundSummary):
    """An exchange ended (its :class:`RoundSummary`). ``epsilon_run_max`` is the largest
    epsilon this run has cost a node so far, as the nodes' receipts state it, at the plan's
    delta ``delta_run`` (None before any receipt): the figure the round line, ``status``
    and the summary all show. ``epsilon_max`` is the largest lifetime epsilon a node has
    reported, at that node's cap delta ``delta_max`` (kept for older readers)."""

    KIND: ClassVar[str] = "round_end"
    epsilon_max: float
    delta_max: float | None = None
    epsilon_run_max: float | None = None
    delta_run: float | None = None

    @classmethod
    def of(
        cls,
        summary: RoundSummary,
        lifetime: tuple[float, float | None],
        run: tuple[float, float] | None,
    ) -> RoundEnd:
        """The event of ``summary`` with the largest (lifetime epsilon, its delta) and
        (this run's epsilon, the plan's delta) so far."""
        epsilon_run_max, delta_run = (None, None) if run is None else run
        return cls(
            **asdict(summary),
            epsilon_max=lifetime[0],
            delta_max=lifetime[1],
            epsilon_run_max=epsilon_run_max,
            delta_run=delta_run,
        )


#: Every event type by its KIND.
EVENT_TYPES: dict[str, type[ProgressEvent]] = {
    cls.KIND: cls
    for cls in (
        RunStart,
        RunResumed,
        RunEnd,
        NodesReady,
        CheckpointSaved,
        ModelNoiseWarning,
        NewtonStepped,
        EnterpriseDPStated,
        EnterpriseBudgetStop,
        EnterpriseEpsilon,
        SecureSumDone,
        RoundStart,
        RoundEnd,
    )
}


def event_line(event: ProgressEvent) -> str:
    """The event as its progress.jsonl line (no newline): sorted keys, None fields left out.

    >>> event_line(NodesReady(3, time=1.5))
    '{"event": "nodes_ready", "nodes": 3, "time": 1.5}'
    """
    return json.dumps({"event": event.KIND, **encode(event, omit_none=True)}, sort_keys=True)


def event_from_line(line: str, where: str) -> ProgressEvent:
    """The event in one progress.jsonl line; ProgressError names ``where`` and the problem.

    >>> event_from_line('{"event": "nodes_ready", "nodes": 3, "time": 1.5}', "line 1")
    NodesReady(time=1.5, nodes=3)
    """
    try:
        obj: Any = json.loads(line)
    except (ValueError, RecursionError) as err:
        raise ProgressError(f"{where} is not JSON: {err}") from None
    if not isinstance(obj, dict):
        raise ProgressError(f"{where} is not a JSON object")
    kind = obj.pop("event", None)
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        raise ProgressError(f"{where}: unknown event {kind!r}; known: {sorted(EVENT_TYPES)}")
    if "time" not in obj:
        raise ProgressError(f"{where} ({kind}) misses key(s) 'time'")
    return decode(EVENT_TYPES[kind], obj, f"{where} ({kind})", ProgressError)
