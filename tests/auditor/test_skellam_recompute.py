"""The auditor recomputes a distributed Skellam release from its recorded share, with its
own implementation of the bound: it agrees with the accountants' where both are honest,
and a claim whose share or multiplier was bent is caught as an understatement."""

from __future__ import annotations

import math

import numpy as np
import pytest

from auditor.claims import claim_finding
from auditor.epsilon import OutOfRangeError, Release, compose_epsilon
from auditor.skellam import SkellamShare, skellam_rdp
from privacy import skellam
from privacy.accounting import RDP_ORDERS, Spend, rdp_epsilon
from privacy.mechanisms import Mechanism
from protocols.secure_curve import SKELLAM_SCALE as SCALE

DELTA = 1e-6


def _honest(z: float, shares: int, l2: float = 1.0) -> tuple[Release, float]:
    """A Skellam curve release as a node plans and charges it: (record, claimed epsilon)."""
    share = skellam.share_for_noise_multiplier(
        z, n_shares=shares, l2_sensitivity=SCALE * l2, l1_sensitivity=SCALE * l2 * l2
    )
    release = Release(
        Mechanism.SKELLAM_CURVE_HISTOGRAM,
        share.effective_noise_multiplier,
        1.0,
        1,
        sensitivity=l2,
        noise_shares=shares,
        share_std=share.share_std / SCALE,
        l1_sensitivity=l2 * l2,
        integer_scale=SCALE,
    )
    claimed = rdp_epsilon(
        [Spend(share.effective_noise_multiplier, 1.0, 1, Mechanism.SKELLAM_CURVE_HISTOGRAM)],
        DELTA,
    )
    return release, claimed


@pytest.mark.parametrize(
    ("shares", "std", "l2"), [(1, 4.0, 1.0), (26, 0.7, math.sqrt(2)), (400, 0.1, 1.0)]
)
def test_the_two_implementations_of_the_bound_agree(shares, std, l2) -> None:
    ours = skellam_rdp(
        RDP_ORDERS, SkellamShare(shares=shares, share_std=std, l2=l2, l1=l2 * l2, scale=SCALE)
    )
    theirs = [
        skellam.skellam_rdp(
            a,
            variance=shares * (SCALE * std) ** 2,
            l2_sensitivity=SCALE * l2,
            l1_sensitivity=SCALE * l2 * l2,
        )
        for a in RDP_ORDERS
    ]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


@pytest.mark.parametrize(("z", "shares"), [(2.0, 3), (9.0, 26), (4.0, 251)])
def test_an_honest_claim_is_recomputed_to_within_a_fraction_of_a_percent(z, shares) -> None:
    release, claimed = _honest(z, shares)
    recomputed = compose_epsilon([release], DELTA)
    # the charge (a Gaussian bounding the Skellam bound at every order) is never below
    assert claimed >= recomputed * (1 - 1e-9)
    assert claimed <= recomputed * 1.01
    assert claim_finding(claimed, recomputed, 0.02, "here", "curve") is None


def test_a_bent_share_or_multiplier_is_caught_as_an_understatement() -> None:
    release, claimed = _honest(4.0, 26)
    smaller = Release(**{**release.__dict__, "share_std": release.share_std * 0.8})
    finding = claim_finding(claimed, compose_epsilon([smaller], DELTA), 0.02, "here", "curve")
    assert finding is not None and finding.kind == "understated"
    # a larger claimed z with the same share changes nothing the auditor computes
    bigger_z = Release(**{**release.__dict__, "noise_multiplier": release.noise_multiplier * 2})
    assert compose_epsilon([bigger_z], DELTA) == compose_epsilon([release], DELTA)


@pytest.mark.parametrize(
    "change",
    [
        {"sample_rate": 0.5},
        {"share_std": -1.0},
        {"noise_shares": 0},
        {"sensitivity": 0.0},
        {"share_std": float("nan")},
        {"l1_sensitivity": 0.5},
        {"integer_scale": 0},
    ],
)
def test_a_release_the_bound_does_not_cover_is_out_of_range(change) -> None:
    release, _ = _honest(4.0, 26)
    with pytest.raises(OutOfRangeError):
        compose_epsilon([Release(**{**release.__dict__, **change})], DELTA)
