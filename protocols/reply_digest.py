"""One digest of a reply's content, computed the same way where it is sent and where it
is received, so node and coordinator ledgers can name the same message.

The digest is SHA-256 over a canonical encoding of the Flower ``RecordDict``: records in
name order; an ArrayRecord as each array's name, dtype, shape and raw bytes (C order); a
ConfigRecord or MetricRecord as canonical JSON (sorted keys, bytes as hex, floats by
repr). ``size`` is the number of bytes encoded, a fair measure of what left the site.

Compatibility rule: the encoding never changes (ledgers name old messages by it); a new
encoding would get a new function name.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, RecordDict

__all__ = ["reply_digest"]


def _plain(value: Any) -> Any:
    """A JSON-ready form of a config/metric value (bytes as hex, lists element-wise)."""
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _record_bytes(record: Any) -> bytes:
    if isinstance(record, ArrayRecord):
        parts = []
        for name in sorted(record):
            array = np.ascontiguousarray(record[name].numpy())
            head = json.dumps([name, array.dtype.str, list(array.shape)]).encode("utf-8")
            parts.append(len(head).to_bytes(4, "big") + head + array.tobytes())
        return b"".join(parts)
    data = {str(k): _plain(v) for k, v in dict(record).items()}
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=True).encode("utf-8")


def reply_digest(content: RecordDict) -> tuple[str, int]:
    """(hex SHA-256, encoded size in bytes) of ``content``."""
    digest = hashlib.sha256()
    size = 0
    for name in sorted(content.keys()):
        record = content[name]
        body = _record_bytes(record)
        label = f"{type(record).__name__}:{name}".encode()
        digest.update(len(label).to_bytes(4, "big") + label + len(body).to_bytes(8, "big"))
        digest.update(body)
        size += len(body)
    return digest.hexdigest(), size
