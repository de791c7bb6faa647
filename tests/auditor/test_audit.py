"""`fedrisk-audit verify` on a real run: a clean secure run of 4 nodes passes, the epsilon
recomputed with dp-accounting matches the claims, reports are written, exit codes hold.

The run (real Coordinator and ClientApp in process, 2 model rounds + curves, secure
aggregation, record DP) is built once per test session by :func:`federation_run` and is
shared with tests/auditor/test_audit_tamper.py.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from flwr.supercore.task_identity import TaskIdentity
from inprocess_grid import InProcessGrid, run_coordinator, small_federation
from node_site import config_with
from signed_ledgers import resign_ledger

from auditor.cli import main
from auditor.epsilon import Release, UnknownMechanismError, compose_epsilon
from auditor.findings import AuditFinding, FailureClass, exit_code_for
from auditor.report import write_reports
from auditor.verify import AuditResult, audit
from common.exit_codes import ExitCode
from coordinator.config import load_config_or_default
from coordinator.coordinator_ledger import coordinator_key_paths
from enterprise_node.config import load_node_config
from enterprise_node.node_ledger import node_key_id
from harness.federation import check_nodes_inclusion
from ledger.log import read_ledger
from ledger.records import (
    CheckpointWritten,
    InclusionChecked,
    LedgerRecord,
    NodeReason,
    PrivacySpent,
    ReleaseAccounted,
    RoundRecorded,
    RunEnded,
    RunResumed,
    RunStarted,
)
from ledger.service import serve_ledger
from ledger.signing import public_key_path
from privacy.accounting import Spend, rdp_epsilon
from privacy.enterprise_accounting import EnterpriseAccountant
from privacy.mechanisms import Mechanism

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Party:
    """One ledger of the run: its directory, public and private key files, id."""

    ledger: Path
    public_key: Path
    private_key: Path
    ledger_id: str


@dataclass(frozen=True)
class FederationRun:
    """The coordinator's and the nodes' ledgers and keys of one in-process run."""

    coordinator: Party
    nodes: tuple[Party, ...]

    @property
    def parties(self) -> tuple[Party, ...]:
        return (self.coordinator, *self.nodes)

    def ledger_dirs(self) -> list[Path]:
        return [p.ledger for p in self.parties]

    def key_paths(self) -> list[Path]:
        return [p.public_key for p in self.parties]

    def copy_to(self, root: Path) -> FederationRun:
        """The same run with every ledger copied under ``root`` (keys stay shared)."""
        copies = []
        for index, party in enumerate(self.parties):
            target = root / ("coordinator" if index == 0 else f"node-{index - 1}")
            shutil.copytree(party.ledger, target)
            copies.append(replace(party, ledger=target))
        return FederationRun(copies[0], tuple(copies[1:]))


_RUN: list[FederationRun] = []


def federation_run(tmp_path_factory: pytest.TempPathFactory) -> FederationRun:
    """Build the run once per session: 4 nodes, 2 rounds (1 local epoch), curves, secure
    aggregation and record DP from the shipped config, then the nodes' inclusion checks."""
    if _RUN:
        return _RUN[0]
    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 7, 0, 1
    try:
        root = tmp_path_factory.mktemp("audit-run")
        config = load_config_or_default(None)
        training = config.plan.training.model_copy(update={"rounds": 2, "local_epochs": 1})
        config = config.model_copy(
            update={"plan": config.plan.model_copy(update={"training": training})}
        )
        assert config.plan.secure_aggregation and config.plan.privacy.record.enabled
        nodes = small_federation(root / "fed", config.plan.model_spec)
        coord = root / "coord"
        run_coordinator(InProcessGrid(nodes), config, root / "run", coordinator_dir=coord)
        check_nodes_inclusion(nodes, coord, "inproc")
    finally:
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = saved
    private, public = coordinator_key_paths(coord)
    parties = []
    for path in nodes:
        node = load_node_config(path)
        key = node.resolve(node.node.ledger_key_file)
        parties.append(
            Party(
                node.state_dir / "ledger",
                public_key_path(key),
                key,
                node_key_id(node),
            )
        )
    _RUN.append(
        FederationRun(Party(coord / "ledger", public, private, "coordinator"), tuple(parties))
    )
    return _RUN[0]


