"""Round timing of one federated run, read from its progress events.

Model round 1 is reported apart: it pays for Ray start-up, worker imports and model set-up,
which would swamp a per-round figure; the per-round cost is the mean of rounds 2..R.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean

from coordinator.progress_events import ProgressEvent, RoundEnd
from coordinator.run_store import RunStore

__all__ = ["RoundTiming", "round_timing", "read_round_timing", "ratio"]


@dataclass(frozen=True)
class RoundTiming:
    """Wall seconds of a run's rounds at the coordinator (tasks sent -> last reply).

    ``first_model_round``: model round 1; ``later_model_rounds``: mean over model rounds
    2..R (None when R = 1), ``later_count`` of them; ``curve_round``: the curve release
    (None without one). None also when the run has no such round_end event.
    """

    first_model_round: float | None
    later_model_rounds: float | None
    later_count: int
    curve_round: float | None


def round_timing(events: Iterable[ProgressEvent]) -> RoundTiming:
    """Timing from progress.jsonl events (the RoundEnd events' round, task and seconds)."""
    model: dict[int, float] = {}
    curve: list[float] = []
    for event in events:
        if not isinstance(event, RoundEnd):
            continue
        if event.task == "model":
            model[event.round] = event.seconds
        elif event.task == "curve":
            curve.append(event.seconds)
    later = [seconds for number, seconds in model.items() if number > 1]
    return RoundTiming(
        first_model_round=model.get(1),
        later_model_rounds=fmean(later) if later else None,
        later_count=len(later),
        curve_round=curve[-1] if curve else None,
    )


def read_round_timing(run_dir: Path) -> RoundTiming:
    """:func:`round_timing` of the run in ``run_dir``."""
    return round_timing(RunStore(Path(run_dir)).read_events())


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is not > 0."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator
