"""A coordinator killed mid-run and resumed: no round counted twice, the same epsilon.

The real Coordinator and ClientApp in one process (tests/support/inprocess_grid.py). A crash is a
BaseException raised from the grid (or from the checkpoint write), which, like SIGKILL,
lets nothing of the coordinator run afterwards: no failed summary, no RunEnded. The
resumed run goes on over a fresh grid (fresh Flower contexts) with the same nodes; an
uninterrupted run of the same plan on fresh copies of the nodes is the reference. The same
over real processes with SIGKILL and ``run --resume``: tests/harness/test_deploy_e2e.py.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
import yaml
from flwr.app import Message
from flwr.supercore.task_identity import TaskIdentity
from inprocess_grid import InProcessGrid, run_coordinator, small_federation
from node_site import config_with

import coordinator.server_app as server_app
from auditor.ledgers import audit_ledger
from auditor.rounds import counted_once
from auditor.verify import AuditResult, audit
from common.errors import RunFailedError, StateError
from coordinator.checkpoint import CHECKPOINT_FILE, Checkpoint, write_checkpoint
from coordinator.config import CoordinatorConfig, EnterpriseBudget, load_config_or_default
from coordinator.coordinator_ledger import coordinator_key_paths
from coordinator.outputs import load_global_model
from coordinator.progress_events import CheckpointSaved, RunStart
from coordinator.resumption import RunHistory, resume_point
from coordinator.run_ledger import NullLedger, open_run_ledger
from coordinator.run_log import RunLog
from coordinator.run_request import RunRequest
from coordinator.run_store import RunStore
from coordinator.run_summary import SUMMARY_FILE, RunSummary, require_summary
from enterprise_node.budget import BudgetGuard
from enterprise_node.config import load_node_config
from enterprise_node.node_ledger import node_key_id
from harness.federation import check_nodes_inclusion
from ledger.log import read_ledger
from ledger.records import (
    ContributionResent,
    PrivacySpent,
    ReleaseAccounted,
    RoundRecorded,
    RunResumed,
)
from protocols.messages import CURVE_TASK, MODEL_TASK, SECAGG_SHARES, TASK_KEY, TaskHeader
from protocols.plan import EnterprisePrivacy

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("flower_identity")]

ROUNDS = 2

T = TypeVar("T")


class Killed(BaseException):
    """The coordinator's process died: nothing after this point runs (as with SIGKILL)."""


class CrashingGrid(InProcessGrid):
    """Kills the coordinator when ``served`` nodes have answered ``message_type`` in round
    ``round_number`` (0: before any of them got it)."""

    def __init__(self, nodes: list[Path], *, round_number: int, message_type: str, served: int):
        super().__init__(nodes)
        self.crash_at = (round_number, message_type)
        self.served, self.count = served, 0

    def send_and_receive(self, messages: Iterable[Message], timeout: float | None = None):
        replies = []
        for message in messages:
            header = TaskHeader.from_record(message.content.config_records[TASK_KEY])
            if (header.round, message.metadata.message_type) == self.crash_at:
                if self.count == self.served:
                    raise Killed
                self.count += 1
            replies += super().send_and_receive([message], timeout)
        return replies


def private_config(*, rounds: int = ROUNDS, momentum: float = 0.0) -> CoordinatorConfig:
    """Secure DP-SGD + FedAvgM rounds with record-level DP and enterprise-level DP (no
    budget stop): the model state a resumption restores includes server momentum and the
    enterprise accountant, which only ``dp_sgd`` has."""
    enterprise = EnterprisePrivacy(clip_norm=0.5, noise_multiplier=1.0)
    budget = EnterpriseBudget(epsilon_cap=50.0, delta=1e-5)
    training = {"rounds": rounds, "local_epochs": 1, "server_momentum": momentum}
    return config_with(
        load_config_or_default(None),
        plan={
            "training": {"method": "dp_sgd", **training},
            "privacy": {"enterprise": enterprise.model_dump(mode="json")},
            "secure_aggregation": True,
        },
        enterprise_budget=budget.model_dump(mode="json"),
    )


