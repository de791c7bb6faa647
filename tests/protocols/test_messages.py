"""Message records: TaskHeader, ReplyStatus and PrivacyReceipt survive ConfigRecord and the wire."""

from __future__ import annotations

from dataclasses import asdict

import pytest
from flwr.app import ConfigRecord

from privacy.mechanisms import Mechanism
from protocols.messages import PrivacyReceipt, ReplyStatus, TaskHeader


def make_header(**changes: object) -> TaskHeader:
    """Factory: a plausible task header."""
    fields = {
        "run_id": "run-2024-07-01",
        "round": 3,
        "kind": "model",
        "plan_json": '{"training":{"rounds":10}}',
        "plan_digest": "ab" * 32,
    }
    return TaskHeader(**(fields | changes))


def make_receipt(**changes: object) -> PrivacyReceipt:
    """Factory: a DP-SGD receipt with distinct values in every field."""
    fields = {
        "unit": "record",
        "mechanism": Mechanism.DP_SGD,
        "noise_multiplier": 1.37,
        "sample_rate": 0.064,
        "steps": 32,
        "max_grad_norm": 1.0,
        "sensitivity": 1.0,
        "epsilon_task": 0.41,
        "epsilon_total": 1.83,
        "epsilon_cap": 5.0,
        "delta": 1e-6,
        "accountant": "rdp",
        "secure_rng": False,
    }
    return PrivacyReceipt(**(fields | changes))


RECORDS = [
    make_header(),
    make_header(kind="curve", round=11),
    ReplyStatus("ok", node_name="enterprise-01"),
    ReplyStatus("refused", reason="task refused: above this node's cap of 1"),
    make_receipt(),
    make_receipt(
        mechanism=Mechanism.CURVE_HISTOGRAM,
        sample_rate=1.0,
        steps=1,
        sensitivity=2**0.5,
        secure_rng=True,
    ),
]


@pytest.mark.parametrize("original", RECORDS, ids=lambda r: type(r).__name__)
def test_record_round_trips_through_config_record(original: object) -> None:
    # Prepare
    cls = type(original)
    # Execute
    record = original.to_record()
    back = cls.from_record(record)
    # Assert: equal, and every field kept its Python type (int stays int, bool stays bool)
    assert isinstance(record, ConfigRecord)
    assert back == original
    for name, value in asdict(original).items():
        assert type(getattr(back, name)) is type(value), name


@pytest.mark.parametrize("original", RECORDS, ids=lambda r: type(r).__name__)
def test_record_round_trips_through_flower_serialisation(original: object) -> None:
    # Prepare: what goes over the wire is the deflated ConfigRecord
    wire = original.to_record().deflate()
    # Execute
    back = type(original).from_record(ConfigRecord.inflate(wire))
    # Assert
    assert back == original


@pytest.mark.parametrize(
    ("cls", "original", "dropped"),
    [
        (TaskHeader, make_header(), ("plan_digest",)),
        (TaskHeader, make_header(), ("round", "run_id")),
        (ReplyStatus, ReplyStatus("ok"), ("status",)),
        (PrivacyReceipt, make_receipt(), ("epsilon_total", "delta", "secure_rng")),
    ],
)
def test_missing_key_raises_naming_every_missing_key(
    cls: type, original: object, dropped: tuple[str, ...]
) -> None:
    # Prepare
    data = asdict(original)
    for key in dropped:
        del data[key]
    record = ConfigRecord(data)
    # Execute / Assert
    with pytest.raises(ValueError, match=cls.__name__) as info:
        cls.from_record(record)
    message = str(info.value)
    for key in dropped:
        assert repr(key) in message
    kept = set(asdict(original)) - set(dropped)
    assert not any(repr(key) in message for key in kept)


def test_optional_keys_take_their_defaults() -> None:
    # Prepare: an old-style status record with only the required key
    record = ConfigRecord({"status": "error"})
    # Execute
    status = ReplyStatus.from_record(record)
    # Assert
    assert status == ReplyStatus("error", reason="", node_name="")


def test_unknown_keys_are_ignored_for_forward_compatibility() -> None:
    # Prepare: a newer sender added a key (the compatibility rule only ever adds keys)
    original = make_header()
    record = ConfigRecord(asdict(original) | {"added_in_v2": "something"})
    # Execute
    back = TaskHeader.from_record(record)
    # Assert
    assert back == original
