"""`fedrisk-node` CLI: init, check, the JSON report and the exit codes."""

from __future__ import annotations

import doctest
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from node_site import COORDINATOR_YAML, REPO, NodeSite

import enterprise_node.cli
from common.exit_codes import ExitCode
from common.tls import auth_key_fingerprint
from enterprise_node.check import NOTHING_SENT
from enterprise_node.cli import main, node_template, node_template_named
from enterprise_node.config import load_node_config
from protocols.app_identity import release


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run main(argv); return (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as caught:
        main(argv)
    out, err = capsys.readouterr()
    return int(caught.value.code or 0), out, err


@pytest.fixture
def site(tmp_path: Path) -> NodeSite:
    return NodeSite(tmp_path)


# --- init -------------------------------------------------------------------------------


def test_packaged_template_equals_configs_node_yaml():
    assert node_template() == (REPO / "configs" / "node.yaml").read_text(encoding="utf-8")


def test_init_creates_node_yaml_secret_and_state(tmp_path, capsys):
    # Prepare
    target = tmp_path / "node1"
    # Execute
    code, out, _ = _run(["init", str(target)], capsys)
    # Assert
    assert code == 0
    # the template, named after the site's folder (sites never share a default name)
    assert (target / "node.yaml").read_text() == node_template_named(target.name)
    assert load_node_config(target / "node.yaml").node.name == target.name
    secret = target / "secrets" / "site_secret.key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert (target / "state").is_dir()
    assert "Wrote" in out


def test_init_refuses_to_overwrite_unless_forced_and_keeps_the_secret(tmp_path, capsys):
    # Prepare
    _run(["init", str(tmp_path)], capsys)
    secret_before = (tmp_path / "secrets" / "site_secret.key").read_text()
    (tmp_path / "node.yaml").write_text("# edited by IT\n")
    # Execute
    refused, _, err = _run(["init", str(tmp_path)], capsys)
    forced, _, _ = _run(["init", str(tmp_path), "--force"], capsys)
    # Assert
    assert refused == ExitCode.CONFIG_ERROR
    assert "node.yaml: already exists; not overwritten" in err and "--force" in err
    assert forced == 0
    assert (tmp_path / "node.yaml").read_text() == node_template_named(tmp_path.name)
    assert (tmp_path / "secrets" / "site_secret.key").read_text() == secret_before


# --- check ------------------------------------------------------------------------------


def test_check_accepts_a_good_file(site, capsys):
    # Prepare
    site.build(30)
    # Execute
    code, out, err = _run(
        ["check", "--config", str(site.root / "node.yaml"), "--spec", str(COORDINATOR_YAML)], capsys
    )
    # Assert
    assert code == 0, err
    assert "Rows read: 30   accepted: 30   quarantined: 0" in out
    assert "ACCEPTED" in out and NOTHING_SENT in out
    assert "grade A" in out


def test_check_without_spec_uses_the_packaged_demo_spec_and_says_so(site, capsys):
    # Prepare
    site.build(30)
    # Execute
    code, out, err = _run(["check", "--config", str(site.root / "node.yaml")], capsys)
    # Assert
    assert code == 0, err
    assert "packaged demo model spec" in " ".join(out.split())
    assert "accepted: 30" in out


def test_check_data_argument_overrides_data_path_and_writes_json(site, tmp_path, capsys):
    # Prepare: node.yaml points elsewhere; DATA names the real file
    site.write_data(20, bad={(4, "segment"): "mining"}, name="other.csv")
    site.write_config(data="missing.csv", max_bad_fraction=0.2)
    report_path = tmp_path / "report.json"
    # Execute
    code, out, _ = _run(
        [
            "check",
            str(site.root / "other.csv"),
            "-c",
            str(site.root / "node.yaml"),
            "-s",
            str(COORDINATOR_YAML),
            "--json",
            str(report_path),
        ],
        capsys,
    )
    # Assert
    assert code == 0
    report = json.loads(report_path.read_text())
    assert report["accepted"] is True and report["sent"] is False
    assert (report["rows_read"], report["rows_accepted"], report["rows_quarantined"]) == (20, 19, 1)
    assert report["error_counts"] == {"unknown_segment": 1}
    assert report["first_errors"][0]["row"] == 4
    assert report["first_errors"][0]["column"] == "segment"
    units = {s["segment"]: s["units"] for s in report["segments"]}
    assert units == {"semiconductor_fab": 6, "nev_battery": 7, "industrial_robot": 6}
    assert report["quality"]["grade"] in {"A", "B", "C", "D"}
    assert "quarantined" in out


def test_check_says_plainly_when_durations_look_like_days(site, tmp_path, capsys):
    # Prepare: durations written in days, duration_scale left at 1 (months)
    days = {(i + 1, "duration"): f"{(6.5 + 3 * i) * 30.4375:g}" for i in range(30)}
    site.build(30, bad=days)
    report_path = tmp_path / "report.json"
    # Execute
    code, out, _ = _run(
        [
            "check",
            "-c",
            str(site.root / "node.yaml"),
            "-s",
            str(COORDINATOR_YAML),
            "--json",
            str(report_path),
        ],
        capsys,
    )
    # Assert: accepted (the rows are valid) but graded C with the unit and the fix named
    flat = " ".join(out.split())
    assert code == 0
    assert "grade C" in flat
    assert "WARNING: The durations look like days, not months" in flat
    assert "Set data.duration_scale: 0.03285 in node.yaml" in flat
    report = json.loads(report_path.read_text())
    assert report["quality"]["grade"] == "C"
    assert report["quality"]["suggested_duration_scale"] == pytest.approx(1 / 30.4375)
    assert report["warnings"] == report["quality"]["warnings"]


def _dp_sgd_plan(tmp_path: Path) -> Path:
    """The shipped coordinator.yaml with the model trained by DP-SGD at each node."""
    document = yaml.safe_load(COORDINATOR_YAML.read_text())
    document["plan"]["training"]["method"] = "dp_sgd"
    path = tmp_path / "coordinator-dp-sgd.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_check_warns_a_small_site_that_dp_sgd_makes_its_contribution_noise(site, tmp_path, capsys):
    # Prepare: 5 units
    site.build(5)
    node_yaml = str(site.root / "node.yaml")
    # Execute
    dp_sgd = _run(["check", "-c", node_yaml, "-s", str(_dp_sgd_plan(tmp_path))], capsys)
    newton = _run(["check", "-c", node_yaml, "-s", str(COORDINATOR_YAML)], capsys)
    # Assert: the DP-SGD figures and the warning; a secure-sum fit is not warned
    flat = " ".join(dp_sgd[1].split())
    assert dp_sgd[0] == 0
    assert "Model contribution: 5 units; DP-SGD sample rate 1, noise multiplier 12.5" in flat
    assert "WARNING: This site's contribution to the model will be mostly noise" in flat
    assert "plan.training.method: newton" in flat
    assert newton[0] == 0 and "mostly noise" not in newton[1]


def test_check_refused_file_exits_12_with_message_and_advice(site, tmp_path, capsys):
    # Prepare
    site.build(10, bad={(2, "duration"): "-1", (3, "failed"): "9"}, max_bad_fraction=0.1)
    report_path = tmp_path / "refused.json"
    # Execute
    code, out, err = _run(
        [
            "check",
            "-c",
            str(site.root / "node.yaml"),
            "-s",
            str(COORDINATOR_YAML),
            "--json",
            str(report_path),
        ],
        capsys,
    )
    # Assert
    assert code == ExitCode.DATA_REFUSED == 12
    assert "REFUSED" in out and NOTHING_SENT in out
    assert "2 of 10 rows failed validation" in err
    # the report listed the errors by file line; the refusal does not repeat them
    assert "column failed" not in err
    first = json.loads(report_path.read_text())["first_errors"][0]
    assert (first["row"], first["line"]) == (2, 3)  # data row 2 is line 3
    assert "advice: Fix the rows listed in the quarantine file" in err
    assert json.loads(report_path.read_text())["accepted"] is False


def test_unit_ids_appear_nowhere_in_check_output(site, tmp_path, capsys):
    # Prepare
    bad = {(2, "unit_id"): "HIDDENID-0001", (3, "segment"): "x", (5, "load_pct"): "y"}
    site.build(6, bad=bad, max_bad_fraction=0.0, id_prefix="HIDDENID-")
    report_path = tmp_path / "r.json"
    # Execute
    code, out, err = _run(
        [
            "check",
            "-c",
            str(site.root / "node.yaml"),
            "-s",
            str(COORDINATOR_YAML),
            "--json",
            str(report_path),
        ],
        capsys,
    )
    # Assert
    assert code == 12
    assert "HIDDENID" not in out + err + report_path.read_text()


def test_missing_data_file_exits_11(site, capsys):
    # Prepare
    site.write_config(data="nowhere.csv")
    # Execute
    code, _, err = _run(
        ["check", "-c", str(site.root / "node.yaml"), "-s", str(COORDINATOR_YAML)], capsys
    )
    # Assert
    assert code == ExitCode.DATA_ERROR == 11
    assert "nowhere.csv: data file not found" in err and "advice:" in err


def test_unknown_node_yaml_key_exits_10_naming_key_and_file(site, capsys):
    # Prepare
    site.write_data(3)
    path = site.write_config(extra={"privacyy": {"epsilon": 1}})
    # Execute
    code, _, err = _run(["check", "-c", str(path), "-s", str(COORDINATOR_YAML)], capsys)
    # Assert
    assert code == ExitCode.CONFIG_ERROR == 10
    assert f"{path}: privacyy: unknown key" in err


def test_spec_may_be_a_json_model_spec_mapping(site, tmp_path, capsys):
    # Prepare
    site.build(9)
    coordinator = yaml.safe_load(COORDINATOR_YAML.read_text())
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps({"model_spec": coordinator["plan"]["model_spec"]}))
    # Execute
    code, out, _ = _run(["check", "-c", str(site.root / "node.yaml"), "-s", str(spec_path)], capsys)
    # Assert
    assert code == 0 and "ACCEPTED" in out


