"""The co-insurance split: the shares add up to the pool, the domain's ranges are enforced
with the insurer named, and a capacity below its share's VaR 99.5 % is reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from common.errors import ConfigError
from insurance.coinsurance import VAR_LEVEL, coinsurance_split
from insurance.loss_distribution import LossDistribution
from insurance.pool import Coinsurance, Insurer, load_pool, share_problems

CONFIGS = Path(__file__).parents[2] / "configs"
PREMIUM = 1_000.0


def _loss() -> LossDistribution:
    masses = np.exp(-np.arange(400) / 60.0)
    return LossDistribution.from_masses(2.0, masses / masses.sum())


def _coinsurance(lead: float = 0.4, others: tuple[float, ...] = (0.35, 0.25),
                 capacity: float = 1e6) -> Coinsurance:  # fmt: skip
    return Coinsurance.model_construct(
        lead=Insurer(name="Lead", share=lead, capacity=capacity),
        coinsurers=[Insurer(name=f"Co {i}", share=s, capacity=capacity)
                    for i, s in enumerate(others)],
    )  # fmt: skip


def test_the_shares_add_up_to_the_pool() -> None:
    # Prepare
    loss = _loss()
    # Execute
    split = coinsurance_split(_coinsurance(), loss, PREMIUM)
    # Assert
    assert [s.role for s in split] == ["lead", "co-insurer", "co-insurer"]
    assert sum(s.share for s in split) == pytest.approx(1.0)
    assert sum(s.expected_loss for s in split) == pytest.approx(loss.mean())
    assert sum(s.premium for s in split) == pytest.approx(PREMIUM)
    assert sum(s.var_995 for s in split) == pytest.approx(loss.value_at_risk(VAR_LEVEL))
    assert sum(s.tvar_995 for s in split) == pytest.approx(loss.tail_value_at_risk(VAR_LEVEL))
    assert split[0].expected_loss == pytest.approx(0.4 * loss.mean())


@pytest.mark.parametrize(
    ("lead", "others", "message"),
    [
        (0.25, (0.45, 0.30), "lead insurer 'Lead' holds 25.00%, outside 30%-50%"),
        (0.55, (0.25, 0.20), "lead insurer 'Lead' holds 55.00%, outside 30%-50%"),
        (0.30, (0.45, 0.30), "the co-insurers hold 75.00% together, outside 50%-70%"),
        (0.40, (0.35, 0.20), "the shares sum to 0.95, not 1"),
    ],
)
def test_shares_outside_the_domain_are_refused(
    lead: float, others: tuple[float, ...], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        coinsurance_split(_coinsurance(lead, others), _loss(), PREMIUM)


def test_every_breach_is_reported_at_once() -> None:
    lead = Insurer(name="Lead", share=0.2, capacity=1.0)
    problems = share_problems(lead, [Insurer(name="Lead", share=0.9, capacity=1.0)])
    assert len(problems) == 4  # lead share, co-insurers' share, the sum, the name twice


def test_the_limits_of_the_ranges_are_allowed() -> None:
    assert share_problems(Insurer(name="L", share=0.3, capacity=1.0),
                          [Insurer(name="C", share=0.7, capacity=1.0)]) == []  # fmt: skip
    assert share_problems(Insurer(name="L", share=0.5, capacity=1.0),
                          [Insurer(name="C", share=0.5, capacity=1.0)]) == []  # fmt: skip


def test_a_short_capacity_names_the_insurer() -> None:
    # Prepare: the VaR 99.5 % of a 35 % share, and a co-insurer with 1 less than that
    loss = _loss()
    need = 0.35 * loss.value_at_risk(VAR_LEVEL)
    coinsurance = Coinsurance.model_construct(
        lead=Insurer(name="Lead", share=0.4, capacity=1e6),
        coinsurers=[Insurer(name="Thin Re", share=0.35, capacity=need - 1.0),
                    Insurer(name="Deep", share=0.25, capacity=1e6)],
    )  # fmt: skip
    # Execute
    split = coinsurance_split(coinsurance, loss, PREMIUM)
    # Assert
    assert [(s.name, s.capacity_short) for s in split] == [
        ("Lead", False), ("Thin Re", True), ("Deep", False)]  # fmt: skip
    assert split[1].shortfall == pytest.approx(1.0)


def test_pool_yaml_with_bad_shares_names_the_file_and_the_rule(tmp_path: Path) -> None:
    text = (CONFIGS / "pool.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "pool.yaml"
    bad.write_text(text.replace("share: 0.40", "share: 0.60"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_pool(bad)
    assert f"{bad}: pool.coinsurance" in str(caught.value)
    assert "lead insurer 'Lead P&C' holds 60.00%" in str(caught.value)
    assert "the shares sum to 1.2, not 1" in str(caught.value)
