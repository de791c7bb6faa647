"""The run's pre-flight exchange: a node that cannot serve the run is left out before
anyone is charged, and a run that cannot reach its quorum fails before anyone is charged
(issue: a node with bad data refused only at the model stage, after the others had spent
budget on a run that released nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest
from inprocess_grid import InProcessGrid, run_coordinator, small_federation
from node_site import config_with

from common.errors import RunFailedError
from coordinator.run_store import RunStore
from coordinator.run_summary import SUMMARY_FILE, require_summary
from enterprise_node.budget import BudgetGuard
from enterprise_node.config import load_node_config
from enterprise_node.node_ledger import node_key_id
from enterprise_node.outbox import Outbox
from harness.defects import plant_defects

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("flower_identity")]


def _spent(node_yaml: Path) -> int:
    config = load_node_config(node_yaml)
    guard = BudgetGuard(
        config.state_dir, epsilon_cap=config.privacy.epsilon, delta=config.privacy.delta
    )
    return guard.status().releases


def _purposes(node_yaml: Path) -> list[str]:
    return [e.purpose for e in Outbox(load_node_config(node_yaml).state_dir).entries()]


@pytest.fixture
def federation(tmp_path: Path) -> list[Path]:
    """4 sites; the last one's export has 5 % bad rows (its cap is 1 %)."""
    config = config_with()
    nodes = small_federation(tmp_path / "fed", config.plan.model_spec)
    bad = load_node_config(nodes[3])
    plant_defects(bad.data_path, ["negative_duration", "unknown_segment"], rate=0.025, seed=1)
    return nodes


def test_a_node_that_cannot_serve_the_run_is_left_out_before_anyone_is_charged(
    tmp_path: Path, federation: list[Path]
) -> None:
    # Prepare: a quorum of 3
    config = config_with(federation={"min_nodes": 3}, plan={"training": {"rounds": 2}})
    # Execute
    run_coordinator(InProcessGrid(federation), config, tmp_path / "run")
    # Assert: the run completed with the three good sites; the bad one sent its pre-flight
    # refusal and was never asked anything else, nor charged
    summary = require_summary(tmp_path / "run" / SUMMARY_FILE)
    assert summary.completed
    [check] = [r for r in summary.rounds if r.task == "preflight"]
    bad = node_key_id(load_node_config(federation[3]))
    assert check.round == 0 and [r.node for r in check.refused] == [bad]
    assert "refused by validation" in check.refused[0].reason
    assert _purposes(federation[3]) == ["status-only"]
    assert _spent(federation[3]) == 0
    assert all(_spent(n) > 0 for n in federation[:3])


def test_a_run_short_of_its_quorum_fails_at_the_preflight_with_nobody_charged(
    tmp_path: Path, federation: list[Path]
) -> None:
    # Prepare: every one of the 4 sites is needed
    config = config_with(federation={"min_nodes": 4})
    # Execute
    with pytest.raises(RunFailedError, match=r"round 0 \(preflight\).*refused by validation"):
        run_coordinator(InProcessGrid(federation), config, tmp_path / "run")
    # Assert: nothing but the pre-flight was sent, nothing charged anywhere
    assert all(_spent(n) == 0 for n in federation)
    assert all(len(_purposes(n)) == 1 for n in federation)
    events = RunStore(tmp_path / "run").read_events()
    assert [e.task for e in events if type(e).__name__ == "RoundStart"] == ["preflight"]
