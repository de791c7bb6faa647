"""`fedrisk-node risk`: the fleet's relative risk from the global model, against the
industry curve, and the choice to share it.

The run outputs are built by hand: a GLM hazard whose only covariate effect is on
load_pct, so each unit's q over the term is known in closed form, and a constant-hazard
curve (q = 0.03 over 12 months at every age).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runs import exit_code
from node_site import NodeSite, load_spec
from toy_run import toy_run_dir

from auditor.ledgers import audit_ledger
from auditor.node_epsilon import node_epsilon
from enterprise_node.cli import init_node
from enterprise_node.config import load_node_config
from enterprise_node.fleet_history import FleetHistory
from enterprise_node.fleet_risk import FleetRisk, fleet_risk, load_run_outputs, reference_failure
from enterprise_node.node_ledger import LEDGER_DIR
from enterprise_node.risk_share import SENSITIVITY, noised_factor
from insurance.node_cli import main
from ledger.log import read_ledger
from ledger.records import RiskShared, record_from_entry
from ledger.signing import key_id, load_public_key, public_key_path, verify_signature
from models.hazard import HazardNet, state_to_arrays
from privacy.mechanisms import Mechanism

PRODUCT = Path(__file__).parents[2] / "configs" / "product.yaml"
HAZARD_LOGIT = -3.5  # per 6-month interval
LOAD_EFFECT = 2.0  # on load_pct scaled to [0, 1]


#: The per-6-month hazard logit at which the model's q over 12 months is the curve's 0.03.
CURVE_LOGIT = float(np.log((1 - np.sqrt(0.97)) / np.sqrt(0.97)))


def _hazard(load_scaled: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(HAZARD_LOGIT + LOAD_EFFECT * load_scaled)))


def _run_outputs(
    root: Path, *, load_effect: float = LOAD_EFFECT, hazard_logit: float = HAZARD_LOGIT
) -> Path:
    spec = load_spec()
    model = HazardNet(spec)
    with torch.no_grad():
        model.baseline.weight.zero_()
        model.baseline.bias.fill_(hazard_logit)
        linear = model.risk[-1]
        linear.weight.zero_()
        linear.bias.zero_()
        load_column = len(spec.segments) + len(spec.equipment_classes)  # first feature
        linear.weight[0, load_column] = load_effect
    run = toy_run_dir(root / "run", segments=spec.segments, run_id="run-risk")
    arrays = state_to_arrays(model)
    np.savez(run / "global_model.npz", **{f"param_{i:03d}": a for i, a in enumerate(arrays)})
    (run / "model_spec.json").write_text(spec.model_dump_json())
    return run


def _site(root: Path, n_rows: int) -> Path:
    site = NodeSite(root / "site")
    site.root.mkdir(parents=True)
    site.write_data(n_rows=n_rows)
    node_yaml = site.write_config()
    init_node(site.root, keys_only=True)
    return node_yaml


def _site_state(node_yaml: Path) -> dict[str, bytes]:
    """Every file of the site's state and outgoing folders, by relative path."""
    root = node_yaml.parent
    return {
        str(p.relative_to(root)): p.read_bytes()
        for folder in ("state", "outgoing")
        for p in sorted((root / folder).rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


ALL = [
    arg
    for s in ("semiconductor_fab", "nev_battery", "industrial_robot")
    for arg in ("--segment", s)
]


def test_relative_risk_is_the_models_q_over_the_curves(tmp_path: Path) -> None:
    # Prepare: units aged 6.5-45.5 months, every a + 12 inside the grid's 6-month intervals
    node_yaml = _site(tmp_path, n_rows=14)
    outputs = load_run_outputs(_run_outputs(tmp_path))
    # Execute
    risk = fleet_risk(load_node_config(node_yaml), outputs, list(outputs.curves), 12.0)
    # Check: constant hazard h per 6 months -> q = 1 - (1 - h)^2 at any age below 48
    in_service = [i for i in range(14) if i % 4 != 0]
    load = np.array([(40 + i % 50) / 100 for i in in_service])
    q_model = 1 - (1 - _hazard(load)) ** 2
    assert risk.units == len(in_service)
    assert risk.q_base == pytest.approx(np.full(len(in_service), 0.03))
    assert sorted(risk.relative) == pytest.approx(sorted(q_model / 0.03), rel=1e-5)
    assert risk.expected_model == pytest.approx(q_model.sum(), rel=1e-5)
    assert risk.expected_base == pytest.approx(0.03 * len(in_service))
    clipped = np.minimum(q_model / 0.03, 4.0)
    assert risk.factor == pytest.approx(clipped.mean(), rel=1e-5)
    half_width = 1.959963984540054 * clipped.std(ddof=1) / np.sqrt(len(in_service))
    assert risk.factor_high - risk.factor == pytest.approx(half_width, rel=1e-4)
    assert reference_failure(list(outputs.curves.values()), 12.0) == pytest.approx(0.03)


def test_a_model_that_agrees_with_the_curve_gives_factor_one(tmp_path: Path) -> None:
    node_yaml = _site(tmp_path, n_rows=14)
    outputs = load_run_outputs(_run_outputs(tmp_path, load_effect=0.0, hazard_logit=CURVE_LOGIT))
    risk = fleet_risk(load_node_config(node_yaml), outputs, list(outputs.curves), 12.0)
    assert risk.factor == pytest.approx(1.0)
    assert risk.expected_model == pytest.approx(risk.expected_base)


def test_risk_sends_nothing_by_default(tmp_path: Path, capsys) -> None:
    # Prepare
    node_yaml = _site(tmp_path, n_rows=60)
    run = _run_outputs(tmp_path)
    before = _site_state(node_yaml)
    # Execute
    code = exit_code(main, ["risk", "--config", str(node_yaml), "--run-outputs", str(run),
                            "--product", str(PRODUCT)])  # fmt: skip
    # Check: the screen shows every choice and its price; nothing was written
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0, out
    assert "Nothing was sent and nothing was charged" in out
    assert "--share grade" in out and "--share factor" in out and "30% sharing discount" in out
    assert "mostly noise for a fleet this size" in out  # 15 units: a share would be noise
    assert "Your own history in these segments: 5 failure(s) among 20 unit(s)" in out
    assert _site_state(node_yaml) == before


def test_sharing_writes_one_ledger_entry_and_one_charged_spend(tmp_path: Path, capsys) -> None:
    # Prepare
    node_yaml = _site(tmp_path, n_rows=80)
    run = _run_outputs(tmp_path)
    config = load_node_config(node_yaml)
    ledger_dir = config.state_dir / LEDGER_DIR
    entries_before = len(read_ledger(ledger_dir).entries()) if ledger_dir.exists() else 0
    to = tmp_path / "to-broker.json"
    # Execute
    code = exit_code(main, ["risk", "--config", str(node_yaml), "--run-outputs", str(run),
                            *ALL, "--term", "12", "--share", "factor", "--epsilon", "1",
                            "--yes", "--to", str(to)])  # fmt: skip
    # Check: one spend, one ledger entry, one outbox line, a signed message
    assert code == 0, capsys.readouterr().err
    accountant = json.loads((config.state_dir / "accountant.json").read_text())
    assert [e["mechanism"] for e in accountant["entries"]] == [Mechanism.RISK_FACTOR]
    contents = read_ledger(ledger_dir)
    added = [record_from_entry(e) for e in contents.entries()[entries_before:]]
    assert len(added) == 1 and isinstance(added[0], RiskShared)
    shared = added[0]
    data = to.read_bytes()
    assert shared.sha256 == hashlib.sha256(data).hexdigest() and shared.bytes == len(data)
    outbox = (config.state_dir / "outbox.jsonl").read_text().splitlines()
    assert len(outbox) == 1 and json.loads(outbox[0])["sha256"] == shared.sha256
    message = json.loads(data)
    public = load_public_key(public_key_path(config.resolve(config.node.ledger_key_file)))
    body = json.dumps(message["payload"], sort_keys=True, separators=(",", ":")).encode()
    verify_signature(public, body, base64.b64decode(message["signature"]))
    payload = message["payload"]
    assert payload["node"] == key_id(public) and payload["run_id"] == "run-risk"
    assert payload["risk_grade"] in ("lower", "typical", "higher", "unknown")
    assert np.isfinite(payload["factor"]) and payload["privacy"]["epsilon"] <= 1.0 + 1e-9
    assert not {"unit_id", "duration", "load_pct"} & set(json.dumps(payload).split('"'))
    # ... and the auditor recomputes the node's epsilon with the share in it
    audited = audit_ledger("node", contents, {key_id(public): public}, "no-coordinator")
    rows, findings = node_epsilon(audited, tolerance=1e-3)
    assert findings == [] and rows[0].releases == 1
    assert rows[0].recomputed == pytest.approx(shared.epsilon_total, rel=1e-3)


def test_a_share_the_budget_cannot_pay_is_refused_with_nothing_sent(tmp_path: Path, capsys) -> None:
    node_yaml = _site(tmp_path, n_rows=40)
    run = _run_outputs(tmp_path)
    before = _site_state(node_yaml)
    code = exit_code(main, ["risk", "--config", str(node_yaml), "--run-outputs", str(run),
                            *ALL, "--term", "12", "--share", "grade", "--epsilon", "50",
                            "--yes"])  # fmt: skip
    assert code != 0 and "cap" in capsys.readouterr().err
    assert _site_state(node_yaml) == before


def test_sharing_asks_first_and_refuses_when_it_cannot_ask(tmp_path: Path, capsys) -> None:
    node_yaml = _site(tmp_path, n_rows=40)
    run = _run_outputs(tmp_path)
    before = _site_state(node_yaml)
    code = exit_code(main, ["risk", "--config", str(node_yaml), "--run-outputs", str(run),
                            *ALL, "--term", "12", "--share", "grade"])  # fmt: skip
    assert code != 0 and "--yes" in capsys.readouterr().err
    assert _site_state(node_yaml) == before


def test_run_outputs_without_a_model_are_named(tmp_path: Path, capsys) -> None:
    node_yaml = _site(tmp_path, n_rows=20)
    run = _run_outputs(tmp_path)
    (run / "global_model.npz").unlink()
    code = exit_code(main, ["risk", "--config", str(node_yaml), "--run-outputs", str(run),
                            "--product", str(PRODUCT)])  # fmt: skip
    assert code != 0 and "global_model.npz" in capsys.readouterr().err


def test_the_shared_factor_carries_the_noise_it_claims() -> None:
    # Prepare: 400 units at the reference q (weight 1), relative risks around 1.3
    rng = np.random.default_rng(7)
    relative = np.exp(rng.normal(0.2, 0.4, 400))
    risk = FleetRisk(
        segments=("nev_battery",), term=12.0, unit_segments=np.full(400, "nev_battery"),
        ages=np.full(400, 24.0), q_base=np.full(400, 0.03), relative=relative,
        expected_model=float(0.03 * relative.sum()), expected_base=12.0,
        factor=float(np.minimum(relative, 4).mean()), factor_low=0.0, factor_high=0.0,
        quality_grade="A", history=FleetHistory(400, 0, 0.0, 0.0),
    )  # fmt: skip
    # Execute: 300 releases at noise multiplier 2
    draws = np.array([noised_factor(risk, 0.03, 2.0)[0] for _ in range(300)])
    # Check: centred on the factor, with the spread the message states (delta method)
    claimed = 2.0 * SENSITIVITY * np.sqrt(1 + risk.factor**2) / 400
    assert 0.8 < draws.std(ddof=1) / claimed < 1.2
    assert abs(draws.mean() - risk.factor) < 4 * claimed / np.sqrt(300)


def test_the_sites_own_history_is_set_against_both_expectations(tmp_path: Path) -> None:
    # Prepare: 14 units (4 failed) aged 6.5-45.5 months at exit, all from age 0
    node_yaml = _site(tmp_path, n_rows=14)
    outputs = load_run_outputs(_run_outputs(tmp_path))
    # Execute
    history = fleet_risk(load_node_config(node_yaml), outputs, list(outputs.curves), 12.0).history
    # Check: H = -(d / 12) log 0.97 by the curve, -(d / 6) log(1 - h(x)) by the model
    durations = np.array([6.5 + 3 * i for i in range(14)])
    load = np.array([(40 + i % 50) / 100 for i in range(14)])
    assert (history.units, history.observed) == (14, 4)
    assert history.expected_base == pytest.approx(float(-(durations / 12).sum() * np.log(0.97)))
    by_model = -(durations / 6) * np.log(1 - _hazard(load))
    assert history.expected_model == pytest.approx(float(by_model.sum()), rel=1e-5)


def test_a_model_level_far_from_the_sites_experience_is_flagged() -> None:
    assert FleetHistory(500, 40, expected_model=10.0, expected_base=38.0).model_level_off
    assert not FleetHistory(500, 40, expected_model=35.0, expected_base=38.0).model_level_off
    assert not FleetHistory(50, 8, expected_model=1.0, expected_base=7.0).model_level_off
