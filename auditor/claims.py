"""Claimed epsilon against recomputed epsilon, and against caps.

A claim that *understates* the recomputed epsilon by more than ``tolerance`` (relative)
is an epsilon-class failure; an overstatement is conservative and only a warning. A
recomputed epsilon above a cap (beyond :data:`CAP_SLACK`, the numerical disagreement
allowed between two RDP implementations over the same orders) is a cap-class failure.
The relative difference is (claimed - recomputed) / recomputed: negative = understated.

    >>> relative_difference(0.75, 1.0)
    -0.25
    >>> claim_finding(0.9, 1.0, 0.02, "node a seq 3", "lifetime epsilon").kind
    'understated'
"""

from __future__ import annotations

import math

from auditor.epsilon import OutOfRangeError, Release, ReleaseError
from auditor.findings import AuditFinding, FailureClass
from ledger.records import PrivacySpent, ReleaseAccounted, RiskShared

__all__ = [
    "DEFAULT_TOLERANCE",
    "CAP_SLACK",
    "relative_difference",
    "release_of",
    "claim_finding",
    "cap_finding",
    "release_finding",
]

#: Largest relative understatement of a claim that still passes (2 %).
DEFAULT_TOLERANCE = 0.02
#: Relative excess over a cap still attributed to numerics, not to a spend past the cap.
CAP_SLACK = 1e-4


def relative_difference(claimed: float, recomputed: float) -> float:
    """(claimed - recomputed) / recomputed; 0 when equal, -inf when the recomputed
    epsilon is infinite but the claim is not, +inf when only the claim is positive."""
    if claimed == recomputed:
        return 0.0
    if math.isinf(recomputed):
        return -math.inf
    if recomputed == 0.0:
        return math.inf
    return (claimed - recomputed) / recomputed


def release_of(record: PrivacySpent | ReleaseAccounted | RiskShared) -> Release:
    """The mechanism parameters of a recorded release."""
    return Release(
        record.mechanism,
        record.noise_multiplier,
        record.sample_rate,
        record.steps,
        sensitivity=record.sensitivity,
        noise_shares=record.noise_shares,
        share_std=record.share_std,
        l1_sensitivity=record.l1_sensitivity,
        integer_scale=record.integer_scale,
    )


def claim_finding(
    claimed: float, recomputed: float, tolerance: float, where: str, what: str
) -> AuditFinding | None:
    """An error if ``claimed`` understates ``recomputed`` beyond ``tolerance``, a warning
    if it overstates it beyond ``tolerance``, else None."""
    rel = relative_difference(claimed, recomputed)
    if abs(rel) <= tolerance:
        return None
    text = (
        f"{what}: claimed {claimed:.6g}, recomputed with dp-accounting {recomputed:.6g} "
        f"({rel:+.2%})"
    )
    if rel < 0:
        return AuditFinding(
            FailureClass.EPSILON,
            "error",
            "understated",
            where,
            f"{text}; the claim understates the privacy spent",
        )
    return AuditFinding(
        FailureClass.EPSILON, "warning", "overstated", where, f"{text}; conservative"
    )


def cap_finding(epsilon: float, cap: float, where: str, what: str) -> AuditFinding | None:
    """An error if ``epsilon`` exceeds ``cap`` (beyond :data:`CAP_SLACK`), else None."""
    if epsilon <= cap * (1.0 + CAP_SLACK):
        return None
    return AuditFinding(
        FailureClass.CAP,
        "error",
        "cap-exceeded",
        where,
        f"{what} is {epsilon:.6g}, above its cap of {cap:.6g}",
    )


def release_finding(err: ReleaseError, where: str) -> AuditFinding:
    """The finding of a release whose epsilon cannot be recomputed: parameters outside the
    sane ranges make the ledger invalid (ledger class); an unknown mechanism is an
    epsilon-class error."""
    if isinstance(err, OutOfRangeError):
        return AuditFinding(FailureClass.LEDGER, "error", "out-of-range", where, str(err))
    return AuditFinding(FailureClass.EPSILON, "error", "unknown-mechanism", where, str(err))
