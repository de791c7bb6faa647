"""`fedrisk-coordinator status`, `curves` and `report` on real runs (the real Coordinator and
ClientApp in process, with the coordinator's signed ledger): each command's figures are
checked against the run's own files, and no node data reaches a report."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flwr.supercore.task_identity import TaskIdentity
from inprocess_grid import InProcessGrid, run_coordinator, small_federation

from common.errors import RunFailedError
from common.exit_codes import ExitCode
from coordinator.cli import main
from coordinator.config import CoordinatorConfig, load_config_or_default
from coordinator.coordinator_ledger import coordinator_key_paths
from coordinator.curve_export import export_curves, run_curves
from coordinator.node_registry import NodeRegistry
from coordinator.run_request import RunRequest, write_run_request
from coordinator.run_summary import SUMMARY_FILE, RunSummary, require_summary, write_summary
from coordinator.run_view import read_run
from enterprise_node.config import load_node_config
from enterprise_node.ingest import ingest
from ledger.log import read_ledger
from protocols.app_identity import release


def small_config(**curves: float) -> CoordinatorConfig:
    """The packaged plan cut to one short model round (curve settings overridable)."""
    config = load_config_or_default(None)
    training = config.plan.training.model_copy(update={"rounds": 1, "local_epochs": 1})
    return config.model_copy(
        update={
            "plan": config.plan.model_copy(update={"training": training}),
            "curves": config.curves.model_copy(update=curves),
        }
    )


def run_into_state(state: Path, nodes: list[Path], config: CoordinatorConfig, run_id: str) -> Path:
    """One run under ``state/runs/<run_id>`` with its request file, as `federate` leaves it."""
    run_dir = state / "runs" / run_id
    run_dir.mkdir(parents=True)
    write_run_request(
        run_dir / "run_request.json",
        RunRequest(
            run_id=run_id,
            run_dir=str(run_dir),
            config=config,
            expected_nodes=len(nodes),
            ledger_dir=str(state / "ledger"),
            ledger_key=str(coordinator_key_paths(state)[0]),
        ),
    )
    run_coordinator(InProcessGrid(nodes), config, run_dir, coordinator_dir=state, run_id=run_id)
    return run_dir


def register_key(state: Path, tmp: Path, name: str) -> None:
    key = ec.generate_private_key(ec.SECP384R1()).public_key()
    path = tmp / f"{name}.pub"
    path.write_bytes(
        key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    )
    NodeRegistry(state).register(path, name)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A coordinator state with three runs: completed, completed with every segment
    withheld, and failed (every node refuses: its privacy cap is too small)."""
    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 7, 0, 1
    root = tmp_path_factory.mktemp("broker")
    state = root / "state"
    config = small_config()
    nodes = small_federation(root / "fed", config.plan.model_spec)
    run_into_state(state, nodes, config, "run-ok")
    run_into_state(state, nodes, small_config(min_enterprises=len(nodes) + 1), "run-withheld")
    poor = small_federation(root / "poor", config.plan.model_spec, seed=5)
    for path in poor:
        data = yaml.safe_load(path.read_text())
        data["privacy"]["epsilon"] = 0.01
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(RunFailedError):
        run_into_state(state, poor, config, "run-failed")
    for name in ("fab-a", "fab-b"):
        register_key(state, root, name)
    NodeRegistry(state).revoke("fab-b")
    yield state, nodes
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = saved


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run fedrisk-coordinator in process: (exit code, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def summary_of(run_dir: Path) -> RunSummary:
    return require_summary(run_dir / SUMMARY_FILE)


# -- status ---------------------------------------------------------------------------------


def test_status_json_tells_each_run_as_its_files_do(broker, capsys) -> None:
    # Prepare
    state, nodes = broker
    ok = summary_of(state / "runs" / "run-ok")
    failed = summary_of(state / "runs" / "run-failed")
    # Execute
    code, out, _ = cli(capsys, "status", str(state), "--json")
    status = json.loads(out)
    # Assert: newest first, figures equal to the summaries
    assert code == 0
    runs = {run["run_id"]: run for run in status["runs"]}
    assert [run["run_id"] for run in status["runs"]] == ["run-failed", "run-withheld", "run-ok"]
    assert runs["run-ok"]["status"] == "completed"
    assert runs["run-ok"]["rounds_done"] == runs["run-ok"]["rounds_planned"] == 2
    assert runs["run-ok"]["nodes"] == len(ok.nodes or ()) == len(nodes)
    assert runs["run-ok"]["refusals"] == ok.refusals == 0
    epsilons = [n.epsilon_run for n in ok.privacy.nodes.values()]
    assert runs["run-ok"]["max_epsilon_run"] == max(epsilons)
    assert runs["run-ok"]["delta_run"] == small_config().plan.privacy.record.delta
    assert runs["run-ok"]["published_segments"] == list(ok.published_segments or ())
    assert runs["run-withheld"]["published_segments"] == []
    assert runs["run-failed"]["status"] == "failed"
    assert runs["run-failed"]["rounds_done"] == 0  # it failed in its first round
    assert runs["run-failed"]["error"] == failed.error
    refused = sum(len(r.refused) for r in failed.rounds)
    assert runs["run-failed"]["refusals"] == refused > 0


def test_summary_names_the_delta_of_each_epsilon(broker) -> None:
    # Prepare
    state, nodes = broker
    plan_delta = small_config().plan.privacy.record.delta
    # Execute
    privacy = summary_of(state / "runs" / "run-ok").privacy
    # Assert: the run's epsilon at the plan's delta; lifetime and cap at the node cap's
    assert "not comparable" in privacy.deltas
    assert len(privacy.nodes) == len(nodes)
    for node in privacy.nodes.values():
        assert node.delta_run == plan_delta
        assert node.delta_total == node.delta_cap == 1e-5 != plan_delta


def test_status_json_tells_the_ledger_register_and_superlink(broker, capsys) -> None:
    # Prepare
    state, _ = broker
    contents = read_ledger(state / "ledger")
    # Execute
    _, out, _ = cli(capsys, "status", str(state), "--json")
    status = json.loads(out)
    # Assert
    assert status["ledger"]["entries"] == len(contents.entry_lines)
    assert status["ledger"]["signed_size"] == contents.tree_heads()[-1].tree_size
    assert status["ledger"]["root_hash"] == contents.tree_heads()[-1].root_hash
    assert status["ledger"]["verified"] is True
    assert status["nodes"] == {"active": 1, "revoked": 1}
    assert status["superlink"]["state"] == "not started"


def test_status_text_shows_the_runs_and_the_failure(broker, capsys) -> None:
    # Execute
    state, _ = broker
    code, out, _ = cli(capsys, "status", str(state))
    # Assert
    assert code == 0
    text = " ".join(out.split())
    assert "Nodes: 1 active, 1 revoked" in text
    assert f"release: {release()} (every node must run the same)" in text
    assert "verified" in text and "SuperLink: not started" in text
    assert "run-ok" in text and "run-withheld" in text
    delta = small_config().plan.privacy.record.delta
    assert (
        "max eps: the largest record-level epsilon a run cost a node, "
        f"at delta {delta:g}" in text
    )
    error = summary_of(state / "runs" / "run-failed").error or ""
    assert f"run run-failed failed: {error[:40]}" in text


def test_status_fits_an_80_column_terminal(broker, capsys, monkeypatch) -> None:
    # Prepare
    monkeypatch.setenv("COLUMNS", "80")
    state, _ = broker
    # Execute
    code, out, _ = cli(capsys, "status", str(state))
    # Assert: no line wider than the terminal, nothing cut, every run id whole on its row
    assert code == 0
    assert all(len(line) <= 80 for line in out.splitlines())
    assert "…" not in out
    rows = [line for line in out.splitlines() if line.startswith("run-")]
    assert {row.split()[0] for row in rows} == {"run-ok", "run-withheld", "run-failed"}
    assert "run run-ok published: " in out


def copy_state(state: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "state"
    shutil.copytree(state, copy)
    return copy


def write_superlink(state: Path, pid: int) -> None:
    record = {
        "pid": pid,
        "address": "127.0.0.1:9092",
        "control_address": "127.0.0.1:9092",
        "started_at": 1.0,
        "log": str(state / "superlink" / "superlink.log"),
    }
    (state / "superlink").mkdir(exist_ok=True)
    (state / "superlink" / "superlink.json").write_text(json.dumps(record))


def superlink_state(capsys, state: Path) -> dict:
    code, out, _ = cli(capsys, "status", str(state), "--json")
    assert code == 0
    return json.loads(out)["superlink"]


def test_a_superlink_file_of_an_exited_process_is_stale(broker, capsys, tmp_path) -> None:
    # Prepare: a pid that has exited
    state = copy_state(broker[0], tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_superlink(state, gone.pid)
    # Execute
    link = superlink_state(capsys, state)
    # Assert
    assert link["state"] == "stale" and link["pid"] == gone.pid
    assert "not running" in link["note"] or "has exited" in link["note"]


def test_a_live_pid_that_is_not_a_superlink_is_stale(broker, capsys, tmp_path) -> None:
    # Prepare: this test process, alive but no SuperLink (a recycled pid)
    state = copy_state(broker[0], tmp_path)
    write_superlink(state, __import__("os").getpid())
    # Execute
    link = superlink_state(capsys, state)
    # Assert
    assert link["state"] == "stale" and "not a SuperLink" in link["note"]


def test_a_live_superlink_is_running_with_its_addresses(broker, capsys, tmp_path) -> None:
    # Prepare: a process whose command line names flower-superlink
    state = copy_state(broker[0], tmp_path)
    fake = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "/opt/bin/flower-superlink"]
    )
    try:
        write_superlink(state, fake.pid)
        # Execute
        link = superlink_state(capsys, state)
        code, out, _ = cli(capsys, "status", str(state))
    finally:
        fake.kill()
        fake.wait()
    # Assert
    assert link["state"] == "running" and link["address"] == "127.0.0.1:9092"
    text = " ".join(out.split())
    assert code == 0 and f"running (pid {fake.pid}" in text and "Fleet API 127.0.0.1:9092" in text


def test_an_unreadable_superlink_file_is_reported(broker, capsys, tmp_path) -> None:
    # Prepare
    state = copy_state(broker[0], tmp_path)
    (state / "superlink").mkdir()
    (state / "superlink" / "superlink.json").write_text("{not json")
    # Execute / Assert
    assert superlink_state(capsys, state)["state"] == "unreadable"


def test_a_tampered_ledger_shows_as_failed_verification(broker, capsys, tmp_path) -> None:
    # Prepare: change one recorded figure in a signed entry
    state = copy_state(broker[0], tmp_path)
    entries = state / "ledger" / "entries.jsonl"
    lines = entries.read_bytes().split(b"\n")
    lines[0] = lines[0].replace(b'"expected_nodes":4', b'"expected_nodes":5')
    entries.write_bytes(b"\n".join(lines))
    # Execute
    _, out, _ = cli(capsys, "status", str(state), "--json")
    # Assert
    ledger = json.loads(out)["ledger"]
    assert ledger["verified"] is False and ledger["problems"]


def test_a_run_in_progress_shows_its_last_event(broker, capsys, tmp_path) -> None:
    # Prepare: run-ok as it was mid-way, before its curve round (no summary, no end)
    state = copy_state(broker[0], tmp_path)
    run_dir = state / "runs" / "run-ok"
    (run_dir / "summary.json").unlink()
    lines = (run_dir / "progress.jsonl").read_text().splitlines()
    first_curve = next(i for i, line in enumerate(lines) if json.loads(line).get("round") == 2)
    (run_dir / "progress.jsonl").write_text("\n".join(lines[:first_curve]) + "\n")
    last = json.loads(lines[first_curve - 1])
    # Execute
    _, out, _ = cli(capsys, "status", str(state), "--json")
    _, text, _ = cli(capsys, "status", str(state))
    # Assert
    run = next(r for r in json.loads(out)["runs"] if r["run_id"] == "run-ok")
    assert run["status"] == "in progress" and run["rounds_done"] == 1
    assert run["rounds_planned"] == 2 and run["last_event"] == last
    assert f"run run-ok, last event: {last['event']}" in " ".join(text.split())


def test_status_of_a_missing_or_empty_dir_is_a_state_error(capsys, tmp_path) -> None:
    # Execute
    missing = cli(capsys, "status", str(tmp_path / "nope"))
    empty = cli(capsys, "status", str(tmp_path))
    # Assert
    assert missing[0] == ExitCode.STATE_ERROR and "no such coordinator state" in missing[2]
    assert empty[0] == ExitCode.STATE_ERROR and "not a coordinator state" in empty[2]


# -- curves ---------------------------------------------------------------------------------


def test_curves_json_are_the_runs_published_curves(broker, capsys) -> None:
    # Prepare
    run_dir = broker[0] / "runs" / "run-ok"
    saved = json.loads((run_dir / "curves.json").read_text())
    # Execute
    code, out, _ = cli(capsys, "curves", str(run_dir))
    # Assert
    exported = json.loads(out)
    assert code == 0 and exported["run_id"] == "run-ok" and "warning" not in exported
    assert exported["curves"] == saved["curves"]
    assert tuple(c["segment"] for c in exported["curves"]) == summary_of(run_dir).published_segments


def test_curves_csv_of_one_segment_are_its_rows_of_curves_csv(broker, capsys) -> None:
    # Prepare
    run_dir = broker[0] / "runs" / "run-ok"
    header, *rows = (run_dir / "curves.csv").read_text().splitlines()
    segment = (summary_of(run_dir).published_segments or ())[-1]
    # Execute: from the state dir, the newest completed run is run-withheld, so name it
    code, out, _ = cli(
        capsys, "curves", str(broker[0]), "--run", "run-ok", "--format", "csv", "--segment", segment
    )
    # Assert
    assert code == 0
    assert out.splitlines() == [header] + [r for r in rows if r.startswith(f"{segment},")]


def test_curves_png_is_written(broker, capsys, tmp_path) -> None:
    # Execute
    out = tmp_path / "c.png"
    code, _, err = cli(
        capsys, "curves", str(broker[0] / "runs" / "run-ok"), "--format", "png", "--out", str(out)
    )
    # Assert
    assert code == 0 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(out) in err


def test_the_curves_picture_says_what_it_shows(broker, monkeypatch, tmp_path) -> None:
    # Prepare: keep the caption each figure is drawn with
    import coordinator.curve_plot as curve_plot

    captions: list[str] = []
    original = curve_plot.Figure.suptitle

    def keep(self, text, **kwargs):
        captions.append(text)
        return original(self, text, **kwargs)

    monkeypatch.setattr(curve_plot.Figure, "suptitle", keep)
    run = read_run(broker[0] / "runs" / "run-ok")
    # Execute
    export_curves(run, run_curves(run), "png", tmp_path / "c.png")
    # Assert: the run, how many enterprises, and epsilon with its delta
    plan = run.request.config.plan
    [caption] = captions
    assert caption.startswith("fedrisk run run-ok: industry risk curves from 4 enterprises")
    record = plan.privacy.record
    assert f"epsilon {record.curve_epsilon:g} per enterprise (delta {record.delta:g})" in caption


def test_withheld_curves_need_the_flag_and_stay_marked(broker, capsys, tmp_path) -> None:
    # Prepare
    run_dir = broker[0] / "runs" / "run-withheld"
    withheld = summary_of(run_dir).withheld_segments or ()
    assert withheld and not (run_dir / "curves.json").exists()
    # Execute
    plain = cli(capsys, "curves", str(run_dir))
    one = cli(capsys, "curves", str(run_dir), "--segment", withheld[0].segment)
    code, out, err = cli(capsys, "curves", str(run_dir), "--include-withheld")
    csv_path = tmp_path / "w.csv"
    csv_code, _, _ = cli(
        capsys,
        "curves",
        str(run_dir),
        "--include-withheld",
        "--format",
        "csv",
        "--out",
        str(csv_path),
    )
    # Assert
    assert plain[0] == ExitCode.USAGE_ERROR and "published no curves" in plain[2]
    assert one[0] == ExitCode.USAGE_ERROR and withheld[0].reason in one[2]
    exported = json.loads(out)
    assert code == 0 and "not for publication" in exported["warning"] and "warning" in err
    assert [c["segment"] for c in exported["curves"]] == [w.segment for w in withheld]
    assert all(c["published"] is False and c["note"] for c in exported["curves"])
    header, *rows = csv_path.read_text().splitlines()
    assert csv_code == 0 and header.endswith(",published")
    assert rows and all(row.endswith(",false") for row in rows)


def test_curves_errors_name_segment_format_run_and_failure(broker, capsys) -> None:
    # Prepare
    state = broker[0]
    run_dir = state / "runs" / "run-ok"
    # Execute
    segment = cli(capsys, "curves", str(run_dir), "--segment", "bakery")
    fmt = cli(capsys, "curves", str(run_dir), "--format", "xlsx")
    run = cli(capsys, "curves", str(state), "--run", "nope")
    failed = cli(capsys, "curves", str(state), "--run", "run-failed")
    # Assert
    assert segment[0] == ExitCode.USAGE_ERROR and "unknown segment 'bakery'" in segment[2]
    assert (summary_of(run_dir).published_segments or ())[0] in segment[2]
    assert fmt[0] == ExitCode.USAGE_ERROR and "unknown curves format 'xlsx'" in fmt[2]
    assert run[0] == ExitCode.USAGE_ERROR and "run-ok" in run[2]
    assert failed[0] == ExitCode.RUN_FAILED and "run-failed failed" in failed[2]


# -- report ---------------------------------------------------------------------------------


def report_text(capsys, run_dir: Path, tmp_path: Path) -> tuple[str, str]:
    code, _, err = cli(capsys, "report", str(run_dir), "--out", str(tmp_path / "report"))
    assert code == 0, err
    return (
        (tmp_path / "report" / "report.md").read_text(),
        (tmp_path / "report" / "report.html").read_text(),
    )


def test_report_states_the_runs_figures(broker, capsys, tmp_path) -> None:
    # Prepare
    state = broker[0]
    run_dir = state / "runs" / "run-ok"
    summary = summary_of(run_dir)
    curves = json.loads((run_dir / "curves.json").read_text())["curves"]
    outputs = [e for e in read_ledger(state / "ledger").entries() if e.kind == "outputs_published"]
    recorded = next(e for e in outputs if e.body["run_id"] == "run-ok")
    # Execute
    markdown, page = report_text(capsys, run_dir, tmp_path)
    # Assert: identity, privacy, curves at 12 months, hashes matching the ledger entry
    assert f"| plan digest | {summary.plan_digest} |" in markdown
    for node, spent in summary.privacy.nodes.items():
        assert re.search(rf"\| {node} \| [0-9a-f]{{16}} \| {spent.epsilon_run:.3f} \|", markdown)
        lifetime = f"epsilon {spent.epsilon_total:.3f} at delta {spent.delta_total:g}"
        assert f"| {lifetime} | epsilon {spent.epsilon_cap:.3f} at delta" in markdown
    assert f"epsilon this run at delta {spent.delta_run:g}" in markdown
    for curve in curves:
        at_12 = curve["edges"].index(12.0)
        assert f"| {curve['segment']} | 12 months | {curve['failure'][at_12]:.4f} |" in markdown
    assert f"| global_model.npz | {recorded.body['model_sha256']} | matches entry " in markdown
    assert f"| curves.json | {recorded.body['curves_sha256']} | matches entry " in markdown
    assert "verified" in markdown and "data:image/png;base64," in page
    # ... in words a broker reads unaided: privacy figures by name, not by key
    assert "| noise added as shares inside the secure sum | yes |" in markdown
    assert "shares_planned" not in markdown


def test_report_of_a_failed_run_says_failed_with_refusals(broker, capsys, tmp_path) -> None:
    # Prepare
    summary = summary_of(broker[0] / "runs" / "run-failed")
    reasons = [p.reason for r in summary.rounds for p in r.refused]
    # Execute
    markdown, page = report_text(capsys, broker[0] / "runs" / "run-failed", tmp_path)
    # Assert
    assert f"**Run run-failed: failed - {summary.error}**" in markdown
    assert reasons and reasons[0] in markdown
    assert "No published curves." in markdown and "failed" in page


def test_report_gives_withheld_segments_with_why(broker, capsys, tmp_path) -> None:
    # Prepare
    withheld = summary_of(broker[0] / "runs" / "run-withheld").withheld_segments or ()
    # Execute
    markdown, _ = report_text(capsys, broker[0] / "runs" / "run-withheld", tmp_path)
    # Assert
    for item in withheld:
        assert f"| {item.segment} | withheld | {item.reason} |" in markdown


def test_report_html_escapes_what_it_shows(broker, capsys, tmp_path) -> None:
    # Prepare: a run whose error message holds markup
    run_dir = tmp_path / "run"
    shutil.copytree(broker[0] / "runs" / "run-failed", run_dir)
    summary = replace(summary_of(run_dir), error="<script>alert(1)</script> & more")
    write_summary(run_dir / SUMMARY_FILE, summary)
    # Execute
    _, page = report_text(capsys, run_dir, tmp_path)
    # Assert
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page


def test_no_unit_id_or_raw_value_of_the_node_data_appears_in_reports(
    broker, capsys, tmp_path
) -> None:
    # Prepare: every raw and pseudonymised unit id and every raw duration of the sites
    state, nodes = broker
    spec = load_config_or_default(None).plan.model_spec
    forbidden: set[str] = set()
    for path in nodes:
        config = load_node_config(path)
        with open(config.data_path, newline="") as handle:
            raw = list(csv.DictReader(handle))
        unit_id, duration = config.data.columns.unit_id, config.data.columns.duration
        forbidden |= {row[unit_id] for row in raw}
        forbidden |= {row[duration] for row in raw if len(row[duration]) >= 5}
        forbidden |= set(ingest(config, spec).frame["unit_id"])
    # Execute
    texts = []
    for run in ("run-ok", "run-withheld", "run-failed"):
        markdown, page = report_text(capsys, state / "runs" / run, tmp_path / run)
        texts += [markdown, page]
    # Assert
    tokens = {token for text in texts for token in re.findall(r"[\w.\-]+", text)}
    assert len(forbidden) > 1000
    assert not tokens & forbidden


def test_report_format_and_missing_run_errors(broker, capsys, tmp_path) -> None:
    # Execute
    fmt = cli(capsys, "report", str(broker[0] / "runs" / "run-ok"), "--format", "pdf")
    missing = cli(capsys, "report", str(tmp_path / "gone"))
    empty = cli(capsys, "report", str(tmp_path))
    md_only = cli(
        capsys,
        "report",
        str(broker[0] / "runs" / "run-ok"),
        "--format",
        "md",
        "--out",
        str(tmp_path / "r"),
    )
    # Assert
    assert fmt[0] == ExitCode.USAGE_ERROR and "unknown report format 'pdf'" in fmt[2]
    assert missing[0] == ExitCode.STATE_ERROR and "no such directory" in missing[2]
    assert empty[0] == ExitCode.STATE_ERROR and "neither a run directory" in empty[2]
    assert md_only[0] == 0 and sorted(p.name for p in (tmp_path / "r").iterdir()) == ["report.md"]
