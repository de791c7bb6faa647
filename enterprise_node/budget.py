"""The node's own privacy budget guard: a persistent accountant and a lifetime cap.

Every record-level release (DP-SGD steps, histogram releases) is composed in ONE
Opacus RDP accountant whose history lives on disk (``state/accountant.json``), across
rounds and runs. Before a task the guard projects the spend with the task's mechanism
added and refuses when it would pass the cap from node.yaml. The spend is written
(atomically, fsynced) BEFORE anything is released: a crash can only over-count.

File format (version 1), compatibility rule: keys are never removed or re-meant::

    {"version": 1, "accountant": "rdp", "epsilon_cap": ..., "delta": ...,
     "entries": [{"noise_multiplier", "sample_rate", "steps", "mechanism",
                  "run_id", "round", "purpose", "epsilon_after"}, ...]}
"""

from __future__ import annotations

import fcntl
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from common.atomic import atomic_write_json
from common.errors import BudgetExceededError, StateError
from privacy.accounting import Spend, rdp_epsilon
from privacy.epsilon_wording import epsilon_number

__all__ = ["BudgetStatus", "BudgetGuard"]

_VERSION = 1


@dataclass(frozen=True)
class BudgetStatus:
    """Spent and remaining record-level epsilon at the cap's delta."""

    epsilon_spent: float
    epsilon_cap: float
    delta: float
    releases: int

    @property
    def epsilon_remaining(self) -> float:
        return max(0.0, self.epsilon_cap - self.epsilon_spent)


class BudgetGuard:
    """Persistent record-level accountant of one node, with its lifetime cap."""

    def __init__(self, state_dir: Path, *, epsilon_cap: float, delta: float) -> None:
        self.path = Path(state_dir) / "accountant.json"
        self.epsilon_cap = epsilon_cap
        self.delta = delta

    # ---- reading -------------------------------------------------------------------
    def spends(self) -> list[Spend]:
        """All releases recorded so far (empty for a new node)."""
        try:
            return [Spend(**_pick_spend_fields(e)) for e in self._raw_entries()]
        except TypeError as err:
            raise StateError(f"{self.path}: malformed accountant entry: {err}") from None

    def _raw_entries(self) -> list[dict]:
        if not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise StateError(f"{self.path}: accountant state unreadable: {err}") from None
        if (
            not isinstance(data, dict)
            or data.get("version") != _VERSION
            or not isinstance(data.get("entries"), list)
        ):
            raise StateError(f"{self.path}: unknown accountant state format")
        return list(data["entries"])

    def status(self) -> BudgetStatus:
        spends = self.spends()
        return BudgetStatus(
            epsilon_spent=rdp_epsilon(spends, self.delta),
            epsilon_cap=self.epsilon_cap,
            delta=self.delta,
            releases=len(spends),
        )

    def has_spend(self, run_id: str, round_number: int, purpose: str) -> bool:
        """Whether a release of ``purpose`` in round ``round_number`` of run ``run_id``
        was charged already."""
        return any(
            (s.run_id, s.round, s.purpose) == (run_id, round_number, purpose) for s in self.spends()
        )

    def projected_epsilon(self, planned: list[Spend]) -> float:
        """Lifetime epsilon if ``planned`` were released on top of what was spent."""
        return rdp_epsilon(self.spends() + planned, self.delta)

    # ---- spending ------------------------------------------------------------------
    def check(self, planned: list[Spend]) -> float:
        """Raise BudgetExceededError if ``planned`` would pass the cap; else the projection."""
        projected = self.projected_epsilon(planned)
        if not math.isfinite(projected) or projected > self.epsilon_cap:
            spent = self.status().epsilon_spent
            raise BudgetExceededError(
                f"task refused: it would raise this node's record-level lifetime epsilon "
                f"from {epsilon_number(spent)} to {epsilon_number(projected)}, above its cap "
                f"of {self.epsilon_cap:g} at delta {self.delta:g}"
            )
        return projected

    def charge(self, planned: list[Spend]) -> float:
        """Check and durably record ``planned``; returns lifetime epsilon after it.

        Called BEFORE the result is released, under an exclusive file lock so that two
        tasks of one node cannot both pass the check.
        """
        with self._locked():
            projected = self.check(planned)
            entries = self._raw_entries() + [
                asdict(s) | {"epsilon_after": projected} for s in planned
            ]
            atomic_write_json(
                self.path,
                {
                    "version": _VERSION,
                    "accountant": "rdp",
                    "epsilon_cap": self.epsilon_cap,
                    "delta": self.delta,
                    "entries": entries,
                },
                mode=0o600,
            )
        return projected

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_suffix(".lock")
        with open(lock_path, "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _pick_spend_fields(entry: dict) -> dict:
    names = {"noise_multiplier", "sample_rate", "steps", "mechanism", "run_id", "round", "purpose"}
    return {k: v for k, v in entry.items() if k in names}