def audit_all(run: FederationRun, **options: Any) -> AuditResult:
    """The audit of every ledger of ``run``, told the coordinator's key."""
    return audit(
        run.ledger_dirs(), run.key_paths(), coordinator_key=run.coordinator.public_key, **options
    )


def rebuild_ledger(party: Party, edit: Callable[[list[LedgerRecord]], list[LedgerRecord]]) -> None:
    """Rewrite ``party``'s ledger with ``edit`` applied to its records, re-signed with the
    owner's real key: every signature and proof verifies, only the content changed."""
    resign_ledger(party.ledger, party.private_key, party.ledger_id, edit)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> FederationRun:
    return federation_run(tmp_path_factory)


@pytest.fixture(scope="module")
def clean(run) -> AuditResult:
    return audit_all(run)


# -- a clean run ---------------------------------------------------------------------------


def test_a_clean_run_passes_with_no_errors(clean) -> None:
    # Assert
    assert clean.verdict == "PASS" and clean.exit_code == ExitCode.SUCCESS
    assert not clean.errors, [str(f) for f in clean.errors]
    assert not clean.warnings, [str(f) for f in clean.warnings]
    assert [s.name for s in clean.ledgers][0] == "coordinator" and len(clean.ledgers) == 5


def test_recomputed_epsilon_matches_the_claims(clean) -> None:
    # Execute
    largest = clean.largest_relative_difference
    print(f"largest relative difference, claimed vs recomputed epsilon: {largest:+.3e}")
    # Assert: 4 nodes x 3 releases (2 model rounds + 1 curve histogram)
    assert len(clean.node_rows) == 4
    assert all(row.releases == 3 and len(row.points) == 3 for row in clean.node_rows)
    assert abs(largest) < 1e-4
    for row in clean.node_rows:
        assert row.recomputed == pytest.approx(row.claimed, rel=1e-4)
        assert 0.0 < row.recomputed < row.cap


def test_the_clean_run_is_a_newton_fit_whose_glm_releases_are_recomputed(run, clean) -> None:
    # Prepare: the shipped plan fits the GLM by Newton steps on secure sums
    assert load_config_or_default(None).plan.training.method == "newton"
    # Execute: what each party's ledger says was released
    kinds = {
        party.ledger_id: sorted(
            (e.body["task"], e.body["mechanism"])
            for e in read_ledger(party.ledger).entries()
            if e.kind in ("privacy_spent", "release_accounted")
        )
        for party in run.parties
    }
    # Assert: 2 GLM releases and 1 curve release per node, claimed by the coordinator
    # too, and the auditor recomputed every node's epsilon from them
    for party in run.nodes:
        assert kinds[party.ledger_id] == [
            ("curve", Mechanism.SKELLAM_CURVE_HISTOGRAM),
            ("model", Mechanism.SKELLAM_GLM),
            ("model", Mechanism.SKELLAM_GLM),
        ]
    assert kinds["coordinator"].count(("model", Mechanism.SKELLAM_GLM)) == 8
    assert clean.verdict == "PASS"
    assert all(row.recomputed == pytest.approx(row.claimed, rel=1e-4) for row in clean.node_rows)


def test_per_run_epsilon_is_within_the_plan(clean) -> None:
    # Assert: the node calibrates each run to the plan's record epsilon (2.0 at 1e-6)
    assert len(clean.run_rows) == 4
    for row in clean.run_rows:
        assert row.delta == 1e-6 and row.releases == 3
        assert 1.9 < row.recomputed <= row.record_epsilon
    assert clean.enterprise_rows == ()


def test_reports_are_written_with_verdict_tables_and_plot(clean, tmp_path) -> None:
    # Execute
    paths = write_reports(clean, tmp_path / "report")
    # Assert
    assert [p.name for p in paths] == ["audit.md", "audit.html", "epsilon.png"]
    markdown = paths[0].read_text()
    assert "Verdict: PASS" in markdown and "## Record-level epsilon per node" in markdown
    assert all(row.node in markdown for row in clean.node_rows)
    page = paths[1].read_text()
    assert "data:image/png;base64," in page and "<table>" in page
    assert paths[2].read_bytes().startswith(b"\x89PNG")


