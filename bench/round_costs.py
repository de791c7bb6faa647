"""What a run's rounds cost: seconds from its progress events, bytes from its nodes'
outboxes, and ratios over the plain run of the same benchmark.

A round's seconds run from its first stage's RoundStart to its SecureSumDone (secure
runs: keys when set up, shares, masked input, unmask, then the unmasking) or its
RoundEnd (plain runs: one exchange). Model round 1 pays for Ray start-up, so the
model-round figure is the mean of rounds 2..R.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from bench.timing import ratio
from coordinator.progress_events import ProgressEvent, RoundEnd, RoundStart, SecureSumDone

#: The events that mark a round's stages.
RoundEvent = RoundStart | RoundEnd | SecureSumDone

__all__ = [
    "RoundSeconds",
    "VariantFigures",
    "bytes_per_node_round",
    "mean_bytes_per_node",
    "ratios_over_plain",
    "round_bytes_by_purpose",
    "round_exchange_seconds",
    "round_seconds",
    "round_wall_seconds",
    "stage_seconds",
]



@dataclass(frozen=True)
class RoundSeconds:
    """A run's round seconds at the coordinator.

    Wall seconds (``model_round``, ``curve_round``, ``first_model_round``): first stage
    sent -> sum known (see :func:`round_wall_seconds`). Exchange seconds: the sum of the
    round's stages' ``round_end`` seconds (tasks sent -> last reply), i.e. wall minus the
    coordinator's own work between and after the stages. Model figures are means over
    rounds 2..R, ``model_rounds_counted`` of them; None when a round is missing.
    """

    first_model_round: float | None
    model_round: float | None
    model_round_exchange: float | None
    model_rounds_counted: int
    curve_round: float | None
    curve_round_exchange: float | None


@dataclass(frozen=True)
class VariantFigures:
    """One run's round seconds and the mean bytes a node sent per round, by purpose."""

    seconds: RoundSeconds
    model_round_bytes: dict[str, float]
    curve_round_bytes: dict[str, float]
    run_seconds: float | None


def _times(
    events: Iterable[ProgressEvent], kind: type[RoundEvent], round_number: int
) -> list[float]:
    """When each event of type ``kind`` of round ``round_number`` happened."""
    return [e.time for e in events if isinstance(e, kind) and e.round == round_number]


def round_wall_seconds(events: Sequence[ProgressEvent], round_number: int) -> float | None:
    """Wall seconds of round ``round_number``: its first RoundStart to its SecureSumDone
    when it has one (so the coordinator's unmasking counts), else to its last RoundEnd.
    None: no such round."""
    starts = _times(events, RoundStart, round_number)
    ends = _times(events, SecureSumDone, round_number) or _times(events, RoundEnd, round_number)
    if not starts or not ends:
        return None
    return max(ends) - min(starts)


def round_exchange_seconds(events: Iterable[ProgressEvent], round_number: int) -> float | None:
    """Sum of round ``round_number``'s RoundEnd seconds, its Flower exchanges (None: none)."""
    seconds = [e.seconds for e in events if isinstance(e, RoundEnd) and e.round == round_number]
    return sum(seconds) if seconds else None


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return fmean(present) if present else None


def round_seconds(events: Sequence[ProgressEvent], model_rounds: int) -> RoundSeconds:
    """The run's round seconds; its curve round is number ``model_rounds + 1``."""
    later = range(2, model_rounds + 1)
    walls = [round_wall_seconds(events, n) for n in later]
    curve = model_rounds + 1
    return RoundSeconds(
        first_model_round=round_wall_seconds(events, 1),
        model_round=_mean(walls),
        model_round_exchange=_mean(round_exchange_seconds(events, n) for n in later),
        model_rounds_counted=sum(w is not None for w in walls),
        curve_round=round_wall_seconds(events, curve),
        curve_round_exchange=round_exchange_seconds(events, curve),
    )


def stage_seconds(events: Sequence[ProgressEvent], rounds: Sequence[int]) -> dict[str, float]:
    """Mean exchange seconds of each stage (task) over ``rounds`` (a stage absent from a
    round counts 0 there)."""
    ends = [e for e in events if isinstance(e, RoundEnd) and e.round in rounds]

    def total(number: int, stage: str) -> float:
        return sum(e.seconds for e in ends if (e.round, e.task) == (number, stage))

    return {
        stage: fmean(total(r, stage) for r in rounds) for stage in sorted({e.task for e in ends})
    }


def round_bytes_by_purpose(
    entries: Iterable[Mapping[str, Any]], round_number: int
) -> dict[str, int]:
    """Bytes one node sent in round ``round_number`` (its ok outbox rows), by purpose, plus
    total; a secure round's stages are all numbered as the round."""
    by_purpose: dict[str, int] = {}
    for entry in entries:
        if entry.get("round") == round_number and entry.get("status") == "ok":
            purpose = str(entry["purpose"])
            by_purpose[purpose] = by_purpose.get(purpose, 0) + int(entry["bytes"])
    by_purpose["total"] = sum(by_purpose.values())
    return by_purpose


def mean_bytes_per_node(per_node: Sequence[Mapping[str, int]]) -> dict[str, float]:
    """Mean over nodes of each purpose's bytes (a node without a purpose counts 0)."""
    if not per_node:
        return {}
    keys = sorted({k for node in per_node for k in node})
    return {k: fmean(node.get(k, 0) for node in per_node) for k in keys}


def bytes_per_node_round(
    outboxes: Sequence[Sequence[Mapping[str, Any]]], rounds: Iterable[int]
) -> dict[str, float]:
    """Mean bytes one node sent in one of ``rounds``, by purpose: over nodes and rounds."""
    numbers = list(rounds)
    return mean_bytes_per_node(
        [round_bytes_by_purpose(rows, n) for rows in outboxes for n in numbers]
    )


def ratios_over_plain(values: Mapping[str, float | None]) -> dict[str, float | None]:
    """Each non-plain variant's value divided by the plain one's (None when missing)."""
    plain = values.get("plain")
    return {label: ratio(v, plain) for label, v in values.items() if label != "plain"}
