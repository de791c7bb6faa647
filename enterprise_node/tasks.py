"""The two tasks a node serves, independent of Flower: train the model, release curves.

Each task: check the plan, load and validate local data, plan the privacy spend, then
:func:`enterprise_node.release.charged_release` (ask the budget guard, refuse if over the
cap, compute, charge the accountant durably) and only then hand back the result. Nothing
leaves on refusal or error but the status itself.

A noised release is made at most once per (run, round, task kind)
(:func:`release_once`, :mod:`enterprise_node.release_cache`): a round the coordinator
re-runs after a crash gets the same contribution again, never a second charge.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from flwr.app import ConfigRecord

from common.errors import (
    BudgetExceededError,
    ConfigError,
    DataRefusedError,
    FedriskError,
)
from enterprise_node.curve_release import NoisyCounts, histogram_sensitivity, release_counts
from enterprise_node.release import ReceiptTerms, charged_release
from enterprise_node.release_cache import CachedRelease, ReleaseCache
from enterprise_node.runtime import NodeRuntime
from models.digest import model_digest
from models.features import encode_units
from models.histogram import unit_histograms
from protocols.messages import PrivacyReceipt, TaskHeader
from protocols.plan import TrainingPlan

__all__ = [
    "TaskResult",
    "parse_plan",
    "run_model_task",
    "run_curve_task",
    "release_once",
    "serve_model_task",
    "serve_curve_task",
    "noised_curve_counts",
    "safe_reason",
    "record_dp_required",
]


@dataclass(frozen=True)
class TaskResult:
    """What a task hands back: arrays to send, metrics, and the privacy receipt;
    ``resent`` when it re-sends a contribution released (and charged) before."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    receipt: PrivacyReceipt | None = None
    records: dict[str, ConfigRecord] = field(default_factory=dict)
    resent: bool = False


def parse_plan(header: TaskHeader) -> TrainingPlan:
    """The plan in the task, after checking that its digest is what the header claims."""
    digest = hashlib.sha256(header.plan_json.encode("utf-8")).hexdigest()
    if digest != header.plan_digest:
        raise ConfigError("task refused: the plan does not match its digest")
    plan = TrainingPlan.from_json(header.plan_json, source="task plan")
    if plan.digest != digest:
        raise ConfigError("task refused: the plan is not in canonical form")
    return plan


def record_dp_required(runtime: NodeRuntime, plan: TrainingPlan) -> bool:
    """True for a DP task; False only when the plan turns DP off AND node.yaml allows it."""
    if plan.privacy.record.enabled:
        return True
    if runtime.config.privacy.allow_non_private:
        warnings.warn(
            "serving a NON-PRIVATE task (record-level DP off, allowed by node.yaml)",
            stacklevel=2,
        )
        return False
    raise ConfigError(
        "task refused: the plan turns record-level DP off; this node only serves DP tasks"
    )


def run_model_task(
    runtime: NodeRuntime, header: TaskHeader, plan: TrainingPlan, arrays: list[np.ndarray]
) -> TaskResult:
    """One round of local DP-SGD on the global model; noise calibrated for the whole run."""
    # torch and Opacus load here, not at import: the other task kinds do not need them
    from enterprise_node.training import OPACUS_SECURE_RNG, train_dp, train_plain

    spec, record = plan.model_spec, plan.privacy.record
    units = encode_units(runtime.units(spec).frame, spec)
    if len(units) == 0:
        raise ConfigError("task refused: no valid units to train on")
    if not record_dp_required(runtime, plan):
        plain = train_plain(arrays, units, spec, plan.training, seed=plan.training.seed)
        return TaskResult(
            arrays={f"param_{i:03d}": a for i, a in enumerate(plain.arrays)},
            metrics={"num-examples": float(plain.num_examples)},
        )
    spend = runtime.noise(plan, len(units)).model_spend(header.run_id, header.round)
    terms = ReceiptTerms(sensitivity=1.0, clip=record.max_grad_norm, secure_rng=OPACUS_SECURE_RNG)
    update, receipt = charged_release(
        runtime,
        spend,
        terms,
        lambda: train_dp(
            arrays,
            units,
            spec,
            plan.training,
            noise_multiplier=spend.noise_multiplier,
            max_grad_norm=record.max_grad_norm,
            seed=plan.training.seed * 100_003 + header.round,
        ),
        plan_delta=record.delta,
    )
    out = {f"param_{i:03d}": a for i, a in enumerate(update.arrays)}
    # Only the example count leaves (FedAvg weight); the local loss is a raw statistic.
    metrics = {"num-examples": float(update.num_examples)}
    return TaskResult(arrays=out, metrics=metrics, receipt=receipt)