def test_the_coordinator_ledger_can_be_fetched_from_its_service(run) -> None:
    # Prepare
    server = serve_ledger(run.coordinator.ledger)
    try:
        # Execute
        result = audit(
            [p.ledger for p in run.nodes],
            run.key_paths(),
            coordinator_key=run.coordinator.public_key,
            coordinator_address=server.address,
        )
        wrong_key = audit(
            [],
            [p.public_key for p in run.nodes],
            coordinator_key=run.nodes[0].public_key,
            coordinator_address=server.address,
        )
    finally:
        server.stop()
    # Assert
    assert result.exit_code == ExitCode.SUCCESS, [str(f) for f in result.errors]
    assert result.ledgers[-1].source == server.address
    assert wrong_key.exit_code == ExitCode.AUDIT_LEDGER_INVALID
    assert any(f.kind == "no-trusted-key" for f in wrong_key.errors)


def test_node_ledgers_alone_are_incomplete_or_with_partial_a_pass_with_gaps(run) -> None:
    # Execute
    nodes = [p.ledger for p in run.nodes], [p.public_key for p in run.nodes]
    result = audit(*nodes, coordinator_key=run.coordinator.public_key)
    partial = audit(*nodes, coordinator_key=run.coordinator.public_key, partial=True)
    # Assert
    assert (result.verdict, result.exit_code) == ("INCOMPLETE", ExitCode.AUDIT_INCOMPLETE)
    assert (partial.verdict, partial.exit_code) == ("PASS WITH GAPS", ExitCode.SUCCESS)
    assert [f.kind for f in result.warnings] == ["party-missing"]
    assert [m.party for m in result.missing] == ["coordinator"]


# -- the command line ------------------------------------------------------------------------


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    return int(exited.value.code or 0)


def test_cli_passes_a_clean_run_and_writes_the_report(run, tmp_path, capsys) -> None:
    # Prepare: --keys takes several values, as in the usage line
    argv = [
        "verify",
        *map(str, run.ledger_dirs()),
        "--coordinator-key",
        str(run.coordinator.public_key),
        "--keys",
        *map(str, run.key_paths()),
        "--out",
        str(tmp_path / "out"),
    ]
    # Execute
    code = _exit_code(argv)
    # Assert
    assert code == 0, capsys.readouterr().out
    assert "PASS" in capsys.readouterr().out
    assert (tmp_path / "out" / "audit.md").exists() and (tmp_path / "out" / "audit.html").exists()


def test_cli_exit_code_names_the_failure_class(run, tmp_path, capsys) -> None:
    # Prepare: one flipped byte in a node's entries
    copy = run.copy_to(tmp_path / "ledgers")
    path = copy.nodes[0].ledger / "entries.jsonl"
    data = bytearray(path.read_bytes())
    data[30] ^= 0x01
    path.write_bytes(bytes(data))
    argv = [
        "verify",
        *map(str, copy.ledger_dirs()),
        "--coordinator-key",
        str(copy.coordinator.public_key),
        "--keys",
        *map(str, copy.key_paths()),
        "--out",
        str(tmp_path / "out"),
    ]
    # Execute
    code = _exit_code(argv)
    # Assert
    assert code == ExitCode.AUDIT_LEDGER_INVALID == 50
    assert "FAIL" in capsys.readouterr().out
    assert "Verdict: FAIL" in (tmp_path / "out" / "audit.md").read_text()


def test_cli_bad_usage_uses_the_usage_config_and_state_codes(run, tmp_path, capsys) -> None:
    # Prepare
    keys = ["--coordinator-key", str(run.coordinator.public_key)]
    keys += ["--keys", *(str(p) for p in run.key_paths())]
    bad_key = tmp_path / "bad.pub.pem"
    bad_key.write_text("not a key")
    not_a_file = tmp_path / "ledger"
    (not_a_file / "entries.jsonl").mkdir(parents=True)
    out = ["--out", str(tmp_path / "out")]
    # Execute / Assert
    ledger = str(run.coordinator.ledger)
    assert _exit_code(["verify", str(tmp_path / "missing"), *keys, *out]) == 2
    assert _exit_code(["verify", ledger, *out]) == 2
    assert _exit_code(["verify", ledger, "--keys", str(run.coordinator.public_key), *out]) == 2
    assert _exit_code(["verify", ledger, "--coordinator-key", str(bad_key)]) == 10
    assert _exit_code(["verify", ledger, *keys, "--keys", str(tmp_path / "none.pem")]) == 10
    assert _exit_code(["verify", str(not_a_file), *keys, *out]) == 40
    assert "error:" in capsys.readouterr().err