@dataclass(frozen=True)
class Outcome:
    """One run's directory, coordinator state and nodes."""

    run_dir: Path
    coordinator: Path
    nodes: list[Path]

    def summary(self) -> RunSummary:
        return require_summary(self.run_dir / SUMMARY_FILE)

    def node_epsilon(self) -> dict[str, tuple[float, int]]:
        """Each node's lifetime epsilon and number of releases, by its accountant."""
        out = {}
        for path in self.nodes:
            config = load_node_config(path)
            status = BudgetGuard(
                config.state_dir, epsilon_cap=config.privacy.epsilon, delta=config.privacy.delta
            ).status()
            out[config.node.name] = (status.epsilon_spent, status.releases)
        return out

    def by_site(self, by_pseudonym: Mapping[str, T]) -> dict[str, T]:
        """``by_pseudonym`` (the broker's view: nodes by pseudonymous id) keyed by the
        sites' own names, to compare two federations of the same sites."""
        names = {
            node_key_id(load_node_config(p)): load_node_config(p).node.name for p in self.nodes
        }
        return {names[key]: value for key, value in by_pseudonym.items()}

    def audit(self) -> AuditResult:
        ledgers = [self.coordinator / "ledger"]
        ledgers += [load_node_config(p).state_dir / "ledger" for p in self.nodes]
        keys = [coordinator_key_paths(self.coordinator)[1]]
        keys += [p.parent / "secrets" / "ledger_key.pub.pem" for p in self.nodes]
        return audit(ledgers, keys, coordinator_key=keys[0])

    def counted_records(self) -> list:
        """The coordinator's records as the auditor counts them (superseded ones out)."""
        keys = [coordinator_key_paths(self.coordinator)[1]]
        from auditor.verify import load_keys

        contents = read_ledger(self.coordinator / "ledger")
        trusted = load_keys(keys)
        ledger = audit_ledger("coordinator", contents, trusted, next(iter(trusted)))
        counted, findings = counted_once(ledger)
        assert findings == []
        return [item.record for item in counted.records]


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four synthetic sites, never used: tests copy them (fresh nodes each time)."""
    root = tmp_path_factory.mktemp("resume-fed")
    small_federation(root / "fed", load_config_or_default(None).plan.model_spec)
    return root / "fed"


def fresh_nodes(federation: Path, root: Path) -> list[Path]:
    shutil.copytree(federation, root / "fed")
    return sorted((root / "fed").glob("*/node.yaml"))


@pytest.fixture(scope="module")
def reference(federation: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    """The uninterrupted run of the plan on fresh copies of the nodes."""
    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 7, 0, 1
    try:
        root = tmp_path_factory.mktemp("reference")
        nodes = fresh_nodes(federation, root)
        run_coordinator(
            InProcessGrid(nodes), private_config(), root / "run", coordinator_dir=root / "coord"
        )
    finally:
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = saved
    yield Outcome(root / "run", root / "coord", nodes)


def killed_and_resumed(federation: Path, root: Path, grid_for, config: CoordinatorConfig):
    """Run until the coordinator is killed, then resume it; the Outcome."""
    nodes = fresh_nodes(federation, root)
    run, coord = root / "run", root / "coord"
    with pytest.raises(Killed):
        run_coordinator(grid_for(nodes), config, run, coordinator_dir=coord)
    run_coordinator(InProcessGrid(nodes), config, run, coordinator_dir=coord, resume=True)
    return Outcome(run, coord, nodes)


def kill_before_checkpoint(round_number: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kill the coordinator after round ``round_number``'s mean is applied, before its
    checkpoint is written (the whole round was released, and is run again)."""

    def write(path: Path, checkpoint: Checkpoint) -> str:
        if checkpoint.round == round_number:
            monkeypatch.setattr(server_app, "write_checkpoint", write_checkpoint)
            raise Killed
        return write_checkpoint(path, checkpoint)

    monkeypatch.setattr(server_app, "write_checkpoint", write)


#: How the coordinator dies in the last model round, and how many nodes had released that
#: round (and so re-send it, uncharged, when it is run again).
CRASHES = {
    # before the round's first exchange: no node served anything of it
    "between-rounds": (
        lambda nodes: CrashingGrid(
            nodes, round_number=ROUNDS, message_type=SECAGG_SHARES, served=0
        ),
        0,
    ),
    # two of four nodes trained and released the round, then the coordinator died
    "mid-round": (
        lambda nodes: CrashingGrid(nodes, round_number=ROUNDS, message_type=MODEL_TASK, served=2),
        2,
    ),
    # the round unmasked, accounted and applied; its checkpoint never written
    "before-checkpoint": (None, 4),
}