def test_spec_without_a_model_spec_exits_10(site, tmp_path, capsys):
    # Prepare
    site.build(3)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text("federation: {min_nodes: 3}\n")
    # Execute
    code, _, err = _run(["check", "-c", str(site.root / "node.yaml"), "-s", str(spec_path)], capsys)
    # Assert
    assert code == 10 and "no model spec found" in err


def test_ctrl_c_exits_130(site, capsys, monkeypatch):
    # Prepare
    site.build(3)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(enterprise_node.cli, "run_check", interrupted)
    # Execute
    code, _, _ = _run(
        ["check", "-c", str(site.root / "node.yaml"), "-s", str(COORDINATOR_YAML)], capsys
    )
    # Assert
    assert code == ExitCode.INTERRUPTED == 130


def test_cli_module_docstring_example_runs():
    failures, tried = doctest.testmod(enterprise_node.cli)
    assert (failures, tried > 0) == (0, True)


@pytest.mark.integration
def test_subprocess_exit_code_of_a_refused_file(site):
    # Prepare
    site.build(10, bad={(1, "segment"): "mining"}, max_bad_fraction=0.0)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # Execute
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "enterprise_node.cli",
            "check",
            "-c",
            str(site.root / "node.yaml"),
            "-s",
            str(COORDINATOR_YAML),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    # Assert
    assert done.returncode == 12, done.stderr
    assert "1 of 10 rows failed validation" in done.stderr
    assert NOTHING_SENT in done.stdout


