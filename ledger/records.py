"""The typed, versioned records of the coordinator's and the nodes' ledgers.

Compatibility rule: auditors replay old ledgers, so a record's fields are never removed
and their meanings never change; a new field is added only with a default (old bodies
still parse), and then the record's VERSION goes up. A reader refuses a body of a newer
version than it knows, and any key it does not know, rather than guess.

Privacy parameters follow :mod:`privacy.accounting`: a release is a Gaussian mechanism
(or a secure sum of discrete Gaussian noise shares) run ``steps`` times, with
``noise_multiplier`` z = noise std / L2 sensitivity and Poisson ``sample_rate`` q (1.0
when every unit takes part); epsilons are (epsilon, delta)-DP at ``delta``, composed
under RDP. ``unit`` is the protected unit: "record" (one row of a site's data) or
"enterprise" (a whole site's contribution). Node ids are pseudonymous. Hashes are hex
SHA-256.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from common.codec import decode, encode
from ledger.log import Entry, LedgerError, TreeHead

__all__ = [
    "RecordError",
    "LedgerRecord",
    "NodeReason",
    "RunStarted",
    "RoundRecorded",
    "ReleaseAccounted",
    "MessageReceived",
    "OutputsPublished",
    "RunEnded",
    "RunResumed",
    "CheckpointWritten",
    "MessageSent",
    "PrivacySpent",
    "TaskRefused",
    "PlanApproved",
    "InclusionChecked",
    "ContributionResent",
    "RiskShared",
    "RECORD_TYPES",
    "CanaryAudited",
    "record_class",
    "record_from_entry",
]

Unit = Literal["record", "enterprise"]
R = TypeVar("R", bound="LedgerRecord")


class RecordError(LedgerError):
    """A record body is missing a key, has an unknown key or a value of the wrong type."""


@dataclass(frozen=True)
class NodeReason:
    """A node (pseudonymous id) and why it refused or failed a task."""

    node: str
    reason: str


class LedgerRecord:
    """Base of the record types: ``KIND`` names the record, ``VERSION`` its field set."""

    KIND: ClassVar[str]
    VERSION: ClassVar[int] = 1

    def to_body(self) -> dict[str, Any]:
        """The JSON body stored in the ledger entry (tuples become lists)."""
        body = encode(self)
        assert isinstance(body, dict)
        return body

    @classmethod
    def from_body(cls: type[R], body: Mapping[str, Any]) -> R:
        """Parse and type-check a body; RecordError names a missing or unknown key or a
        value of the wrong type."""
        return decode(cls, dict(body), f"{cls.KIND} record", RecordError)


# -- coordinator ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RunStarted(LedgerRecord):
    """A run began under a plan. ``plan_digest``, ``config_sha256`` and
    ``model_spec_digest`` are hashes of the approved plan, the coordinator config and the
    model spec; ``record_epsilon`` / ``record_delta`` the record-level target;
    ``enterprise_epsilon_cap`` / ``enterprise_delta`` the enterprise-level cap (None
    without enterprise DP); ``expected_nodes`` how many nodes were invited."""

    KIND: ClassVar[str] = "run_started"
    run_id: str
    plan_digest: str
    config_sha256: str
    model_spec_digest: str
    record_epsilon: float
    record_delta: float
    enterprise_epsilon_cap: float | None
    enterprise_delta: float | None
    expected_nodes: int
    secure_aggregation: bool


@dataclass(frozen=True)
class RoundRecorded(LedgerRecord):
    """One round of ``task`` ("model" or "curve"): the nodes whose replies were used
    (``participants``), refused, failed, or ``dropped`` out of a secure round after
    sharing keys; ``seconds`` of wall time."""

    KIND: ClassVar[str] = "round_recorded"
    run_id: str
    round: int
    task: str
    participants: tuple[str, ...]
    refused: tuple[NodeReason, ...]
    failed: tuple[NodeReason, ...]
    dropped: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class ReleaseAccounted(LedgerRecord):
    """The coordinator's claim for one node's release in a round. ``mechanism`` as in
    the accountant (e.g. "dp_sgd", "discrete_gaussian_histogram"); ``noise_multiplier``
    z = noise std / ``sensitivity`` (the L2 sensitivity, e.g. the clip norm C);
    ``noise_shares`` the number of noise shares summed (1 for central noise, the
    threshold t for distributed noise); ``epsilon_claimed`` this release's epsilon alone,
    ``epsilon_total_claimed`` the node's composed epsilon so far for ``unit``, against
    ``epsilon_cap``, all at ``delta``; ``message_sha256`` the reply digest, equal to the
    node's MessageSent.sha256, which ties the two ledgers together. Version 2:
    ``share_std``, one node's noise share std in the release's units (0 for central
    noise, and in version 1); for Skellam shares ``l1_sensitivity`` (same units) and
    ``integer_scale`` (the noised integers are the values x this), from which an auditor
    recomputes the release."""

    KIND: ClassVar[str] = "release_accounted"
    VERSION: ClassVar[int] = 2
    run_id: str
    round: int
    task: str
    node: str
    unit: Unit
    mechanism: str
    noise_multiplier: float
    sample_rate: float
    steps: int
    sensitivity: float
    noise_shares: int
    epsilon_claimed: float
    epsilon_total_claimed: float
    epsilon_cap: float
    delta: float
    message_sha256: str
    share_std: float = 0.0
    l1_sensitivity: float = 0.0
    integer_scale: int = 1


@dataclass(frozen=True)
class MessageReceived(LedgerRecord):
    """A reply the coordinator received from ``node`` (pseudonymous id) in a round's
    ``task`` exchange, how the coordinator classified it (``status``: "ok" = used,
    "refused", "failed" = an error reply or one that failed the coordinator's checks) and
    its reply digest ``sha256``: the counterpart of the node's MessageSent, so an auditor
    can match the two ledgers message by message."""

    KIND: ClassVar[str] = "message_received"
    run_id: str
    round: int
    task: str
    node: str
    status: str
    sha256: str


@dataclass(frozen=True)
class OutputsPublished(LedgerRecord):
    """The run's outputs: model and curve file hashes (``curves_sha256`` None without a
    curve release), and the segments whose curves were published or withheld."""

    KIND: ClassVar[str] = "outputs_published"
    run_id: str
    model_sha256: str
    curves_sha256: str | None
    published_segments: tuple[str, ...]
    withheld_segments: tuple[str, ...]


@dataclass(frozen=True)
class RunEnded(LedgerRecord):
    """A run ended with ``status`` (e.g. "completed", "failed", "budget_stop"); ``error``
    is the failure message, None on success."""

    KIND: ClassVar[str] = "run_ended"
    run_id: str
    status: str
    error: str | None


@dataclass(frozen=True)
class CheckpointWritten(LedgerRecord):
    """Model round ``round`` of run ``run_id`` is complete (its mean applied to the model)
    and the coordinator's checkpoint of the state after it has digest ``sha256``. A resumed
    run never re-runs a round recorded here."""

    KIND: ClassVar[str] = "checkpoint_written"
    run_id: str
    round: int
    sha256: str


@dataclass(frozen=True)
class RunResumed(LedgerRecord):
    """The coordinator restarted run ``run_id`` (same plan ``plan_digest``) after a crash,
    from its checkpoint of round ``checkpoint_round`` (digest ``checkpoint_sha256``; round 0
    and "" when no round had completed). ``from_round`` is the first round it runs now: the
    records of rounds ``from_round`` and later written before this entry belong to the
    interrupted attempt and are superseded (their releases are not counted again)."""

    KIND: ClassVar[str] = "run_resumed"
    run_id: str
    plan_digest: str
    from_round: int
    checkpoint_round: int
    checkpoint_sha256: str


# -- node ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageSent(LedgerRecord):
    """A reply that left the site: its ``purpose``, ``status``, digest (``sha256``, the
    reply digest the coordinator computes on receipt) and size in ``bytes``."""

    KIND: ClassVar[str] = "message_sent"
    run_id: str
    round: int
    task: str
    purpose: str
    status: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class PrivacySpent(LedgerRecord):
    """The node's own accounting of one release (fields as in ReleaseAccounted):
    ``epsilon_task`` this release alone, ``epsilon_total`` composed over the node's
    lifetime for ``unit``, ``epsilon_remaining`` = ``epsilon_cap`` - ``epsilon_total``,
    all at ``delta``. Version 2: ``share_std``, ``l1_sensitivity``, ``integer_scale`` as in
    ReleaseAccounted."""

    KIND: ClassVar[str] = "privacy_spent"
    VERSION: ClassVar[int] = 2
    run_id: str
    round: int
    task: str
    unit: Unit
    mechanism: str
    noise_multiplier: float
    sample_rate: float
    steps: int
    sensitivity: float
    noise_shares: int
    epsilon_task: float
    epsilon_total: float
    epsilon_remaining: float
    epsilon_cap: float
    delta: float
    share_std: float = 0.0
    l1_sensitivity: float = 0.0
    integer_scale: int = 1


@dataclass(frozen=True)
class TaskRefused(LedgerRecord):
    """The node refused a task (budget cap, unapproved plan, bad data) and said why."""

    KIND: ClassVar[str] = "task_refused"
    run_id: str
    round: int
    task: str
    reason: str


@dataclass(frozen=True)
class PlanApproved(LedgerRecord):
    """The site approved the plan with digest ``plan_digest``; ``approved_by`` names who.
    Version 2: ``app_hash``, the hash of the app (FAB) approved with it ("" for none)."""

    KIND: ClassVar[str] = "plan_approved"
    VERSION: ClassVar[int] = 2
    plan_digest: str
    approved_by: str
    note: str
    app_hash: str = ""


@dataclass(frozen=True)
class InclusionChecked(LedgerRecord):
    """The node checked that its entries ``checked_seqs`` of the coordinator's ledger are
    included in the coordinator's signed tree of ``coordinator_tree_size`` entries with
    root ``coordinator_root_hash``; ``ok`` is the verdict, ``detail`` what failed if any.
    Version 2: ``coordinator_head``, that signed tree head itself (signature and key id
    included), so an auditor can tell a head the coordinator signed from one the node made
    up (None in version 1); ``witnessed_size``, the size of the last coordinator head the
    node had verified before, which it checked this one extends by a consistency proof (0:
    none before, or version 1)."""

    KIND: ClassVar[str] = "inclusion_checked"
    VERSION: ClassVar[int] = 2
    run_id: str
    coordinator_tree_size: int
    coordinator_root_hash: str
    checked_seqs: tuple[int, ...]
    ok: bool
    detail: str
    coordinator_head: TreeHead | None = None
    witnessed_size: int = 0


@dataclass(frozen=True)
class ContributionResent(LedgerRecord):
    """The reply with digest ``sha256`` re-sends this node's contribution to ``task`` of
    round ``round`` in run ``run_id`` (a round the coordinator re-ran after a crash): the
    same noised values as the first time, charged once, by the PrivacySpent recorded for
    that (run, round, task) before; nothing new is spent."""

    KIND: ClassVar[str] = "contribution_resent"
    run_id: str
    round: int
    task: str
    sha256: str


@dataclass(frozen=True)
class RiskShared(LedgerRecord):
    """The site chose to share its fleet's relative risk with the broker, outside any run
    (``fedrisk-node risk --share``): what it sent (``shared``: "grade" or "factor"), the
    message's digest ``sha256`` and size ``bytes``, and the release's privacy spend, with
    the fields and meanings of PrivacySpent (``run_id`` is the share's id, ``round`` 0,
    ``task`` "risk_share"). One entry per share: the spend and the message together."""

    KIND: ClassVar[str] = "risk_shared"
    run_id: str
    round: int
    task: str
    shared: str
    sha256: str
    bytes: int
    unit: Unit
    mechanism: str
    noise_multiplier: float
    sample_rate: float
    steps: int
    sensitivity: float
    noise_shares: int
    epsilon_task: float
    epsilon_total: float
    epsilon_remaining: float
    epsilon_cap: float
    delta: float
    share_std: float = 0.0
    l1_sensitivity: float = 0.0
    integer_scale: int = 1


# -- auditor ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CanaryAudited(LedgerRecord):
    """An auditor's one-run canary audit (Steinke, Nasr, Jagielski 2023) of run ``run_id``
    (model spec ``model_spec_digest``): ``m`` canaries, of which ``included`` were in the
    data, drawn by the plant with SHA-256 ``plant_sha256`` (the auditor's secret, shown
    later to prove the coins were fixed before the run); the epsilon lower bounds at
    ``delta`` and ``confidence`` for the curves and the model beside what the run's
    receipts claim for each (None: record-level DP off); ``verdict`` "claims hold" or
    "claims broken"; ``report_sha256`` the digest of the JSON report."""

    KIND: ClassVar[str] = "canary_audited"
    run_id: str
    model_spec_digest: str
    m: int
    included: int
    plant_sha256: str
    delta: float
    confidence: float
    curve_bound: float
    curve_claimed: float | None
    model_bound: float
    model_claimed: float | None
    verdict: str
    report_sha256: str


#: Every record type by its KIND.
RECORD_TYPES: dict[str, type[LedgerRecord]] = {
    cls.KIND: cls
    for cls in (
        RunStarted,
        RoundRecorded,
        ReleaseAccounted,
        MessageReceived,
        OutputsPublished,
        RunEnded,
        RunResumed,
        CheckpointWritten,
        MessageSent,
        PrivacySpent,
        TaskRefused,
        PlanApproved,
        InclusionChecked,
        ContributionResent,
        RiskShared,
        CanaryAudited,
    )
}


def record_class(kind: str) -> type[LedgerRecord]:
    """The record type named ``kind``; RecordError lists the known kinds otherwise."""
    try:
        return RECORD_TYPES[kind]
    except KeyError:
        raise RecordError(f"unknown record kind {kind!r}; known: {sorted(RECORD_TYPES)}") from None


def record_from_entry(entry: Entry) -> LedgerRecord:
    """The typed record in a ledger entry, refusing versions newer than this code reads."""
    cls = record_class(entry.kind)
    if not 1 <= entry.version <= cls.VERSION:
        raise RecordError(
            f"entry {entry.seq}: {entry.kind} version {entry.version}, this fedrisk reads "
            f"versions 1..{cls.VERSION}"
        )
    return cls.from_body(entry.body)
