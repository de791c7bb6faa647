"""The canary audit as its README tells it, with the commands only: the auditor plants,
the broker makes synthetic factories for the test federation and runs it with the canary
enterprises (Flower's Simulation Engine), the auditor scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runs import exit_code

from auditor.canaries import CANARY_FEATURE, NO_CANARY
from auditor.canary_audit import PLANT_FILE, load_audit_plant
from auditor.cli import main as audit_main
from coordinator.config import load_coordinator_config
from enterprise_node.config import load_node_config
from enterprise_node.ingest import ingest
from harness.cli import main as lab_main

COORDINATOR_YAML = Path(__file__).parents[2] / "configs" / "coordinator.yaml"


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    audit = tmp_path / "audit"
    code = exit_code(audit_main, ["canary", "plant", "--plan", str(COORDINATOR_YAML),
                             "--canaries", "60", "--out", str(audit), "--seed", "2"])  # fmt: skip
    assert code == 0
    return audit


def test_plant_writes_the_test_federations_configuration(planted: Path) -> None:
    config = load_coordinator_config(planted / "coordinator.yaml")
    plant = load_audit_plant(planted)
    assert config.plan.model_spec.digest == plant.spec.digest
    assert config.curves.min_failures == 0
    shipped = load_coordinator_config(COORDINATOR_YAML)
    assert config.plan.privacy == shipped.plan.privacy  # the plan's privacy, unchanged
    assert config.plan.secure_aggregation and config.plan.training == shipped.plan.training
    assert (planted / PLANT_FILE).stat().st_mode & 0o077 == 0


def test_synth_makes_factories_that_serve_the_audits_spec(planted: Path, tmp_path: Path) -> None:
    factories = tmp_path / "factories"
    code = exit_code(lab_main, ["synth", str(factories), "--canary-audit", str(planted),
                           "--enterprises", "3", "--min-units", "300", "--max-units", "400",
                           "--parquet-every", "2"])  # fmt: skip
    assert code == 0
    spec = load_audit_plant(planted).spec
    for node_yaml in sorted(factories.glob("*/node.yaml")):
        frame = ingest(load_node_config(node_yaml), spec).frame
        assert set(frame[CANARY_FEATURE]) == {NO_CANARY}
        assert not frame["segment"].str.startswith("canary_").any()


@pytest.mark.slow
def test_the_readme_workflow_audits_a_flower_run(planted: Path, tmp_path: Path, capsys) -> None:
    factories, run_dir = tmp_path / "factories", tmp_path / "run"
    exit_code(lab_main, ["synth", str(factories), "--canary-audit", str(planted), "--enterprises",
                    "4", "--min-units", "400", "--max-units", "900", "--seed", "1"])  # fmt: skip
    nodes = [str(p) for p in sorted(factories.glob("*/node.yaml"))]
    nodes += [str(p) for p in sorted((planted / "canary-sites").glob("*/node.yaml"))]
    code = exit_code(lab_main, ["federate", *nodes, "--out", str(run_dir), "--config",
                           str(planted / "coordinator.yaml"), "--approve"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    report = tmp_path / "report"
    coordinator = tmp_path / "coordinator"  # fedrisk-lab federate's, beside --out
    code = exit_code(audit_main, ["canary", "score", str(run_dir), "--plant", str(planted),
                             "--coordinator-ledger", str(coordinator / "ledger"),
                             "--coordinator-key", str(coordinator / "keys" / "ledger_key.pub.pem"),
                             "--out", str(report)])  # fmt: skip
    assert code == 0, capsys.readouterr().out
    result = json.loads((report / "canary_audit.json").read_text())
    assert result["verdict"] == "claims hold" and result["curve"]["bound"]["m"] == 60
    assert result["curve"]["bound"]["epsilon"] <= result["curve"]["claimed"]
