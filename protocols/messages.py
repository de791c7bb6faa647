"""Message contents exchanged between the coordinator and nodes over Flower.

A task message carries a :class:`TaskHeader` (ConfigRecord "task"), the plan as
canonical JSON, and for model tasks the global model (ArrayRecord "arrays"). Every
reply carries a :class:`ReplyStatus` and, when anything was released, a
:class:`PrivacyReceipt` naming the mechanism and its parameters.

Compatibility rule: keys are never removed and their meaning never changes; add new
keys with defaults, because ledgers and auditors replay old messages.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, Literal

from flwr.app import ConfigRecord

__all__ = [
    "TASK_KEY",
    "STATUS_KEY",
    "PRIVACY_KEY",
    "ARRAYS_KEY",
    "METRICS_KEY",
    "CURVE_ACTION",
    "PREFLIGHT_ACTION",
    "PREFLIGHT_TASK",
    "SECAGG_KEYS_ACTION",
    "SECAGG_SHARES_ACTION",
    "SECAGG_UNMASK_ACTION",
    "MODEL_TASK",
    "CURVE_TASK",
    "SECAGG_KEYS",
    "SECAGG_SHARES",
    "SECAGG_UNMASK",
    "TaskHeader",
    "ReplyStatus",
    "PrivacyReceipt",
]

TASK_KEY = "task"
STATUS_KEY = "status"
PRIVACY_KEY = "privacy"
ARRAYS_KEY = "arrays"
METRICS_KEY = "metrics"

#: The node's query actions (``@app.query(action)`` in the ClientApp); the coordinator
#: sends them as the message types below ("query.<action>"). One definition for both
#: sides: a rename here renames both.
CURVE_ACTION = "curve"
#: Before a run charges anyone: can this node serve the whole run? (status only)
PREFLIGHT_ACTION = "preflight"
SECAGG_KEYS_ACTION = "sa_keys"
SECAGG_SHARES_ACTION = "sa_shares"
SECAGG_UNMASK_ACTION = "sa_unmask"

#: Flower message types (``ClientApp`` routes on them): the model task, and a query each.
MODEL_TASK = "train"
CURVE_TASK = f"query.{CURVE_ACTION}"
PREFLIGHT_TASK = f"query.{PREFLIGHT_ACTION}"
SECAGG_KEYS = f"query.{SECAGG_KEYS_ACTION}"
SECAGG_SHARES = f"query.{SECAGG_SHARES_ACTION}"
SECAGG_UNMASK = f"query.{SECAGG_UNMASK_ACTION}"

TaskKind = Literal["model", "curve"]
StatusKind = Literal["ok", "refused", "error"]


def _to_record(obj: Any) -> ConfigRecord:
    return ConfigRecord({k: v for k, v in asdict(obj).items() if v is not None})


def _from_record(cls: type, record: ConfigRecord) -> Any:
    names = {f.name for f in fields(cls)}
    required = {
        f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
    }
    data = {k: v for k, v in dict(record).items() if k in names}
    missing = sorted(required - set(data))
    if missing:
        raise ValueError(f"{cls.__name__}: missing key(s) {missing} in message")
    return cls(**data)


@dataclass(frozen=True)
class TaskHeader:
    """What the coordinator asks for: which run, round and task, under which plan."""

    run_id: str
    round: int
    kind: str
    plan_json: str
    plan_digest: str

    def to_record(self) -> ConfigRecord:
        return _to_record(self)

    @classmethod
    def from_record(cls, record: ConfigRecord) -> TaskHeader:
        return _from_record(cls, record)


@dataclass(frozen=True)
class ReplyStatus:
    """Outcome at the node: ``ok``, ``refused`` (a policy said no; ``reason`` says why),
    or ``error`` (the node failed; ``reason`` is a sanitised message, never raw data).
    ``node_key`` is the node's pseudonymous id (its ledger key id), which ledgers and the
    broker's screens use. ``node_name`` is kept for old peers and always sent empty: a
    site's name never leaves it, and the coordinator ignores one sent."""

    status: str
    reason: str = ""
    node_name: str = ""
    node_key: str = ""

    def to_record(self) -> ConfigRecord:
        return _to_record(self)

    @classmethod
    def from_record(cls, record: ConfigRecord) -> ReplyStatus:
        return _from_record(cls, record)


@dataclass(frozen=True)
class PrivacyReceipt:
    """The privacy parameters of one release at a node (record-level unit).

    ``mechanism`` is ``dp_sgd`` (Poisson-subsampled Gaussian: ``noise_multiplier`` =
    noise std / ``max_grad_norm``, ``sample_rate`` q, ``steps``) or
    ``discrete_gaussian_histogram`` (one release, L2 sensitivity ``sensitivity``, noise
    std = ``noise_multiplier`` x ``sensitivity``, q = 1, steps = 1), or
    ``distributed_discrete_gaussian_histogram`` (the node added a share of scale
    ``share_std`` inside a secure sum of at least ``noise_shares`` shares;
    ``noise_multiplier`` is the Gaussian multiplier that sum is as private as, by
    Kairouz-Liu-Steinke 2021, so RDP composition is unchanged), or
    ``distributed_discrete_gaussian_glm`` (one Newton round's GLM statistics: the same
    kind of share, ``sensitivity`` and ``share_std`` in units of the clip bounds,
    ``max_grad_norm`` the absolute gradient clip C_g).
    ``distributed_skellam_histogram`` / ``distributed_skellam_glm``: the same with Skellam
    shares; ``l1_sensitivity`` (in the units of ``sensitivity``) and ``integer_scale``
    (the noised integers are the values x ``integer_scale``) let the release be recomputed.
    ``epsilon_task`` is this task's own epsilon at ``delta``; ``epsilon_total`` the
    node's lifetime spend after it (same accountant, same delta: the node's cap delta).
    ``epsilon_run`` is what this run has cost the node so far, at the plan's delta
    ``delta_run``: the figure the broker's round lines show (its summary recomputes it).
    """

    unit: str
    mechanism: str
    noise_multiplier: float
    sample_rate: float
    steps: int
    max_grad_norm: float
    sensitivity: float
    epsilon_task: float
    epsilon_total: float
    epsilon_cap: float
    delta: float
    accountant: str
    secure_rng: bool
    noise_shares: int = 1
    share_std: float = 0.0
    l1_sensitivity: float = 0.0
    integer_scale: int = 1
    epsilon_run: float = 0.0
    delta_run: float = 0.0

    def to_record(self) -> ConfigRecord:
        return _to_record(self)

    @classmethod
    def from_record(cls, record: ConfigRecord) -> PrivacyReceipt:
        return _from_record(cls, record)
