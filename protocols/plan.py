"""The training plan: everything a node is asked to run, hashed so it can be approved.

A plan is the model spec, the training settings and the privacy settings. The
coordinator sends it (as canonical JSON) with every task; a node checks its digest.

Compatibility rule: fields are never removed and their meaning never changes, because
approvals and ledgers name plans by digest. Add fields with defaults only.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import Field

from protocols.config_file import StrictModel, parse_model
from protocols.model_spec import ModelSpec

__all__ = ["TrainingSettings", "RecordPrivacy", "PrivacySettings", "TrainingPlan"]


class TrainingSettings(StrictModel):
    """Federated training of the hazard model: rounds of local DP-SGD, combined by FedAvgM
    (FedAvg with server momentum, Hsu et al. 2019; momentum 0 is plain FedAvg)."""

    rounds: int = Field(5, ge=1, le=1000)
    local_epochs: float = Field(1.0, gt=0, le=100)
    batch_size: int = Field(128, ge=1)
    learning_rate: float = Field(0.01, gt=0)
    optimizer: Literal["sgd", "adam"] = "adam"
    server_learning_rate: float = Field(1.0, gt=0)
    server_momentum: float = Field(0.5, ge=0, lt=1)
    seed: int = 0


class RecordPrivacy(StrictModel):
    """Record-level DP (privacy unit = one equipment unit), spent at each node per run.

    ``epsilon``/``delta`` is the most one run may cost a node. The curve release is
    calibrated alone to ``curve_share`` x epsilon; DP-SGD's noise is then the smallest that
    keeps the RDP composition of all rounds plus the curve release within epsilon.
    """

    enabled: bool = True
    epsilon: float = Field(2.0, gt=0)
    delta: float = Field(1e-6, gt=0, lt=1)
    curve_share: float = Field(0.3, gt=0, lt=1)
    max_grad_norm: float = Field(1.0, gt=0)

    @property
    def curve_epsilon(self) -> float:
        return self.epsilon * self.curve_share

    @property
    def model_epsilon(self) -> float:
        return self.epsilon * (1.0 - self.curve_share)


class PrivacySettings(StrictModel):
    """Privacy settings of a plan, by privacy unit."""

    record: RecordPrivacy = RecordPrivacy()


class TrainingPlan(StrictModel):
    """What a node runs: spec + training + privacy. Named by :attr:`digest`."""

    model_spec: ModelSpec
    training: TrainingSettings = TrainingSettings()
    privacy: PrivacySettings = PrivacySettings()
    curve_release: bool = True
    #: Curve histograms go through secure aggregation: the coordinator sees only sums.
    secure_aggregation: bool = False

    def canonical_json(self) -> str:
        """Deterministic JSON form (sorted keys, no spaces) that the digest covers."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

    @classmethod
    def from_json(cls, text: str, source: str = "plan") -> TrainingPlan:
        return parse_model(cls, json.loads(text), source)