def test_declaration_notes_compare_node_segments_with_the_data_and_spec() -> None:
    from enterprise_node.check import SegmentSummary, declaration_notes

    class Report:  # only .segments is read
        segments = (
            SegmentSummary("semiconductor_fab", 50, 3),
            SegmentSummary("nev_battery", 0, 0),
            SegmentSummary("industrial_robot", 7, 1),
        )

    assert "declares no segments" in declaration_notes(None, Report())[0]  # type: ignore[arg-type]
    notes = declaration_notes(["semiconductor_fab", "nev_battery", "ships"], Report())  # type: ignore[arg-type]
    assert notes == [
        "declared segment 'ships' is not in the model spec",
        "declared segment 'nev_battery' has no accepted units",
        "7 unit(s) in undeclared segment 'industrial_robot': they enter the sums, but this "
        "enterprise is not counted as a contributor there",
    ]


# --- ledger -------------------------------------------------------------------------------


def test_init_makes_the_ledger_key_and_ledger_shows_and_verifies_entries(tmp_path, capsys):
    # Prepare: a node with two ledger entries
    from enterprise_node.config import load_node_config
    from enterprise_node.node_ledger import NodeLedger
    from ledger.records import TaskRefused

    _run(["init", str(tmp_path)], capsys)
    key = tmp_path / "secrets" / "ledger_key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (tmp_path / "secrets" / "ledger_key.pub.pem").exists()
    config = load_node_config(tmp_path / "node.yaml")
    NodeLedger(config).append([TaskRefused("run-1", 1, "model", "over the cap")])
    NodeLedger(config).append([TaskRefused("run-1", 2, "model", "over the cap again")])
    # Execute
    code, out, _ = _run(["ledger", "--config", str(tmp_path / "node.yaml")], capsys)
    # Assert
    flat = " ".join(out.split())  # rich wraps long lines
    assert code == 0
    assert "2 entries, 2 signed" in flat and "over the cap again" in flat