# -- epsilon maths and the failure classes -------------------------------------------------


def test_epsilon_known_answer_from_opacus_docs() -> None:
    # Opacus: RDP sigma=1.5, q=0.04, 2,250 steps, delta=1e-5 gives epsilon 7.3291
    release = Release("dp_sgd", noise_multiplier=1.5, sample_rate=0.04, steps=2250)
    assert compose_epsilon([release], 1e-5) == pytest.approx(7.3291, abs=1e-3)


def test_composing_k_releases_equals_one_release_of_k_times_the_steps() -> None:
    # Prepare
    one = Release("dp_sgd", noise_multiplier=1.1, sample_rate=0.02, steps=50)
    many = replace(one, steps=150)
    # Assert
    assert compose_epsilon([one, one, one], 1e-6) == pytest.approx(
        compose_epsilon([many], 1e-6), rel=1e-12
    )


def test_dp_accounting_agrees_with_the_opacus_accountant_of_the_nodes() -> None:
    # Prepare: a DP-SGD release and a Gaussian histogram, composed
    spends = [Spend(2.5, 0.3, 4, "dp_sgd"), Spend(4.5, 1.0, 1, "gaussian")]
    releases = [
        Release(Mechanism.DP_SGD, 2.5, 0.3, 4),
        Release(Mechanism.CURVE_HISTOGRAM, 4.5, 1, 1),
    ]
    # Assert
    assert compose_epsilon(releases, 1e-5) == pytest.approx(rdp_epsilon(spends, 1e-5), rel=1e-4)


def test_no_noise_is_infinite_epsilon_and_an_unknown_mechanism_is_refused() -> None:
    assert math.isinf(compose_epsilon([Release("dp_sgd", 0.0, 0.1, 1)], 1e-5))
    with pytest.raises(UnknownMechanismError, match="laplace"):
        compose_epsilon([Release("laplace", 1.0, 1.0, 1)], 1e-5)


def test_several_failing_classes_exit_with_the_documented_priority() -> None:
    def error(cls: FailureClass) -> AuditFinding:
        return AuditFinding(cls, "error", "x", "here", "message")

    warning = replace(error(FailureClass.LEDGER), severity="warning")
    assert exit_code_for([warning]) == ExitCode.SUCCESS
    assert exit_code_for([error(FailureClass.CROSS_CHECK), error(FailureClass.EPSILON)]) == 51
    assert exit_code_for([error(FailureClass.EPSILON), error(FailureClass.CAP)]) == 52
    assert exit_code_for([error(FailureClass.CAP), error(FailureClass.LEDGER)]) == 50


# -- enterprise-level DP -------------------------------------------------------------------


def _with_enterprise_dp(
    records: list[LedgerRecord], *, cap: float, noise_multiplier: float, understate: float = 1.0
) -> list[LedgerRecord]:
    """The run's coordinator records with enterprise-level DP-FedAvg added as the
    coordinator writes it: a cap in RunStarted, one enterprise release per model round,
    claims from the Opacus accountant (times ``understate``)."""
    accountant = EnterpriseAccountant(delta=1e-5, cap=100.0)
    out: list[LedgerRecord] = []
    for record in records:
        if isinstance(record, RunStarted):
            record = replace(record, enterprise_epsilon_cap=cap, enterprise_delta=1e-5)
        out.append(record)
        if getattr(record, "task", "") == "secure-sum:model":
            total = accountant.record(
                noise_multiplier=noise_multiplier, sample_rate=1.0, round_number=record.round
            )
            single = rdp_epsilon([Spend(noise_multiplier, 1.0, 1, "enterprise")], 1e-5)
            out.append(
                ReleaseAccounted(
                    "inproc",
                    record.round,
                    "model",
                    "*",
                    "enterprise",
                    Mechanism.ENTERPRISE_SHARES,
                    noise_multiplier,
                    1.0,
                    1,
                    1.0,
                    4,
                    single,
                    total * understate,
                    cap,
                    1e-5,
                    "",
                )
            )
    return out