@pytest.mark.parametrize("crash", sorted(CRASHES))
def test_a_resumed_run_spends_exactly_what_an_uninterrupted_one_does(
    federation: Path,
    reference: Outcome,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    crash: str,
) -> None:
    # Prepare
    grid_for, resending = CRASHES[crash]
    if grid_for is None:
        kill_before_checkpoint(ROUNDS, monkeypatch)
        grid_for = InProcessGrid
    # Execute
    resumed = killed_and_resumed(federation, tmp_path, grid_for, private_config())
    # Assert: the resumed run completed ...
    summary, expected = resumed.summary(), reference.summary()
    assert summary.completed
    # ... with each node's lifetime epsilon (and number of charges) exactly the reference's
    assert resumed.node_epsilon() == reference.node_epsilon()
    # ... the same enterprise-level epsilon, over the same number of accounted rounds
    got_notes, want_notes = summary.privacy.enterprise, expected.privacy.enterprise
    assert got_notes is not None and want_notes is not None
    for key in ("epsilon", "rounds_accounted"):
        assert got_notes[key] == want_notes[key]
    # ... and the same per-run record-level epsilon per node, from the same releases
    got, want = resumed.by_site(summary.privacy.nodes), reference.by_site(expected.privacy.nodes)
    assert {n: v.epsilon_run for n, v in got.items()} == {n: v.epsilon_run for n, v in want.items()}
    assert {n: len(v.releases) for n, v in got.items()} == {
        n: len(v.releases) for n, v in want.items()
    }
    # summary.json lists each exchange of each round once; the resumed coordinator set
    # the nodes' keys up again, once, at the round it resumed from (the reference: round 1)
    rounds = [(r.round, r.task) for r in summary.rounds]
    setups = sorted(r for r in rounds if r[1] == "secagg-keys")
    assert setups == [(1, "secagg-keys"), (ROUNDS, "secagg-keys")]
    assert [(r.round, r.task) for r in expected.rounds if r.task == "secagg-keys"] == [
        (1, "secagg-keys")
    ]
    assert sorted(r for r in rounds if r[1] != "secagg-keys") == sorted(
        (r.round, r.task) for r in expected.rounds if r.task != "secagg-keys"
    )
    # the nodes that had released the interrupted round re-sent it, spent once
    assert resent_rounds(resumed) == [ROUNDS] * resending
    # the coordinator ledger says where it resumed, and, as counted, records each round
    # and each release once
    entries = read_ledger(resumed.coordinator / "ledger").entries()
    [resumption] = [e.body for e in entries if e.kind == RunResumed.KIND]
    assert (resumption["from_round"], resumption["checkpoint_round"]) == (ROUNDS, ROUNDS - 1)
    counted = resumed.counted_records()
    model_rounds = [r.round for r in counted if isinstance(r, RoundRecorded) and r.task == "model"]
    assert model_rounds == list(range(1, ROUNDS + 1))
    releases = [(r.round, r.task, r.node) for r in counted if isinstance(r, ReleaseAccounted)]
    assert len(releases) == len(set(releases))
    assert len(releases) == len(
        [r for r in reference.counted_records() if isinstance(r, ReleaseAccounted)]
    )
    # every node checks its messages are in the coordinator's ledger, and the audit passes
    verdicts = check_nodes_inclusion(resumed.nodes, resumed.coordinator, "inproc")
    assert all(v.startswith("ok") for v in verdicts.values()), verdicts
    result = resumed.audit()
    assert result.verdict == "PASS", [str(f) for f in result.errors]
    # ... recomputing (dp-accounting) the reference's lifetime and per-run epsilon per node
    # (nodes are named by their own ledger keys, so compare the sorted values)
    baseline = reference.audit()
    for rows, want_rows in (
        (result.node_rows, baseline.node_rows),
        (result.run_rows, baseline.run_rows),
    ):
        assert sorted(r.recomputed for r in rows) == sorted(r.recomputed for r in want_rows)
        assert len(rows) == len(resumed.nodes)


