"""Shamir secret sharing (Shamir 1979, "How to share a secret", CACM 22(11)) over GF(p).

Why ours, not Flower's ``flwr.common.secure_aggregation.crypto.shamir``: Flower wraps
PyCryptodome's ``Shamir`` (GF(2^128), 16-byte chunks, pure Python) with a new thread pool
per call; with 50 nodes, threshold 26, splitting and combining took 10-15 s of every
secure round in process (~90 ms per split, ~140 ms per combine), mostly lock waits. This
module is plain integer arithmetic, under a millisecond per split or combine there, and
small enough to audit.

The field: p = 2^521 - 1, a Mersenne prime (the field of NIST P-521, FIPS 186-5), so any
secret of up to ``MAX_SECRET_BYTES`` = 64 bytes (512 bits) is one field element
s = int.from_bytes(secret, "big") < p; secagg shares 32-byte secrets. A share of s under
threshold t is (x, f(x)) for f(z) = s + a_1 z + ... + a_{t-1} z^{t-1}, a_i uniform in
GF(p) from ``secrets`` (a CSPRNG), x = 1..num. Any t shares give s by Lagrange
interpolation at 0; any t - 1 shares are uniformly distributed whatever s is (for every
candidate secret exactly one polynomial of degree < t fits them), so they reveal nothing.

Share encoding (``SHARE_BYTES`` = 69 bytes, fixed): x as 2 bytes big-endian (1..65535),
the secret's length in bytes as 1 byte (0..64; it keeps leading zero bytes), f(x) as 66
bytes big-endian (< p). Compatibility rule: this layout never changes meaning; a new
layout gets a new length or a new module.

``combine_shares`` rejects malformed shares (wrong length, index 0, declared length above
64, value >= p), duplicate indices and shares that disagree on the secret's length. It
cannot tell from the shares alone whether there are at least t of them: fewer than t (or
shares of different secrets) interpolate to an unrelated field element, exactly as with
Flower's. Such an element is refused when it does not fit the declared length (for a
32-byte secret: all but a 2^-265 fraction of random ones), but that is no authenticity
check: a share altered on purpose (y + d) moves the secret by L_i(0) d and may pass.
Callers count shares against their threshold and verify what they rebuild when they can.

Python integers are not constant-time; neither is PyCryptodome's pure-Python field.
"""

from __future__ import annotations

import math
import secrets

__all__ = [
    "FIELD_PRIME",
    "MAX_SECRET_BYTES",
    "MAX_SHARES",
    "SHARE_BYTES",
    "ShareError",
    "combine_shares",
    "create_shares",
    "verify_share",
]

FIELD_PRIME = 2**521 - 1
MAX_SECRET_BYTES = 64
MAX_SHARES = 2**16 - 1
_X_BYTES, _LEN_BYTES, _Y_BYTES = 2, 1, (FIELD_PRIME.bit_length() + 7) // 8
SHARE_BYTES = _X_BYTES + _LEN_BYTES + _Y_BYTES


class ShareError(ValueError):
    """A share is malformed, or a set of shares cannot be combined."""


def create_shares(secret: bytes, threshold: int, num: int) -> list[bytes]:
    """``num`` shares of ``secret``, any ``threshold`` of which rebuild it.

    >>> shares = create_shares(b"fedrisk", 2, 3)
    >>> combine_shares([shares[2], shares[0]])
    b'fedrisk'
    """
    if len(secret) > MAX_SECRET_BYTES:
        raise ShareError(f"secret of {len(secret)} bytes; at most {MAX_SECRET_BYTES} fit")
    if not 1 <= threshold <= num <= MAX_SHARES:
        raise ShareError(
            f"need 1 <= threshold <= num <= {MAX_SHARES}, got threshold {threshold}, num {num}"
        )
    p = FIELD_PRIME
    coefficients = [secrets.randbelow(p) for _ in range(threshold - 1)]
    coefficients.append(int.from_bytes(secret, "big"))  # highest degree first, s last
    head = len(secret).to_bytes(_LEN_BYTES, "big")
    shares = []
    for x in range(1, num + 1):
        y = 0
        for c in coefficients:  # Horner; exact (x is small), reduced once: twice as fast
            y = y * x + c
        shares.append(x.to_bytes(_X_BYTES, "big") + head + (y % p).to_bytes(_Y_BYTES, "big"))
    return shares


def verify_share(share: bytes) -> None:
    """Raise ``ShareError`` (naming expected vs got) unless ``share`` is well-formed."""
    _parse(share)


def combine_shares(shares: list[bytes]) -> bytes:
    """The secret whose shares these are, given at least its threshold of them.

    Fewer than the threshold give garbage (usually refused, see the module docstring).
    """
    if not shares:
        raise ShareError("no shares to combine")
    parsed = [_parse(s, f"share {k}") for k, s in enumerate(shares)]
    lengths = sorted({length for _, length, _ in parsed})
    if len(lengths) > 1:
        raise ShareError(f"shares declare different secret lengths {lengths}")
    xs = [x for x, _, _ in parsed]
    if len(set(xs)) < len(xs):
        repeated = sorted({x for x in xs if xs.count(x) > 1})
        raise ShareError(f"duplicate share indices {repeated}")
    secret = _interpolate_at_zero(xs, [y for _, _, y in parsed])
    length = lengths[0]
    if secret >> (8 * length):
        raise ShareError(
            f"shares do not combine to a {length}-byte secret (too few, mixed or altered shares)"
        )
    return secret.to_bytes(length, "big")


def _parse(share: bytes, what: str = "share") -> tuple[int, int, int]:
    if len(share) != SHARE_BYTES:
        raise ShareError(f"{what} is {len(share)} bytes, expected {SHARE_BYTES}")
    x = int.from_bytes(share[:_X_BYTES], "big")
    length = share[_X_BYTES]
    y = int.from_bytes(share[_X_BYTES + _LEN_BYTES :], "big")
    if x == 0:
        raise ShareError(f"{what} has index 0, expected 1..{MAX_SHARES}")
    if length > MAX_SECRET_BYTES:
        raise ShareError(f"{what} declares a {length}-byte secret, expected <= {MAX_SECRET_BYTES}")
    if y >= FIELD_PRIME:
        raise ShareError(f"{what} has a value >= the field prime 2^521 - 1")
    return x, length, y


def _interpolate_at_zero(xs: list[int], ys: list[int]) -> int:
    """f(0) = sum_i y_i L_i mod p, L_i = prod_{j != i} x_j / (x_j - x_i) = X / d_i with
    X = prod_j x_j and d_i = x_i prod_{j != i} (x_j - x_i), exact small-integer products.

    One field inversion: the d_i are inverted together through the inverse of their
    product (Montgomery's batch-inversion trick).
    """
    p = FIELD_PRIME
    dens = []
    for xi in xs:
        d = xi
        for xj in xs:
            if xj != xi:
                d *= xj - xi
        dens.append(d % p)
    prefix = [1]  # prefix[i] = d_0 ... d_{i-1}
    for d in dens:
        prefix.append(prefix[-1] * d % p)
    inverse = pow(prefix[-1], -1, p)  # 1 / (d_0 ... d_i), for i from the last down
    total = 0
    for i in range(len(xs) - 1, -1, -1):
        total += ys[i] * (inverse * prefix[i] % p)  # y_i / d_i
        inverse = inverse * dens[i] % p
    return total % p * (math.prod(xs) % p) % p
