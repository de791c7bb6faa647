"""Canaries of the one-run audit: one per exit cell and coefficient, coins kept secret."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np
import pytest
from node_site import load_spec

from auditor.canaries import (
    CANARY_FEATURE,
    NO_CANARY,
    REFERENCE_LEVEL,
    audit_spec,
    canary_units,
    load_plant,
    plant_canaries,
    save_plant,
)
from common.errors import ConfigError
from models.histogram import unit_histograms


def test_every_canary_owns_an_exit_cell_and_a_level() -> None:
    # Prepare
    spec = load_spec()
    plant = plant_canaries(spec, 40, seed=1)
    # Execute
    units = canary_units(plant, only_included=False)
    # Assert: 40 canaries over ceil(40 / 15) = 3 canary segments; distinct cells and levels
    added = [s for s in plant.spec.segments if s not in spec.segments]
    assert added == ["canary_00", "canary_01", "canary_02"]
    assert len({(c.segment, c.interval) for c in plant.canaries}) == 40
    levels = plant.spec.features[-1].levels
    assert levels[:2] == (NO_CANARY, REFERENCE_LEVEL) and len(set(units[CANARY_FEATURE])) == 40
    exits = unit_histograms(units, plant.spec).exits
    assert exits.max() == 1 and exits.sum() == 40  # one failure per cell, no cell shared


def test_coins_are_fair_and_only_included_canaries_are_handed_over() -> None:
    plant = plant_canaries(load_spec(), 2000, seed=7)
    assert 0.45 < plant.included.mean() < 0.55
    handed = canary_units(plant)
    assert len(handed) == plant.included.sum()
    assert set(handed["unit_id"]) == {f"canary-{i:05d}" for i in np.flatnonzero(plant.included)}


def test_the_plant_is_kept_private_and_read_back(tmp_path: Path) -> None:
    plant = plant_canaries(load_spec(), 30, seed=2)
    path = tmp_path / "secret" / "plant.json"
    save_plant(plant, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_plant(path)
    assert again.spec == plant.spec and again.canaries == plant.canaries
    assert (again.included == plant.included).all()
    document = json.loads(path.read_text())
    document["included"] = document["included"][:-1]
    path.write_text(json.dumps(document))
    with pytest.raises(ConfigError, match="30 canaries but 29 coins"):
        load_plant(path)


def test_a_spec_that_has_canaries_already_or_too_few_is_refused() -> None:
    spec = load_spec()
    with pytest.raises(ConfigError, match="already has canaries"):
        audit_spec(audit_spec(spec, 10), 10)
    with pytest.raises(ConfigError, match="at least 2 canaries"):
        audit_spec(spec, 1)
