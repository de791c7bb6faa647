"""The coordinator's signed ledger: runs, rounds, every message received, every release's
mechanism and claimed epsilon, outputs.

Nodes appear only by their pseudonymous id (the key id of their ledger key, sent in each
reply), never by name. The ledger is signed with the coordinator's Ed25519 key (made on
first use, 0600, public half beside it for auditors and nodes) and is served over gRPC
by :mod:`ledger.service`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from common.file_digest import file_sha256
from coordinator.resumption import RunHistory
from coordinator.rounds import NodeProblem, NodeReply, RoundOutcome
from coordinator.run_request import RunRequest
from ledger.records import (
    CheckpointWritten,
    LedgerRecord,
    MessageReceived,
    NodeReason,
    OutputsPublished,
    ReleaseAccounted,
    RoundRecorded,
    RunEnded,
    RunResumed,
    RunStarted,
)
from ledger.signing import generate_key_pair, load_private_key, public_key_path
from ledger.writer import Ledger
from protocols.secure_update import EnterpriseShare

__all__ = ["COORDINATOR_LEDGER_ID", "coordinator_key_paths", "CoordinatorLedger", "file_sha256"]

COORDINATOR_LEDGER_ID = "coordinator"


def coordinator_key_paths(state_dir: Path) -> tuple[Path, Path]:
    """(private, public) PEM paths of the coordinator's ledger key under ``state_dir``."""
    private = Path(state_dir) / "keys" / "ledger_key.pem"
    return private, public_key_path(private)


def _node(reply: NodeReply | NodeProblem) -> str:
    """The pseudonymous id of a node in this run (Flower's id when it never said)."""
    return reply.node_key or f"flower-node-{reply.node_id}"