@pytest.mark.parametrize(
    ("cap", "understate", "expected", "kind"),
    [
        (10.0, 1.0, ExitCode.SUCCESS, None),
        (10.0, 0.5, ExitCode.AUDIT_EPSILON_MISMATCH, "understated"),
        (1.0, 1.0, ExitCode.AUDIT_CAP_EXCEEDED, "cap-exceeded"),
    ],
    ids=["claims-match", "claim-understated", "cap-exceeded"],
)
def test_enterprise_level_epsilon_is_recomputed_per_run(
    run, tmp_path, cap, understate, expected, kind
) -> None:
    # Prepare: the coordinator ledger re-signed with enterprise releases (z = 2)
    coordinator = run.copy_to(tmp_path).coordinator
    rebuild_ledger(
        coordinator,
        lambda rs: _with_enterprise_dp(rs, cap=cap, noise_multiplier=2.0, understate=understate),
    )
    # Execute
    result = audit([coordinator.ledger], [], coordinator_key=coordinator.public_key, partial=True)
    # Assert
    assert result.exit_code == expected, [str(f) for f in result.errors]
    assert [r.round for r in result.enterprise_rows] == [1, 2]
    if kind is None:
        print(f"enterprise relative difference: {result.largest_relative_difference:+.3e}")
        assert abs(result.largest_relative_difference) < 1e-4
    else:
        assert any(f.kind == kind and "enterprise" in f.message for f in result.errors)


def test_a_message_from_a_node_the_coordinator_recorded_as_failed_is_only_a_warning(
    run, tmp_path
) -> None:
    # Prepare: the coordinator lost node 0's first model update and recorded node 0 as
    # failed in that round (re-signed); inclusion checks are left out of the node ledgers
    # (they would pin the coordinator's original tree).
    copy = run.copy_to(tmp_path)
    node0 = copy.nodes[0].ledger_id
    lost = [
        e.body["sha256"]
        for e in read_ledger(copy.coordinator.ledger).entries()
        if e.kind == "message_received" and e.body["node"] == node0 and e.body["task"] == "model"
    ][0]

    def lose_update(records: list[LedgerRecord]) -> list[LedgerRecord]:
        out: list[LedgerRecord] = []
        for r in records:
            if getattr(r, "sha256", None) == lost or getattr(r, "message_sha256", None) == lost:
                continue
            if isinstance(r, RoundRecorded) and r.task == "model" and r.round == 1:
                r = replace(
                    r,
                    participants=tuple(p for p in r.participants if p != node0),
                    failed=(NodeReason(node0, "no reply within 900 s"),),
                )
            if isinstance(r, RoundRecorded) and r.task == "secure-sum:model" and r.round == 1:
                r = replace(r, participants=tuple(p for p in r.participants if p != node0))
            out.append(r)
        return out

    rebuild_ledger(copy.coordinator, lose_update)
    for node in copy.nodes:
        rebuild_ledger(node, lambda rs: [r for r in rs if not isinstance(r, InclusionChecked)])
    # Execute
    result = audit(
        copy.ledger_dirs(), copy.key_paths(), coordinator_key=copy.coordinator.public_key
    )
    # Assert
    assert result.exit_code == ExitCode.SUCCESS, [str(f) for f in result.errors]
    assert [f.kind for f in result.warnings] == ["message-unmatched"]
    assert "failed or dropped" in result.warnings[0].message


