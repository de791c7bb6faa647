"""Strict config loading (coordinator.yaml, node.yaml) and the training plan's digest."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from common.errors import ConfigError
from coordinator.config import load_coordinator_config
from enterprise_node.config import load_node_config
from protocols.plan import TrainingPlan

REPO = Path(__file__).resolve().parents[2]
COORDINATOR_YAML = REPO / "configs" / "coordinator.yaml"
NODE_YAML = REPO / "configs" / "node.yaml"

Loader = Callable[[Path], object]


def write_yaml(path: Path, document: dict) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def shipped(path: Path) -> dict:
    """Factory: a fresh, mutable copy of a shipped config file's document."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def plan_digest(tmp_path: Path, document: dict) -> str:
    return load_coordinator_config(write_yaml(tmp_path / "coordinator.yaml", document)).plan.digest


# ---- strictness -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "loader", "section", "key_path"),
    [
        (COORDINATOR_YAML, load_coordinator_config, ("plan", "training"), "plan.training.momentum"),
        (
            COORDINATOR_YAML,
            load_coordinator_config,
            ("plan", "privacy", "record"),
            "plan.privacy.record.epsilon_total",
        ),
        (COORDINATOR_YAML, load_coordinator_config, (), "telemetry"),
        (NODE_YAML, load_node_config, ("privacy",), "privacy.budget"),
        (NODE_YAML, load_node_config, ("data", "columns"), "data.columns.serial_no"),
        (NODE_YAML, load_node_config, (), "secrets"),
    ],
)
def test_unknown_key_is_an_error_naming_key_path_and_file(
    tmp_path: Path, source: Path, loader: Loader, section: tuple[str, ...], key_path: str
) -> None:
    # Prepare: add one unknown key to a shipped config
    document = shipped(source)
    target = document
    for part in section:
        target = target[part]
    target[key_path.rsplit(".", 1)[-1]] = 1
    path = write_yaml(tmp_path / source.name, document)
    # Execute / Assert
    with pytest.raises(ConfigError, match=f"{key_path}: unknown key") as info:
        loader(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("source", "loader"),
    [(COORDINATOR_YAML, load_coordinator_config), (NODE_YAML, load_node_config)],
)
def test_bad_yaml_names_line_and_column(tmp_path: Path, source: Path, loader: Loader) -> None:
    # Prepare: line 3 opens a flow list that never closes
    path = tmp_path / source.name
    path.write_text("a: 1\nb: 2\nc: [1, 2\nd: 4\n", encoding="utf-8")
    # Execute / Assert
    with pytest.raises(ConfigError, match=r"not valid YAML \(line \d+, column \d+\)") as info:
        loader(path)
    assert str(path) in str(info.value)


def test_bad_yaml_position_is_the_offending_line(tmp_path: Path) -> None:
    # Prepare: a tab indentation on line 4 (YAML forbids tabs there)
    path = tmp_path / "node.yaml"
    path.write_text("node:\n  name: x\ndata:\n\tpath: units.csv\n", encoding="utf-8")
    # Execute / Assert
    with pytest.raises(ConfigError, match=r"line 4, column 1"):
        load_node_config(path)


@pytest.mark.parametrize(
    ("source", "loader", "section", "key", "value"),
    [
        (COORDINATOR_YAML, load_coordinator_config, ("federation",), "min_nodes", "many"),
        (COORDINATOR_YAML, load_coordinator_config, ("plan", "training"), "rounds", [1, 2]),
        (COORDINATOR_YAML, load_coordinator_config, ("plan", "privacy", "record"), "delta", "x"),
        (NODE_YAML, load_node_config, ("data",), "max_bad_fraction", "lots"),
        (NODE_YAML, load_node_config, ("privacy",), "epsilon", {"a": 1}),
    ],
)
def test_wrong_type_names_the_key(
    tmp_path: Path,
    source: Path,
    loader: Loader,
    section: tuple[str, ...],
    key: str,
    value: object,
) -> None:
    # Prepare
    document = shipped(source)
    target = document
    for part in section:
        target = target[part]
    target[key] = value
    path = write_yaml(tmp_path / source.name, document)
    key_path = ".".join((*section, key))
    # Execute / Assert
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}: {key_path}: ") as info:
        loader(path)
    assert "unknown key" not in str(info.value)


def test_missing_required_key_names_it(tmp_path: Path) -> None:
    # Prepare
    document = shipped(NODE_YAML)
    del document["node"]["name"]
    path = write_yaml(tmp_path / "node.yaml", document)
    # Execute / Assert
    with pytest.raises(ConfigError, match=r"node\.name: Field required"):
        load_node_config(path)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "nowhere" / "coordinator.yaml"
    # Execute / Assert
    with pytest.raises(ConfigError, match="file not found") as info:
        load_coordinator_config(path)
    assert str(path) in str(info.value)


def test_node_paths_resolve_against_the_yaml_directory(tmp_path: Path) -> None:
    # Prepare
    site = tmp_path / "site"
    site.mkdir()
    path = write_yaml(site / "node.yaml", shipped(NODE_YAML))
    # Execute
    config = load_node_config(path)
    # Assert
    assert config.data_path == site / "units.csv"
    assert config.state_dir == site / "state"


