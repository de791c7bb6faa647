"""The tamper corpus at audit level: every mutation of a real run's ledgers is caught.

Each case copies the run's five ledgers (coordinator + 4 nodes, from
tests/auditor/test_audit.py), mutates them, runs the audit with the real public keys, and must get
the expected exit code with an error whose text names what was changed. File-level
mutations (edited fields, flipped bits, truncation, reordering, insertion, deletion, wrong
keys, swapped or forked tree heads) must fail as invalid ledgers (50). Content mutations
re-signed with the owner's real key (so every signature and proof verifies) must be caught
by the recomputation (51, 52) or the cross-checks (53). Detection must be 100 %.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from test_audit import FederationRun, Party, audit_all, federation_run, rebuild_ledger

from common.exit_codes import ExitCode
from ledger.log import TreeHead, canonical_json, read_ledger
from ledger.merkle import MerkleTree, leaf_hash
from ledger.records import (
    CheckpointWritten,
    ContributionResent,
    LedgerRecord,
    MessageReceived,
    MessageSent,
    PrivacySpent,
    ReleaseAccounted,
    RoundRecorded,
    RunEnded,
    RunResumed,
    RunStarted,
)
from ledger.signing import generate_private_key, load_private_key

pytestmark = pytest.mark.integration

ENTRIES, HEADS = "entries.jsonl", "tree_heads.jsonl"
INVALID = ExitCode.AUDIT_LEDGER_INVALID
EPSILON = ExitCode.AUDIT_EPSILON_MISMATCH
CAP = ExitCode.AUDIT_CAP_EXCEEDED
CROSS = ExitCode.AUDIT_CROSS_CHECK_FAILED

#: Every mutation kind of the corpus (the issue's list, file-level then re-signed).
KINDS = (
    "edited-entry-field",
    "edited-tree-head-field",
    "flipped-bit",
    "truncated-entries",
    "truncated-tree-heads",
    "reordered-entries",
    "reordered-tree-heads",
    "inserted-entry",
    "deleted-entry",
    "wrong-key-tree-head",
    "wrong-key-entry",
    "wrong-key-all-heads",
    "swapped-tree-heads",
    "forked-tree-head",
    "edited-epsilon-claim",
    "edited-noise-multiplier",
    "edited-mechanism-parameter",
    "edited-cap",
    "deleted-message-received",
    "fabricated-message-received",
    "deleted-release-accounted",
    "deleted-message-sent",
    "deleted-privacy-spent",
    "coordinator-rolled-back",
    "coordinator-forked",
    "round-recorded-twice",
    "resumed-completed-round",
    "resent-without-spend",
)

Mutation = Callable[[FederationRun], None]


@dataclass(frozen=True)
class Case:
    """One mutation: its ``kind``, a ``name``, what it does to a copy of the run, the
    exit code it must give and a regex that one error (as text) must match."""

    kind: str
    name: str
    mutate: Mutation
    expected: ExitCode
    match: str


@dataclass(frozen=True)
class Outcome:
    case: Case
    exit_code: ExitCode
    errors: tuple[str, ...]

    @property
    def detected(self) -> bool:
        return self.exit_code == self.case.expected and any(
            re.search(self.case.match, e) for e in self.errors
        )


# -- file helpers --------------------------------------------------------------------------


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def _write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def _changed(value: Any) -> Any:
    """A different value of the same JSON type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 1.5 + 0.25
    if isinstance(value, str):
        return value[:-1] + ("0" if value[-1:] != "0" else "1")
    if isinstance(value, list):
        return value[:-1] if value else ["x"]
    if value is None:
        return "x"
    return {**value, "x": 1}


def _party(run: FederationRun, index: int) -> Party:
    return run.parties[index]


def _name(party: Party) -> str:
    return "coordinator" if party.ledger_id == "coordinator" else f"node {party.ledger_id}"


