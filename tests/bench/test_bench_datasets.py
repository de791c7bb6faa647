"""The model benchmark's data: real and synthetic unit tables, seeded splits, enterprise
partitions, sites written from them, and the central baselines (no federation here)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.baselines import central_baselines, harrell_c, person_period
from bench.datasets import DATASETS, GROUP_COLUMN, Dataset, load_dataset
from bench.model_sites import config_for, write_sites
from bench.splits import (
    RANDOM_ENTERPRISES,
    RANDOM_MIN_UNITS,
    partition_by_group,
    partition_random,
    split_units,
)
from common.errors import ConfigError
from coordinator.config import load_config_or_default
from enterprise_node.approval import Approvals
from enterprise_node.config import load_node_config
from enterprise_node.ingest import ingest
from models.features import encode_units
from models.spec import ModelSpec

#: Units and natural enterprises of each data set (synthetic: its generated ones).
EXPECTED = {
    "hdfail": (52_422, 4),
    "flchain": (7_874, 5),
    "gbsg2": (686, 6),
    "synthetic": (10_096, 6),
}


@pytest.fixture(scope="module", params=sorted(DATASETS))
def dataset(request: pytest.FixtureRequest) -> Dataset:
    return load_dataset(request.param)


def ids(frame: pd.DataFrame) -> set[str]:
    return set(frame["unit_id"])


def test_each_data_set_is_a_canonical_unit_table_of_the_expected_size(dataset: Dataset) -> None:
    units = dataset.units
    assert len(units) == EXPECTED[dataset.name][0]
    assert units["unit_id"].is_unique
    assert set(units["failed"].unique()) <= {0, 1}
    assert (units["duration"] >= 0).all()
    assert units["entry_age"].isna().all()
    assert set(units["segment"]) <= set(dataset.spec.segments)
    assert set(units["equipment_class"]) <= set(dataset.spec.equipment_classes)
    assert units[[*dataset.spec.feature_names, GROUP_COLUMN]].notna().all().all()


def test_each_spec_validates_and_its_grid_covers_the_follow_up(dataset: Dataset) -> None:
    spec = ModelSpec.model_validate(dataset.spec.model_dump())
    assert spec.digest == dataset.spec.digest
    assert 12 <= spec.time_grid.n_intervals <= 30
    assert spec.hidden_units == ()
    covered = (dataset.units["duration"] <= spec.time_grid.horizon).mean()
    # synthetic sites observe units up to 1.25 horizons (harness/synthetic.py): 6 % beyond
    assert covered > (0.9 if dataset.name == "synthetic" else 0.99)


def test_splits_are_disjoint_cover_the_data_and_are_fixed_by_the_seed(dataset: Dataset) -> None:
    splits = split_units(dataset.units, seed=0)
    assert ids(splits.test).isdisjoint(ids(splits.train))
    assert ids(splits.test) | ids(splits.train) == ids(dataset.units)
    assert ids(splits.tune_train).isdisjoint(ids(splits.validation))
    assert ids(splits.tune_train) | ids(splits.validation) == ids(splits.train)
    assert len(splits.test) == pytest.approx(0.25 * len(dataset.units), abs=2)
    again = split_units(dataset.units, seed=0)
    for name in ("test", "train", "tune_train", "validation"):
        pd.testing.assert_frame_equal(getattr(splits, name), getattr(again, name))
    assert ids(split_units(dataset.units, seed=1).test) != ids(splits.test)


def test_splits_are_stratified_by_event(dataset: Dataset) -> None:
    splits = split_units(dataset.units, seed=0)
    rate = dataset.event_rate
    for part in (splits.test, splits.train, splits.tune_train, splits.validation):
        assert part["failed"].mean() == pytest.approx(rate, abs=0.01)


def test_the_test_split_does_not_depend_on_how_tuning_data_are_split() -> None:
    units = load_dataset("gbsg2").units
    one = split_units(units, seed=3, validation_fraction=0.2)
    other = split_units(units, seed=3, validation_fraction=0.4)
    assert ids(one.test) == ids(other.test)
    assert ids(one.validation) != ids(other.validation)


def test_the_natural_enterprises_are_four_to_eight_unequal_groups(dataset: Dataset) -> None:
    train = split_units(dataset.units, seed=0).train
    parts = partition_by_group(train)
    assert len(parts) == EXPECTED[dataset.name][1]
    assert 4 <= len(parts) <= 8
    assert sum(len(p) for p in parts) == len(train)
    assert set().union(*(ids(p) for p in parts)) == ids(train)
    assert all(p[GROUP_COLUMN].nunique() == 1 for p in parts)
    assert len({len(p) for p in parts}) == len(parts)


def test_fifty_random_enterprises_are_unequal_disjoint_and_at_least_the_minimum(
    dataset: Dataset,
) -> None:
    train = split_units(dataset.units, seed=0).train
    parts = partition_random(train, seed=0)
    sizes = np.array([len(p) for p in parts])
    assert len(parts) == RANDOM_ENTERPRISES
    assert sizes.sum() == len(train)
    assert sizes.min() >= RANDOM_MIN_UNITS
    assert sizes.max() > 3 * sizes.min()
    assert len(set().union(*(ids(p) for p in parts))) == len(train)
    again = [len(p) for p in partition_random(train, seed=0)]
    assert again == sizes.tolist()
    assert [len(p) for p in partition_random(train, seed=1)] != sizes.tolist()


def test_too_few_units_for_the_random_enterprises_is_an_error() -> None:
    frame = pd.DataFrame({"unit_id": [f"u{i}" for i in range(20)], "failed": 0})
    with pytest.raises(ConfigError, match="cannot make 5 enterprises of at least 5 units"):
        partition_random(frame, 5, min_units=5)


def test_encode_units_accepts_every_split(dataset: Dataset) -> None:
    splits = split_units(dataset.units, seed=0)
    for part in (splits.test, splits.train, splits.tune_train, splits.validation):
        encoded = encode_units(part, dataset.spec)
        assert encoded.x.shape == (len(part), dataset.spec.input_width)
        assert np.all((encoded.x >= 0) & (encoded.x <= 1))


def test_sites_written_for_a_split_ingest_without_errors(
    dataset: Dataset, tmp_path_factory: pytest.TempPathFactory
) -> None:
    plan = config_for(dataset.spec, load_config_or_default(None)).plan
    train = split_units(dataset.units, seed=0).train
    parts = partition_by_group(train)
    root = tmp_path_factory.mktemp(f"sites-{dataset.name}")
    nodes = write_sites(parts, root, plan)
    assert len(nodes) == len(parts)
    smallest = min(range(len(parts)), key=lambda i: len(parts[i]))
    config = load_node_config(nodes[smallest])
    result = ingest(config, plan.model_spec)
    assert result.errors == ()
    assert result.n_rows_accepted == len(parts[smallest])
    assert config.node.segments == list(dataset.spec.segments)
    assert all(Approvals(load_node_config(n)).is_approved(plan.digest) for n in nodes)
    assert config.site_secret_path.exists() and config.state_dir.is_dir()


@pytest.mark.integration
def test_fifty_small_sites_ingest_and_are_unapproved_when_asked(tmp_path) -> None:
    dataset = load_dataset("gbsg2")
    plan = config_for(dataset.spec, load_config_or_default(None)).plan
    parts = partition_random(split_units(dataset.units, seed=0).train, seed=0)
    nodes = write_sites(parts, tmp_path, plan, approve_by=None, data_format="csv")
    for node, part in zip(nodes, parts, strict=True):
        config = load_node_config(node)
        assert ingest(config, plan.model_spec).n_rows_accepted == len(part)
        assert not Approvals(config).is_approved(plan.digest)


def test_an_unknown_data_set_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown data set 'nope'"):
        load_dataset("nope")


def test_person_period_rows_are_one_per_unit_and_interval_at_risk() -> None:
    dataset = load_dataset("gbsg2")
    encoded = encode_units(dataset.units, dataset.spec)
    design, outcome = person_period(encoded, dataset.spec)
    n_intervals = dataset.spec.time_grid.n_intervals
    assert len(design) == int((encoded.interval - encoded.entry_interval + 1).sum())
    assert outcome.sum() == encoded.event.sum()
    assert np.all(design[:, :n_intervals].sum(axis=1) == 1)
    last = np.cumsum(encoded.interval + 1) - 1  # each unit's exit row (no delayed entry)
    assert np.all(design[last, :n_intervals].argmax(axis=1) == encoded.interval)
    assert np.array_equal(outcome[last], encoded.event)


def test_harrell_c_is_one_for_a_perfect_ranking_and_a_half_for_a_constant() -> None:
    units = pd.DataFrame({"duration": [1.0, 2.0, 3.0, 4.0], "failed": [1, 1, 1, 0]})
    assert harrell_c(units, np.array([4.0, 3.0, 2.0, 1.0])) == 1.0
    assert harrell_c(units, np.array([1.0, 2.0, 3.0, 4.0])) == 0.0
    assert harrell_c(units, np.zeros(4)) == 0.5


def test_the_central_cox_and_glm_fits_agree_and_rank_well() -> None:
    dataset = load_dataset("gbsg2")
    splits = split_units(dataset.units, seed=0)
    fits = central_baselines(splits.train, splits.test, dataset.spec)
    assert fits["glm"] == pytest.approx(fits["cox"], abs=0.02)
    assert fits["glm"] > 0.65
