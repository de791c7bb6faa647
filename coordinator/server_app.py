"""The fedrisk Flower ServerApp: model rounds (FedAvgM of DP-SGD updates), then the curve round.

The ServerApp reads its run request (see ``coordinator/run_request.py``), drives the
rounds through Flower's Grid, and writes outputs to the run directory. A round with
fewer good replies than ``federation.min_nodes`` releases nothing and ends the run with
an error: a run never "finishes" with an untrained model.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

from flwr.app import Array, ArrayRecord, Context, RecordDict
from flwr.serverapp import Grid, ServerApp

from coordinator.aggregation import ServerOptimizer, check_update
from coordinator.curves import check_counts, estimate_curves, sum_counts
from coordinator.outputs import write_outputs
from coordinator.privacy_summary import PrivacyLedgerView
from coordinator.publication import apply_publication_rules, segment_contributors
from coordinator.rounds import NodeProblem, NodeReply, RoundOutcome, run_round
from coordinator.run_request import RunRequest, read_run_request
from coordinator.run_store import RunStore
from coordinator.secure_round import run_secure_curve_round
from models.curves import RiskCurve
from models.hazard import init_arrays
from models.histogram import ExitCounts
from protocols.errors import FedriskError, RunFailedError
from protocols.messages import ARRAYS_KEY, CURVE_TASK, MODEL_TASK, TASK_KEY, TaskHeader

__all__ = ["app", "Coordinator"]

app = ServerApp()
_log = logging.getLogger("fedrisk.coordinator")


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Entry point Flower calls; the run request path is in the run config."""
    request = read_run_request(Path(str(context.run_config["run-request"])))
    Coordinator(grid, request).run()


