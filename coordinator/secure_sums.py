"""A secure round's sum, as the coordinator's model and curve rounds take it.

Runs :func:`coordinator.secure_round.run_secure_round` with each stage as a recorded
Flower exchange, records which nodes' inputs the unmasked sum holds (progress event and
ledger), and fails the run when a stage aborts or too few inputs survive, naming the
nodes that refused or failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flwr.app import ArrayRecord, RecordDict

from common.errors import RunFailedError
from coordinator.exchanges import Exchanges, no_check
from coordinator.progress_events import SecureSumDone
from coordinator.round_summary import reasons
from coordinator.rounds import NodeReply
from coordinator.secure_round import RoundRunner, SecureTotal, round_threshold, run_secure_round
from protocols.messages import CURVE_TASK, METRICS_KEY, MODEL_TASK
from protocols.secure_round import noise_shares, plan_graph
from secagg.messages import SecAggError
from secagg.run_keys import KeyBook

__all__ = ["SecureSum", "SecureSums", "reported_noise_std"]

#: The masked-input stage's message type of each kind of secure round.
_TASKS = {"model": MODEL_TASK, "curve": CURVE_TASK}


@dataclass(frozen=True)
class SecureSum:
    """The unmasked sum and the masked-input replies of the nodes whose inputs it holds
    (their receipts and noise figures)."""

    total: SecureTotal
    survivors: tuple[NodeReply, ...]


class SecureSums:
    """Secure sums of one run, each stage a recorded exchange of ``exchanges``."""

    def __init__(self, exchanges: Exchanges) -> None:
        self.exchanges = exchanges
        self.federation = exchanges.request.config.federation
        self.log = exchanges.log
        #: the nodes' keys, advertised once for the rounds ahead (secagg.run_keys)
        self.keys = KeyBook()

    def rounds_ahead(self, round_number: int) -> tuple[str, ...]:
        """The round ids of ``round_number`` and every later secure round of the run
        (model rounds, then the curve round): what a key set-up covers."""
        plan = self.exchanges.request.config.plan
        last = plan.training.rounds + int(plan.curve_release)
        run_id = self.exchanges.request.run_id
        return tuple(f"{run_id}:{r}" for r in range(round_number, max(last, round_number) + 1))

    def graph(self, n_nodes: int) -> tuple[int | None, int | None]:
        """(k, t) of a secure sum over ``n_nodes``: from the plan's ``secure_graph``, else
        the federation's ``num_shares`` and ``reconstruction_threshold`` (None: defaults)."""
        chosen = plan_graph(self.exchanges.request.config.plan.secure_graph, n_nodes)
        if chosen is not None:
            return chosen
        return self.federation.num_shares, self.federation.reconstruction_threshold

    def threshold(self, n_nodes: int) -> int:
        """t of a secure sum over ``n_nodes``."""
        num_shares, threshold = self.graph(n_nodes)
        return round_threshold(n_nodes, threshold=threshold, num_shares=num_shares)

    def noise_shares(self, n_nodes: int) -> int:
        """The fewest inputs a released sum over ``n_nodes`` holds, which the nodes plan
        their noise shares for (the threshold, or the plan's release fraction of n)."""
        plan = self.exchanges.request.config.plan
        return noise_shares(plan.release_fraction, n_nodes, self.threshold(n_nodes))

    def sum(
        self,
        round_number: int,
        kind: str,
        node_ids: list[int],
        *,
        vector_length: int,
        bound: int,
        arrays: ArrayRecord | None = None,
    ) -> SecureSum:
        """The secure sum of round ``round_number`` (``kind`` "model" or "curve"), quorum
        checked; ``arrays`` go to the nodes with the masked-input stage."""
        released: list[NodeReply] = []
        num_shares, threshold = self.graph(len(node_ids))
        try:
            total = run_secure_round(
                self._exchange(round_number, released),
                node_ids,
                header=self.exchanges.header(round_number, kind),
                task=(kind, _TASKS[kind]),
                vector_length=vector_length,
                bound=bound,
                threshold=threshold,
                num_shares=num_shares,
                arrays=arrays,
                release_fraction=self.exchanges.request.config.plan.release_fraction,
                keys=self.keys,
                setup_rounds=self.rounds_ahead(round_number),
            )
        except SecAggError as err:
            raise RunFailedError(
                f"round {round_number} ({kind}): {err}. Refusals and failures: "
                f"{reasons(self.log.problems(round_number))}"
            ) from err
        self._require_quorum(round_number, kind, total)
        survivors = tuple(r for r in released if r.node_id in total.survivor_ids)
        return SecureSum(total, survivors)

    def _exchange(self, round_number: int, released: list[NodeReply]) -> RoundRunner:
        """One stage of a secure round as a Flower exchange; masked-input replies are kept
        in ``released``."""

        def exchange(
            stage: str,
            message_type: str,
            nodes: list[int],
            content_for: Callable[[int], RecordDict],
        ) -> dict[int, RecordDict]:
            _, good = self.exchanges.run(
                nodes, round_number, stage, message_type, content_for, no_check
            )
            if message_type in (CURVE_TASK, MODEL_TASK):
                released.extend(good)
            return {reply.node_id: reply.content for reply in good}

        return exchange

    def _require_quorum(self, round_number: int, kind: str, total: SecureTotal) -> None:
        """Record whose inputs the sum holds; fail the run when fewer than the minimum."""
        self.log.store.event(SecureSumDone(round_number, kind, total.survivors, total.dropped))
        self.log.ledger.secure_sum(
            round_number,
            kind,
            [self.log.pseudonym(n) for n in sorted(total.survivor_ids)],
            [self.log.pseudonym(n) for n in sorted(total.dropped_ids)],
        )
        needed = self.federation.min_nodes
        if total.survivors < needed:
            raise RunFailedError(
                f"round {round_number} ({kind}): {total.survivors} node(s) in the secure sum, "
                f"fewer than the minimum of {needed}; nothing from this round is released. "
                f"Refusals and failures: {reasons(self.log.problems(round_number))}"
            )


def reported_noise_std(reply: NodeReply) -> float:
    """The std of the noise share a node says it added to its masked input (its
    "noise-std" metric; 0 when it says none)."""
    metrics = reply.content.metric_records.get(METRICS_KEY)
    value = None if metrics is None else metrics.get("noise-std")
    return float(value) if isinstance(value, (int, float)) else 0.0