class CoordinatorLedger:
    """Appends the coordinator's records of one run."""

    def __init__(self, ledger: Ledger, run_id: str) -> None:
        self.ledger, self.run_id = ledger, run_id

    @classmethod
    def open(cls, request: RunRequest) -> CoordinatorLedger | None:
        """The ledger named in the run request (None when the request names none)."""
        if request.ledger_dir is None or request.ledger_key is None:
            return None
        key_path = Path(request.ledger_key)
        if not key_path.exists():
            generate_key_pair(key_path, public_key_path(key_path))
        ledger = Ledger.open(Path(request.ledger_dir), load_private_key(key_path), "coordinator")
        return cls(ledger, request.run_id)

    def run_started(self, request: RunRequest) -> None:
        config, plan = request.config, request.config.plan
        budget = config.enterprise_budget
        self.ledger.append(
            RunStarted(
                run_id=self.run_id,
                plan_digest=plan.digest,
                config_sha256=hashlib.sha256(config.model_dump_json().encode()).hexdigest(),
                model_spec_digest=plan.model_spec.digest,
                record_epsilon=float(plan.privacy.record.epsilon),
                record_delta=float(plan.privacy.record.delta),
                enterprise_epsilon_cap=None if budget is None else float(budget.epsilon_cap),
                enterprise_delta=None if budget is None else float(budget.delta),
                expected_nodes=request.expected_nodes,
                secure_aggregation=plan.secure_aggregation,
            )
        )

    def history(self, run_id: str) -> RunHistory:
        """What this ledger records of run ``run_id`` (for resumption)."""
        return RunHistory.from_ledger(self.ledger.entries_range(0, self.ledger.size), run_id)

    def run_resumed(
        self, request: RunRequest, from_round: int, checkpoint: tuple[int, str]
    ) -> None:
        """The run restarted after a crash: from which round, from which checkpoint
        (round, digest; (0, "") when no round had completed)."""
        self.ledger.append(
            RunResumed(
                run_id=self.run_id,
                plan_digest=request.config.plan.digest,
                from_round=from_round,
                checkpoint_round=checkpoint[0],
                checkpoint_sha256=checkpoint[1],
            )
        )

    def checkpoint_written(self, round_number: int, sha256: str) -> None:
        """Model round ``round_number`` is complete; its checkpoint has digest ``sha256``."""
        self.ledger.append(CheckpointWritten(self.run_id, round_number, sha256))

    def round(self, outcome: RoundOutcome) -> None:
        """The round's participants, refusals and failures, every message received, and
        the record-level release of each used reply."""
        records: list[LedgerRecord] = [
            RoundRecorded(
                run_id=self.run_id,
                round=outcome.round,
                task=outcome.task,
                participants=tuple(_node(r) for r in outcome.ok),
                refused=tuple(NodeReason(_node(p), p.reason) for p in outcome.refused),
                failed=tuple(NodeReason(_node(p), p.reason) for p in outcome.failed),
                dropped=(),
                seconds=float(outcome.seconds),
            )
        ]
        answered: list[NodeReply | NodeProblem] = [*outcome.ok, *outcome.refused]
        answered += [p for p in outcome.failed if p.sha256]
        for reply in answered:
            status = "ok" if isinstance(reply, NodeReply) else _status_of(reply, outcome)
            records.append(
                MessageReceived(
                    self.run_id, outcome.round, outcome.task, _node(reply), status, reply.sha256
                )
            )
        records += [self._release(outcome, r) for r in outcome.ok if r.receipt is not None]
        self.ledger.append_many(records)

    def _release(self, outcome: RoundOutcome, reply: NodeReply) -> ReleaseAccounted:
        receipt = reply.receipt
        assert receipt is not None
        return ReleaseAccounted(
            run_id=self.run_id,
            round=outcome.round,
            task=outcome.task,
            node=_node(reply),
            unit="record",
            mechanism=receipt.mechanism,
            noise_multiplier=float(receipt.noise_multiplier),
            sample_rate=float(receipt.sample_rate),
            steps=int(receipt.steps),
            sensitivity=float(receipt.sensitivity),
            noise_shares=int(receipt.noise_shares),
            epsilon_claimed=float(receipt.epsilon_task),
            epsilon_total_claimed=float(receipt.epsilon_total),
            epsilon_cap=float(receipt.epsilon_cap),
            delta=float(receipt.delta),
            message_sha256=reply.sha256,
            share_std=float(receipt.share_std),
            l1_sensitivity=float(receipt.l1_sensitivity),
            integer_scale=int(receipt.integer_scale),
        )

    def secure_sum(
        self, round_number: int, task: str, survivors: list[str], dropped: list[str]
    ) -> None:
        """Which nodes' inputs the unmasked sum holds, and which dropped after key sharing."""
        self.ledger.append(
            RoundRecorded(
                run_id=self.run_id,
                round=round_number,
                task=f"secure-sum:{task}",
                participants=tuple(survivors),
                refused=(),
                failed=(),
                dropped=tuple(dropped),
                seconds=0.0,
            )
        )

    def enterprise_round(
        self,
        round_number: int,
        share: EnterpriseShare,
        *,
        noise_multiplier: float,
        clip_norm: float,
        shares: int,
        epsilon_round: float,
        epsilon_total: float,
        cap: float,
        delta: float,
    ) -> None:
        """The enterprise-level release of a model round (the same for every enterprise,
        so ``node`` is "*"): one Gaussian step of the secure sum. A Skellam release also
        records its share in model units (quantised sensitivities, one share's std, the
        fixed-point scale), from which an auditor recomputes it."""
        skellam = share.skellam
        self.ledger.append(
            ReleaseAccounted(
                run_id=self.run_id,
                round=round_number,
                task="model",
                node="*",
                unit="enterprise",
                mechanism=share.mechanism,
                noise_multiplier=float(noise_multiplier),
                sample_rate=1.0,
                steps=1,
                sensitivity=share.l2_sensitivity / share.scale if skellam else float(clip_norm),
                noise_shares=int(shares),
                epsilon_claimed=float(epsilon_round),
                epsilon_total_claimed=float(epsilon_total),
                epsilon_cap=float(cap),
                delta=float(delta),
                message_sha256="",
                share_std=share.share_std if skellam else 0.0,
                l1_sensitivity=share.l1_sensitivity / share.scale if skellam else 0.0,
                integer_scale=int(share.scale) if skellam else 1,
            )
        )

    def outputs(
        self, model_path: Path, curves_path: Path | None, published: list[str], withheld: list[str]
    ) -> None:
        self.ledger.append(
            OutputsPublished(
                run_id=self.run_id,
                model_sha256=file_sha256(model_path),
                curves_sha256=None if curves_path is None else file_sha256(curves_path),
                published_segments=tuple(published),
                withheld_segments=tuple(withheld),
            )
        )

    def run_ended(self, status: str, error: str | None) -> None:
        self.ledger.append(RunEnded(self.run_id, status, error))


def _status_of(problem: NodeProblem, outcome: RoundOutcome) -> str:
    """How the coordinator classified a reply it did not use: refused or failed."""
    return "refused" if problem in outcome.refused else "failed"
