"""Shamir secret sharing over GF(2^521 - 1) (secagg/shamir.py).

Reference answers: hand-computed polynomials with fixed coefficients (f(x) = 7 + 5x), and
the identity behind Shamir's privacy: t - 1 shares fit every candidate secret.
"""

from __future__ import annotations

import doctest
import itertools
import random
import secrets

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flwr.common.secure_aggregation.crypto.shamir import create_shares as flower_create_shares
from scipy import stats

import secagg.shamir as shamir
from secagg.masking import raw_private
from secagg.shamir import (
    FIELD_PRIME,
    MAX_SECRET_BYTES,
    SHARE_BYTES,
    ShareError,
    combine_shares,
    create_shares,
    verify_share,
)

P = FIELD_PRIME


def share(x: int, y: int, length: int = 32) -> bytes:
    """Factory: a share from its parts, in the documented layout (2 + 1 + 66 bytes)."""
    return x.to_bytes(2, "big") + length.to_bytes(1, "big") + y.to_bytes(66, "big")


def parts(s: bytes) -> tuple[int, int]:
    """A share's (x, y)."""
    return int.from_bytes(s[:2], "big"), int.from_bytes(s[3:], "big")


def fixed_coefficients(monkeypatch: pytest.MonkeyPatch, values: list[int]) -> None:
    """Factory: make create_shares draw ``values`` instead of random coefficients (it
    draws the highest degree first: a_{t-1}, ..., a_1)."""
    draws = iter(values)
    monkeypatch.setattr(shamir.secrets, "randbelow", lambda bound: next(draws))


def test_field_and_layout_constants() -> None:
    # Assert: the documented prime, sizes, and the 32-byte secrets secagg shares fit
    assert P == 2**521 - 1 and pow(3, P - 1, P) == 1  # Fermat check of the Mersenne prime
    assert SHARE_BYTES == 69 and MAX_SECRET_BYTES == 64 and P > 2 ** (8 * 64)


