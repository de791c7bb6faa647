"""run_round sorts every node of a round into exactly one of ok / refused / failed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable

import pytest
from flwr.app import ConfigRecord, Error, Message, RecordDict
from flwr.serverapp import Grid

from common.codec import decode
from coordinator.round_summary import RoundSummary
from coordinator.rounds import PULL_INTERVAL_S, RoundOutcome, run_round, send_and_receive
from privacy.mechanisms import Mechanism
from protocols.messages import (
    CURVE_TASK,
    PRIVACY_KEY,
    STATUS_KEY,
    TASK_KEY,
    PrivacyReceipt,
    ReplyStatus,
)

pytestmark = pytest.mark.usefixtures("flower_identity")

Answer = Callable[[Message], list[Message]]

RECEIPT = PrivacyReceipt(
    unit="record",
    mechanism=Mechanism.CURVE_HISTOGRAM,
    noise_multiplier=2.5,
    sample_rate=1.0,
    steps=1,
    max_grad_norm=0.0,
    sensitivity=1.0,
    epsilon_task=1.0,
    epsilon_total=1.0,
    epsilon_cap=5.0,
    delta=1e-6,
    accountant="rdp",
    secure_rng=True,
)


def content(status: ReplyStatus | None = None, **records: ConfigRecord) -> RecordDict:
    parts = dict(records)
    if status is not None:
        parts[STATUS_KEY] = status.to_record()
    return RecordDict(parts)


def ok(msg: Message) -> list[Message]:
    # a name sent by a node (an old or hostile one) is never shown: its pseudonym is
    status = ReplyStatus("ok", node_name="site-ok", node_key="0a1b2c3d4e5f6a7b")
    return [Message(content(status, **{PRIVACY_KEY: RECEIPT.to_record()}), reply_to=msg)]


def ok_without_receipt(msg: Message) -> list[Message]:
    return [Message(content(ReplyStatus("ok", node_name="site-plain")), reply_to=msg)]


def refused(msg: Message) -> list[Message]:
    status = ReplyStatus(
        "refused",
        reason="task refused: above this node's cap of 1",
        node_name="site-refuses",
        node_key="9f8e7d6c5b4a3f2e",
    )
    return [Message(content(status), reply_to=msg)]


def node_error(msg: Message) -> list[Message]:
    status = ReplyStatus(
        "error", reason="internal error at the node: KeyError", node_name="site-broken"
    )
    return [Message(content(status), reply_to=msg)]


def flower_error(msg: Message) -> list[Message]:
    trace = 'Traceback (most recent call last):\n  File "x.py"\nRuntimeError: ClientApp crashed\n'
    return [Message(Error(code=1, reason=trace), reply_to=msg)]


def no_status(msg: Message) -> list[Message]:
    return [Message(RecordDict({"other": ConfigRecord({"a": 1})}), reply_to=msg)]


def status_without_status_key(msg: Message) -> list[Message]:
    return [Message(RecordDict({STATUS_KEY: ConfigRecord({"reason": "?"})}), reply_to=msg)]


def bad_receipt(msg: Message) -> list[Message]:
    receipt = ConfigRecord({"unit": "record", "mechanism": Mechanism.DP_SGD})
    return [
        Message(
            content(ReplyStatus("ok", node_name="site-receipt"), **{PRIVACY_KEY: receipt}),
            reply_to=msg,
        )
    ]


def unknown_status(msg: Message) -> list[Message]:
    return [Message(content(ReplyStatus("paused", node_name="site-odd")), reply_to=msg)]


def silent(msg: Message) -> list[Message]:
    return []


def ok_twice_and_a_stranger(msg: Message) -> list[Message]:
    first = ok(msg)[0]
    stranger = Message(content=RecordDict(), dst_node_id=999, message_type=CURVE_TASK)
    return [first, first, ok(stranger)[0]]


class FakeClock:
    """``time.monotonic`` while a test runs: it moves only when the fake grid waits."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(time, "monotonic", fake)
    return fake


