"""What a run records as it goes: progress events, ledger, round summaries, privacy.

:class:`RunLog` is the one owner of the run's accumulated record: every exchange's
summary (a resumed run's earlier ones first), the nodes' receipts and pseudonyms, and the
extra privacy figures. The round pieces write to it; the checkpoint and summary.json
read from it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from common.codec import decode
from common.errors import StateError
from coordinator.checkpoint import CHECKPOINT_FILE, Checkpoint
from coordinator.privacy_notes import PrivacyNotes
from coordinator.privacy_summary import PrivacyLedgerView
from coordinator.progress_events import RoundEnd
from coordinator.round_summary import NodeNote, RoundSummary
from coordinator.rounds import NodeProblem, NodeReply, RoundOutcome
from coordinator.run_ledger import RunLedger
from coordinator.run_store import RunStore
from coordinator.run_summary import RunPrivacy

__all__ = ["RunLog"]


class RunLog:
    """The run's events and ledger, and what it has recorded so far."""

    def __init__(self, store: RunStore, ledger: RunLedger, *, run_delta: float) -> None:
        self.store, self.ledger = store, ledger
        self.privacy = PrivacyLedgerView(run_delta=run_delta)
        self.notes = PrivacyNotes()
        self.rounds: list[RoundSummary] = []
        #: Flower node id -> the node's pseudonymous id (its ledger key id).
        self._node_keys: dict[int, str] = {}
        self._earlier_pseudonyms: tuple[str, ...] = ()

    def restore(self, checkpoint: Checkpoint) -> None:
        """Continue a resumed run's record: receipts, summaries, notes and pseudonyms."""
        where = self.store.dir / CHECKPOINT_FILE
        try:
            self.privacy.restore(checkpoint.receipts)
        except (KeyError, TypeError, ValueError) as err:
            raise StateError(f"{where}: receipts: {err}") from None
        try:
            self.notes = PrivacyNotes.from_json(checkpoint.privacy_notes)
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise StateError(f"{where}: round summaries or privacy notes: {err!r}") from None
        self.rounds = [
            decode(
                RoundSummary,
                r,
                f"{where}: round summaries or privacy notes: rounds[{i}]",
                StateError,
            )
            for i, r in enumerate(checkpoint.rounds)
        ]
        self._earlier_pseudonyms = checkpoint.pseudonyms

    def record(self, outcome: RoundOutcome, good: list[NodeReply]) -> None:
        """Record an exchange whose used replies are ``good``: their receipts, the nodes'
        pseudonyms, its summary, its ledger records and its round_end event."""
        for reply in good:
            self.privacy.record(outcome.round, outcome.task, reply)
        answers: list[NodeReply | NodeProblem] = [*outcome.ok, *outcome.refused, *outcome.failed]
        for answer in answers:
            if answer.node_key:
                self._node_keys[answer.node_id] = answer.node_key
        summary = RoundSummary.from_outcome(outcome)
        self.rounds.append(summary)
        self.ledger.round(outcome)
        self.store.event(RoundEnd.of(summary, self.privacy.max_total(), self.privacy.max_run()))

    def problems(self, round_number: int) -> list[NodeNote]:
        """The refusals and failures of every exchange of round ``round_number``."""
        return [p for r in self.rounds if r.round == round_number for p in r.problems]

    def pseudonym(self, node_id: int) -> str:
        """The node's pseudonymous id (Flower's id when it never said)."""
        return self._node_keys.get(node_id, f"flower-node-{node_id}")

    def pseudonyms(self) -> tuple[str, ...]:
        """Every node pseudonym seen in the run so far (a resumed run's earlier ones too)."""
        return tuple(sorted({*self._earlier_pseudonyms, *self._node_keys.values()}))

    def summaries(self) -> list[dict[str, Any]]:
        """Every exchange of the run, JSON-ready: a resumed run's earlier ones first."""
        return [r.to_json() for r in self.rounds]

    def privacy_summary(self) -> RunPrivacy:
        """summary.json's "privacy": the receipts' figures and the extra notes."""
        notes = self.notes
        model_noise = notes.model_noise
        return replace(
            self.privacy.summary(),
            model_noise=model_noise if model_noise.to_json() else None,
            enterprise=None if notes.enterprise is None else notes.enterprise.to_json(),
            curve_noise=None if notes.curve_noise is None else dict(notes.curve_noise),
        )
