"""What the broker keeps names no site and no unit: a site's ``node.name`` and its raw unit
ids appear in no file the coordinator writes (run outputs, progress, report, summary,
ledger), even when a node's reply carries a name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from inprocess_grid import InProcessGrid, run_coordinator, small_federation
from node_site import approve_plan

from coordinator.config import load_config_or_default
from enterprise_node.config import load_node_config
from enterprise_node.ingest import read_table

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("flower_identity")]

#: Site names no output could hold by chance.
NAMES = ("Quokka-Foundry-7Zx", "Wombat-Fab-Q2v", "Numbat-Plant-K9r", "Bilby-Works-J4m")


def _rename(node_yamls: list[Path]) -> None:
    for path, name in zip(node_yamls, NAMES, strict=True):
        data = yaml.safe_load(path.read_text())
        data["node"]["name"] = name
        path.write_text(yaml.safe_dump(data, sort_keys=False))


def _unit_ids(node_yaml: Path) -> set[str]:
    config = load_node_config(node_yaml)
    table = read_table(config.data_path, config.data.format)
    return {str(v) for v in table[config.data.columns.unit_id]}


def _broker_files(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if p.is_file()]


def test_no_site_name_or_unit_id_reaches_any_file_the_broker_writes(tmp_path: Path) -> None:
    # Prepare: 4 sites with distinctive names; one refuses (its plan is not approved), so
    # refusals, which name the refusing node, are in the outputs too
    config = load_config_or_default(None)
    training = config.plan.training.model_copy(update={"rounds": 2})
    config = config.model_copy(
        update={"plan": config.plan.model_copy(update={"training": training})}
    )
    nodes = small_federation(tmp_path / "fed", config.plan.model_spec)
    _rename(nodes)
    unit_ids = set().union(*(_unit_ids(n) for n in nodes))
    assert len(unit_ids) > 1000
    # Execute
    approve_plan(nodes[:3], config.plan)
    run_coordinator(
        InProcessGrid(nodes),
        config,
        tmp_path / "run",
        coordinator_dir=tmp_path / "coord",
        approve=False,
    )
    # Assert: the refusal is in the outputs, under the node's pseudonym
    events = (tmp_path / "run" / "progress.jsonl").read_text()
    assert "not approved" in events
    # ... and no file the broker side wrote holds a name or a unit id, byte for byte
    files = _broker_files(tmp_path / "run", tmp_path / "coord")
    assert len(files) > 5
    for path in files:
        text = path.read_bytes().decode("utf-8", errors="replace")
        for name in NAMES:
            assert name not in text, f"{path} holds site name {name}"
        tokens = set(_tokens(text))
        leaked = unit_ids & tokens
        assert not leaked, f"{path} holds unit id(s) {sorted(leaked)[:3]}"


def _tokens(text: str) -> list[str]:
    """Words of ``text`` split at anything but letters, digits, '-' and '_'."""
    out, word = [], []
    for char in text:
        if char.isalnum() or char in "-_":
            word.append(char)
        elif word:
            out.append("".join(word))
            word = []
    if word:
        out.append("".join(word))
    return out
