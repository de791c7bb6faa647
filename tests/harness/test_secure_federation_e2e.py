"""End-to-end secure aggregation over a real Flower federation (slow).

Record-level DP is off here (nodes opt in for tests) so that the secure sum can be
checked exactly against the plaintext sum of the survivors' histograms.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dp_accounting
import numpy as np
import pytest
import yaml
from node_site import approve_plan, config_with

from common.errors import RunFailedError
from coordinator.config import CoordinatorConfig, EnterpriseBudget, load_config_or_default
from coordinator.flower_run import FederationResult
from coordinator.progress_events import SecureSumDone
from coordinator.run_store import RunStore
from coordinator.run_summary import SUMMARY_FILE, require_summary
from harness.evaluation import load_curves, pooled_curves, pooled_frame
from harness.federation import run_local_federation
from harness.synthetic import SyntheticConfig, generate_federation
from protocols.plan import EnterprisePrivacy

pytestmark = pytest.mark.slow


def secure_plain_config(*, threshold: int | None = None) -> CoordinatorConfig:
    """The packaged config (its training method), secure, one round, record DP off."""
    return config_with(
        load_config_or_default(None),
        plan={
            "training": {"rounds": 1, "local_epochs": 1},
            "privacy": {"record": {"enabled": False}},
            "secure_aggregation": True,
        },
        federation={"min_nodes": 3, "reconstruction_threshold": threshold},
    )


def federation_with_a_dropout(root: Path) -> list[Path]:
    """Three ordinary sites and one whose data has delayed entry: that node takes part in
    key sharing, then refuses the secure curve task (entries are not carried yet), so it
    drops out after key sharing."""
    spec = load_config_or_default(None).plan.model_spec
    small = dict(min_units=300, max_units=600, holdout_units=10)
    plain = generate_federation(root / "a", spec, SyntheticConfig(n_enterprises=3, seed=5, **small))
    late = generate_federation(
        root / "b", spec, SyntheticConfig(n_enterprises=1, seed=6, delayed_entry=True, **small)
    )
    shutil.move(str(late.enterprise_dirs[0]), str(root / "a" / "enterprise-late"))
    nodes = [*plain.node_configs, root / "a" / "enterprise-late" / "node.yaml"]
    for path in nodes:
        data = yaml.safe_load(path.read_text())
        data["privacy"]["allow_non_private"] = True
        if path.parent.name == "enterprise-late":
            data["node"]["name"] = "enterprise-late"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return nodes


def federate(nodes: list[Path], config: CoordinatorConfig, root: Path) -> FederationResult:
    """The nodes approve the plan, then it runs through Flower (outputs in ``root``/run)."""
    approve_plan(nodes, config.plan)
    return run_local_federation(nodes, config, root / "run", flwr_home=root / "flwr")


def test_dropout_after_key_sharing_leaves_the_exact_survivor_sum(tmp_path: Path) -> None:
    # Prepare
    nodes = federation_with_a_dropout(tmp_path)
    config = secure_plain_config()
    # Execute
    result = federate(nodes, config, tmp_path)
    # Assert: the late node refused at the masked-input stage and was cancelled out ...
    events = RunStore(tmp_path / "run").read_events()
    [secure] = [e for e in events if isinstance(e, SecureSumDone) and e.task == "curve"]
    assert (secure.survivors, secure.dropped) == (3, 1)
    # ... and the unmasked curves equal the pooled life table of the three survivors
    spec = config.plan.model_spec
    expected = pooled_curves(pooled_frame(nodes[:3], spec), spec, censor_weight=0.5)
    got = load_curves(tmp_path / "run" / "curves.json")
    for want, have in zip(expected, got, strict=True):
        np.testing.assert_allclose(have.failure, want.failure, atol=1e-12)
    assert result.summary.completed


def test_below_the_threshold_nothing_is_released(tmp_path: Path) -> None:
    # Prepare: all four must take part to unmask, but one drops after key sharing
    nodes = federation_with_a_dropout(tmp_path)
    config = secure_plain_config(threshold=4)
    # Execute
    with pytest.raises(RunFailedError, match="releases nothing"):
        federate(nodes, config, tmp_path)
    # Assert
    assert require_summary(tmp_path / "run" / SUMMARY_FILE).status == "failed"
    assert not (tmp_path / "run" / "curves.json").exists()
    assert not (tmp_path / "run" / "global_model.npz").exists()


def test_enterprise_budget_stop_through_flower_keeps_the_last_model(tmp_path: Path) -> None:
    # Prepare: enterprise-level DP (it clips DP-SGD updates) with a cap that admits one
    # round (4.0) but not two (6.6)
    nodes = federation_with_a_dropout(tmp_path)
    enterprise = EnterprisePrivacy(clip_norm=0.5, noise_multiplier=1.0)
    config = config_with(
        secure_plain_config(),
        plan={
            "training": {"method": "dp_sgd", "rounds": 3},
            "privacy": {"enterprise": enterprise.model_dump(mode="json")},
        },
        enterprise_budget=EnterpriseBudget(epsilon_cap=5.0).model_dump(mode="json"),
    )
    # Execute
    result = federate(nodes, config, tmp_path)
    # Assert: one model round ran, the stop came before round 2, the run completed
    notes = result.summary.privacy.enterprise
    assert notes is not None
    events = RunStore(tmp_path / "run").read_events()
    model_sums = [e for e in events if isinstance(e, SecureSumDone) and e.task == "model"]
    assert result.summary.completed
    assert len(model_sums) == 1 and notes["stopped_before_round"] == 2
    rdp = dp_accounting.rdp.RdpAccountant()
    for z, _q, _round in notes["accountant"]["history"]:
        rdp.compose(dp_accounting.GaussianDpEvent(z))
    assert notes["epsilon"] == pytest.approx(rdp.get_epsilon(1e-5), rel=0.01)
    assert notes["epsilon"] <= 5.0
    assert (tmp_path / "run" / "global_model.npz").exists()
