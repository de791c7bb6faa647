"""Issue 12, classes 1-4: the audit holds against a coordinator that re-signs its own lies.

Each attack is re-signed with the attacker's real key (every signature and proof
verifies): a coordinator ledger relabelled as a node's; a node message hidden and excused
by a failure of an unknown id; a participant also listed as dropped; records after the
run's end; and every omission of ledgers, which makes the verdict INCOMPLETE (exit 54),
never PASS, unless --partial asks for a pass with gaps.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_audit import FederationRun, _exit_code, audit_all, federation_run, rebuild_ledger

from auditor.verify import AuditResult, audit
from common.exit_codes import ExitCode
from ledger.records import (
    InclusionChecked,
    LedgerRecord,
    MessageReceived,
    NodeReason,
    OutputsPublished,
    ReleaseAccounted,
    RoundRecorded,
)
from ledger.signing import key_id, load_public_key

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> FederationRun:
    return federation_run(tmp_path_factory)


def _kinds(result: AuditResult) -> set[str]:
    return {f.kind for f in result.errors}


def _model_message(run: FederationRun, node: str, round_number: int = 1) -> str:
    """The digest of ``node``'s model update of ``round_number`` at the coordinator."""
    from ledger.log import read_ledger

    return next(
        e.body["sha256"]
        for e in read_ledger(run.coordinator.ledger).entries()
        if e.kind == MessageReceived.KIND
        and e.body["node"] == node
        and e.body["task"] == "model"
        and e.body["round"] == round_number
    )


def _without_inclusion_checks(run: FederationRun) -> None:
    """Node ledgers without their inclusion checks (they pin the original coordinator
    tree, which every re-signed coordinator edit changes)."""
    for node in run.nodes:
        rebuild_ledger(node, lambda rs: [r for r in rs if not isinstance(r, InclusionChecked)])


# -- class 1: the coordinator role is the auditor's, not a label ---------------------------


def test_a_coordinator_ledger_relabelled_as_a_node_is_still_audited_as_the_coordinator(
    run, tmp_path
) -> None:
    # Prepare: the coordinator halves a release's claim and re-signs its ledger under its
    # key id instead of "coordinator", so that it would be audited as a node
    copy = run.copy_to(tmp_path)
    label = key_id(load_public_key(copy.coordinator.public_key))
    relabelled = replace(copy.coordinator, ledger_id=label)

    def halve(records: list[LedgerRecord]) -> list[LedgerRecord]:
        first = next(i for i, r in enumerate(records) if isinstance(r, ReleaseAccounted))
        release = records[first]
        assert isinstance(release, ReleaseAccounted)
        records[first] = replace(release, epsilon_claimed=release.epsilon_claimed / 2)
        return records

    rebuild_ledger(relabelled, halve)
    # Execute
    result = audit_all(copy)
    # Assert: refused (50), and the coordinator's checks still ran on it
    assert result.exit_code == ExitCode.AUDIT_LEDGER_INVALID
    assert {"role", "understated"} <= _kinds(result)
    assert [s.name for s in result.ledgers][0] == "coordinator"


def test_a_node_ledger_labelled_coordinator_is_refused(run, tmp_path) -> None:
    # Prepare: node 0 re-signs its ledger labelled "coordinator"
    copy = run.copy_to(tmp_path)
    rebuild_ledger(replace(copy.nodes[0], ledger_id="coordinator"), lambda rs: rs)
    # Execute
    result = audit_all(copy)
    # Assert
    assert result.exit_code == ExitCode.AUDIT_LEDGER_INVALID
    assert "role" in _kinds(result)
    assert "duplicate-ledger" not in _kinds(result)


def test_the_command_line_requires_the_coordinator_key(run, tmp_path) -> None:
    # Prepare
    keys = ["--keys", *map(str, run.key_paths())]
    argv = ["verify", *map(str, run.ledger_dirs()), *keys, "--out", str(tmp_path / "out")]
    # Execute / Assert
    assert _exit_code(argv) == ExitCode.USAGE_ERROR
    assert _exit_code([*argv, "--coordinator-key", str(run.coordinator.public_key)]) == 0


# -- class 2: a hidden message is not excused by a nameless failure ------------------------


