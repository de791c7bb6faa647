"""One exchange of a run as summary.json and the checkpoint record it.

A live round (a :class:`coordinator.rounds.RoundOutcome`) and a round restored from a
resumed run's checkpoint take the same typed shape, :class:`RoundSummary`; its JSON form
(read back with :func:`common.codec.decode`) is the ``rounds`` entry of summary.json:
``round``, ``task``, ``ok`` (node names), ``refused`` and ``failed`` ({"node",
"reason"}), ``seconds``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from coordinator.rounds import NodeProblem, RoundOutcome

__all__ = ["NodeNote", "RoundSummary", "reasons"]


@dataclass(frozen=True)
class NodeNote:
    """A node that refused or failed, by name (Flower's id when it never said), and why."""

    node: str
    reason: str

    @classmethod
    def of(cls, problem: NodeProblem) -> NodeNote:
        return cls(problem.node_name or str(problem.node_id), problem.reason)

    def to_json(self) -> dict[str, str]:
        return {"node": self.node, "reason": self.reason}


@dataclass(frozen=True)
class RoundSummary:
    """Who answered one exchange and how: the nodes used, refusals, failures, duration."""

    round: int
    task: str
    ok: tuple[str, ...]
    refused: tuple[NodeNote, ...]
    failed: tuple[NodeNote, ...]
    seconds: float

    @classmethod
    def from_outcome(cls, outcome: RoundOutcome) -> RoundSummary:
        """A live round's summary (seconds to the millisecond, as summary.json has them)."""
        return cls(
            round=outcome.round,
            task=outcome.task,
            ok=tuple(r.node_name or str(r.node_id) for r in outcome.ok),
            refused=tuple(NodeNote.of(p) for p in outcome.refused),
            failed=tuple(NodeNote.of(p) for p in outcome.failed),
            seconds=round(outcome.seconds, 3),
        )

    @property
    def problems(self) -> tuple[NodeNote, ...]:
        """Refusals and failures together."""
        return (*self.refused, *self.failed)

    def to_json(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "task": self.task,
            "ok": list(self.ok),
            "refused": [p.to_json() for p in self.refused],
            "failed": [p.to_json() for p in self.failed],
            "seconds": self.seconds,
        }


def reasons(problems: Iterable[NodeNote]) -> str:
    """Refusal and failure reasons, each with the nodes that gave it (for run errors)."""
    by_reason: dict[str, list[str]] = {}
    for p in problems:
        by_reason.setdefault(p.reason, []).append(p.node)
    text = "; ".join(
        f"{reason} ({len(nodes)} node(s): {', '.join(sorted(nodes))})"
        for reason, nodes in by_reason.items()
    )
    return text or "none"
