"""Encoding of integer vectors into the secure-aggregation field Z_{2^k} (floats are
quantised to integers upstream, at the plan's fixed-point scale: :mod:`protocols.secure_update`).

Values are signed integers in two's complement mod 2^k (numpy uint64, wraparound for
k = 64, reduced by a bit mask for k < 64). A value outside the declared range is an error
naming the index and the range (never a silent clip or wrap), and the codec checks at
construction that the sum of ``num_nodes`` in-range values cannot wrap:
``num_nodes * max|q| < 2^(k-1)``, so the signed reading of the field sum is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.errors import ConfigError, FedriskError

__all__ = [
    "QuantizationRangeError",
    "field_reduce",
    "field_add",
    "field_sub",
    "to_signed",
    "IntegerCodec",
]

class QuantizationRangeError(FedriskError):
    """A value to be securely summed lies outside its declared range."""

    advice = "Widen the declared range (or clip explicitly upstream) in the plan; never wrap."


def _check_bits(modulus_bits: int) -> None:
    if not 8 <= modulus_bits <= 64:
        raise ConfigError(f"modulus_bits must be in [8, 64], got {modulus_bits}")


def field_reduce(values: np.ndarray, modulus_bits: int) -> np.ndarray:
    """Return ``values`` (uint64) reduced mod 2^modulus_bits."""
    if modulus_bits == 64:
        return values.astype(np.uint64, copy=False)
    return values.astype(np.uint64, copy=False) & np.uint64((1 << modulus_bits) - 1)


def field_add(a: np.ndarray, b: np.ndarray, modulus_bits: int) -> np.ndarray:
    """(a + b) mod 2^k on uint64 vectors (numpy wraps uint64 arithmetic mod 2^64)."""
    return field_reduce(a + b, modulus_bits)


def field_sub(a: np.ndarray, b: np.ndarray, modulus_bits: int) -> np.ndarray:
    """(a - b) mod 2^k on uint64 vectors."""
    return field_reduce(a - b, modulus_bits)


def to_signed(field: np.ndarray, modulus_bits: int) -> np.ndarray:
    """Two's-complement reading of field elements in [0, 2^k) as int64 in [-2^(k-1), 2^(k-1))."""
    shift = np.uint64(64 - modulus_bits)
    return (field.astype(np.uint64) << shift).view(np.int64) >> np.int64(64 - modulus_bits)


def _check_no_wrap(num_nodes: int, max_abs: int, modulus_bits: int) -> None:
    if num_nodes * max_abs >= 2 ** (modulus_bits - 1):
        raise ConfigError(
            f"secure sum may wrap: {num_nodes} nodes x max |value| {max_abs} "
            f">= 2^{modulus_bits - 1} (half the field)",
            advice="Lower the declared range/scale or raise modulus_bits (at most 64).",
        )


def _check_range(values: np.ndarray, low: float, high: float, what: str) -> None:
    bad = np.flatnonzero(~((values >= low) & (values <= high)))  # NaN counts as bad
    if bad.size:
        i = int(bad[0])
        raise QuantizationRangeError(
            f"{what} at index {i} is {values[i].item()!r}, outside the declared range "
            f"[{low}, {high}] ({bad.size} value(s) out of range)"
        )


@dataclass(frozen=True)
class IntegerCodec:
    """Integers (e.g. noisy histogram counts, may be negative) with declared |x| <= bound."""

    modulus_bits: int
    num_nodes: int
    bound: int

    def __post_init__(self) -> None:
        _check_bits(self.modulus_bits)
        if self.bound < 1 or self.num_nodes < 1:
            raise ConfigError(
                f"bound and num_nodes must be >= 1, got {self.bound}, {self.num_nodes}"
            )
        _check_no_wrap(self.num_nodes, self.bound, self.modulus_bits)

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Field elements of an integer vector; out-of-range values raise."""
        arr = np.asarray(values)
        if not np.issubdtype(arr.dtype, np.integer):
            raise QuantizationRangeError(f"IntegerCodec needs an integer vector, got {arr.dtype}")
        _check_range(arr, -self.bound, self.bound, "count")
        return field_reduce(arr.astype(np.int64).view(np.uint64), self.modulus_bits)

    def decode_sum(self, field: np.ndarray) -> np.ndarray:
        """The exact signed integer sum (int64) from the unmasked field sum."""
        return to_signed(field, self.modulus_bits)