def resent_rounds(outcome: Outcome) -> list[int]:
    """The rounds the nodes re-sent (one entry per node and round), after checking that
    every node spent once per round and task."""
    rounds = []
    for path in outcome.nodes:
        entries = read_ledger(load_node_config(path).state_dir / "ledger").entries()
        spends = [(e.body["round"], e.body["task"]) for e in entries if e.kind == PrivacySpent.KIND]
        assert len(spends) == len(set(spends))
        rounds += [e.body["round"] for e in entries if e.kind == ContributionResent.KIND]
    return rounds


def test_the_model_continues_exactly_where_it_stopped(federation: Path, tmp_path: Path) -> None:
    # Prepare: DP off (deterministic training) and server momentum on, so the final model
    # depends on every restored piece of state
    config = config_with(
        private_config(momentum=0.9),
        plan={
            "privacy": {"record": {"enabled": False}, "enterprise": None},
            "curve_release": False,
        },
        enterprise_budget=None,
    )
    nodes = fresh_nodes(federation, tmp_path / "a")
    for path in nodes:
        data = yaml.safe_load(path.read_text())
        data["privacy"]["allow_non_private"] = True
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    shutil.copytree(tmp_path / "a" / "fed", tmp_path / "b" / "fed")
    others = sorted((tmp_path / "b" / "fed").glob("*/node.yaml"))
    run_coordinator(InProcessGrid(nodes), config, tmp_path / "a" / "run")
    # Execute: killed mid-round 2 on the copies, then resumed
    with pytest.raises(Killed):
        grid = CrashingGrid(others, round_number=2, message_type=MODEL_TASK, served=1)
        run_coordinator(grid, config, tmp_path / "b" / "run")
    run_coordinator(InProcessGrid(others), config, tmp_path / "b" / "run", resume=True)
    # Assert: bit-for-bit the uninterrupted run's model
    got = load_global_model(tmp_path / "b" / "run")
    want = load_global_model(tmp_path / "a" / "run")
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


def test_a_secure_curve_contribution_is_not_released_twice(
    federation: Path, tmp_path: Path
) -> None:
    # Prepare / Execute: killed after two nodes released their curve contributions
    config = private_config(rounds=1)
    nodes = fresh_nodes(federation, tmp_path)
    grid = CrashingGrid(nodes, round_number=2, message_type=CURVE_TASK, served=2)
    with pytest.raises(Killed):
        run_coordinator(grid, config, tmp_path / "run", coordinator_dir=tmp_path / "coord")
    before = Outcome(tmp_path / "run", tmp_path / "coord", nodes).node_epsilon()
    with pytest.raises(RunFailedError) as failed:
        run_coordinator(
            InProcessGrid(nodes),
            config,
            tmp_path / "run",
            coordinator_dir=tmp_path / "coord",
            resume=True,
        )
    # Assert: those two nodes refused the retry (the others alone are below the
    # threshold), and the error says why
    assert "already released its contribution" in str(failed.value)
    assert "2 node(s)" in str(failed.value)
    # nobody was charged twice: the two that released kept their one charge, the two
    # that never got the task before were charged once now (1 model round + 1 curve each)
    after = Outcome(tmp_path / "run", tmp_path / "coord", nodes).node_epsilon()
    assert sorted(n for n in after if after[n] == before[n]) == sorted(
        n for n in before if before[n][1] == 2
    )
    assert {releases for _epsilon, releases in after.values()} == {2}


def test_a_completed_run_is_not_resumed(federation: Path, reference: Outcome) -> None:
    before = (reference.run_dir / "summary.json").read_text()
    with pytest.raises(StateError, match="run 'inproc' completed; there is nothing to resume"):
        run_coordinator(
            InProcessGrid(reference.nodes),
            private_config(),
            reference.run_dir,
            coordinator_dir=reference.coordinator,
            resume=True,
        )
    assert (reference.run_dir / "summary.json").read_text() == before


# ---- where a resumed run starts (no federation needed) -----------------------------------


def a_request(tmp_path: Path) -> RunRequest:
    return RunRequest(
        run_id="r1", run_dir=str(tmp_path), config=private_config(), expected_nodes=4, resume=True
    )


