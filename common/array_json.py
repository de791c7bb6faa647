"""Numeric arrays in JSON state files (checkpoints, a node's cached releases), no pickle.

An array is ``{"dtype": "<f8", "shape": [...], "data": base64 of its C-order
little-endian bytes}``. Only plain numeric dtypes are accepted on reading; a bad entry is
a StateError naming where it is.

    >>> decode_array(encode_array(np.arange(3.0)), "example").tolist()
    [0.0, 1.0, 2.0]
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np

from common.errors import StateError

__all__ = ["encode_array", "decode_array"]

#: dtypes a state file may hold (little-endian floats and integers).
_DTYPES = frozenset({"<f4", "<f8", "<i4", "<i8", "<u8"})


def encode_array(array: np.ndarray) -> dict[str, Any]:
    """The JSON form of ``array`` (converted to little-endian, C order)."""
    values = np.asarray(array)
    values = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))
    if values.dtype.str not in _DTYPES:
        raise ValueError(f"cannot store an array of dtype {values.dtype.str}")
    return {
        "dtype": values.dtype.str,
        "shape": list(values.shape),
        "data": base64.b64encode(values.tobytes(order="C")).decode("ascii"),
    }


def decode_array(obj: Any, where: str) -> np.ndarray:
    """The array in ``obj`` (from :func:`encode_array`); StateError names ``where``."""
    if not isinstance(obj, dict) or set(obj) != {"dtype", "shape", "data"}:
        raise StateError(f"{where}: not an encoded array")
    dtype, shape = obj["dtype"], obj["shape"]
    if dtype not in _DTYPES:
        raise StateError(f"{where}: dtype {dtype!r} is not one of {sorted(_DTYPES)}")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise StateError(f"{where}: bad shape {shape!r}")
    try:
        raw = base64.b64decode(str(obj["data"]), validate=True)
    except (binascii.Error, ValueError):
        raise StateError(f"{where}: array data is not base64") from None
    expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if len(raw) != expected:
        raise StateError(f"{where}: {len(raw)} bytes of data, the shape needs {expected}")
    return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape).copy()