def release_once(
    runtime: NodeRuntime,
    header: TaskHeader,
    plan: TrainingPlan,
    *,
    kind: str,
    basis: str,
    resend: bool,
    compute: Callable[[], TaskResult],
) -> TaskResult:
    """``compute()`` (which charges the budget) at most once per (run, round, ``kind``).

    A noised result is kept before it leaves; a retry of the same task re-sends it
    (``resent``), charging nothing, if ``resend`` allows and the plan and ``basis`` (what
    it was computed on) are the same; otherwise the retry is refused. So is a retry of a
    task that was charged but whose result a crash lost before it was kept (it never
    left): a node is charged once per round, whatever happens. See
    :mod:`enterprise_node.release_cache` for what a re-send reveals."""
    cache = ReleaseCache(runtime.config.state_dir)
    where = f"{kind} task of round {header.round} of run {header.run_id!r}"
    with cache.locked():
        kept = cache.get(header.run_id, header.round, kind)
        if kept is None and runtime.guard.has_spend(header.run_id, header.round, kind):
            raise ConfigError(
                f"task refused: this node was charged for the {where}, but a crash lost its "
                "contribution before it left; computing a new one would charge the round twice"
            )
        if kept is None:
            result = compute()
            if result.receipt is not None or _ENTERPRISE_NOISE in result.metrics:
                cache.put(_cached(header, plan, kind, basis, result))
            return result
    if not resend:
        raise ConfigError(
            f"task refused: this node already released its contribution to the {where}; a "
            "secure curve contribution is released at most once (its noise share is weak alone)"
        )
    if kept.plan_digest != plan.digest or kept.basis != basis:
        raise ConfigError(
            f"task refused: the {where} was served before under another plan or on another "
            "model; it is neither re-sent nor computed again (one charge per round)"
        )
    return TaskResult(arrays=kept.arrays, metrics=kept.metrics, receipt=kept.receipt, resent=True)


#: The metric a secure model reply carries when it holds an enterprise-level noise share.
_ENTERPRISE_NOISE = "enterprise-noise-std"


def _cached(
    header: TaskHeader, plan: TrainingPlan, kind: str, basis: str, result: TaskResult
) -> CachedRelease:
    return CachedRelease(
        run_id=header.run_id,
        round=header.round,
        kind=kind,
        plan_digest=plan.digest,
        basis=basis,
        arrays=dict(result.arrays),
        metrics=dict(result.metrics),
        receipt=result.receipt,
    )


def serve_model_task(
    runtime: NodeRuntime, header: TaskHeader, plan: TrainingPlan, arrays: list[np.ndarray]
) -> TaskResult:
    """:func:`run_model_task` released once per round: a retry on the same global model
    re-sends the first update."""
    return release_once(
        runtime,
        header,
        plan,
        kind="model",
        basis=model_digest(arrays),
        resend=True,
        compute=lambda: run_model_task(runtime, header, plan, arrays),
    )


def serve_curve_task(runtime: NodeRuntime, header: TaskHeader, plan: TrainingPlan) -> TaskResult:
    """:func:`run_curve_task` released once per run and round: a retry re-sends the same
    noised histograms (in the clear they hold the node's whole noise)."""
    return release_once(
        runtime,
        header,
        plan,
        kind="curve",
        basis="",
        resend=True,
        compute=lambda: run_curve_task(runtime, header, plan),
    )


def noised_curve_counts(
    runtime: NodeRuntime, header: TaskHeader, plan: TrainingPlan
) -> tuple[NoisyCounts, PrivacyReceipt | None]:
    """The node's histograms with its DP noise, the budget charged first (or exact counts
    when the plan turns DP off and node.yaml allows it; then no receipt)."""
    if not plan.curve_release:
        raise ConfigError("task refused: the plan does not include a curve release")
    spec = plan.model_spec
    frame = runtime.units(spec).frame
    counts = unit_histograms(frame, spec)
    if not record_dp_required(runtime, plan):
        exact = NoisyCounts(
            exits=counts.exits, survivors=counts.survivors, entries=counts.entries, noise_std=0.0
        )
        return exact, None
    spend = runtime.noise(plan, len(frame)).curve_spend(header.run_id, header.round)
    terms = ReceiptTerms(sensitivity=histogram_sensitivity(counts), clip=0.0, secure_rng=True)
    return charged_release(
        runtime,
        spend,
        terms,
        lambda: release_counts(counts, noise_multiplier=spend.noise_multiplier),
        plan_delta=plan.privacy.record.delta,
    )


def run_curve_task(runtime: NodeRuntime, header: TaskHeader, plan: TrainingPlan) -> TaskResult:
    """Noised exit (and entry) histograms per segment and interval, for the life table."""
    noisy, receipt = noised_curve_counts(runtime, header, plan)
    arrays = {"exits": noisy.exits, "survivors": noisy.survivors}
    if noisy.entries is not None:
        arrays["entries"] = noisy.entries
    return TaskResult(arrays=arrays, metrics={"noise-std": noisy.noise_std}, receipt=receipt)


def safe_reason(err: BaseException) -> tuple[str, str]:
    """(status, reason) for a failed task, with no data values in the reason."""
    if isinstance(err, BudgetExceededError):
        return "refused", str(err)
    if isinstance(err, DataRefusedError):
        return "refused", "local data refused by validation (details stay at the node)"
    if isinstance(err, ConfigError) and str(err).startswith("task refused"):
        return "refused", str(err)
    if isinstance(err, FedriskError):
        return "error", f"{type(err).__name__} at the node (details in the node's log)"
    return "error", f"internal error at the node: {type(err).__name__} (details in its log)"
