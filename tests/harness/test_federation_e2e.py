"""End-to-end: real Flower federations (Simulation Engine via a private SuperLink).

Slow (each run starts Ray): marked ``slow``; CI runs them all.
"""

from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path

import pytest
import yaml
from node_site import approve_plan

from common.errors import RunFailedError
from common.processes import descendants
from coordinator.config import CoordinatorConfig, load_config_or_default
from coordinator.run_summary import SUMMARY_FILE, require_summary
from enterprise_node.config import load_node_config
from enterprise_node.node_ledger import node_key_id
from harness.demo import evaluate_run
from harness.federation import run_local_federation
from harness.synthetic import FederationManifest, SyntheticConfig, generate_federation

pytestmark = pytest.mark.slow


def small_config(
    *, rounds: int = 2, min_nodes: int = 3, min_enterprises: int = 3
) -> CoordinatorConfig:
    """The packaged plan, shortened for tests."""
    config = load_config_or_default(None)
    training = config.plan.training.model_copy(update={"rounds": rounds, "local_epochs": 1})
    plan = config.plan.model_copy(update={"training": training})
    federation = config.federation.model_copy(update={"min_nodes": min_nodes})
    curves = config.curves.model_copy(update={"min_enterprises": min_enterprises})
    return config.model_copy(update={"plan": plan, "federation": federation, "curves": curves})


def make_federation(
    root: Path, n: int, *, caps: dict[int, float] | None = None
) -> FederationManifest:
    """Factory: ``n`` synthetic enterprises; ``caps`` sets the epsilon cap of some (1-based)."""
    spec = load_config_or_default(None).plan.model_spec
    manifest = generate_federation(
        root, spec, SyntheticConfig(n_enterprises=n, min_units=4000, max_units=6000, seed=3)
    )
    for index, cap in (caps or {}).items():
        path = manifest.node_configs[index - 1]
        data = yaml.safe_load(path.read_text())
        data["privacy"]["epsilon"] = cap
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return manifest


def federate(
    manifest: FederationManifest,
    config: CoordinatorConfig,
    run_dir: Path,
    home: Path,
    progress=None,
):
    approve_plan(manifest.node_configs, config.plan)
    return run_local_federation(
        list(manifest.node_configs), config, run_dir, flwr_home=home, progress=progress
    )


