"""The fedrisk Flower ClientApp: serves the model task and the curve task at a node.

Every handler goes through :func:`_serve`, which checks the task's plan against its
digest and refuses a plan this node has not approved (before any data is read or budget
charged), turns any failure into a sanitised status reply (never a traceback: tracebacks
can carry data values), records what left the node in its outbox and ledger, and logs
details locally.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from common.errors import ConfigError
from enterprise_node.approval import require_approved
from enterprise_node.node_ledger import NodeLedger, node_key_id
from enterprise_node.outbox import OutboxEntry
from enterprise_node.preflight import preflight
from enterprise_node.runtime import NodeRuntime, load_runtime
from enterprise_node.secure_tasks import (
    advertise_keys,
    reveal_shares,
    secure_curve,
    secure_model,
    share_keys,
)
from enterprise_node.tasks import (
    TaskResult,
    parse_plan,
    safe_reason,
    serve_curve_task,
    serve_model_task,
)
from protocols.app_identity import APP_HASH_KEY
from protocols.messages import (
    ARRAYS_KEY,
    CURVE_ACTION,
    METRICS_KEY,
    PREFLIGHT_ACTION,
    PRIVACY_KEY,
    SECAGG_KEYS_ACTION,
    SECAGG_SHARES_ACTION,
    SECAGG_UNMASK_ACTION,
    STATUS_KEY,
    TASK_KEY,
    PrivacyReceipt,
    ReplyStatus,
    TaskHeader,
)
from protocols.plan import TrainingPlan
from protocols.reply_digest import reply_digest
from protocols.secure_round import SECAGG_KEY

__all__ = ["app"]

app = ClientApp()
_log = logging.getLogger("fedrisk.node")

#: A task, given the node, the task header, the approved plan, the message and context.
Handler = Callable[[NodeRuntime, TaskHeader, TrainingPlan, Message, Context], TaskResult]


@app.train()
def model_task(msg: Message, context: Context) -> Message:
    """Local DP-SGD on the global model (record-level DP); masked under secure aggregation."""

    def handle(
        runtime: NodeRuntime,
        header: TaskHeader,
        plan: TrainingPlan,
        message: Message,
        context: Context,
    ) -> TaskResult:
        if SECAGG_KEY in message.content.config_records:
            return secure_model(runtime, header, plan, message, context)
        _refuse_downgrade(plan)
        record = message.content.array_records[ARRAYS_KEY]
        arrays = [record[name].numpy() for name in sorted(record)]
        return serve_model_task(runtime, header, plan, arrays)

    return _serve(msg, context, handle, purpose="model-update")


@app.query(CURVE_ACTION)
def curve_task(msg: Message, context: Context) -> Message:
    """Noised exit histograms for the industry curves (record-level DP)."""

    def handle(
        runtime: NodeRuntime,
        header: TaskHeader,
        plan: TrainingPlan,
        message: Message,
        context: Context,
    ) -> TaskResult:
        if SECAGG_KEY in message.content.config_records:
            return secure_curve(runtime, header, plan, message, context)
        _refuse_downgrade(plan)
        return serve_curve_task(runtime, header, plan)

    return _serve(msg, context, handle, purpose="curve-histogram")


def _refuse_downgrade(plan: TrainingPlan) -> None:
    """A plan that promises secure aggregation is never served in the clear."""
    if plan.secure_aggregation:
        raise ConfigError(
            "task refused: the plan requires secure aggregation, but this task is not secure"
        )


@app.query(PREFLIGHT_ACTION)
def preflight_task(msg: Message, context: Context) -> Message:
    """Before a run charges anyone: can this node serve all of it? (status only)"""
    return _serve(msg, context, preflight, purpose="preflight")


@app.query(SECAGG_KEYS_ACTION)
def secagg_keys(msg: Message, context: Context) -> Message:
    """Secure aggregation, stage 1 (once per run): public keys for the rounds named."""
    return _serve(msg, context, advertise_keys, purpose="secagg-keys")


@app.query(SECAGG_SHARES_ACTION)
def secagg_shares(msg: Message, context: Context) -> Message:
    """Secure aggregation, stage 2: encrypted Shamir shares for the peers."""
    return _serve(msg, context, share_keys, purpose="secagg-shares")


@app.query(SECAGG_UNMASK_ACTION)
def secagg_unmask(msg: Message, context: Context) -> Message:
    """Secure aggregation, stage 4: shares to remove the masks."""
    return _serve(msg, context, reveal_shares, purpose="secagg-unmask")


def _serve(msg: Message, context: Context, handler: Handler, *, purpose: str) -> Message:
    runtime: NodeRuntime | None = None
    header: TaskHeader | None = None
    try:
        runtime = load_runtime(dict(context.node_config), dict(context.run_config))
        header = TaskHeader.from_record(msg.content.config_records[TASK_KEY])
        plan = parse_plan(header)
        # before any data is read or budget charged; with the app the guard saw, if any
        require_approved(runtime.config, plan, _sent_app_hash(context))
        result = handler(runtime, header, plan, msg, context)
        status = ReplyStatus("ok")
    except Exception as err:  # noqa: BLE001 - every failure becomes a sanitised reply
        _log.exception("task failed at node")
        kind, reason = safe_reason(err)
        result, status = TaskResult(), ReplyStatus(kind, reason=reason)
    if runtime is None:
        return Message(_reply_content(result, status), reply_to=msg)
    status = dataclasses.replace(status, node_key=node_key_id(runtime.config))
    reply = _reply_content(result, status)
    _record_sent(runtime, header, status, reply, result.receipt, purpose, resent=result.resent)
    return Message(reply, reply_to=msg)


def _sent_app_hash(context: Context) -> str | None:
    """The hash of the app the task was sent with, as the app guard found it (deployment);
    None in a local federation, where no app is sent."""
    value = context.node_config.get(APP_HASH_KEY)
    return str(value) if value else None


def _reply_content(result: TaskResult, status: ReplyStatus) -> RecordDict:
    content = RecordDict({STATUS_KEY: status.to_record()})
    if status.status == "ok":
        content[ARRAYS_KEY] = ArrayRecord(
            {k: Array(np.ascontiguousarray(v)) for k, v in result.arrays.items()}
        )
        content[METRICS_KEY] = MetricRecord(dict(result.metrics))
        if result.receipt is not None:
            content[PRIVACY_KEY] = result.receipt.to_record()
        for name, record in result.records.items():
            content[name] = record
    return content


def _record_sent(
    runtime: NodeRuntime,
    header: TaskHeader | None,
    status: ReplyStatus,
    reply: RecordDict,
    receipt: PrivacyReceipt | None,
    purpose: str,
    *,
    resent: bool = False,
) -> None:
    """Record what is about to leave, in the outbox and the signed ledger, under the
    digest the coordinator computes on receipt (a re-sent contribution as such)."""
    digest, size = reply_digest(reply)
    arrays = reply.array_records.get(ARRAYS_KEY)
    purpose = purpose if status.status == "ok" else "status-only"
    runtime.outbox.append(
        OutboxEntry(
            time=time.time(),
            run_id=header.run_id if header else "",
            round=header.round if header else 0,
            task=header.kind if header else "",
            status=status.status,
            purpose=purpose,
            sha256=digest,
            bytes=size,
            arrays=tuple(sorted(arrays)) if arrays is not None else (),
        )
    )
    NodeLedger(runtime.config).record_reply(
        header, status, purpose=purpose, sha256=digest, size=size, receipt=receipt, resent=resent
    )
