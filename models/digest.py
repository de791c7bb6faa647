"""The digest of a model's parameters: what names "the same global model" across rounds.

Kept apart from :mod:`models.hazard` (torch) so a node can name a model without loading
torch; ``models.hazard.model_digest`` is this function.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

__all__ = ["model_digest"]

_DIGEST_DOMAIN = b"fedrisk-model-arrays-v1\x00"


def model_digest(arrays: list[np.ndarray]) -> str:
    """SHA-256 over a domain tag and, per array, its dtype/shape header and C-order LE bytes."""
    digest = hashlib.sha256(_DIGEST_DOMAIN)
    for array in arrays:
        values = np.asarray(array)
        values = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))
        header = json.dumps({"dtype": values.dtype.str, "shape": list(values.shape)}).encode()
        payload = values.tobytes(order="C")
        for chunk in (header, payload):
            digest.update(len(chunk).to_bytes(8, "big"))
            digest.update(chunk)
    return digest.hexdigest()
