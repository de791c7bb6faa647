"""`fedrisk-audit canary plant` / `score` around a test federation the broker runs on the
plant's model spec with the canary enterprises (real Coordinator and ClientApp, in one
process): a report, a signed ledger entry, exit 51 when a claim is broken."""

from __future__ import annotations

import contextlib
import json
import uuid
from pathlib import Path

import pytest
from cli_runs import exit_code

from auditor.canaries import with_no_canary
from auditor.canary_audit import PLANT_FILE
from auditor.cli import main
from bench.canary_audit import forgotten_noise
from bench.datasets import load_synthetic
from bench.inprocess import run_in_process
from bench.model_sites import write_sites
from bench.splits import partition_by_group
from coordinator.config import CoordinatorConfig, load_coordinator_config
from coordinator.coordinator_ledger import coordinator_key_paths
from ledger.log import read_ledger
from ledger.signing import generate_key_pair, key_id, load_private_key
from ledger.verification import verify_ledger

pytestmark = pytest.mark.slow
COORDINATOR_YAML = Path(__file__).parents[2] / "configs" / "coordinator.yaml"


def _test_federation(audit: Path, work: Path) -> tuple[list[Path], CoordinatorConfig]:
    """What the broker sets up: the test federation's coordinator.yaml that `plant`
    wrote, synthetic enterprises (their units with ``audit_canary: no_canary``) beside the
    canary enterprises."""
    config = load_coordinator_config(audit / "coordinator.yaml")
    background = load_synthetic(seed=1, enterprises=4, min_units=400, max_units=900)
    parts = [with_no_canary(p) for p in partition_by_group(background.units)]
    nodes = write_sites(parts, work / "sites", config.plan, approve_by=None)
    nodes += sorted((audit / "canary-sites").glob("*/node.yaml"))
    return nodes, config


def _broker_runs(audit: Path, work: Path, *, mutated: bool = False) -> Path:
    """One run of the test federation in this process, with the coordinator's signed
    ledger under ``work / "coordinator"`` (the mutation: nodes that forget their noise
    shares); the run directory."""
    nodes, config = _test_federation(audit, work)
    coordinator = work / "coordinator"
    generate_key_pair(*coordinator_key_paths(coordinator))
    run_dir = work / "run"
    patch = forgotten_noise() if mutated else contextlib.nullcontext()
    with patch:
        run_in_process(
            nodes, config, run_dir, coordinator_dir=coordinator, run_id=uuid.uuid4().hex[:12]
        )
    return run_dir


def _score(run_dir: Path, audit: Path, report: Path) -> int:
    """`fedrisk-audit canary score` with the coordinator's ledger beside the run."""
    coordinator = run_dir.parent / "coordinator"
    return exit_code(main,
        [
            "canary", "score", str(run_dir), "--plant", str(audit), "--out", str(report),
            "--coordinator-ledger", str(coordinator / "ledger"),
            "--coordinator-key", str(coordinator_key_paths(coordinator)[1]),
        ]
    )  # fmt: skip


def test_plant_then_score_writes_a_report_and_a_signed_ledger_entry(tmp_path: Path, capsys) -> None:
    # Prepare: the auditor plants, the broker runs
    audit = tmp_path / "audit"
    code = exit_code(main, ["canary", "plant", "--plan", str(COORDINATOR_YAML), "--canaries", "120",
                 "--out", str(audit), "--seed", "5"])  # fmt: skip
    assert code == 0 and (audit / PLANT_FILE).stat().st_mode & 0o077 == 0
    assert len(list((audit / "canary-sites").glob("*/units.csv"))) == 3
    run_dir = _broker_runs(audit, tmp_path / "broker")
    # Execute
    report = tmp_path / "report"
    code = _score(run_dir, audit, report)
    # Assert: claims hold; the report and the ledger say so
    out = capsys.readouterr().out
    assert code == 0, out
    result = json.loads((report / "canary_audit.json").read_text())
    assert result["verdict"] == "claims hold"
    assert result["curve"]["claimed"] == pytest.approx(1.0, rel=1e-3)
    assert "CLAIMS HOLD" in (report / "canary_audit.md").read_text()
    assert "<img" in (report / "canary_audit.html").read_text()
    key = load_private_key(audit / "private" / "auditor_ledger_key.pem")
    ledger_id = key_id(key.public_key())
    assert verify_ledger(report / "ledger", key.public_key(), ledger_id=ledger_id).ok
    [entry] = read_ledger(report / "ledger").entries()
    assert entry.kind == "canary_audited" and entry.body["verdict"] == "claims hold"
    assert entry.body["m"] == 120


def test_a_run_whose_nodes_forget_their_noise_breaks_its_claims(tmp_path: Path, capsys) -> None:
    audit = tmp_path / "audit"
    exit_code(main, ["canary", "plant", "--plan", str(COORDINATOR_YAML), "--canaries", "120",
          "--out", str(audit), "--seed", "6"])  # fmt: skip
    run_dir = _broker_runs(audit, tmp_path / "broker", mutated=True)
    code = _score(run_dir, audit, tmp_path / "r")
    assert code == 51
    assert "CLAIMS BROKEN" in capsys.readouterr().out


def test_scoring_a_run_over_another_spec_is_refused(tmp_path: Path, capsys) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, m in ((first, 60), (second, 90)):
        exit_code(main, ["canary", "plant", "--plan", str(COORDINATOR_YAML), "--canaries", str(m),
              "--out", str(folder), "--seed", "1"])  # fmt: skip
    run_dir = _broker_runs(first, tmp_path / "broker")
    code = _score(run_dir, second, tmp_path / "r")
    assert code != 0 and "over the audit's model spec" in capsys.readouterr().err