class FakeGrid:
    """Answers each message with ``answers[dst_node_id](message)`` after ``waits`` seconds
    of the fake clock (Flower waiting for replies); records what it saw."""

    def __init__(self, answers: dict[int, Answer], waits: float = 0.0) -> None:
        self.answers = answers
        self.waits = waits
        self.sent: list[Message] = []
        self.timeouts: list[float | None] = []

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None):
        self.sent = list(messages)
        self.timeouts.append(timeout)
        clock = time.monotonic
        assert isinstance(clock, FakeClock), "the clock fixture is not in place"
        clock.now += self.waits
        replies = []
        for message in self.sent:
            replies.extend(self.answers[message.metadata.dst_node_id](message))
        return replies


def play(
    answers: dict[int, Answer], *, timeout: float = 30.0, waits: float = 0.0
) -> tuple[RoundOutcome, FakeGrid]:
    grid = FakeGrid(answers, waits)
    outcome = run_round(
        grid,
        list(answers),
        round_number=4,
        task="curve",
        message_type=CURVE_TASK,
        content_for=lambda nid: RecordDict({TASK_KEY: ConfigRecord({"for": nid})}),
        timeout=timeout,
    )
    return outcome, grid


def node_ids(outcome: RoundOutcome) -> list[int]:
    return [r.node_id for r in outcome.ok] + [p.node_id for p in outcome.refused + outcome.failed]


def test_every_kind_of_reply_lands_in_its_list_with_its_reason() -> None:
    # Prepare
    answers: dict[int, Answer] = {
        11: ok,
        12: ok_without_receipt,
        13: refused,
        14: node_error,
        15: flower_error,
        16: no_status,
        17: status_without_status_key,
        18: bad_receipt,
        19: unknown_status,
        20: silent,
    }
    # Execute: Flower returns after 2 of the 30 s (it gave up on the silent node early)
    outcome, grid = play(answers, timeout=30, waits=2.0)
    # Assert: every node exactly once
    assert sorted(node_ids(outcome)) == sorted(answers)
    assert [r.node_id for r in outcome.ok] == [11, 12]
    assert outcome.ok[0].receipt == RECEIPT and outcome.ok[0].node_name == "0a1b2c3d4e5f6a7b"
    assert outcome.ok[1].node_name == "12"  # no pseudonym sent: Flower's node id
    assert outcome.ok[1].receipt is None
    assert [(p.node_id, p.node_name, p.reason) for p in outcome.refused] == [
        (13, "9f8e7d6c5b4a3f2e", "task refused: above this node's cap of 1")
    ]
    failed = {p.node_id: p.reason for p in outcome.failed}
    assert failed[14] == "internal error at the node: KeyError"
    assert failed[15] == "RuntimeError: ClientApp crashed"
    assert failed[16].startswith("malformed reply")
    assert failed[17].startswith("malformed reply") and "status" in failed[17]
    assert failed[18].startswith("bad receipt") and "epsilon_total" in failed[18]
    assert failed[19] == "paused"
    assert failed[20] == "no reply: the node went offline"  # Flower returned before the timeout
    assert outcome.round == 4 and outcome.task == "curve" and outcome.seconds == 2.0


def test_messages_go_to_each_node_with_its_content_type_and_timeout() -> None:
    # Prepare
    answers: dict[int, Answer] = {3: ok, 5: ok, 8: silent}
    # Execute
    _, grid = play(answers, timeout=12.5)
    # Assert
    assert [m.metadata.dst_node_id for m in grid.sent] == [3, 5, 8]
    assert all(m.metadata.message_type == CURVE_TASK for m in grid.sent)
    assert [m.content[TASK_KEY]["for"] for m in grid.sent] == [3, 5, 8]
    assert grid.timeouts == [12.5]


def test_duplicate_and_stray_replies_count_once_or_not_at_all() -> None:
    # Prepare: node 1 answers twice and a node that was never asked (999) answers too
    answers: dict[int, Answer] = {1: ok_twice_and_a_stranger, 2: refused}
    # Execute
    outcome, _ = play(answers)
    # Assert
    assert sorted(node_ids(outcome)) == [1, 2]
    assert [r.node_id for r in outcome.ok] == [1]


