"""What every kind of round works with, once the run's nodes are known."""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.config import CoordinatorConfig
from coordinator.exchanges import Exchanges
from coordinator.run_log import RunLog
from coordinator.secure_sums import SecureSums
from protocols.plan import TrainingPlan

__all__ = ["RoundContext"]


@dataclass(frozen=True)
class RoundContext:
    """The run's nodes, its Flower exchanges and secure sums, and its record."""

    node_ids: list[int]
    exchanges: Exchanges
    sums: SecureSums

    @property
    def log(self) -> RunLog:
        return self.exchanges.log

    @property
    def config(self) -> CoordinatorConfig:
        return self.exchanges.request.config

    @property
    def plan(self) -> TrainingPlan:
        return self.exchanges.request.config.plan
