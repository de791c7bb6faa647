"""The training plan: everything a node is asked to run, hashed so it can be approved.

A plan is the model spec, the training settings and the privacy settings. The
coordinator sends it (as canonical JSON) with every task; a node checks its digest.

Compatibility rule: fields are never removed and their meaning never changes, because
approvals and ledgers name plans by digest. Add fields with defaults only.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Literal

from pydantic import Field, model_validator

from common.config_file import StrictModel, parse_model
from common.errors import ConfigError
from models.spec import ModelSpec, TrainingSettings

__all__ = [
    "RecordPrivacy",
    "EnterprisePrivacy",
    "PrivacySettings",
    "SecureUpdateSettings",
    "SecureGraph",
    "NewtonSettings",
    "TrainingPlan",
    "model_spec_in",
]


class RecordPrivacy(StrictModel):
    """Record-level DP (privacy unit = one equipment unit), spent at each node per run.

    ``epsilon``/``delta`` is the most one run may cost a node. The curve release is
    calibrated alone to ``curve_share`` x epsilon; DP-SGD's noise is then the smallest that
    keeps the RDP composition of all rounds plus the curve release within epsilon.
    """

    enabled: bool = True
    epsilon: float = Field(2.0, gt=0)
    delta: float = Field(1e-6, gt=0, lt=1)
    curve_share: float = Field(0.5, gt=0, lt=1)
    max_grad_norm: float = Field(2.0, gt=0)

    @property
    def curve_epsilon(self) -> float:
        return self.epsilon * self.curve_share

    @property
    def model_epsilon(self) -> float:
        return self.epsilon * (1.0 - self.curve_share)


class EnterprisePrivacy(StrictModel):
    """Enterprise-level DP-FedAvg (privacy unit = one enterprise's whole contribution).

    Each node clips its model update to L2 norm ``clip_norm`` and adds its share of
    discrete Gaussian noise inside the secure sum; the shares of ``threshold`` nodes
    (the fewest a round can release) together carry noise std of at least
    ``noise_multiplier`` x the clipped update's sensitivity. The coordinator's accountant
    composes rounds and stops before its cap (coordinator.yaml ``enterprise_budget``).
    """

    clip_norm: float = Field(1.0, gt=0)
    noise_multiplier: float = Field(1.0, gt=0)


class PrivacySettings(StrictModel):
    """Privacy settings of a plan, by privacy unit (enterprise-level DP is optional)."""

    record: RecordPrivacy = RecordPrivacy()
    enterprise: EnterprisePrivacy | None = None


class SecureUpdateSettings(StrictModel):
    """How model updates are encoded for secure aggregation: fixed point at scale
    2^``scale_bits``; a coordinate (with noise) beyond +-``update_bound`` is an error at
    the node, never a clip or a wrap."""

    update_bound: float = Field(64.0, gt=0)
    scale_bits: int = Field(20, ge=8, le=40)

    @property
    def scale(self) -> float:
        return float(2**self.scale_bits)

    @property
    def integer_bound(self) -> int:
        return int(math.ceil(self.update_bound * self.scale))


class NewtonSettings(StrictModel):
    """The secure-sum Newton fit (``training.method: newton``), see ``models/glm.py``.

    Each unit's gradient is clipped to L2 norm ``gradient_clip`` x z_max and its information
    matrix to Frobenius norm ``hessian_clip`` x z_max^2, where z_max is the largest norm one
    cell's design vector can have under the spec's public bounds
    (:func:`models.glm.design_norm_bound`): bounds relative to the spec, so the defaults
    suit any feature list. ``ridge`` is the penalty ridge/2 ||theta||^2 (a public prior
    that also keeps a noisy step bounded). The released sums are rounded to multiples of
    2^-``scale_bits`` (in units of the clip bounds) for secure aggregation.

    Every round releases the summed gradient; only ``information_rounds`` (1-based, the
    first among them) also release the information matrix, and the rounds between reuse
    the last one: curvature needs little precision, so spending the budget on it once
    or twice and on the gradient every round converges faster than a noisy matrix each
    round. ``information_weight`` w gives the matrix w times the gradient's share of the
    release's budget (its noise std is 1/sqrt(w) of the gradient's). Before a step the
    noisy matrix's eigenvalues are raised to ``eigen_floor`` x its noise's spectral edge
    2 s sqrt(p) (:func:`models.glm.noise_floor`): 1 keeps every step out of the noise but
    slows convergence; lower converges faster, noisier. The floor damps the steps where
    the data's curvature is below it; heavy-ball ``momentum`` (theta_{k+1} = theta_k +
    step_k + momentum (theta_k - theta_{k-1})) wins back that speed, a post-processing
    that costs no budget. Without record-level DP there is nothing to save or to floor:
    every round releases the matrix and the steps are plain Newton steps
    (:meth:`TrainingPlan.releases_information`, :attr:`TrainingPlan.newton_momentum`).
    """

    gradient_clip: float = Field(0.5, gt=0)
    hessian_clip: float = Field(0.25, gt=0)
    ridge: float = Field(0.3, ge=0)
    scale_bits: int = Field(16, ge=8, le=30)
    eigen_floor: float = Field(0.5, ge=0)
    information_rounds: tuple[int, ...] = (1,)
    information_weight: int = Field(4, ge=1, le=64)
    momentum: float = Field(0.5, ge=0, lt=1)

    @model_validator(mode="after")
    def _information_first(self) -> NewtonSettings:
        rounds = self.information_rounds
        if not rounds or rounds[0] != 1 or list(rounds) != sorted(set(rounds)):
            raise ValueError(
                "newton.information_rounds must be increasing round numbers starting at 1 "
                f"(the first step needs curvature), got {list(rounds)}"
            )
        return self

    @property
    def scale(self) -> float:
        return float(2**self.scale_bits)


class SecureGraph(StrictModel):
    """SecAgg+ chosen from what the nodes accept to risk: at most ``corrupt_fraction`` of
    the nodes colluding with the coordinator, ``dropout_fraction`` dropping out of a
    round, and a round failing (privacy or reliability) with probability at most
    ``failure_probability``; each round's neighbourhood size k and threshold t follow for
    its n nodes (:mod:`secagg.parameters`)."""

    corrupt_fraction: float = Field(0.05, ge=0, lt=0.5)
    dropout_fraction: float = Field(0.1, ge=0, lt=0.5)
    failure_probability: float = Field(2**-30, gt=0, lt=1)


class TrainingPlan(StrictModel):
    """What a node runs: spec + training + privacy. Named by :attr:`digest`."""

    model_spec: ModelSpec
    training: TrainingSettings = TrainingSettings()
    privacy: PrivacySettings = PrivacySettings()
    curve_release: bool = True
    #: Model updates and curve histograms go through secure aggregation (the coordinator
    #: sees only sums), and record-level curve noise is added as per-node shares.
    secure_aggregation: bool = True
    secure_update: SecureUpdateSettings = SecureUpdateSettings()
    #: Curve histograms carry entry counts (left truncation, ``entry_age``). Needed when
    #: any node's data has delayed entry; every node then sends entries (sensitivity
    #: sqrt(2)).
    delayed_entry: bool = False
    newton: NewtonSettings = NewtonSettings()
    #: The integer noise nodes add as shares of a secure sum's curve noise: ``skellam``
    #: (shares sum to exactly one Skellam release, so the total noise is what the budget
    #: asks at any number of nodes; :mod:`privacy.skellam`) or ``discrete_gaussian``
    #: (each share has sigma >= 2, so the total is at least 2 sqrt(n) counts per cell;
    #: :mod:`privacy.distributed_noise`).
    share_noise: Literal["skellam", "discrete_gaussian"] = "skellam"
    #: The fewest inputs a released secure sum may hold, as a fraction f of the round's
    #: nodes: every node plans its noise share for max(t, ceil(f n)) shares and the
    #: coordinator releases nothing with fewer survivors (the auditor checks it did not).
    #: None: the secure sum's threshold t, the fewest any releasable sum holds. A larger
    #: f means less noise per share (the total nears the central release as f nears 1)
    #: and fewer dropouts tolerated; :func:`protocols.secure_round.noise_shares`.
    release_fraction: float | None = Field(None, gt=0, le=1)
    #: SecAgg+ from a stated risk (:class:`SecureGraph`): every round's k and t are
    #: computed from it, the nodes refuse a round whose k or t differ. None: the
    #: coordinator's ``federation.num_shares`` and ``reconstruction_threshold``.
    secure_graph: SecureGraph | None = None

    @model_validator(mode="after")
    def _newton_fits_a_glm_in_secure_sums(self) -> TrainingPlan:
        if self.training.method != "newton":
            return self
        problems = []
        if self.model_spec.hidden_units:
            problems.append("model_spec.hidden_units: [] (the GLM hazard model)")
        if not self.secure_aggregation:
            problems.append("secure_aggregation: true (its noise is added once, in the sum)")
        if self.privacy.enterprise is not None:
            problems.append("no privacy.enterprise (enterprise-level DP clips DP-SGD updates)")
        late = [r for r in self.newton.information_rounds if r > self.training.rounds]
        if late:
            problems.append(
                f"newton.information_rounds within training.rounds ({self.training.rounds}), "
                f"not {late}"
            )
        if problems:
            raise ValueError(
                "training.method newton needs " + "; ".join(problems) + "; or use dp_sgd"
            )
        return self

    @model_validator(mode="after")
    def _enterprise_dp_needs_secure_sums(self) -> TrainingPlan:
        if self.privacy.enterprise is not None and not self.secure_aggregation:
            raise ValueError(
                "privacy.enterprise needs secure_aggregation: true (enterprise-level noise "
                "is added as shares inside the secure sum)"
            )
        return self

    def releases_information(self, round_number: int) -> bool:
        """Whether Newton round ``round_number`` releases the information matrix: in the
        plan's information rounds under record-level DP, in every round without it."""
        if not self.privacy.record.enabled:
            return True
        return round_number in self.newton.information_rounds

    @property
    def newton_momentum(self) -> float:
        """The Newton steps' momentum: the plan's under record-level DP, 0 without (exact
        Newton steps need none)."""
        return self.newton.momentum if self.privacy.record.enabled else 0.0

    def canonical_json(self) -> str:
        """Deterministic JSON form (sorted keys, no spaces) that the digest covers."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

    @classmethod
    def from_json(cls, text: str, source: str = "plan") -> TrainingPlan:
        return parse_model(cls, json.loads(text), source)


def model_spec_in(data: dict, source: str) -> ModelSpec:
    """The model spec of a document read from ``source``: a coordinator.yaml
    (``plan.model_spec``), a plan (``model_spec``) or a bare spec (``time_grid`` at the top);
    ConfigError naming ``source`` and the key otherwise."""
    if isinstance(data.get("plan"), dict) and "model_spec" in data["plan"]:
        return parse_model(ModelSpec, data["plan"]["model_spec"], f"{source}: plan.model_spec")
    if "model_spec" in data:
        return parse_model(ModelSpec, data["model_spec"], f"{source}: model_spec")
    if "time_grid" in data:
        return parse_model(ModelSpec, data, source)
    raise ConfigError(
        f"{source}: no model spec found; expected plan.model_spec (coordinator.yaml), "
        "model_spec, or a spec with time_grid at the top level"
    )