def test_known_answer_for_a_fixed_polynomial(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: f(x) = 7 + 5x
    fixed_coefficients(monkeypatch, [5])
    # Execute
    shares = create_shares(b"\x07", 2, 3)
    # Assert: the exact bytes of the documented layout, and back
    assert shares == [share(1, 12, 1), share(2, 17, 1), share(3, 22, 1)]
    assert combine_shares([shares[2], shares[1]]) == b"\x07"


def test_known_answer_wraps_modulo_the_prime(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: f(x) = s + (p - 1) x + x^2 = s - x + x^2 (mod p)
    fixed_coefficients(monkeypatch, [1, P - 1])
    secret = bytes(range(32))
    s = int.from_bytes(secret, "big")
    # Execute
    shares = create_shares(secret, 3, 4)
    # Assert
    assert [parts(sh) for sh in shares] == [(x, s - x + x * x) for x in (1, 2, 3, 4)]
    assert combine_shares(shares[1:]) == secret


@pytest.mark.parametrize("size", [0, 1, 16, 32, 33, 64])
def test_random_secrets_round_trip(size: int) -> None:
    for _ in range(20):
        # Prepare
        secret = secrets.token_bytes(size)
        # Execute
        shares = create_shares(secret, 26, 50)
        # Assert: any 26 of 50, all 50, in any order
        assert len(shares) == 50 and {len(s) for s in shares} == {SHARE_BYTES}
        assert combine_shares(random.sample(shares, 26)) == secret
        assert combine_shares(shares[::-1]) == secret


def test_secagg_secrets_round_trip_with_leading_zero_bytes() -> None:
    # Prepare: what secagg shares (an X25519 private key, a 32-byte seed), and zeros
    key = raw_private(X25519PrivateKey.generate())
    for secret in (key, secrets.token_bytes(32), bytes(32), bytes(31) + b"\x01"):
        # Execute / Assert
        assert combine_shares(create_shares(secret, 3, 5)[2:]) == secret


def test_every_threshold_subset_reconstructs() -> None:
    # Prepare
    secret = secrets.token_bytes(32)
    shares = create_shares(secret, 3, 6)
    # Execute / Assert: all 20 subsets of size 3, and larger ones
    for size in (3, 5):
        for subset in itertools.combinations(shares, size):
            assert combine_shares(list(subset)) == secret


def test_threshold_one_and_threshold_num_are_allowed() -> None:
    # Prepare
    secret = secrets.token_bytes(32)
    # Execute / Assert
    assert all(combine_shares([s]) == secret for s in create_shares(secret, 1, 4))
    assert combine_shares(create_shares(secret, 4, 4)) == secret


def lagrange_at(points: list[tuple[int, int]], x: int) -> int:
    """Independent check: the polynomial of degree < len(points) through them, at x."""
    total = 0
    for i, (xi, yi) in enumerate(points):
        num = den = 1
        for j, (xj, _) in enumerate(points):
            if j != i:
                num, den = num * (x - xj) % P, den * (xi - xj) % P
        total += yi * num * pow(den, -1, P)
    return total % P


def test_threshold_minus_one_shares_fit_every_candidate_secret() -> None:
    # Prepare: 25 shares of a secret under threshold 26 (what a coalition of 25 holds)
    secret = secrets.token_bytes(32)
    held = [parts(s) for s in create_shares(secret, 26, 50)[:25]]
    candidates = [bytes(32), b"\xff" * 32, secrets.token_bytes(32), secret]
    for candidate in candidates:
        # Execute: the one polynomial of degree < 26 through (0, candidate) and the 25 shares
        points = [(0, int.from_bytes(candidate, "big")), *held]
        completing = share(26, lagrange_at(points, 26))
        # Assert: the 25 shares plus a share consistent with it combine to the candidate
        assert combine_shares([share(x, y) for x, y in held] + [completing]) == candidate


def test_one_share_under_threshold_two_is_uniform_whatever_the_secret() -> None:
    # Prepare: two very different secrets
    samples = {
        secret: [parts(create_shares(secret, 2, 3)[0])[1] / P for _ in range(2000)]
        for secret in (bytes(32), b"\xff" * 32)
    }
    # Execute / Assert: share 1 is uniform on [0, p) for each, and alike for both
    for values in samples.values():
        assert stats.kstest(values, "uniform").pvalue > 1e-6
    assert stats.ks_2samp(*samples.values()).pvalue > 1e-6


def test_fewer_than_threshold_shares_never_give_the_secret() -> None:
    # Prepare: 32-byte secrets are refused (garbage fits 32 bytes with chance 2^-265);
    # 64-byte garbage fits with chance 2^-9 and is then returned, wrong (documented)
    short, long = secrets.token_bytes(32), secrets.token_bytes(64)
    # Execute / Assert
    with pytest.raises(ShareError, match="do not combine to a 32-byte secret"):
        combine_shares(create_shares(short, 26, 50)[:25])
    for _ in range(20):
        try:
            assert combine_shares(create_shares(long, 3, 5)[:2]) != long
        except ShareError as error:
            assert "do not combine to a 64-byte secret" in str(error)


def test_shares_of_two_secrets_do_not_combine() -> None:
    # Prepare
    a, b = (create_shares(secrets.token_bytes(32), 3, 5) for _ in range(2))
    # Execute / Assert
    with pytest.raises(ShareError, match="too few, mixed or altered shares"):
        combine_shares([a[0], a[1], b[2]])


def test_combining_is_no_authenticity_check() -> None:
    # Prepare: share 1 shifted by 1; its Lagrange coefficient at 0 over {1, 2, 3} is 3
    secret = bytes(31) + b"\x10"
    shares = create_shares(secret, 3, 3)
    x, y = parts(shares[0])
    # Execute
    shifted = combine_shares([share(x, (y + 1) % P), *shares[1:]])
    # Assert: a deliberate small change passes the length check and moves the secret by 3
    assert int.from_bytes(shifted, "big") == 0x10 + 3


@pytest.mark.parametrize(
    ("shares", "match"),
    [
        ([], "no shares to combine"),
        ([share(1, 5), share(2, 6)[:-1]], "share 1 is 68 bytes, expected 69"),
        ([share(1, 5) + b"\x00"], "share 0 is 70 bytes, expected 69"),
        ([share(0, 5), share(2, 6)], "share 0 has index 0, expected 1..65535"),
        ([share(1, 5, length=65)], "share 0 declares a 65-byte secret, expected <= 64"),
        ([share(1, 5), share(2, P)], r"share 1 has a value >= the field prime 2\^521 - 1"),
        ([share(1, 5), share(2, 2**528 - 1)], "share 1 has a value >= the field prime"),
        ([share(3, 5), share(1, 6), share(3, 7)], r"duplicate share indices \[3\]"),
        ([share(1, 5, length=32), share(2, 6, length=16)], r"different secret lengths \[16, 32\]"),
    ],
)
def test_malformed_shares_are_refused_naming_the_fault(shares: list[bytes], match: str) -> None:
    # Execute / Assert
    with pytest.raises(ShareError, match=match):
        combine_shares(shares)


def test_flower_shares_are_refused_by_size() -> None:
    # Prepare: Flower's layout (4-byte index + 16 bytes per padded chunk: 52 bytes)
    flower = flower_create_shares(secrets.token_bytes(32), 2, 3)
    # Execute / Assert
    with pytest.raises(ShareError, match="share is 52 bytes, expected 69"):
        verify_share(flower[0])
    verify_share(create_shares(b"ok", 2, 3)[2])


@pytest.mark.parametrize(
    ("secret", "threshold", "num", "match"),
    [
        (bytes(65), 2, 3, "secret of 65 bytes; at most 64 fit"),
        (b"x", 0, 3, "threshold 0, num 3"),
        (b"x", 4, 3, "threshold 4, num 3"),
        (b"x", 2, 65536, "num <= 65535, got threshold 2, num 65536"),
    ],
)
def test_bad_split_arguments_are_refused(secret: bytes, threshold: int, num: int, match: str):
    # Execute / Assert
    with pytest.raises(ShareError, match=match):
        create_shares(secret, threshold, num)


def test_share_error_is_a_value_error() -> None:
    # Assert: callers that caught Flower's ValueError still catch ours
    assert issubclass(ShareError, ValueError)


def test_fifty_shares_threshold_26_a_hundred_times() -> None:
    # Execute: what one 50-node round asks of split and combine, twice over; a timing-free
    # sanity check (Flower's took ~0.1 s per split and ~0.2 s per combine here)
    for _ in range(100):
        secret = secrets.token_bytes(32)
        shares = create_shares(secret, 26, 50)
        # Assert
        assert combine_shares(shares[-26:]) == secret


def test_docstring_example_runs() -> None:
    # Execute / Assert
    result = doctest.testmod(shamir)
    assert result.attempted > 0 and result.failed == 0