def test_a_tampered_node_ledger_exits_40_naming_the_problem(tmp_path, capsys):
    # Prepare
    from enterprise_node.config import load_node_config
    from enterprise_node.node_ledger import NodeLedger
    from ledger.records import TaskRefused

    _run(["init", str(tmp_path)], capsys)
    config = load_node_config(tmp_path / "node.yaml")
    NodeLedger(config).append([TaskRefused("run-1", 1, "model", "over the cap")])
    entries = config.state_dir / "ledger" / "entries.jsonl"
    entries.write_text(entries.read_text().replace("over the cap", "no reason"))
    # Execute
    code, out, err = _run(["ledger", "--config", str(tmp_path / "node.yaml")], capsys)
    # Assert
    assert code == ExitCode.STATE_ERROR
    assert "differs from what was signed" in " ".join(out.split())
    assert "fails verification" in err


# --- approve ------------------------------------------------------------------------------


def _approvable_site(tmp_path: Path) -> Path:
    (tmp_path / "site").mkdir()
    site = NodeSite(tmp_path / "site")
    site.write_data(60)
    return site.write_config(entry_age=False, max_bad_fraction=0.01)


def test_approve_shows_the_plan_then_records_its_digest_and_a_ledger_entry(tmp_path, capsys):
    # Prepare
    from enterprise_node.approval import Approvals, load_plan
    from enterprise_node.config import load_node_config
    from ledger.log import read_ledger
    from protocols.app_identity import installed_app_hash

    node_yaml = _approvable_site(tmp_path)
    plan = load_plan(COORDINATOR_YAML)
    # Execute
    code, out, _ = _run(
        ["approve", str(COORDINATOR_YAML), "--config", str(node_yaml), "--yes", "--by", "ciso"],
        capsys,
    )
    # Assert: the summary names what the plan reads and spends; the approval is recorded
    flat = " ".join(out.split())
    assert code == 0
    for words in (
        "load_pct",
        "15 intervals to 120 months",
        f"{plan.training.rounds} Newton round(s)",
        "Newton fit",
        "2 at delta 1e-06",
        "only sums",
    ):
        assert words in flat
    config = load_node_config(node_yaml)
    app = installed_app_hash()
    assert f"app: {app} (the fedrisk code installed at this site;" in flat
    assert Approvals(config).is_approved(plan.digest, app)
    assert not Approvals(config).is_approved(plan.digest, "0" * 64)
    [entry] = [
        e for e in read_ledger(config.state_dir / "ledger").entries() if e.kind == "plan_approved"
    ]
    assert entry.version == 2
    assert entry.body == {
        "plan_digest": plan.digest,
        "approved_by": "ciso",
        "note": "",
        "app_hash": app,
    }


def test_approve_warns_a_small_site_before_it_approves_a_dp_sgd_plan(tmp_path, capsys):
    # Prepare: a site with 5 units
    (tmp_path / "site").mkdir()
    site = NodeSite(tmp_path / "site")
    site.write_data(5)
    node_yaml = site.write_config()
    from enterprise_node.approval import load_plan, plan_summary
    from enterprise_node.config import load_node_config

    plan_path = _dp_sgd_plan(tmp_path)
    # Execute
    code, out, _ = _run(["approve", str(plan_path), "--config", str(node_yaml), "--yes"], capsys)
    rows = dict(plan_summary(load_plan(plan_path), load_node_config(node_yaml), 5))
    # Assert: the summary shown before approval has the figures and the warning
    assert code == 0 and "WARNING" in out and "mostly noise" in out
    assert rows["your model contribution"].startswith(
        "5 units; DP-SGD sample rate 1, noise multiplier 12.5"
    )
    assert "will be mostly noise: only 5 units" in rows["WARNING"]


