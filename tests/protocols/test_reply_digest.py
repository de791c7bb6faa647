"""The reply digest: the same at the sender and, after Flower's wire format, the receiver."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from flwr.common.serde import recorddict_from_proto, recorddict_to_proto

from protocols.reply_digest import reply_digest


def a_reply(value: float = 0.5) -> RecordDict:
    return RecordDict(
        {
            "arrays": ArrayRecord({"masked": Array(np.arange(5, dtype=np.uint64))}),
            "metrics": MetricRecord({"noise-std": value}),
            "status": ConfigRecord({"status": "ok", "reason": "", "blob": b"\x00\x01"}),
        }
    )


def test_digest_survives_flowers_wire_format() -> None:
    content = a_reply()
    received = recorddict_from_proto(recorddict_to_proto(content))
    assert reply_digest(received) == reply_digest(content)


def test_digest_changes_with_any_value() -> None:
    base = reply_digest(a_reply())[0]
    assert reply_digest(a_reply(0.5000001))[0] != base
    changed = a_reply()
    changed["arrays"] = ArrayRecord({"masked": Array(np.arange(1, 6, dtype=np.uint64))})
    assert reply_digest(changed)[0] != base


def test_size_counts_the_encoded_bytes() -> None:
    _digest, size = reply_digest(a_reply())
    assert size > 5 * 8  # at least the array's bytes
