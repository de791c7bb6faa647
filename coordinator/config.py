"""coordinator.yaml: federation settings plus the training plan the broker publishes."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import Field, model_validator

from common.config_file import StrictModel, load_yaml_model
from protocols.plan import TrainingPlan

__all__ = [
    "load_config_or_default",
    "FederationSettings",
    "CurveSettings",
    "EnterpriseBudget",
    "CoordinatorConfig",
    "load_coordinator_config",
]


class FederationSettings(StrictModel):
    """How rounds are run: how many replies a round needs, how long to wait."""

    min_nodes: int = Field(3, ge=1)
    round_timeout_s: float = Field(900.0, gt=0)
    reconstruction_threshold: int | None = Field(
        None,
        ge=2,
        description="secure aggregation: shares needed to unmask (default: a strict majority "
        "of num_shares, or of the nodes)",
    )
    num_shares: int | None = Field(
        None,
        ge=3,
        description="secure aggregation (SecAgg+, Bell et al. 2020): how many nodes, itself "
        "included, each node shares keys with and masks against, on a Harary graph "
        "relabelled at random every round; null or >= the round's nodes: every node "
        "(plan.secure_graph chooses it from a stated risk instead)",
    )

    @model_validator(mode="after")
    def _threshold_is_a_majority_of_num_shares(self) -> FederationSettings:
        k, t = self.num_shares, self.reconstruction_threshold
        if k is not None and t is not None and not k // 2 < t <= k:
            raise ValueError(
                f"reconstruction_threshold {t} must be in ({k // 2}, {k}] for num_shares {k} "
                "(a strict majority of each neighbourhood)"
            )
        return self


class CurveSettings(StrictModel):
    """Industry-curve estimation at the coordinator."""

    censor_weight: float = Field(
        0.5, ge=0, le=1, description="0.5 = actuarial life table; 0 = Kaplan-Meier on the grid"
    )
    min_enterprises: int = Field(3, ge=1, description="publish a segment only with this many")
    min_failures: float = Field(10.0, ge=0, description="... and this many (noisy) failures")
    min_units_per_enterprise: float = Field(
        20.0,
        ge=0,
        description="without secure aggregation: noised units an enterprise needs in a "
        "segment to count for it (with it, enterprises count for the segments they declare)",
    )


class EnterpriseBudget(StrictModel):
    """The coordinator's cap on enterprise-level privacy loss (DP-FedAvg) in one run."""

    epsilon_cap: float = Field(gt=0)
    delta: float = Field(1e-5, gt=0, lt=1)


class CoordinatorConfig(StrictModel):
    """The whole of coordinator.yaml."""

    federation: FederationSettings = FederationSettings()
    curves: CurveSettings = CurveSettings()
    enterprise_budget: EnterpriseBudget | None = None
    plan: TrainingPlan

    @model_validator(mode="after")
    def _enterprise_dp_needs_a_cap(self) -> CoordinatorConfig:
        if self.plan.privacy.enterprise is not None and self.enterprise_budget is None:
            raise ValueError(
                "plan.privacy.enterprise is set but enterprise_budget (epsilon_cap, delta) "
                "is not: enterprise-level DP needs a cap"
            )
        return self

    @model_validator(mode="after")
    def _one_source_of_the_secure_graph(self) -> CoordinatorConfig:
        federation = self.federation
        explicit = federation.num_shares is not None or federation.reconstruction_threshold
        if self.plan.secure_graph is not None and explicit:
            raise ValueError(
                "plan.secure_graph chooses each round's num_shares and threshold: leave "
                "federation.num_shares and federation.reconstruction_threshold unset"
            )
        return self


def load_coordinator_config(path: Path) -> CoordinatorConfig:
    """Load coordinator.yaml strictly (unknown keys are errors naming key and file)."""
    return load_yaml_model(CoordinatorConfig, path)


def load_config_or_default(path: Path | None) -> CoordinatorConfig:
    """coordinator.yaml from ``path``, or the packaged default (configs/coordinator.yaml)."""
    if path is not None:
        return load_coordinator_config(path)
    default = resources.files("coordinator.templates").joinpath("coordinator.yaml")
    with resources.as_file(default) as file:
        return load_coordinator_config(file)
