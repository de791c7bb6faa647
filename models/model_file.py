"""The global model's parameter arrays as the npz file a run publishes (global_model.npz).

Kept apart from :mod:`models.hazard` (torch), like :mod:`models.digest`: the auditor and
the broker's pricing read the published model without loading torch. The arrays are
named ``param_000``, ``param_001``, ... in the model's order; no pickle either way.
"""

from __future__ import annotations

import io

import numpy as np

__all__ = ["MODEL_FILE", "arrays_to_npz", "arrays_from_npz"]

#: The published model's file name in a run directory.
MODEL_FILE = "global_model.npz"


def arrays_to_npz(arrays: list[np.ndarray]) -> bytes:
    """The arrays as npz bytes, in order."""
    buffer = io.BytesIO()
    np.savez(buffer, **{f"param_{i:03d}": a for i, a in enumerate(arrays)})  # type: ignore[arg-type]
    return buffer.getvalue()


def arrays_from_npz(data: bytes) -> list[np.ndarray]:
    """The inverse of :func:`arrays_to_npz`: the arrays in order (ValueError or OSError
    when ``data`` is not an npz of arrays)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as named:
        return [named[name] for name in sorted(named.files)]
