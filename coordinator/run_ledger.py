"""The ledger a run records to: the coordinator's signed ledger, or a null one.

A run request without a ledger gets :class:`NullLedger`, which has the same interface as
:class:`coordinator.coordinator_ledger.CoordinatorLedger` and records nothing; the run's
code then never asks whether it has a ledger. Its history (for resumption) is in the
run's progress events instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from coordinator.coordinator_ledger import CoordinatorLedger
from coordinator.resumption import RunHistory
from coordinator.rounds import RoundOutcome
from coordinator.run_request import RunRequest
from coordinator.run_store import RunStore
from protocols.secure_update import EnterpriseShare

__all__ = ["RunLedger", "NullLedger", "open_run_ledger"]


class RunLedger(Protocol):
    """What a run records: its lifecycle, rounds, secure sums, enterprise spends, outputs."""

    def run_started(self, request: RunRequest) -> None: ...
    def history(self, run_id: str) -> RunHistory: ...
    def run_resumed(
        self, request: RunRequest, from_round: int, checkpoint: tuple[int, str]
    ) -> None: ...
    def checkpoint_written(self, round_number: int, sha256: str) -> None: ...
    def round(self, outcome: RoundOutcome) -> None: ...
    def secure_sum(
        self, round_number: int, task: str, survivors: list[str], dropped: list[str]
    ) -> None: ...
    def enterprise_round(
        self,
        round_number: int,
        share: EnterpriseShare,
        *,
        noise_multiplier: float,
        clip_norm: float,
        shares: int,
        epsilon_round: float,
        epsilon_total: float,
        cap: float,
        delta: float,
    ) -> None: ...
    def outputs(
        self, model_path: Path, curves_path: Path | None, published: list[str], withheld: list[str]
    ) -> None: ...
    def run_ended(self, status: str, error: str | None) -> None: ...


def open_run_ledger(request: RunRequest, store: RunStore) -> RunLedger:
    """The ledger the run request names, else a null ledger over the run's events."""
    return CoordinatorLedger.open(request) or NullLedger(store)


class NullLedger:
    """A run kept without a ledger: records nothing; its history is its progress events."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    def run_started(self, request: RunRequest) -> None:
        """Nothing to record."""

    def history(self, run_id: str) -> RunHistory:
        """The run's history in its progress events (nothing was recorded elsewhere)."""
        return RunHistory.from_events(self.store.read_events(), run_id)

    def run_resumed(
        self, request: RunRequest, from_round: int, checkpoint: tuple[int, str]
    ) -> None:
        """Nothing to record."""

    def checkpoint_written(self, round_number: int, sha256: str) -> None:
        """Nothing to record."""

    def round(self, outcome: RoundOutcome) -> None:
        """Nothing to record."""

    def secure_sum(
        self, round_number: int, task: str, survivors: list[str], dropped: list[str]
    ) -> None:
        """Nothing to record."""

    def enterprise_round(
        self,
        round_number: int,
        share: EnterpriseShare,
        *,
        noise_multiplier: float,
        clip_norm: float,
        shares: int,
        epsilon_round: float,
        epsilon_total: float,
        cap: float,
        delta: float,
    ) -> None:
        """Nothing to record."""

    def outputs(
        self, model_path: Path, curves_path: Path | None, published: list[str], withheld: list[str]
    ) -> None:
        """Nothing to record."""

    def run_ended(self, status: str, error: str | None) -> None:
        """Nothing to record."""
