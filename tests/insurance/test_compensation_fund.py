"""The risk compensation fund: the same seed gives the same paths, a year of heavy losses
is paid as the rules say (by hand), it never pays more than its cap, and once used up it
stops; a government seed above 30 % of the fund is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from common.errors import ConfigError
from insurance.compensation_fund import annual_losses, fund_figures, simulate_fund
from insurance.loss_distribution import LossDistribution
from insurance.pool import Fund, load_pool

CONFIGS = Path(__file__).parents[2] / "configs"
PREMIUM = 100.0


def _fund(**changes: object) -> Fund:
    rules: dict = {"initial_balance": 100.0, "trigger_loss_ratio": 0.7, "exhausted_below": 0.5,
                   "paths": 2_000, "seed": 7}  # fmt: skip
    return Fund.model_validate({**rules, **changes})


def _loss() -> LossDistribution:
    """Annual losses 0-200 (a loss ratio up to 2), skewed towards small ones."""
    masses = np.exp(-np.arange(201) / 40.0)
    return LossDistribution.from_masses(1.0, masses / masses.sum())


def test_the_same_seed_gives_the_same_paths_another_seed_others() -> None:
    # Prepare
    fund, other = _fund(seed=7), _fund(seed=8)
    # Execute
    first = simulate_fund(fund, premium=PREMIUM, losses=annual_losses(_loss(), fund))
    again = simulate_fund(fund, premium=PREMIUM, losses=annual_losses(_loss(), fund))
    elsewhere = simulate_fund(other, premium=PREMIUM, losses=annual_losses(_loss(), other))
    # Assert
    assert np.array_equal(first.balance, again.balance)
    assert np.array_equal(first.payout, again.payout)
    assert not np.array_equal(first.balance, elsewhere.balance)
    figures = fund_figures(fund, premium=PREMIUM, paths=first)
    assert figures == fund_figures(fund, premium=PREMIUM, paths=again)


def test_heavy_years_are_paid_as_the_rules_say() -> None:
    # Prepare: every year's claim is far above the cap. By hand (levy 1, cap 20 %):
    # 100 + 1 -> pays 20.2 -> 80.8; 81.8 -> 16.36 -> 65.44; 66.44 -> 13.288 -> 53.152;
    # 54.152 -> 10.8304 -> 43.3216 < 50: used up after year 4, nothing more after
    fund = _fund(years=6)
    losses = np.full((1, 6), 1_000.0)
    # Execute
    paths = simulate_fund(fund, premium=PREMIUM, losses=losses)
    # Assert
    assert paths.payout[0] == pytest.approx([20.2, 16.36, 13.288, 10.8304, 0.0, 0.0])
    assert paths.balance[0] == pytest.approx([100, 80.8, 65.44, 53.152] + [43.3216] * 3)
    assert paths.exhausted[0].tolist() == [False, False, False, True, True, True]
    assert paths.claim[0] == pytest.approx([930.0] * 6)


def test_a_quiet_pool_costs_the_fund_nothing() -> None:
    fund = _fund(years=3)
    paths = simulate_fund(fund, premium=PREMIUM, losses=np.full((2, 3), 69.0))  # below 70
    assert not paths.payout.any()
    assert paths.balance[0] == pytest.approx([100, 101, 102, 103])  # the levy comes in


def test_simulated_paths_keep_every_rule() -> None:
    # Prepare: a small fund and frequent claims, so that some paths are used up
    fund = _fund(initial_balance=60.0, trigger_loss_ratio=0.2, years=10)
    # Execute
    paths = simulate_fund(fund, premium=PREMIUM, losses=annual_losses(_loss(), fund))
    figures = fund_figures(fund, premium=PREMIUM, paths=paths)
    # Assert: the cap binds on the balance after the levy, while the fund is open
    was_open = np.concatenate([np.zeros((fund.paths, 1), bool), paths.exhausted[:, :-1]], axis=1)
    was_open = ~was_open
    after_levy = paths.balance[:, :-1] + np.where(was_open, fund.levy_rate * PREMIUM, 0.0)
    assert np.all(paths.payout <= fund.payout_cap * after_levy + 1e-12)
    assert np.all(paths.payout <= paths.claim + 1e-12)
    # once used up: no payout and no levy, the balance stays
    assert np.all(paths.payout[~was_open] == 0.0)
    closed_next = paths.exhausted[:, :-1]
    assert np.array_equal(paths.balance[:, 2:][closed_next], paths.balance[:, 1:-1][closed_next])
    # used up exactly when the balance falls below the floor; never unused again
    assert np.array_equal(paths.exhausted[:, 0], paths.balance[:, 1] < 30.0)
    assert np.all(np.diff(paths.exhausted.astype(int), axis=1) >= 0)
    assert 0 < figures.exhaustion_probability < 1
    assert figures.exhaustion_probability == pytest.approx(paths.exhausted[:, -1].mean())
    assert figures.balance_p05[0] == figures.balance_p95[0] == 60.0
    assert list(figures.exhausted_by_year) == sorted(figures.exhausted_by_year)


def test_a_government_seed_above_30_percent_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="above 30% of the fund"):
        _fund(government_seed_share=0.35)
    # the simulation refuses it too, however the rules were built
    forged = Fund.model_construct(**{**_fund().model_dump(), "government_seed_share": 0.31})
    with pytest.raises(ConfigError, match="at most 30% of the fund"):
        simulate_fund(forged, premium=PREMIUM, losses=np.zeros((1, 1)))
    # and pool.yaml names the key and the file
    text = (CONFIGS / "pool.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "pool.yaml"
    bad.write_text(text.replace("government_seed_share: 0.30", "government_seed_share: 0.4"))
    with pytest.raises(ConfigError, match=r"pool.yaml: pool.fund: .*0.4 is above 30%"):
        load_pool(bad)


def test_the_seed_share_at_30_percent_is_allowed() -> None:
    figures = fund_figures(
        _fund(government_seed_share=0.30), premium=PREMIUM,
        paths=simulate_fund(_fund(), premium=PREMIUM, losses=np.zeros((1, 2))),
    )  # fmt: skip
    assert (figures.government_seed, figures.insurers_capital) == pytest.approx((30.0, 70.0))