def test_a_hidden_update_excused_by_an_unknown_failure_fails(run, tmp_path) -> None:
    # Prepare: the coordinator drops node 1's first model update and records one failure
    # of an unknown id; node 1 stays a participant and its release stays accounted
    copy = run.copy_to(tmp_path)
    node1 = copy.nodes[1].ledger_id
    hidden = _model_message(copy, node1)

    def hide(records: list[LedgerRecord]) -> list[LedgerRecord]:
        out: list[LedgerRecord] = []
        for r in records:
            if isinstance(r, MessageReceived) and r.sha256 == hidden:
                continue
            if isinstance(r, RoundRecorded) and (r.task, r.round) == ("model", 1):
                r = replace(r, failed=(NodeReason("flower-node-999", "no reply"),))
            out.append(r)
        return out

    rebuild_ledger(copy.coordinator, hide)
    _without_inclusion_checks(copy)
    # Execute
    result = audit_all(copy)
    # Assert: an error, not a warning: the unknown failure excuses nobody
    assert result.exit_code == ExitCode.AUDIT_CROSS_CHECK_FAILED
    kinds = _kinds(result)
    assert {"participant-unreceived", "release-unreceived", "message-unmatched"} <= kinds
    assert "failure-unknown-party" in {f.kind for f in result.warnings}


def test_an_update_hidden_completely_behind_an_unknown_failure_fails(run, tmp_path) -> None:
    # Prepare: as above, but node 1 is also taken out of the round and its release out
    # of the accounts: only node 1's own ledger shows the update it sent
    copy = run.copy_to(tmp_path)
    node1 = copy.nodes[1].ledger_id
    hidden = _model_message(copy, node1)

    def hide(records: list[LedgerRecord]) -> list[LedgerRecord]:
        out: list[LedgerRecord] = []
        for r in records:
            if getattr(r, "sha256", None) == hidden or getattr(r, "message_sha256", "") == hidden:
                continue
            if isinstance(r, RoundRecorded) and r.round == 1 and r.task.endswith("model"):
                kept = tuple(p for p in r.participants if p != node1)
                r = replace(r, participants=kept)
                if r.task == "model":
                    r = replace(r, failed=(NodeReason("flower-node-999", "no reply"),))
            out.append(r)
        return out

    rebuild_ledger(copy.coordinator, hide)
    _without_inclusion_checks(copy)
    # Execute
    result = audit_all(copy)
    # Assert
    assert result.exit_code == ExitCode.AUDIT_CROSS_CHECK_FAILED
    assert any(f.kind == "message-unmatched" and node1 in f.where for f in result.errors)


def test_a_participant_also_listed_as_dropped_fails(run, tmp_path) -> None:
    # Prepare: node 1 stays a participant of round 1 and is listed as dropped in the
    # secure-sum record of the same round
    copy = run.copy_to(tmp_path)
    node1 = copy.nodes[1].ledger_id

    def drop(records: list[LedgerRecord]) -> list[LedgerRecord]:
        return [
            replace(r, dropped=(node1,))
            if isinstance(r, RoundRecorded) and (r.task, r.round) == ("secure-sum:model", 1)
            else r
            for r in records
        ]

    rebuild_ledger(copy.coordinator, drop)
    _without_inclusion_checks(copy)
    # Execute
    result = audit_all(copy)
    # Assert
    assert result.exit_code == ExitCode.AUDIT_CROSS_CHECK_FAILED
    [finding] = [f for f in result.errors if f.kind == "round-roles"]
    assert node1 in finding.message and "dropped and participant" in finding.message


def test_a_signed_failed_inclusion_check_is_an_error(run, tmp_path) -> None:
    # Prepare: node 0 recorded (and signed) a failed inclusion check; nothing in the
    # coordinator's ledger explains it
    copy = run.copy_to(tmp_path)

    def fail(records: list[LedgerRecord]) -> list[LedgerRecord]:
        return [
            replace(r, ok=False, detail="seq 12 not included")
            if isinstance(r, InclusionChecked)
            else r
            for r in records
        ]

    rebuild_ledger(copy.nodes[0], fail)
    # Execute
    result = audit_all(copy)
    # Assert
    assert result.exit_code == ExitCode.AUDIT_CROSS_CHECK_FAILED
    assert "inclusion-failed" in _kinds(result)


# -- class 3: nothing after the run's end --------------------------------------------------


def test_a_second_outputs_record_after_the_run_ended_fails(run, tmp_path) -> None:
    # Prepare: after run_ended (and after every inclusion check) the coordinator appends
    # a second outputs record with other hashes
    copy = run.copy_to(tmp_path)

    def republish(records: list[LedgerRecord]) -> list[LedgerRecord]:
        outputs = next(r for r in records if isinstance(r, OutputsPublished))
        return [*records, replace(outputs, model_sha256="ab" * 32, curves_sha256="cd" * 32)]

    rebuild_ledger(copy.coordinator, republish)
    _without_inclusion_checks(copy)
    # Execute
    result = audit_all(copy)
    # Assert
    assert result.exit_code == ExitCode.AUDIT_LEDGER_INVALID
    assert {"after-run-ended", "outputs-twice"} <= _kinds(result)