def _ledger_error(party: Party, kind: str = "[a-z-]+") -> str:
    """A ledger-class error of ``kind`` naming ``party``'s ledger."""
    return rf"error \[ledger/{kind}\] {re.escape(_name(party))}"


# -- file-level mutations ------------------------------------------------------------------


def _edit_field(index: int, file: str, line: int, key: str, in_body: bool) -> Mutation:
    def mutate(run: FederationRun) -> None:
        path = _party(run, index).ledger / file
        lines = _lines(path)
        obj = json.loads(lines[line])
        target = obj["body"] if in_body else obj
        target[key] = _changed(target[key])
        lines[line] = canonical_json(obj)
        _write(path, lines)

    return mutate


def _flip_bit(index: int, file: str, line: int, fraction: float) -> Mutation:
    def mutate(run: FederationRun) -> None:
        path = _party(run, index).ledger / file
        lines = _lines(path)
        data = bytearray(lines[line])
        data[int(fraction * (len(data) - 1))] ^= 0x04
        lines[line] = bytes(data)
        _write(path, lines)

    return mutate


def _rewrite(index: int, file: str, edit: Callable[[list[bytes]], list[bytes]]) -> Mutation:
    def mutate(run: FederationRun) -> None:
        path = _party(run, index).ledger / file
        _write(path, edit(_lines(path)))

    return mutate


def _swap(lines: list[bytes], i: int, j: int) -> list[bytes]:
    out = list(lines)
    out[i], out[j] = out[j], out[i]
    return out


def _head(key: Any, party: Party, lines: list[bytes], timestamp: float) -> bytes:
    tree = MerkleTree([leaf_hash(line) for line in lines])
    return TreeHead.create(
        key,
        tree_size=tree.size,
        root_hash=tree.root().hex(),
        timestamp=timestamp,
        ledger_id=party.ledger_id,
    ).canonical()


def _wrong_key_head(index: int) -> Mutation:
    """The last tree head replaced by one over the same entries signed by another key."""

    def mutate(run: FederationRun) -> None:
        party = _party(run, index)
        heads = _lines(party.ledger / HEADS)
        last = json.loads(heads[-1])
        heads[-1] = _head(
            generate_private_key(), party, _lines(party.ledger / ENTRIES), last["timestamp"]
        )
        _write(party.ledger / HEADS, heads)

    return mutate


def _wrong_key_entry(index: int) -> Mutation:
    """An extra entry, and a head covering it signed by another key."""

    def mutate(run: FederationRun) -> None:
        party = _party(run, index)
        entries = _lines(party.ledger / ENTRIES)
        extra = json.loads(entries[-1])
        extra["seq"] += 1
        entries.append(canonical_json(extra))
        _write(party.ledger / ENTRIES, entries)
        head = _head(generate_private_key(), party, entries, extra["time"] + 1.0)
        _write(party.ledger / HEADS, [*_lines(party.ledger / HEADS), head])

    return mutate


def _wrong_key_all_heads(index: int) -> Mutation:
    """Every tree head re-signed by another key: the ledger has no trusted key."""

    def mutate(run: FederationRun) -> None:
        party = _party(run, index)
        key = generate_private_key()
        entries = _lines(party.ledger / ENTRIES)
        heads = []
        for line in _lines(party.ledger / HEADS):
            old = json.loads(line)
            heads.append(_head(key, party, entries[: old["tree_size"]], old["timestamp"]))
        _write(party.ledger / HEADS, heads)

    return mutate


def _swap_heads(a: int, b: int) -> Mutation:
    def mutate(run: FederationRun) -> None:
        first, second = _party(run, a).ledger / HEADS, _party(run, b).ledger / HEADS
        data = first.read_bytes()
        first.write_bytes(second.read_bytes())
        second.write_bytes(data)

    return mutate


