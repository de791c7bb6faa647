"""The node's budget guard and the shared RDP accounting: known answers, caps, restarts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opacus.accountants import RDPAccountant

from common.errors import BudgetExceededError, StateError
from enterprise_node.budget import BudgetGuard
from privacy.accounting import RDP_ORDERS, Spend, calibrate_noise_multiplier, rdp_epsilon


def dp_sgd(sigma: float = 1.0, q: float = 0.05, steps: int = 100) -> Spend:
    return Spend(sigma, q, steps, "dp_sgd", "run-a", 1, "model")


def test_rdp_known_answer_from_opacus() -> None:
    # RDP, sigma 1.5, q 0.04, 2,250 steps, delta 1e-5 -> epsilon 7.3291 (Opacus's test)
    assert rdp_epsilon([Spend(1.5, 0.04, 2250, "dp_sgd")], 1e-5) == pytest.approx(
        7.329111, abs=1e-5
    )


def test_rdp_orders_start_with_opacus_defaults() -> None:
    # written out in privacy.accounting so a task process need not import Opacus
    assert list(RDP_ORDERS[: len(RDPAccountant.DEFAULT_ALPHAS)]) == [
        float(a) for a in RDPAccountant.DEFAULT_ALPHAS
    ]
    assert tuple(sorted(set(RDP_ORDERS))) == RDP_ORDERS


def test_composing_k_times_equals_one_spend_with_k_steps() -> None:
    one = rdp_epsilon([Spend(1.1, 0.02, 300, "dp_sgd")], 1e-6)
    split = rdp_epsilon([Spend(1.1, 0.02, 100, "dp_sgd")] * 3, 1e-6)
    assert split == pytest.approx(one, rel=1e-12)


def test_mixed_history_matches_an_opacus_accountant() -> None:
    # Prepare: DP-SGD steps and one histogram release composed in one Opacus accountant
    accountant = RDPAccountant()
    accountant.history = [(1.2, 0.03, 200), (6.0, 1.0, 1)]
    # Execute
    ours = rdp_epsilon([Spend(1.2, 0.03, 200, "dp_sgd"), Spend(6.0, 1.0, 1, "hist")], 1e-6)
    # Assert: our orders extend Opacus's, so we are at least as tight
    assert ours <= accountant.get_epsilon(1e-6) + 1e-9
    assert ours == pytest.approx(accountant.get_epsilon(1e-6), rel=0.05)


@pytest.mark.parametrize("target", [0.5, 1.0, 2.0])
def test_calibration_hits_target_from_below(target: float) -> None:
    sigma = calibrate_noise_multiplier(
        target_epsilon=target, target_delta=1e-6, sample_rate=0.04, steps=250
    )
    achieved = rdp_epsilon([Spend(sigma, 0.04, 250, "dp_sgd")], 1e-6)
    assert target * 0.99 <= achieved <= target


def test_joint_calibration_fills_the_budget_with_the_fixed_release() -> None:
    curve = Spend(4.5, 1.0, 1, "hist")
    sigma = calibrate_noise_multiplier(
        target_epsilon=2.0, target_delta=1e-6, sample_rate=0.04, steps=500, composed_with=(curve,)
    )
    total = rdp_epsilon([curve, Spend(sigma, 0.04, 500, "dp_sgd")], 1e-6)
    assert 1.98 <= total <= 2.0


def test_guard_charges_and_refuses_over_the_cap(tmp_path: Path) -> None:
    # Prepare
    guard = BudgetGuard(tmp_path, epsilon_cap=1.0, delta=1e-5)
    small = dp_sgd(sigma=2.0, q=0.01, steps=50)
    # Execute
    after = guard.charge([small])
    # Assert: a spend that fits is recorded; one that does not is refused and not recorded
    assert 0 < after < 1.0
    with pytest.raises(BudgetExceededError, match=r"above its cap of 1 at delta"):
        guard.charge([dp_sgd(sigma=0.5, q=0.5, steps=500)])
    assert guard.status().releases == 1
    assert guard.status().epsilon_spent == pytest.approx(after)


def test_spent_budget_survives_a_restart(tmp_path: Path) -> None:
    # Prepare: one guard spends, then the process "restarts" (a new guard on the same dir)
    BudgetGuard(tmp_path, epsilon_cap=5.0, delta=1e-5).charge([dp_sgd()])
    # Execute
    restarted = BudgetGuard(tmp_path, epsilon_cap=5.0, delta=1e-5)
    # Assert
    expected = rdp_epsilon([dp_sgd()], 1e-5)
    assert restarted.status().epsilon_spent == pytest.approx(expected)
    assert restarted.projected_epsilon([dp_sgd()]) == pytest.approx(
        rdp_epsilon([dp_sgd(), dp_sgd()], 1e-5)
    )


def test_state_file_is_private_and_keeps_history(tmp_path: Path) -> None:
    guard = BudgetGuard(tmp_path, epsilon_cap=5.0, delta=1e-5)
    first = guard.charge([dp_sgd()])
    guard.charge([Spend(5.0, 1.0, 1, "hist", "run-a", 2, "curve")])
    data = json.loads((tmp_path / "accountant.json").read_text())
    assert (tmp_path / "accountant.json").stat().st_mode & 0o777 == 0o600
    assert [e["mechanism"] for e in data["entries"]] == ["dp_sgd", "hist"]
    assert data["entries"][0]["epsilon_after"] == pytest.approx(first)


@pytest.mark.parametrize("content", ["{not json", '{"version": 99, "entries": []}', "[]"])
def test_corrupt_state_is_an_error_not_a_reset(tmp_path: Path, content: str) -> None:
    (tmp_path / "accountant.json").write_text(content)
    guard = BudgetGuard(tmp_path, epsilon_cap=5.0, delta=1e-5)
    with pytest.raises(StateError, match="accountant"):
        guard.check([dp_sgd()])
