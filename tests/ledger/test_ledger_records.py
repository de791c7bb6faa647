"""Ledger record types: round trips, named missing keys, unknown kinds, stable bytes."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest

from ledger.log import Entry, canonical_json
from ledger.records import (
    RECORD_TYPES,
    CanaryAudited,
    CheckpointWritten,
    ContributionResent,
    InclusionChecked,
    LedgerRecord,
    MessageReceived,
    MessageSent,
    NodeReason,
    OutputsPublished,
    PlanApproved,
    PrivacySpent,
    RecordError,
    ReleaseAccounted,
    RiskShared,
    RoundRecorded,
    RunEnded,
    RunResumed,
    RunStarted,
    TaskRefused,
    record_class,
    record_from_entry,
)
from privacy.mechanisms import Mechanism

DIGEST = "ab" * 32


def examples() -> list[LedgerRecord]:
    """Factory: one record of every type, with recognisable values."""
    return [
        RunStarted("run-1", DIGEST, DIGEST, DIGEST, 2.0, 1e-5, 8.0, 1e-3, 8, True),
        RunStarted("run-2", DIGEST, DIGEST, DIGEST, 1.5, 1e-6, None, None, 3, False),
        RoundRecorded(
            "run-1",
            2,
            "model",
            ("node-a", "node-b"),
            (NodeReason("node-c", "budget cap"),),
            (NodeReason("node-d", "timeout"),),
            ("node-e",),
            12.5,
        ),
        ReleaseAccounted(
            "run-1", 2, "model", "node-a", "record", "dp_sgd", 1.1, 0.01, 40, 1.0, 1,
            0.25, 0.75, 4.0, 1e-5, DIGEST,
        ),
        MessageReceived("run-1", 2, "model", "node-a", "ok", DIGEST),
        OutputsPublished("run-1", DIGEST, None, ("fab",), ("robot",)),
        RunEnded("run-1", "completed", None),
        RunEnded("run-2", "failed", "too few nodes"),
        MessageSent("run-1", 2, "model", "model_update", "ok", DIGEST, 20480),
        PrivacySpent(
            "run-1", 2, "curve", "enterprise", Mechanism.CURVE_HISTOGRAM, 3.0, 1.0, 1,
            1.0, 5, 0.3, 1.2, 6.8, 8.0, 1e-5,
        ),
        TaskRefused("run-1", 3, "model", "lifetime epsilon cap 8.0 would be passed"),
        PlanApproved(DIGEST, "site-it@example", "approved for Q3"),
        CheckpointWritten("run-1", 2, DIGEST),
        RunResumed("run-1", DIGEST, 3, 2, DIGEST),
        ContributionResent("run-1", 3, "model", DIGEST),
        InclusionChecked("run-1", 41, DIGEST, (3, 7, 11), True, ""),
        CanaryAudited("run-1", DIGEST, 300, 148, DIGEST, 1e-6, 0.95, 0.12, 1.0, 0.0, None,
                      "claims hold", DIGEST),
        RiskShared("risk-1", 0, "risk_share", "factor", DIGEST, 787, "record",
                   Mechanism.RISK_FACTOR, 7.7, 1.0, 1, 4.12, 1, 0.5, 1.9, 3.1, 5.0, 1e-5),
    ]  # fmt: skip


@pytest.mark.parametrize("record", examples(), ids=lambda r: type(r).__name__)
def test_round_trip_through_the_body(record: LedgerRecord) -> None:
    # Execute
    body = record.to_body()
    again = type(record).from_body(body)
    # Assert: equal, and the body is plain JSON (lists, not tuples)
    assert again == record
    assert canonical_json(body) == canonical_json(again.to_body())
    assert all(not isinstance(value, tuple) for value in body.values())


def test_every_type_is_registered_frozen_and_exemplified() -> None:
    kinds = {type(r).KIND for r in examples()}
    assert kinds == set(RECORD_TYPES)
    for kind, cls in RECORD_TYPES.items():
        assert kind == cls.KIND and cls.VERSION >= 1
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
        assert cls.__doc__


@pytest.mark.parametrize("record", examples(), ids=lambda r: type(r).__name__)
def test_a_missing_key_is_named(record: LedgerRecord) -> None:
    # Prepare: drop the last field without a default (fields added later have defaults)
    body = record.to_body()
    required = [f.name for f in dataclasses.fields(record) if f.default is dataclasses.MISSING]
    last = required[-1]
    del body[last]
    # Execute / Assert
    with pytest.raises(RecordError, match=f"{record.KIND} record misses key\\(s\\) '{last}'"):
        type(record).from_body(body)


def test_a_version_1_plan_approval_without_an_app_hash_still_parses() -> None:
    # PlanApproved version 2 added app_hash; ledgers written before keep their meaning
    body = {"plan_digest": DIGEST, "approved_by": "site IT", "note": ""}
    entry = Entry(0, 1.0, PlanApproved.KIND, 1, body)
    assert record_from_entry(entry) == PlanApproved(DIGEST, "site IT", "", "")


def test_unknown_keys_and_wrong_types_are_named() -> None:
    body: dict[str, Any] = {**RunEnded("r", "completed", None).to_body(), "extra": 1}
    with pytest.raises(RecordError, match="run_ended record has unknown key\\(s\\) 'extra'"):
        RunEnded.from_body(body)
    accounted = examples()[3].to_body()
    with pytest.raises(RecordError, match="release_accounted record.unit must be one of"):
        ReleaseAccounted.from_body({**accounted, "unit": "site"})
    with pytest.raises(RecordError, match="release_accounted record.steps must be"):
        ReleaseAccounted.from_body({**accounted, "steps": 40.0})
    with pytest.raises(RecordError, match="round_recorded record.refused\\[0\\] misses key"):
        RoundRecorded.from_body({**examples()[2].to_body(), "refused": [{"node": "x"}]})
    with pytest.raises(RecordError, match="inclusion_checked record.ok must be"):
        InclusionChecked.from_body({**examples()[-1].to_body(), "ok": 1})


def test_unknown_kind_and_newer_version_are_refused() -> None:
    with pytest.raises(RecordError, match="unknown record kind 'run_paused'; known: \\["):
        record_class("run_paused")
    entry = Entry(4, 1.0, "run_ended", 2, RunEnded("r", "completed", None).to_body())
    with pytest.raises(RecordError, match="entry 4: run_ended version 2, this fedrisk reads"):
        record_from_entry(entry)


def test_record_from_entry_gives_the_typed_record() -> None:
    record = examples()[3]
    entry = Entry(0, 1.0, record.KIND, record.VERSION, record.to_body())
    assert record_from_entry(entry) == record


def test_canonical_bytes_are_stable() -> None:
    # Prepare: a fixed entry; these bytes are hashed and signed, so they must never change
    record = RoundRecorded("run-1", 1, "model", ("b", "a"), (NodeReason("c", "é"),), (), (), 2.5)
    entry = Entry(3, 1700000000.25, record.KIND, record.VERSION, record.to_body())
    # Execute / Assert
    assert (
        entry.canonical()
        == (
            '{"body":{"dropped":[],"failed":[],"participants":["b","a"],'
            '"refused":[{"node":"c","reason":"é"}],"round":1,"run_id":"run-1","seconds":2.5,'
            '"task":"model"},"kind":"round_recorded","seq":3,"time":1700000000.25,"version":1}'
        ).encode()
    )
    assert entry.leaf_hash().hex() == (hashlib.sha256(b"\x00" + entry.canonical()).hexdigest())