def test_approve_declined_records_nothing_and_a_bad_plan_exits_10(tmp_path, capsys, monkeypatch):
    # Prepare
    from enterprise_node.approval import Approvals
    from enterprise_node.config import load_node_config

    node_yaml = _approvable_site(tmp_path)
    monkeypatch.setattr("typer.confirm", lambda *a, **k: False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)  # at a terminal, IT says no
    # Execute
    declined, out, _ = _run(["approve", str(COORDINATOR_YAML), "--config", str(node_yaml)], capsys)
    bad = tmp_path / "plan.yaml"
    bad.write_text("plan: {model_spec: {}, rounds: 3}\n")
    code, _, err = _run(["approve", str(bad), "--config", str(node_yaml), "--yes"], capsys)
    # Assert: declining is a choice, not an error
    assert declined == 0 and "Not approved; nothing recorded." in out
    assert Approvals(load_node_config(node_yaml)).all() == {}
    assert code == ExitCode.CONFIG_ERROR and "plan" in err


# --- status -------------------------------------------------------------------------------


def test_status_shows_the_release_and_app_hash_next_to_the_budget(tmp_path, capsys) -> None:
    # Prepare
    _run(["init", str(tmp_path / "site")], capsys)
    # Execute
    code, out, _ = _run(["status", "--config", str(tmp_path / "site" / "node.yaml")], capsys)
    # Assert
    text = " ".join(out.split())
    assert code == 0
    assert f"release: {release()} (the broker must run the same)" in text
    assert "record-level lifetime epsilon 0.000 of cap 5 at delta 1e-05" in text


def test_approve_dry_run_shows_the_spend_and_release_and_records_nothing(tmp_path, capsys):
    from enterprise_node.approval import Approvals

    node_yaml = _approvable_site(tmp_path)
    code, out, _ = _run(
        ["approve", str(COORDINATOR_YAML), "--config", str(node_yaml), "--dry-run"], capsys
    )
    text = " ".join(out.split())
    assert code == 0 and "Dry run: nothing recorded." in text
    assert "most epsilon per run" in text and f"this installation: {release()}" in text
    assert Approvals(load_node_config(node_yaml)).all() == {}


def test_approve_away_from_a_terminal_needs_yes(tmp_path, capsys):
    from enterprise_node.approval import Approvals

    node_yaml = _approvable_site(tmp_path)
    code, _, err = _run(["approve", str(COORDINATOR_YAML), "--config", str(node_yaml)], capsys)
    assert code == ExitCode.CONFIG_ERROR
    assert "not at a terminal" in err and "--yes" in err and "--dry-run" in err
    assert Approvals(load_node_config(node_yaml)).all() == {}


def test_ledger_of_a_fresh_node_is_empty_not_an_error(tmp_path, capsys) -> None:
    _run(["init", str(tmp_path / "site")], capsys)
    code, out, _ = _run(["ledger", "--config", str(tmp_path / "site" / "node.yaml")], capsys)
    assert code == 0 and "empty, nothing recorded yet" in " ".join(out.split())


def test_init_keys_only_equips_an_existing_site_and_prints_what_to_compare(
    site, tmp_path, capsys
) -> None:
    # Prepare: a site made without init (as synth makes them): node.yaml and data only
    site.build(10)
    before = (site.root / "node.yaml").read_text()
    # Execute
    code, out, _ = _run(["init", str(site.root), "--keys-only"], capsys)
    # Assert: node.yaml kept; secret, ledger and authentication keys made; fingerprint shown
    text = " ".join(out.split())
    assert code == 0 and (site.root / "node.yaml").read_text() == before
    config = load_node_config(site.root / "node.yaml")
    auth = config.resolve(config.node.auth_key_file)
    assert auth.exists() and config.site_secret_path.exists()
    expected = auth_key_fingerprint(Path(f"{auth}.pub").read_text())
    assert f"fingerprint with them out of band: {expected}" in text
    # ... and without node.yaml there is nothing to keep
    code, _, err = _run(["init", str(tmp_path / "empty"), "--keys-only"], capsys)
    assert code == ExitCode.CONFIG_ERROR and "--keys-only needs an existing node.yaml" in err
