"""Enterprise-level DP-FedAvg accountant: independent cross-checks, budget stop, state."""

from __future__ import annotations

import json

import numpy as np
import pytest
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

from privacy.accounting import RDP_ORDERS, rdp_epsilon
from privacy.enterprise_accounting import (
    EnterpriseAccountant,
    cross_check,
)

DELTA = 1e-5


def accountant_after(
    rounds: int, *, noise_multiplier: float, sample_rate: float
) -> EnterpriseAccountant:
    """Factory: an accountant (no cap in the way) that recorded ``rounds`` equal rounds."""
    accountant = EnterpriseAccountant(delta=DELTA, cap=1e9)
    for r in range(rounds):
        accountant.record(
            noise_multiplier=noise_multiplier, sample_rate=sample_rate, round_number=r
        )
    return accountant


@pytest.mark.parametrize(
    ("noise_multiplier", "sample_rate", "rounds"),
    [(2.0, 1.0, 10), (5.0, 1.0, 50), (3.0, 0.25, 100), (1.0, 0.5, 20)],
)
def test_epsilon_agrees_with_dp_accounting(
    noise_multiplier: float, sample_rate: float, rounds: int
) -> None:
    # Prepare
    accountant = accountant_after(
        rounds, noise_multiplier=noise_multiplier, sample_rate=sample_rate
    )
    # Execute
    check = cross_check(accountant.history, DELTA)
    # Assert: like with like (RDP vs RDP, PLD vs PRV); the tight pair is below RDP
    assert accountant.epsilon() == pytest.approx(rdp_epsilon(accountant.history, DELTA), rel=1e-12)
    assert check.dp_accounting_rdp == pytest.approx(check.opacus_rdp, rel=0.01)
    assert check.dp_accounting_pld == pytest.approx(check.opacus_prv, abs=0.05)
    assert check.dp_accounting_pld < check.opacus_rdp


def test_opacus_known_answer() -> None:
    # Execute: STACK.md known answer (RDP, sigma 1.5, q 0.04, 2,250 steps, delta 1e-5)
    accountant = accountant_after(2250, noise_multiplier=1.5, sample_rate=0.04)
    # Assert
    assert accountant.epsilon() == pytest.approx(7.329111, abs=1e-5)


def test_budget_stop_triggers_exactly_at_the_round_that_would_pass_the_cap() -> None:
    # Prepare: independent count of rounds within the cap (one call per k, steps=k)
    z, q, cap = 4.0, 1.0, 3.0

    def epsilon_after(k: int) -> float:
        rdp = compute_rdp(q=q, noise_multiplier=z, steps=k, orders=RDP_ORDERS)
        return float(get_privacy_spent(orders=RDP_ORDERS, rdp=np.asarray(rdp), delta=DELTA)[0])

    allowed = next(k for k in range(1, 1000) if epsilon_after(k + 1) > cap)
    accountant = EnterpriseAccountant(delta=DELTA, cap=cap)
    # Execute
    ran = 0
    while accountant.can_run_round(noise_multiplier=z, sample_rate=q):
        accountant.record(noise_multiplier=z, sample_rate=q, round_number=ran)
        ran += 1
    # Assert
    assert allowed >= 2
    assert ran == allowed
    assert accountant.epsilon() <= cap < accountant.project(noise_multiplier=z, sample_rate=q)
    assert accountant.epsilon() == pytest.approx(epsilon_after(allowed), rel=1e-12)


def test_project_does_not_spend() -> None:
    # Prepare
    accountant = accountant_after(3, noise_multiplier=2.0, sample_rate=1.0)
    before = accountant.epsilon()
    # Execute
    projected = accountant.project(noise_multiplier=2.0, sample_rate=1.0)
    # Assert
    assert accountant.epsilon() == before < projected
    assert len(accountant.history) == 3


def test_state_round_trips_through_json() -> None:
    # Prepare
    accountant = accountant_after(7, noise_multiplier=1.3, sample_rate=0.5)
    # Execute
    restored = EnterpriseAccountant(delta=DELTA, cap=1e9)
    restored.load_state_dict(json.loads(json.dumps(accountant.state_dict())))
    # Assert
    assert restored.epsilon() == accountant.epsilon()
    assert [s.round for s in restored.history] == list(range(7))


def test_missing_state_key_is_named() -> None:
    # Prepare
    state = accountant_after(2, noise_multiplier=2.0, sample_rate=1.0).state_dict()
    del state["history"]
    # Execute / Assert
    with pytest.raises(KeyError, match="missing key 'history'"):
        EnterpriseAccountant(delta=DELTA, cap=1e9).load_state_dict(state)


def test_state_with_another_cap_is_refused() -> None:
    state = accountant_after(2, noise_multiplier=2.0, sample_rate=1.0).state_dict()
    with pytest.raises(
        ValueError, match="state cap 1000000000.0 differs from this accountant's 5.0"
    ):
        EnterpriseAccountant(delta=DELTA, cap=5.0).load_state_dict(state)


def test_bad_round_settings_are_refused() -> None:
    accountant = EnterpriseAccountant(delta=DELTA, cap=1.0)
    with pytest.raises(ValueError, match=r"sample_rate must be in \(0, 1\], got 1.5"):
        accountant.project(noise_multiplier=1.0, sample_rate=1.5)