def test_silent_round_fails_every_node() -> None:
    # Prepare: Flower waits the whole timeout
    answers: dict[int, Answer] = {1: silent, 2: silent, 3: silent}
    # Execute
    outcome, _ = play(answers, timeout=0.5, waits=0.5)
    # Assert
    assert outcome.ok == [] and outcome.refused == [] and outcome.seconds == 0.5
    assert [(p.node_id, p.reason) for p in outcome.failed] == [
        (n, "no reply within 0.5 s") for n in (1, 2, 3)
    ]


def test_summary_names_nodes_and_reasons() -> None:
    # Prepare
    outcome, _ = play({1: ok, 2: refused, 3: silent})
    # Execute
    summary = RoundSummary.from_outcome(outcome).to_json()
    # Assert: nodes by pseudonym (never by a name they sent), else by Flower's id
    assert summary["ok"] == ["0a1b2c3d4e5f6a7b"]
    assert summary["refused"] == [
        {"node": "9f8e7d6c5b4a3f2e", "reason": "task refused: above this node's cap of 1"}
    ]
    assert summary["failed"] == [{"node": "3", "reason": "no reply: the node went offline"}]
    assert summary["round"] == 4 and summary["task"] == "curve"


def test_a_summary_read_back_from_a_checkpoint_is_the_same_summary() -> None:
    # Prepare: a live round's summary, as a checkpoint stores it
    outcome, _ = play({1: ok, 2: refused, 3: silent})
    live = RoundSummary.from_outcome(outcome)
    # Execute
    restored = decode(RoundSummary, json.loads(json.dumps(live.to_json())), "round", ValueError)
    # Assert: one shape, whether the round ran now or before a restart
    assert restored == live and restored.to_json() == live.to_json()


class SlowGrid(Grid):
    """A Flower Grid whose replies arrive one per pull (the rest later); never answers
    ``silent``."""

    def __init__(self, silent: frozenset[int] = frozenset()) -> None:
        self.silent, self.pulls, self.queue = silent, 0, []

    def set_run(self, run) -> None:  # pragma: no cover - not used
        raise AssertionError("send_and_receive must not use it")

    @property
    def run(self):  # pragma: no cover - not used
        raise AssertionError("send_and_receive must not use it")

    def create_message(self, *args, **kwargs):  # pragma: no cover - not used
        raise AssertionError("send_and_receive must not use it")

    def get_node_ids(self) -> list[int]:
        return [1, 2, 3]

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        ids = []
        for i, message in enumerate(messages):
            message.metadata.__dict__["_message_id"] = f"m{i}"
            ids.append(f"m{i}")
            if message.metadata.dst_node_id not in self.silent:
                reply = Message(RecordDict(), reply_to=message)
                reply.metadata.__dict__["_src_node_id"] = message.metadata.dst_node_id
                self.queue.append(reply)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        self.pulls += 1
        wanted = set(message_ids)
        ready = [m for m in self.queue[:1] if m.metadata.reply_to_message_id in wanted]
        self.queue = self.queue[len(ready) :]
        return ready

    def send_and_receive(self, messages, *, timeout=None):  # pragma: no cover - bypassed
        raise AssertionError("the coordinator pulls itself")


def _messages(nodes: list[int]) -> list[Message]:
    return [Message(RecordDict(), dst_node_id=n, message_type=CURVE_TASK) for n in nodes]


@pytest.fixture
def sleeps(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """``time.sleep`` moves the fake clock; the list records every sleep."""
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    monkeypatch.setattr(time, "sleep", sleep)
    return slept


def test_replies_are_pulled_at_the_short_interval_until_all_arrived(sleeps) -> None:
    grid = SlowGrid()
    replies = send_and_receive(grid, _messages([1, 2, 3]), timeout=30.0)
    assert sorted(r.metadata.src_node_id for r in replies) == [1, 2, 3]
    # one reply per pull, then done: two waits of the short interval, not Flower's 3 s
    assert grid.pulls == 3 and sleeps == [PULL_INTERVAL_S] * 2


def test_a_silent_node_ends_the_pulls_at_the_timeout(sleeps) -> None:
    grid = SlowGrid(silent=frozenset({2}))
    replies = send_and_receive(grid, _messages([1, 2, 3]), timeout=0.5)
    assert sorted(r.metadata.src_node_id for r in replies) == [1, 3]
    assert 0.5 <= sum(sleeps) < 0.5 + 2 * PULL_INTERVAL_S