def a_checkpoint(request: RunRequest, round_number: int, *, done: bool = False) -> str:
    checkpoint = Checkpoint(
        run_id="r1",
        plan_digest=request.config.plan.digest,
        round=round_number,
        training_done=done,
        arrays=(("param_000", np.zeros(3)),),
        momentum=None,
        enterprise=None,
        rounds=(),
        receipts=(),
        privacy_notes={},
        pseudonyms=(),
    )
    return write_checkpoint(Path(request.run_dir) / CHECKPOINT_FILE, checkpoint)


def test_resume_continues_after_the_checkpoint_or_with_the_curve_round(tmp_path: Path) -> None:
    request = a_request(tmp_path)
    sha = a_checkpoint(request, 2)
    point = resume_point(request, RunHistory(True, False, (2, sha)))
    assert (point.from_round, point.checkpoint_round, point.record_checkpoint) == (3, 2, False)
    # written but not yet recorded when the crash came: it is recorded on resumption
    assert resume_point(request, RunHistory(True, False, (1, "x"))).record_checkpoint
    sha = a_checkpoint(request, 2, done=True)
    assert resume_point(request, RunHistory(True, False, (2, sha))).from_round == ROUNDS + 1


def test_resume_without_a_checkpoint_starts_again_only_if_no_round_completed(
    tmp_path: Path,
) -> None:
    request = a_request(tmp_path)
    point = resume_point(request, RunHistory(True, False, None))
    assert (point.checkpoint, point.from_round) == (None, 1)
    with pytest.raises(StateError, match="missing, but round 2 of run 'r1' is recorded"):
        resume_point(request, RunHistory(True, False, (2, "ab")))


def test_resume_from_a_checkpoint_older_than_the_ledger_is_refused(tmp_path: Path) -> None:
    request = a_request(tmp_path)
    a_checkpoint(request, 1)
    with pytest.raises(StateError, match="holds round 1, but round 2 of run 'r1' is recorded"):
        resume_point(request, RunHistory(True, False, (2, "ab")))
    with pytest.raises(StateError, match="completed; there is nothing to resume"):
        resume_point(request, RunHistory(True, True, (1, "ab")))


def test_a_run_without_a_ledger_has_a_null_one_and_its_history_in_its_events(
    tmp_path: Path,
) -> None:
    # Prepare: a run request that names no ledger, and its progress events
    request = a_request(tmp_path)
    store = RunStore(tmp_path)
    store.event(RunStart("r1", "p", rounds=3, expected_nodes=3))
    store.event(CheckpointSaved(2, "ab"))
    # Execute
    ledger = open_run_ledger(request, store)
    ledger.run_started(request)
    ledger.checkpoint_written(3, "cd")
    # Assert: nothing recorded, the history read from the events
    assert isinstance(ledger, NullLedger)
    assert ledger.history("r1") == RunHistory(True, False, (2, "ab"))
    assert [type(e) for e in store.read_events()] == [RunStart, CheckpointSaved]


def test_a_resumed_runs_record_continues_its_checkpoints_and_refuses_a_malformed_one(
    tmp_path: Path,
) -> None:
    # Prepare: a checkpoint's round summaries, notes and pseudonyms
    store = RunStore(tmp_path)
    summary = {"round": 1, "task": "model", "ok": ["a"], "refused": [], "failed": []}
    summary["seconds"] = 0.5
    notes = {"model_noise": {"newton_steps": [{"round": 1}]}}
    checkpoint = Checkpoint(
        run_id="r1",
        plan_digest="p",
        round=1,
        training_done=False,
        arrays=(),
        momentum=None,
        enterprise=None,
        rounds=(summary,),
        receipts=(),
        privacy_notes=notes,
        pseudonyms=("k1",),
    )
    log = RunLog(store, NullLedger(store), run_delta=1e-5)
    # Execute
    log.restore(checkpoint)
    # Assert: the record continues from it; a summary without its keys is refused
    assert (log.summaries(), log.notes.to_json(), log.pseudonyms()) == ([summary], notes, ("k1",))
    broken = replace(checkpoint, rounds=({"round": 1},))
    with pytest.raises(StateError, match="round summaries or privacy notes"):
        RunLog(store, NullLedger(store), run_delta=1e-5).restore(broken)