# ---- shipped files ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("example", "template"),
    [
        ("configs/coordinator.yaml", "coordinator/templates/coordinator.yaml"),
        ("configs/node.yaml", "enterprise_node/templates/node.yaml"),
        ("configs/product.yaml", "insurance/templates/product.yaml"),
        ("configs/pool.yaml", "insurance/templates/pool.yaml"),
    ],
)
def test_example_config_equals_its_template_byte_for_byte(example: str, template: str) -> None:
    # Execute / Assert
    assert (REPO / example).read_bytes() == (REPO / template).read_bytes()


def test_shipped_configs_load() -> None:
    # Execute
    coordinator = load_coordinator_config(COORDINATOR_YAML)
    node = load_node_config(NODE_YAML)
    # Assert: the values the docs promise
    assert coordinator.plan.model_spec.segments == (
        "semiconductor_fab",
        "nev_battery",
        "industrial_robot",
    )
    assert coordinator.plan.model_spec.time_grid.horizon == 120
    assert node.data.max_bad_fraction == 0.01


# ---- plan digest ------------------------------------------------------------------------


def test_plan_digest_is_sha256_of_canonical_json() -> None:
    # Prepare
    plan = load_coordinator_config(COORDINATOR_YAML).plan
    # Execute
    text = plan.canonical_json()
    # Assert: canonical = sorted keys, no spaces; and it parses back to the same plan
    assert plan.digest == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert ", " not in text and ": " not in text
    assert TrainingPlan.from_json(text).digest == plan.digest


def test_plan_digest_is_stable_across_processes_and_key_order(tmp_path: Path) -> None:
    # Prepare: the same plan with every mapping's keys reversed
    def reversed_keys(node: object) -> object:
        if isinstance(node, dict):
            return {k: reversed_keys(node[k]) for k in reversed(list(node))}
        if isinstance(node, list):
            return [reversed_keys(v) for v in node]
        return node

    reordered = write_yaml(tmp_path / "coordinator.yaml", reversed_keys(shipped(COORDINATOR_YAML)))
    code = (
        "from pathlib import Path; from coordinator.config import load_coordinator_config as l;"
        f"print(l(Path({str(COORDINATOR_YAML)!r})).plan.digest)"
    )
    env = os.environ | {"PYTHONHASHSEED": "12345"}
    # Execute
    here = load_coordinator_config(COORDINATOR_YAML).plan.digest
    elsewhere = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Assert
    assert elsewhere == here
    assert load_coordinator_config(reordered).plan.digest == here


def _set(path: str, value: object) -> Callable[[dict], None]:
    def change(document: dict) -> None:
        target = document
        *parents, last = path.split(".")
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[last] = value

    return change


PLAN_CHANGES = {
    "rounds": _set("plan.training.rounds", 11),
    "local_epochs": _set("plan.training.local_epochs", 3),
    "batch_size": _set("plan.training.batch_size", 64),
    "server_momentum": _set("plan.training.server_momentum", 0.0),
    "feature_upper_bound": _set("plan.model_spec.features.0.upper", 120),
    "feature_lower_bound": _set("plan.model_spec.features.1.lower", -10),
    "category_levels": _set("plan.model_spec.features.3.levels", ["imported", "domestic"]),
    "time_grid": _set("plan.model_spec.time_grid.edges", [0, 12, 24, 60, 120]),
    "epsilon": _set("plan.privacy.record.epsilon", 2.5),
    "delta": _set("plan.privacy.record.delta", 1e-7),
    "curve_share": _set("plan.privacy.record.curve_share", 0.4),
    "max_grad_norm": _set("plan.privacy.record.max_grad_norm", 0.5),
    "dp_enabled": _set("plan.privacy.record.enabled", False),
    "curve_release": _set("plan.curve_release", False),
}


@pytest.mark.parametrize("change", PLAN_CHANGES.values(), ids=PLAN_CHANGES.keys())
def test_plan_digest_changes_with_any_plan_field(
    tmp_path: Path, change: Callable[[dict], None]
) -> None:
    # Prepare
    document = shipped(COORDINATOR_YAML)
    before = plan_digest(tmp_path, document)
    change(document)
    # Execute
    after = plan_digest(tmp_path, document)
    # Assert
    assert after != before


@pytest.mark.parametrize(
    "change",
    [_set("federation.round_timeout_s", 60), _set("curves.censor_weight", 0.0)],
    ids=["round_timeout", "censor_weight"],
)
def test_plan_digest_ignores_settings_outside_the_plan(
    tmp_path: Path, change: Callable[[dict], None]
) -> None:
    # Prepare: nodes approve plans by digest; broker-side settings must not void approvals
    document = shipped(COORDINATOR_YAML)
    before = plan_digest(tmp_path, document)
    change(document)
    # Execute
    after = plan_digest(tmp_path, document)
    # Assert
    assert after == before