def test_a_resumption_hides_no_release(run, clean, tmp_path) -> None:
    # Prepare: a RunResumed from round 1 slipped in before the run's end (re-signed), as
    # if every round had been interrupted, and the rounds' completion records dropped so
    # that it looks legitimate; inclusion checks left out (they pin the tree)
    copy = run.copy_to(tmp_path)

    def resume_claimed(records: list[LedgerRecord]) -> list[LedgerRecord]:
        records = [r for r in records if not isinstance(r, CheckpointWritten)]
        end = next(i for i, r in enumerate(records) if isinstance(r, RunEnded))
        return [*records[:end], RunResumed("inproc", "ab" * 32, 1, 0, ""), *records[end:]]

    rebuild_ledger(copy.coordinator, resume_claimed)
    for node in copy.nodes:
        rebuild_ledger(node, lambda rs: [r for r in rs if not isinstance(r, InclusionChecked)])
    # Execute
    result = audit(
        copy.ledger_dirs(), copy.key_paths(), coordinator_key=copy.coordinator.public_key
    )
    # Assert: nothing was re-recorded after it, so every release still counts
    assert result.verdict == "PASS", [str(f) for f in result.errors]
    assert [(r.node, r.releases, r.recomputed) for r in result.run_rows] == [
        (r.node, r.releases, r.recomputed) for r in clean.run_rows
    ]


def test_a_node_charged_twice_for_one_round_is_warned(run, tmp_path) -> None:
    # Prepare: node 0's first spend recorded twice (re-signed)
    copy = run.copy_to(tmp_path)

    def twice(records: list[LedgerRecord]) -> list[LedgerRecord]:
        i = next(i for i, r in enumerate(records) if isinstance(r, PrivacySpent))
        return [*records[: i + 1], records[i], *records[i + 1 :]]

    rebuild_ledger(copy.nodes[0], twice)
    # Execute
    result = audit(
        copy.ledger_dirs(), copy.key_paths(), coordinator_key=copy.coordinator.public_key
    )
    # Assert: counted twice (conservative) and warned about
    [warning] = [f for f in result.warnings if f.kind == "charged-twice"]
    assert "a retried round should be a re-send" in warning.message


def test_a_real_enterprise_dp_run_that_stopped_at_its_cap_passes_the_audit(tmp_path) -> None:
    # Prepare: enterprise-level DP (z 1.0 at 3 of 4 shares; it clips DP-SGD updates) with
    # a cap that stops training after 2 of 4 rounds; record-level DP off so the run is quick
    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 7, 0, 1
    try:
        config = config_with(
            load_config_or_default(None),
            plan={
                "training": {"method": "dp_sgd", "rounds": 4, "local_epochs": 1},
                "privacy": {
                    "record": {"enabled": False},
                    "enterprise": {"clip_norm": 0.5, "noise_multiplier": 1.0},
                },
                "curve_release": False,
            },
            enterprise_budget={"epsilon_cap": 7.0},
        )
        nodes = small_federation(tmp_path / "fed", config.plan.model_spec, non_private=True)
        coord = tmp_path / "coord"
        # Execute
        run_coordinator(InProcessGrid(nodes), config, tmp_path / "run", coordinator_dir=coord)
        check_nodes_inclusion(nodes, coord, "inproc")
    finally:
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = saved
    ledgers = [coord / "ledger"] + [load_node_config(p).state_dir / "ledger" for p in nodes]
    keys = [coordinator_key_paths(coord)[1]] + [
        p.parent / "secrets" / "ledger_key.pub.pem" for p in nodes
    ]
    result = audit(ledgers, keys, coordinator_key=keys[0])
    # Assert: it passes, with the enterprise-level epsilon of the 2 rounds recomputed
    assert result.verdict == "PASS", [str(f) for f in result.errors]
    rows = result.enterprise_rows
    assert [r.round for r in rows] == [1, 2]
    assert all(abs(r.relative_difference) < 1e-3 and r.recomputed <= r.cap for r in rows)


def test_a_service_signing_more_entries_than_an_audit_reads_is_refused(run, monkeypatch) -> None:
    # Prepare: the bound lowered below this run's coordinator ledger
    import auditor.remote

    monkeypatch.setattr(auditor.remote, "MAX_REMOTE_ENTRIES", 2)
    server = serve_ledger(run.coordinator.ledger)
    try:
        # Execute / Assert: a clear error, nothing fetched
        with pytest.raises(auditor.remote.RemoteLedgerError, match="more than the 2 an audit"):
            audit(
                [p.ledger for p in run.nodes],
                run.key_paths(),
                coordinator_key=run.coordinator.public_key,
                coordinator_address=server.address,
            )
    finally:
        server.stop()