# -- class 4: omitted ledgers make the verdict incomplete ----------------------------------


def _audit_without(run: FederationRun, left_out: list[int], **options) -> AuditResult:
    """The audit with the parties at ``left_out`` (0 = coordinator) left out."""
    kept = [p for i, p in enumerate(run.parties) if i not in left_out]
    return audit(
        [p.ledger for p in kept],
        [p.public_key for p in kept],
        coordinator_key=run.coordinator.public_key,
        **options,
    )


@pytest.mark.parametrize(
    "left_out",
    [[1], [4], [1, 2], [1, 2, 3, 4], [0], [0, 1], [0, 2, 3]],
    ids=["one-node", "last-node", "two-nodes", "all-nodes", "coordinator", "coord+node", "most"],
)
def test_every_omission_is_incomplete_and_names_the_missing_parties(run, left_out) -> None:
    # Execute
    result = _audit_without(run, left_out)
    partial = _audit_without(run, left_out, partial=True)
    # Assert
    assert (result.verdict, result.exit_code) == ("INCOMPLETE", ExitCode.AUDIT_INCOMPLETE)
    assert (partial.verdict, partial.exit_code) == ("PASS WITH GAPS", ExitCode.SUCCESS)
    parties = run.parties
    expected = (
        ["coordinator"]
        if 0 in left_out
        else sorted(f"node {parties[i].ledger_id}" for i in left_out)
    )
    assert [m.party for m in result.missing] == expected
    assert len([f for f in result.warnings if f.kind == "party-missing"]) == len(expected)


def test_a_rewritten_release_with_every_node_ledger_left_out_is_not_a_pass(run, tmp_path) -> None:
    # Prepare: the coordinator lowers a lifetime claim (only a node ledger can show it)
    copy = run.copy_to(tmp_path)

    def lower(records: list[LedgerRecord]) -> list[LedgerRecord]:
        return [
            replace(r, epsilon_total_claimed=r.epsilon_total_claimed * 0.9)
            if isinstance(r, ReleaseAccounted)
            else r
            for r in records
        ]

    rebuild_ledger(copy.coordinator, lower)
    # Execute
    result = _audit_without(copy, [1, 2, 3, 4])
    # Assert
    assert result.verdict == "INCOMPLETE" and result.exit_code == ExitCode.AUDIT_INCOMPLETE
    assert len(result.missing) == 4


def test_an_unrecorded_message_of_a_left_out_node_is_not_a_pass(run, tmp_path) -> None:
    # Prepare: the coordinator never recorded node 0's first update (nor its release or
    # participation) and node 0's ledger is left out
    copy = run.copy_to(tmp_path)
    node0 = copy.nodes[0].ledger_id
    hidden = _model_message(copy, node0)

    def hide(records: list[LedgerRecord]) -> list[LedgerRecord]:
        out: list[LedgerRecord] = []
        for r in records:
            if getattr(r, "sha256", None) == hidden or getattr(r, "message_sha256", "") == hidden:
                continue
            if isinstance(r, RoundRecorded) and r.round == 1 and r.task.endswith("model"):
                r = replace(r, participants=tuple(p for p in r.participants if p != node0))
            out.append(r)
        return out

    rebuild_ledger(copy.coordinator, hide)
    _without_inclusion_checks(copy)  # (with them, the other nodes' checks fail it: 53)
    # Execute
    result = _audit_without(copy, [1])
    # Assert
    assert result.exit_code == ExitCode.AUDIT_INCOMPLETE
    assert [m.party for m in result.missing] == [f"node {node0}"]


def test_the_command_line_exits_54_or_with_partial_0_and_names_the_gap(
    run, tmp_path, capsys
) -> None:
    # Prepare: node 0's ledger left out
    kept = [run.coordinator, *run.nodes[1:]]
    argv = [
        "verify",
        *(str(p.ledger) for p in kept),
        "--coordinator-key",
        str(run.coordinator.public_key),
        "--keys",
        *(str(p.public_key) for p in kept),
        "--out",
        str(tmp_path / "out"),
    ]
    # Execute
    code = _exit_code(argv)
    out = capsys.readouterr().out
    partial = _exit_code([*argv, "--partial"])
    # Assert
    assert code == ExitCode.AUDIT_INCOMPLETE == 54 and partial == 0
    assert "INCOMPLETE" in out and f"node {run.nodes[0].ledger_id}" in out
    report = (tmp_path / "out" / "audit.md").read_text()
    assert "party-missing" in report and "PASS WITH GAPS" in report