def _fork(index: int) -> Mutation:
    """The owner signs a second head of the latest size over a different last entry."""

    def mutate(run: FederationRun) -> None:
        party = _party(run, index)
        entries = _lines(party.ledger / ENTRIES)
        other = json.loads(entries[-1])
        other["time"] += 0.5
        forked = [*entries[:-1], canonical_json(other)]
        last = json.loads(_lines(party.ledger / HEADS)[-1])
        head = _head(load_private_key(party.private_key), party, forked, last["timestamp"] + 1)
        _write(party.ledger / HEADS, [*_lines(party.ledger / HEADS), head])

    return mutate


def _file_cases(run: FederationRun) -> list[Case]:
    cases: list[Case] = []
    for index, party in enumerate(run.parties):
        entries = read_ledger(party.ledger).entries()
        heads = _lines(party.ledger / HEADS)
        err, who = _ledger_error(party), _name(party)
        for seq in _interesting_seqs(entries):
            body = entries[seq].body
            for key in ("seq", "time", "kind", "version", *body):
                cases.append(
                    Case(
                        "edited-entry-field",
                        f"{who} seq {seq} {key}",
                        _edit_field(index, ENTRIES, seq, key, key in body),
                        INVALID,
                        err,
                    )
                )
        for line in (0, len(heads) - 1):
            for key in json.loads(heads[line]):
                cases.append(
                    Case(
                        "edited-tree-head-field",
                        f"{who} head {line} {key}",
                        _edit_field(index, HEADS, line, key, False),
                        INVALID,
                        err,
                    )
                )
        for file, count in ((ENTRIES, len(entries)), (HEADS, len(heads))):
            for line, fraction in ((0, 0.1), (count // 2, 0.5), (count - 1, 0.9)):
                cases.append(
                    Case(
                        "flipped-bit",
                        f"{who} {file}:{line + 1} at {fraction:.0%}",
                        _flip_bit(index, file, line, fraction),
                        INVALID,
                        err,
                    )
                )
        middle = len(entries) // 2
        cases += [
            Case(
                "truncated-entries",
                f"{who} last entry dropped",
                _rewrite(index, ENTRIES, lambda ls: ls[:-1]),
                INVALID,
                _ledger_error(party, "truncated"),
            ),
            Case(
                "truncated-entries",
                f"{who} cut to 5 entries",
                _rewrite(index, ENTRIES, lambda ls: ls[:5]),
                INVALID,
                _ledger_error(party, "truncated"),
            ),
            Case(
                "reordered-entries",
                f"{who} entries {middle} and {middle + 1} swapped",
                _rewrite(index, ENTRIES, lambda ls, m=middle: _swap(ls, m, m + 1)),
                INVALID,
                _ledger_error(party, "seq-order") + ".*expected seq",
            ),
            Case(
                "reordered-tree-heads",
                f"{who} heads 1 and 2 swapped",
                _rewrite(index, HEADS, lambda ls: _swap(ls, 1, 2)),
                INVALID,
                err,
            ),
            Case(
                "inserted-entry",
                f"{who} entry {middle} duplicated",
                _rewrite(index, ENTRIES, lambda ls, m=middle: [*ls[: m + 1], *ls[m:]]),
                INVALID,
                err,
            ),
            Case(
                "deleted-entry",
                f"{who} entry {middle} deleted",
                _rewrite(index, ENTRIES, lambda ls, m=middle: ls[:m] + ls[m + 1 :]),
                INVALID,
                err,
            ),
            Case(
                "wrong-key-tree-head",
                f"{who} last head signed by another key",
                _wrong_key_head(index),
                INVALID,
                err + r".*signed by key",
            ),
            Case(
                "wrong-key-entry",
                f"{who} extra entry signed by another key",
                _wrong_key_entry(index),
                INVALID,
                err + r".*signed by key",
            ),
            Case(
                "wrong-key-all-heads",
                f"{who} every head signed by another key",
                _wrong_key_all_heads(index),
                INVALID,
                r"no-trusted-key.*no given public key",
            ),
            Case(
                "forked-tree-head",
                f"{who} second head of the same size",
                _fork(index),
                INVALID,
                _ledger_error(party, "fork") + ".*same size",
            ),
            Case(
                "truncated-tree-heads",
                f"{who} last two heads dropped",
                _rewrite(index, HEADS, lambda ls: ls[:-2]),
                CROSS,
                r"rolled back" if index == 0 else r"no message_sent",
            ),
        ]
    cases += [
        Case(
            "swapped-tree-heads",
            "heads of node 0 and node 1 swapped",
            _swap_heads(1, 2),
            INVALID,
            r"root-mismatch",
        ),
        Case(
            "swapped-tree-heads",
            "heads of the coordinator and node 3 swapped",
            _swap_heads(0, 4),
            INVALID,
            r"root-mismatch",
        ),
    ]
    return cases


def _interesting_seqs(entries: list) -> list[int]:
    """First entry, the first of each release/message kind, and the last entry."""
    kinds = ("release_accounted", "message_received", "privacy_spent", "message_sent")
    seqs = {0, len(entries) - 1}
    for kind in kinds:
        seqs |= {next((e.seq for e in entries if e.kind == kind), 0)}
    return sorted(seqs)


# -- re-signed content mutations -------------------------------------------------------------


def _resign(index: int, edit: Callable[[list[LedgerRecord]], list[LedgerRecord]]) -> Mutation:
    def mutate(run: FederationRun) -> None:
        rebuild_ledger(_party(run, index), edit)

    return mutate


def _nth(cls: type, n: int = 0, where: Callable[[Any], bool] = lambda r: True):
    """An edit applying ``change`` to the ``n``-th record of type ``cls`` (matching ``where``)."""

    def edit_with(change: Callable[[Any], Any | None]):
        def edit(records: list[LedgerRecord]) -> list[LedgerRecord]:
            hits = [i for i, r in enumerate(records) if isinstance(r, cls) and where(r)]
            i = hits[n]
            new = change(records[i])
            return records[:i] + ([] if new is None else [new]) + records[i + 1 :]

        return edit

    return edit_with


def _spent(r: PrivacySpent, **changes: Any) -> PrivacySpent:
    """A PrivacySpent edited consistently (remaining follows the total and the cap)."""
    new = replace(r, **changes)
    return replace(new, epsilon_remaining=new.epsilon_cap - new.epsilon_total)


def _all_spent(change: Callable[[PrivacySpent], PrivacySpent]):
    def edit(records: list[LedgerRecord]) -> list[LedgerRecord]:
        return [change(r) if isinstance(r, PrivacySpent) else r for r in records]

    return edit


def _content_cases(run: FederationRun) -> list[Case]:
    node0, node1 = run.nodes[0].ledger_id, run.nodes[1].ledger_id
    spent, release = _nth(PrivacySpent), _nth(ReleaseAccounted)
    last_spent = _nth(PrivacySpent, -1)
    model = _nth(MessageReceived, 0, lambda r: r.task == "model" and r.node == node0)
    keys = _nth(MessageReceived, 0, lambda r: r.task == "secagg-keys" and r.node == node1)
    sent_update = _nth(MessageSent, 0, lambda r: r.purpose == "model-update")
    sent_keys = _nth(MessageSent, 0, lambda r: r.purpose == "secagg-keys")
    fake = MessageReceived("inproc", 1, "model", node0, "ok", "ab" * 32)

    def c(kind: str, name: str, index: int, edit, expected: ExitCode, match: str) -> Case:
        return Case(kind, name, _resign(index, edit), expected, match)

    return [
        c(
            "edited-epsilon-claim",
            "node lifetime epsilon halved",
            1,
            spent(lambda r: _spent(r, epsilon_total=r.epsilon_total / 2)),
            EPSILON,
            r"understated.*lifetime epsilon",
        ),
        c(
            "edited-epsilon-claim",
            "node release epsilon halved",
            2,
            last_spent(lambda r: replace(r, epsilon_task=r.epsilon_task / 2)),
            EPSILON,
            r"understated.*epsilon of this release",
        ),
        c(
            "edited-epsilon-claim",
            "node lifetime epsilon raised",
            3,
            spent(lambda r: _spent(r, epsilon_total=r.epsilon_total * 1.5)),
            CROSS,
            r"release-mismatch.*epsilon_total_claimed",
        ),
        c(
            "edited-epsilon-claim",
            "coordinator release epsilon halved",
            0,
            release(lambda r: replace(r, epsilon_claimed=r.epsilon_claimed / 2)),
            EPSILON,
            r"understated.*epsilon of the release",
        ),
        c(
            "edited-epsilon-claim",
            "coordinator lifetime claim halved",
            0,
            release(lambda r: replace(r, epsilon_total_claimed=r.epsilon_total_claimed / 2)),
            CROSS,
            r"release-mismatch.*epsilon_total_claimed",
        ),
        c(
            "edited-noise-multiplier",
            "node noise multiplier doubled",
            1,
            spent(lambda r: replace(r, noise_multiplier=r.noise_multiplier * 2)),
            CROSS,
            r"release-mismatch.*noise_multiplier",
        ),
        c(
            "edited-noise-multiplier",
            "node noise halved",  # z and the share (a Skellam release is recomputed from it)
            2,
            spent(
                lambda r: replace(
                    r, noise_multiplier=r.noise_multiplier / 2, share_std=r.share_std / 2
                )
            ),
            EPSILON,
            r"understated",
        ),
        c(
            "edited-noise-multiplier",
            "node share std halved",  # z kept: the auditor recomputes from the share
            2,
            spent(lambda r: replace(r, share_std=r.share_std / 2)),
            EPSILON,
            r"understated",
        ),
        c(
            "edited-noise-multiplier",
            "node curve noise multiplier +1%",
            4,
            last_spent(lambda r: replace(r, noise_multiplier=r.noise_multiplier * 1.01)),
            CROSS,
            r"release-mismatch.*noise_multiplier",
        ),
        c(
            "edited-noise-multiplier",
            "coordinator noise multiplier doubled",
            0,
            release(lambda r: replace(r, noise_multiplier=r.noise_multiplier * 2)),
            CROSS,
            r"release-mismatch.*noise_multiplier",
        ),
        c(
            "edited-noise-multiplier",
            "coordinator noise halved",
            0,
            release(
                lambda r: replace(
                    r, noise_multiplier=r.noise_multiplier / 2, share_std=r.share_std / 2
                )
            ),
            CAP,
            r"understated.*epsilon of the release",
        ),
        c(
            "edited-mechanism-parameter",
            "node sample rate halved",  # a Skellam release is never subsampled: not valid
            3,
            spent(lambda r: replace(r, sample_rate=r.sample_rate / 2)),
            INVALID,
            r"out-of-range.*not subsampled",
        ),
        c(
            "edited-mechanism-parameter",
            "node steps reduced",
            3,
            spent(lambda r: replace(r, steps=r.steps - 1)),
            CROSS,
            r"release-mismatch.*steps",
        ),
        c(
            "edited-mechanism-parameter",
            "node sensitivity halved",
            4,
            spent(lambda r: replace(r, sensitivity=r.sensitivity / 2)),
            CROSS,
            r"release-mismatch.*sensitivity",
        ),
        c(
            "edited-mechanism-parameter",
            "node noise shares changed",
            4,
            last_spent(lambda r: replace(r, noise_shares=r.noise_shares + 1)),
            CROSS,
            r"release-mismatch.*noise_shares",
        ),
        c(
            "edited-mechanism-parameter",
            "coordinator mechanism renamed",
            0,
            release(lambda r: replace(r, mechanism="laplace")),
            EPSILON,
            r"unknown-mechanism",
        ),
        c(
            "edited-cap",
            "node cap lowered below its spend",
            1,
            _all_spent(lambda r: _spent(r, epsilon_cap=1.0)),
            CAP,
            r"cap-exceeded.*lifetime epsilon",
        ),
        c(
            "edited-cap",
            "plan's record epsilon lowered",
            0,
            _nth(RunStarted)(lambda r: replace(r, record_epsilon=1.5)),
            CAP,
            r"cap-exceeded.*record_epsilon",
        ),
        c(
            "edited-cap",
            "coordinator cap lowered below the claim",
            0,
            release(lambda r: replace(r, epsilon_cap=1.0)),
            CAP,
            r"cap-exceeded.*claimed",
        ),
        c(
            "deleted-message-received",
            "model update of node 0",
            0,
            model(lambda r: None),
            CROSS,
            r"message-unmatched.*no message_received",
        ),
        c(
            "deleted-message-received",
            "secagg keys of node 1",
            0,
            keys(lambda r: None),
            CROSS,
            r"message-unmatched.*no message_received",
        ),
        c(
            "fabricated-message-received",
            "a message node 0 never sent",
            0,
            model(lambda r: fake),
            CROSS,
            r"message-unsent",
        ),
        c(
            "fabricated-message-received",
            "node 0's update attributed to node 1",
            0,
            model(lambda r: replace(r, node=node1)),
            CROSS,
            r"message-mismatch.*as from node",
        ),
        c(
            "deleted-release-accounted",
            "first release",
            0,
            release(lambda r: None),
            CROSS,
            r"release-unaccounted.*no release_accounted",
        ),
        c(
            "deleted-message-sent",
            "node 0's first model update",
            1,
            sent_update(lambda r: None),
            CROSS,
            r"release-unmatched|message-unsent",
        ),
        c(
            "deleted-message-sent",
            "node 1's first secagg keys",
            2,
            sent_keys(lambda r: None),
            CROSS,
            r"message-unsent",
        ),
        c(
            "deleted-privacy-spent",
            "node 0's first spend",
            1,
            spent(lambda r: None),
            CROSS,
            r"release-unmatched.*no privacy_spent",
        ),
        c(
            "coordinator-rolled-back",
            "to its first 60 entries",
            0,
            lambda rs: rs[:60],
            CROSS,
            r"rolled-back.*rolled back",
        ),
        c(
            "coordinator-rolled-back",
            "last round dropped",
            0,
            lambda rs: rs[:51],
            CROSS,
            r"rolled-back.*rolled back",
        ),
        c(
            "coordinator-forked",
            "same size, RunStarted edited",
            0,
            _nth(RunStarted)(lambda r: replace(r, expected_nodes=5)),
            CROSS,
            r"inclusion-root.*forked or rewritten",
        ),
        *_resumption_cases(c),
    ]


def _resumption_cases(c: Callable[..., Case]) -> list[Case]:
    """A round counted twice, or a resumption that re-runs a completed round, in the
    coordinator's ledger; a node's re-send of a release it never spent."""

    def release_twice(records: list[LedgerRecord]) -> list[LedgerRecord]:
        """The first release recorded again right after itself."""
        i = next(i for i, r in enumerate(records) if isinstance(r, ReleaseAccounted))
        return records[: i + 1] + [records[i]] + records[i + 1 :]

    def exchange_twice(records: list[LedgerRecord]) -> list[LedgerRecord]:
        """Round 1's model exchange recorded again after the last round's, no resumption."""
        models = [i for i, r in enumerate(records) if isinstance(r, RoundRecorded)]
        models = [i for i in models if getattr(records[i], "task", "") == "model"]
        return records[: models[-1] + 1] + [records[models[0]]] + records[models[-1] + 1 :]

    def resumed_from_completed(records: list[LedgerRecord]) -> list[LedgerRecord]:
        """A resumption from round 1 before the run's end, its rounds recorded complete."""
        assert any(isinstance(r, CheckpointWritten) for r in records)
        end = next(i for i, r in enumerate(records) if isinstance(r, RunEnded))
        resumed = RunResumed("inproc", "cd" * 32, 1, 0, "")
        return [*records[:end], resumed, *records[end:]]

    def resent_unspent(records: list[LedgerRecord]) -> list[LedgerRecord]:
        """The node's first spend turned into a re-send of the release that follows it."""
        i = next(i for i, r in enumerate(records) if isinstance(r, PrivacySpent))
        spent, sent = records[i], records[i + 1]
        assert isinstance(spent, PrivacySpent) and isinstance(sent, MessageSent)
        resent = ContributionResent(spent.run_id, spent.round, spent.task, sent.sha256)
        return records[:i] + [resent] + records[i + 1 :]

    return [
        c(
            "round-recorded-twice",
            "the first release recorded twice",
            0,
            release_twice,
            INVALID,
            r"round-recorded-twice.*release_accounted of round 1",
        ),
        c(
            "round-recorded-twice",
            "round 1's model exchange again after the last round",
            0,
            exchange_twice,
            INVALID,
            r"round-recorded-twice.*round_recorded of round 1 \(model\)",
        ),
        c(
            "resumed-completed-round",
            "a resumption from a completed round",
            0,
            resumed_from_completed,
            INVALID,
            r"resumed-completed-round.*from round 1, but round \d+ was recorded as complete",
        ),
        c(
            "resent-without-spend",
            "node 0's first spend recorded as a re-send",
            1,
            resent_unspent,
            CROSS,
            r"release-unmatched.*no privacy_spent",
        ),
    ]


def corpus(run: FederationRun) -> list[Case]:
    return _file_cases(run) + _content_cases(run)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> list[Outcome]:
    """Every case of the corpus run against a fresh copy of the run's ledgers."""
    run = federation_run(tmp_path_factory)
    base = tmp_path_factory.mktemp("tamper")
    results = []
    for number, case in enumerate(corpus(run)):
        copy = run.copy_to(base / str(number))
        case.mutate(copy)
        result = audit_all(copy)
        results.append(Outcome(case, result.exit_code, tuple(str(f) for f in result.errors)))
        shutil.rmtree(base / str(number))
    return results


def test_an_untouched_copy_passes(tmp_path_factory, tmp_path) -> None:
    # Prepare
    copy = federation_run(tmp_path_factory).copy_to(tmp_path)
    # Execute
    result = audit_all(copy)
    # Assert
    assert result.exit_code == ExitCode.SUCCESS, [str(f) for f in result.errors]


@pytest.mark.parametrize("kind", KINDS)
def test_every_case_of_a_kind_is_detected(outcomes, kind) -> None:
    # Prepare
    cases = [o for o in outcomes if o.case.kind == kind]
    # Assert: each case gives its exit code and an error naming what changed
    assert cases, f"no case of kind {kind}"
    missed = [
        f"{o.case.name}: exit {int(o.exit_code)}, expected {int(o.case.expected)}; "
        f"errors {list(o.errors)[:3]}"
        for o in cases
        if not o.detected
    ]
    assert not missed, "\n".join(missed)


def test_the_whole_corpus_is_detected(outcomes) -> None:
    # Execute
    per_kind = Counter(o.case.kind for o in outcomes)
    detected = sum(o.detected for o in outcomes)
    print(
        f"\ntamper corpus: {len(per_kind)} kinds, {len(outcomes)} cases, "
        f"{detected}/{len(outcomes)} detected ({detected / len(outcomes):.0%})"
    )
    for kind in KINDS:
        print(f"  {kind}: {per_kind[kind]}")
    # Assert
    assert set(per_kind) == set(KINDS)
    assert len(outcomes) >= 250
    assert detected == len(outcomes)