class Coordinator:
    """Drives one run: wait for nodes, model rounds, curve round, outputs."""

    def __init__(self, grid: Grid, request: RunRequest) -> None:
        self.grid = grid
        self.request = request
        self.config = request.config
        self.plan = request.config.plan
        self.store = RunStore(Path(request.run_dir))
        self.privacy = PrivacyLedgerView(run_delta=self.plan.privacy.record.delta)
        self.rounds: list[RoundOutcome] = []

    # ---- the run ------------------------------------------------------------------
    def run(self) -> None:
        start = time.monotonic()
        self.store.event(
            "run_start",
            run_id=self.request.run_id,
            plan_digest=self.plan.digest,
            rounds=self.plan.training.rounds,
            expected_nodes=self.request.expected_nodes,
        )
        try:
            node_ids = self._wait_for_nodes()
            arrays = self._train(node_ids)
            curves = self._curves(node_ids) if self.plan.curve_release else []
            write_outputs(
                self.store,
                self.request,
                arrays=arrays,
                curves=curves,
                rounds=self.rounds,
                privacy=self.privacy,
                seconds=time.monotonic() - start,
            )
        except FedriskError as err:
            self._fail(err, time.monotonic() - start)
            raise
        except Exception as err:  # a bug must still leave a failed summary, never silence
            self._fail(RunFailedError(f"coordinator error: {type(err).__name__}: {err}"), 0.0)
            raise
        self.store.event("run_end", status="completed", seconds=time.monotonic() - start)

    def _fail(self, err: FedriskError, seconds: float) -> None:
        self.store.write_json(
            "summary.json",
            {
                "run_id": self.request.run_id,
                "status": "failed",
                "error": str(err),
                "plan_digest": self.plan.digest,
                "rounds": [r.summary() for r in self.rounds],
                "privacy": self.privacy.summary(),
                "seconds": round(seconds, 3),
            },
        )
        self.store.event("run_end", status="failed", error=str(err), seconds=seconds)

    def _wait_for_nodes(self) -> list[int]:
        deadline = time.monotonic() + self.request.node_wait_timeout_s
        while True:
            node_ids = sorted(self.grid.get_node_ids())
            if len(node_ids) >= self.request.expected_nodes or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.store.event("nodes_ready", nodes=len(node_ids))
        if len(node_ids) < self.config.federation.min_nodes:
            raise RunFailedError(
                f"only {len(node_ids)} node(s) connected within "
                f"{self.request.node_wait_timeout_s:g} s; the run needs at least "
                f"{self.config.federation.min_nodes}"
            )
        return node_ids

    # ---- model rounds --------------------------------------------------------------
    def _train(self, node_ids: list[int]) -> ArrayRecord:
        training = self.plan.training
        initial = init_arrays(self.plan.model_spec, seed=training.seed)
        arrays = ArrayRecord({f"param_{i:03d}": Array(a) for i, a in enumerate(initial)})
        optimizer = ServerOptimizer(
            arrays, learning_rate=training.server_learning_rate, momentum=training.server_momentum
        )
        for round_number in range(1, self.plan.training.rounds + 1):
            header = self._header(round_number, "model")

            def content_for(
                _node: int, header: TaskHeader = header, arrays: ArrayRecord = arrays
            ) -> RecordDict:
                return RecordDict({TASK_KEY: header.to_record(), ARRAYS_KEY: arrays})

            outcome = self._round(node_ids, round_number, "model", MODEL_TASK, content_for)
            good = self._valid(outcome, lambda c, ref=arrays: check_update(c, ref))
            self._require_quorum(outcome, good)
            arrays = optimizer.step(round_number, [reply.message for reply in good])
        return arrays

    # ---- curve round ---------------------------------------------------------------
    def _curves(self, node_ids: list[int]) -> list[RiskCurve]:
        if self.plan.secure_aggregation:
            return self._secure_curves(node_ids)
        round_number = self.plan.training.rounds + 1
        header = self._header(round_number, "curve")

        def content_for(_node: int) -> RecordDict:
            return RecordDict({TASK_KEY: header.to_record()})

        outcome = self._round(node_ids, round_number, "curve", CURVE_TASK, content_for)
        spec = self.plan.model_spec
        good = self._valid(outcome, lambda c: _check_reply_counts(spec, c))
        self._require_quorum(outcome, good)
        parts = [p for p in (_reply_counts(reply.content) for reply in good) if p is not None]
        settings = self.config.curves
        cell_var, entry_var, implicit_var = _noise_variances(good, parts)
        curves = estimate_curves(
            sum_counts(spec, parts),
            censor_weight=settings.censor_weight,
            cell_noise_var=cell_var,
            entry_noise_var=entry_var,
            implicit_entry_noise_var=implicit_var,
        )
        contributors = segment_contributors(parts, min_units=settings.min_units_per_enterprise)
        return apply_publication_rules(
            curves,
            contributors,
            min_enterprises=settings.min_enterprises,
            min_failures=settings.min_failures,
        )

    def _secure_curves(self, node_ids: list[int]) -> list[RiskCurve]:
        """The curve round through secure aggregation: only the sum is ever unmasked."""
        round_number = self.plan.training.rounds + 1
        header = self._header(round_number, "curve")
        settings = self.config.curves

        released: list[NodeReply] = []

        def exchange(stage, message_type, nodes, content_for) -> dict[int, RecordDict]:
            outcome = self._round(nodes, round_number, stage, message_type, content_for)
            good = self._valid(outcome, _no_check)
            if message_type == CURVE_TASK:
                released.extend(good)
            return {reply.node_id: reply.content for reply in good}

        secure = run_secure_curve_round(
            exchange,
            node_ids,
            header=header,
            spec=self.plan.model_spec,
            threshold=self.config.federation.reconstruction_threshold,
            min_units_per_enterprise=settings.min_units_per_enterprise,
        )
        self.store.event("secure_sum", survivors=secure.survivors, dropped=secure.dropped)
        total = sum_counts(self.plan.model_spec, [secure.counts])
        # only the survivors' noise is in the sum (a dropout's masked input was discarded)
        survivors = [r for r in released if r.node_id in secure.survivor_ids]
        curves = estimate_curves(
            total,
            censor_weight=settings.censor_weight,
            cell_noise_var=sum(_noise_std(r) ** 2 for r in survivors),
        )
        return apply_publication_rules(
            curves,
            secure.contributors,
            min_enterprises=settings.min_enterprises,
            min_failures=settings.min_failures,
        )

    # ---- helpers -------------------------------------------------------------------
    def _header(self, round_number: int, kind: str) -> TaskHeader:
        plan_json = self.plan.canonical_json()
        return TaskHeader(
            run_id=self.request.run_id,
            round=round_number,
            kind=kind,
            plan_json=plan_json,
            plan_digest=hashlib.sha256(plan_json.encode("utf-8")).hexdigest(),
        )

    def _round(self, node_ids, round_number, task, message_type, content_for) -> RoundOutcome:
        self.store.event("round_start", round=round_number, task=task, nodes=len(node_ids))
        outcome = run_round(
            self.grid,
            node_ids,
            round_number=round_number,
            task=task,
            message_type=message_type,
            content_for=content_for,
            timeout=self.config.federation.round_timeout_s,
        )
        return outcome

    def _valid(self, outcome: RoundOutcome, check) -> list[NodeReply]:
        """Replies that pass ``check``; the others move to the round's failures."""
        good = []
        for reply in list(outcome.ok):
            problem = check(reply.content)
            if problem is None:
                good.append(reply)
            else:
                outcome.ok.remove(reply)
                outcome.failed.append(NodeProblem(reply.node_id, reply.node_name, problem))
        for reply in good:
            self.privacy.record(outcome.round, outcome.task, reply)
        self.rounds.append(outcome)
        self.store.event(
            "round_end",
            **outcome.summary(),
            epsilon_max=self.privacy.max_epsilon_total(),
        )
        return good

    def _require_quorum(self, outcome: RoundOutcome, good: list[NodeReply]) -> None:
        needed = self.config.federation.min_nodes
        if len(good) < needed:
            by_reason: dict[str, list[str]] = {}
            for p in outcome.refused + outcome.failed:
                by_reason.setdefault(p.reason, []).append(p.node_name or str(p.node_id))
            reasons = "; ".join(
                f"{reason} ({len(nodes)} node(s))" for reason, nodes in by_reason.items()
            )
            raise RunFailedError(
                f"round {outcome.round} ({outcome.task}): {len(good)} good repl(ies), "
                f"fewer than the minimum of {needed}; nothing from this round is released. "
                f"Refusals and failures: {reasons or 'none'}"
            )