def _stat(pid: int) -> list[str] | None:
    """State, parent, ... of ``pid`` from /proc (None: no such process, not even a zombie)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def test_federated_curves_are_close_to_the_truth(tmp_path: Path) -> None:
    # Prepare; this process stands in for an init that never waits (a container's PID 1):
    # whatever of the federation's processes is orphaned comes here, and is reaped only if
    # fedrisk does it. Every process of the run is noted (SuperLink, SuperExec,
    # flwr-simulation, Ray's gcs_server and raylet, ...) whenever progress arrives.
    manifest = make_federation(tmp_path / "fed", 4)
    config = small_config()
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    seen: dict[int, str] = {}
    # what earlier tests in this process left (judged by their own tests) is not this run's
    before = {pid: f[19] for pid in descendants(os.getpid()) if (f := _stat(pid)) is not None}

    def note_processes(_event: dict) -> None:
        for pid in descendants(os.getpid()):
            if (fields := _stat(pid)) is not None and before.get(pid) != fields[19]:
                seen.setdefault(pid, fields[19])  # start time: a recycled pid differs

    # Execute
    result = federate(manifest, config, tmp_path / "run", tmp_path / "flwr", note_processes)
    evaluation = evaluate_run(
        result.run_dir,
        list(manifest.node_configs),
        manifest.truth_path,
        manifest.holdout_path,
        config,
    )
    # Assert: a broken pipeline (swapped cells, wrong segment, biased at-risk sets, noise
    # 10x too large) lands far above these bounds; this federation's own noise does not
    # (offline, 200 noise draws on this data: worst max error vs truth 0.036)
    assert result.summary.completed
    assert len(result.summary.nodes or ()) == 4
    for row in evaluation["curve_errors"]:
        assert row["vs_truth"] < 0.06, row
        assert row["vs_pooled"] < 0.05, row
    for name in ("curves.json", "curves.csv", "curves.png", "global_model.npz", "summary.json"):
        assert (result.run_dir / name).exists(), name
    # Assert: the finished federation left nothing behind, running or <defunct>
    assert len(seen) >= 4, seen
    left = {
        pid: fields[0]
        for pid, start in seen.items()
        if (fields := _stat(pid)) and fields[19] == start
    }
    assert left == {}, f"left behind (pid: state): {left}"
    assert all(eps <= 2.0 + 1e-6 for eps in evaluation["epsilon_per_node"].values())
    assert result.summary.withheld_segments == ()
    assert len(result.summary.published_segments or ()) == 3


def test_refusal_is_shown_and_spent_budget_survives_node_restart(tmp_path: Path) -> None:
    # Prepare: 4 nodes, the 4th with a cap below one run's cost; quorum is 3; curves need 4
    manifest = make_federation(tmp_path / "fed", 4, caps={4: 0.3})
    config = small_config(min_nodes=3, min_enterprises=4)
    # Execute: two runs; every run starts fresh node processes (a restart of each node)
    first = federate(manifest, config, tmp_path / "run1", tmp_path / "flwr").summary
    second = federate(manifest, config, tmp_path / "run2", tmp_path / "flwr").summary
    # Assert: the small-cap node refused every round of both runs, with its reason
    refusals = [r for rnd in first.rounds for r in rnd.refused]
    # ... shown under its pseudonym, never its node.name
    assert {r.node for r in refusals} == {node_key_id(load_node_config(manifest.node_configs[3]))}
    # ... at the pre-flight, once per run: it was never asked to compute anything
    assert [rnd.task for rnd in first.rounds if rnd.refused] == ["preflight"]
    assert len(refusals) == 1
    assert all("cap of 0.3" in r.reason for r in refusals)
    # ... so only 3 enterprises stand behind each segment: every curve is withheld, and said so
    assert [w.reason for w in first.withheld_segments or ()] == [
        "3 enterprise(s) contributed, fewer than 4"
    ] * 3
    assert not (tmp_path / "run1" / "curves.json").exists()
    # ... and the others' lifetime spend carried over from disk into the second run
    for node, after_first in first.privacy.nodes.items():
        after_second = second.privacy.nodes[node]
        assert after_second.epsilon_total > after_first.epsilon_total * 1.3, node
        assert after_second.epsilon_run == pytest.approx(after_first.epsilon_run, rel=1e-6)
    state = json.loads((manifest.enterprise_dirs[0] / "state" / "accountant.json").read_text())
    assert len(state["entries"]) == 2 * (config.plan.training.rounds + 1)


def test_round_below_quorum_releases_nothing_and_fails_loudly(tmp_path: Path) -> None:
    # Prepare: 3 nodes, quorum 3, one refuses
    manifest = make_federation(tmp_path / "fed", 3, caps={2: 0.3})
    config = small_config(min_nodes=3)
    # Execute
    with pytest.raises(RunFailedError, match=r"round 0 \(preflight\): 2 good repl\(ies\)"):
        federate(manifest, config, tmp_path / "run", tmp_path / "flwr")
    # Assert: a failed summary, no model and no curves; it failed at the pre-flight, so
    # nobody was charged
    summary = require_summary(tmp_path / "run" / SUMMARY_FILE)
    assert summary.status == "failed"
    assert [r.task for r in summary.rounds] == ["preflight"]
    for directory in manifest.enterprise_dirs:
        state = directory / "state" / "accountant.json"
        assert not state.exists() or json.loads(state.read_text())["entries"] == []
    assert "cap of 0.3" in (summary.error or "")
    assert not (tmp_path / "run" / "global_model.npz").exists()
    assert not (tmp_path / "run" / "curves.json").exists()
