"""One round: send a task to every node, wait, and sort the replies.

A reply is ``ok`` (with its content and privacy receipt), ``refused`` (the node's
policy said no; its reason is shown), or ``failed`` (an error reply, a malformed reply,
or no reply before the timeout). Nothing is silently dropped: every node of the round
appears in exactly one list.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid

from protocols.messages import PRIVACY_KEY, STATUS_KEY, PrivacyReceipt, ReplyStatus
from protocols.reply_digest import reply_digest

__all__ = [
    "PULL_INTERVAL_S",
    "NodeReply",
    "NodeProblem",
    "RoundOutcome",
    "run_round",
    "send_and_receive",
]


@dataclass(frozen=True)
class NodeReply:
    """A successful reply from ``node_id``."""

    node_id: int
    node_name: str
    message: Message
    receipt: PrivacyReceipt | None
    node_key: str = ""
    sha256: str = ""

    @property
    def content(self) -> RecordDict:
        return self.message.content


@dataclass(frozen=True)
class NodeProblem:
    """A refusal or failure at ``node_id`` with its (sanitised) reason."""

    node_id: int
    node_name: str
    reason: str
    node_key: str = ""
    sha256: str = ""


@dataclass(frozen=True)
class RoundOutcome:
    """The sorted replies of one round."""

    round: int
    task: str
    ok: list[NodeReply] = field(default_factory=list)
    refused: list[NodeProblem] = field(default_factory=list)
    failed: list[NodeProblem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def problems(self) -> list[NodeProblem]:
        """Refusals and failures together."""
        return [*self.refused, *self.failed]


#: Seconds between the coordinator's pulls for replies. Flower's deployment grid sleeps 3 s
#: between pulls in ``send_and_receive`` (flwr 1.42, ``flwr/superlink/grid/http_grid.py``),
#: so an exchange could wait up to 3 s after its last reply arrived.
PULL_INTERVAL_S = 0.1


def send_and_receive(grid: Grid, messages: list[Message], timeout: float) -> list[Message]:
    """Push ``messages`` and pull their replies every :data:`PULL_INTERVAL_S` until all
    arrived or ``timeout`` passed: Flower's ``Grid.send_and_receive`` with a short pull
    interval. A stand-in that is no Flower Grid (bench/inprocess.py) answers itself."""
    if not isinstance(grid, Grid):
        return list(grid.send_and_receive(messages, timeout=timeout))
    pending = set(grid.push_messages(messages))
    deadline = time.monotonic() + timeout
    replies: list[Message] = []
    while pending:
        pulled = list(grid.pull_messages(pending))
        replies += pulled
        pending -= {m.metadata.reply_to_message_id for m in pulled}
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(PULL_INTERVAL_S)
    return replies


def run_round(
    grid: Grid,
    node_ids: list[int],
    *,
    round_number: int,
    task: str,
    message_type: str,
    content_for: Callable[[int], RecordDict],
    timeout: float,
) -> RoundOutcome:
    """Send ``content_for(node)`` to each node and classify every reply (or its absence)."""
    start = time.monotonic()
    messages = [
        Message(content=content_for(nid), dst_node_id=nid, message_type=message_type)
        for nid in node_ids
    ]
    replies = send_and_receive(grid, messages, timeout)
    outcome = RoundOutcome(round=round_number, task=task)
    answered: set[int] = set()
    asked = set(node_ids)
    for reply in replies:
        node_id = reply.metadata.src_node_id
        if node_id not in asked or node_id in answered:
            continue  # a stray or duplicate reply must not count (twice) toward quorum
        answered.add(node_id)
        _classify(reply, node_id, outcome)
    # Flower gives up early on a node whose heartbeat stopped (it died or left)
    silence = (
        f"no reply within {timeout:g} s"
        if time.monotonic() - start >= timeout
        else "no reply: the node went offline"
    )
    for node_id in node_ids:
        if node_id not in answered:
            outcome.failed.append(NodeProblem(node_id, "", silence))
    return RoundOutcome(
        round=outcome.round,
        task=task,
        ok=outcome.ok,
        refused=outcome.refused,
        failed=outcome.failed,
        seconds=time.monotonic() - start,
    )


def _classify(reply: Message, node_id: int, outcome: RoundOutcome) -> None:
    if reply.has_error():
        outcome.failed.append(
            NodeProblem(node_id, "", _last_line(reply.error.reason or "error reply"))
        )
        return
    digest = reply_digest(reply.content)[0]
    try:
        status = ReplyStatus.from_record(reply.content.config_records[STATUS_KEY])
    except (KeyError, ValueError, TypeError) as err:
        outcome.failed.append(NodeProblem(node_id, "", f"malformed reply: {err}", sha256=digest))
        return
    # nodes are shown by their pseudonymous id; a name a node sends is never used
    # (node.name is for the site's own screens: it must not reach the broker's)
    key = status.node_key
    name = key or str(node_id)
    if status.status == "refused":
        outcome.refused.append(NodeProblem(node_id, name, status.reason, key, digest))
    elif status.status == "ok":
        try:
            receipt = (
                PrivacyReceipt.from_record(reply.content.config_records[PRIVACY_KEY])
                if PRIVACY_KEY in reply.content.config_records
                else None
            )
        except (ValueError, TypeError) as err:
            outcome.failed.append(NodeProblem(node_id, name, f"bad receipt: {err}", key, digest))
            return
        outcome.ok.append(NodeReply(node_id, name, reply, receipt, key, digest))
    else:
        outcome.failed.append(
            NodeProblem(node_id, name, status.reason or status.status, key, digest)
        )


def _last_line(text: str) -> str:
    lines = [line for line in str(text).splitlines() if line.strip()]
    return (lines[-1] if lines else "error reply")[:300]