def _noise_std(reply: NodeReply) -> float:
    """Std of the noise a node added to each released cell (0 without DP)."""
    receipt = reply.receipt
    return 0.0 if receipt is None else receipt.noise_multiplier * receipt.sensitivity


def _noise_variances(
    good: list[NodeReply], parts: list[ExitCounts]
) -> tuple[float, float | None, float]:
    """Per-cell noise variances of the summed histograms, for the curves' bands:
    (exit/survivor cells, entry cells or None, implicit entries of nodes without them)."""
    pairs = list(zip(good, parts, strict=True))
    cell_var = sum(_noise_std(r) ** 2 for r in good)
    if not any(p.entries is not None for _, p in pairs):
        return cell_var, None, 0.0
    entry_var = sum(_noise_std(r) ** 2 for r, p in pairs if p.entries is not None)
    implicit_var = sum(_noise_std(r) ** 2 for r, p in pairs if p.entries is None)
    return cell_var, entry_var, implicit_var


def _no_check(_content: RecordDict) -> str | None:
    return None


def _reply_counts(content: RecordDict) -> ExitCounts | None:
    """The histograms in a curve reply, or None when they are missing."""
    record = content.array_records.get(ARRAYS_KEY)
    if record is None or "exits" not in record or "survivors" not in record:
        return None
    entries = record["entries"].numpy() if "entries" in record else None
    return ExitCounts(
        exits=record["exits"].numpy(), entries=entries, survivors=record["survivors"].numpy()
    )


def _check_reply_counts(spec, content: RecordDict) -> str | None:
    counts = _reply_counts(content)
    return (
        "reply lacks exit or survivor histograms" if counts is None else check_counts(spec, counts)
    )
