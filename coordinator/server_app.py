"""The fedrisk Flower ServerApp: model rounds, then the curve round.

The ServerApp reads its run request (see ``coordinator/run_request.py``) and hands it to
:class:`Coordinator`, which only sequences the run: begin (or resume), wait for nodes,
model rounds, the curve round, outputs, end (or fail). A round with fewer good replies
than ``federation.min_nodes`` releases nothing and ends the run with an error: a run
never "finishes" with an untrained model.

The kinds of round are separate pieces, chosen from the plan as a Flower strategy is:
FedAvg of DP-SGD updates in the clear (:class:`coordinator.model_rounds.FedAvgRound`) or
through secure aggregation (:class:`coordinator.model_rounds.SecureFedAvgRound`, where
the coordinator sees only the sum of the updates), wrapped in enterprise-level DP
(:class:`coordinator.enterprise_dp.EnterpriseDP`, which stops training before
``enterprise_budget.epsilon_cap`` would be passed and keeps the last model) when the
plan asks for it; the Newton fit of the GLM (:class:`coordinator.newton_round.NewtonRound`);
and the curve round in the clear or secure (:mod:`coordinator.curve_rounds`). What the
run records lives in :class:`coordinator.run_log.RunLog`.

After every completed model round the coordinator writes a checkpoint
(:mod:`coordinator.checkpoint`) and records it in its ledger; a run restarted with
``RunRequest.resume`` continues from it (:mod:`coordinator.resumption`) and never runs a
completed round again.
"""

from __future__ import annotations

import time
from pathlib import Path

from flwr.app import Array, ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp

from common.errors import FedriskError, RunFailedError
from coordinator.aggregation import ServerOptimizer
from coordinator.checkpoint import CHECKPOINT_FILE, Checkpoint, write_checkpoint
from coordinator.curve_rounds import CurveRound, PlainCurveRound, SecureCurveRound
from coordinator.enterprise_dp import EnterpriseDP, enterprise_accountant, restore_accountant
from coordinator.exchanges import Exchanges
from coordinator.model_rounds import FedAvgRound, ModelRound, SecureFedAvgRound
from coordinator.newton_fit import NewtonState
from coordinator.newton_round import NewtonRound
from coordinator.outputs import MODEL_FILE, write_outputs
from coordinator.preflight import preflight
from coordinator.progress_events import (
    CheckpointSaved,
    NodesReady,
    RunEnd,
    RunResumed,
    RunStart,
)
from coordinator.resumption import ResumePoint, resume_point
from coordinator.round_context import RoundContext
from coordinator.run_ledger import open_run_ledger
from coordinator.run_log import RunLog
from coordinator.run_request import RunRequest, read_run_request
from coordinator.run_store import RunStore
from coordinator.run_summary import RunSummary, write_summary
from coordinator.secure_sums import SecureSums
from models.curves import RiskCurve
from models.glm import hazard_arrays, initial_theta
from models.hazard import init_arrays
from privacy.enterprise_accounting import EnterpriseAccountant

__all__ = ["app", "Coordinator"]

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Entry point Flower calls; the run request path is in the run config."""
    request = read_run_request(Path(str(context.run_config["run-request"])))
    Coordinator(grid, request).run()


class Coordinator:
    """Sequences one run: begin or resume, wait for nodes, model rounds, curve round,
    outputs, end; a failure leaves a failed summary and ledger entry."""

    def __init__(self, grid: Grid, request: RunRequest) -> None:
        self.grid, self.request = grid, request
        self.plan = request.config.plan
        self.store = RunStore(Path(request.run_dir))
        ledger = open_run_ledger(request, self.store)
        self.log = RunLog(self.store, ledger, run_delta=self.plan.privacy.record.delta)
        self.enterprise = enterprise_accountant(request.config)
        #: A resumed run's checkpoint.
        self.resumed: Checkpoint | None = None
        #: True unless the run continues an earlier attempt (set by :meth:`_begin`).
        self.fresh_start = True

    def run(self) -> None:
        """The whole run; an error fails it (summary, event, ledger) and is raised."""
        start = time.monotonic()
        self._begin()
        try:
            node_ids = self._wait_for_nodes()
            exchanges = Exchanges(self.grid, self.request, self.log)
            if self.fresh_start:  # a resumed run's nodes passed it when the run started
                node_ids = preflight(exchanges, node_ids)
            context = RoundContext(node_ids, exchanges, SecureSums(exchanges))
            arrays = self._train(context)
            curves = _curve_round(context).curves() if self.plan.curve_release else []
            self._outputs(arrays, curves, time.monotonic() - start)
        except FedriskError as err:
            self._fail(err, time.monotonic() - start)
            raise
        except Exception as err:  # a bug must still leave a failed summary, never silence
            self._fail(RunFailedError(f"coordinator error: {type(err).__name__}: {err}"), 0.0)
            raise
        self.store.event(RunEnd("completed", time.monotonic() - start))
        self.log.ledger.run_ended("completed", None)

    # ---- lifecycle ------------------------------------------------------------------
    def _begin(self) -> None:
        """Start (or resume) the run and say so; a refused resumption changes nothing."""
        try:
            resumed = self._resume_point()
        except FedriskError as err:  # nothing ran: the run's summary and ledger stay as they are
            self.store.event(RunEnd("resume_refused", 0.0, str(err)))
            raise
        self.fresh_start = resumed is None
        self.store.event(
            RunStart(
                run_id=self.request.run_id,
                plan_digest=self.plan.digest,
                rounds=self.plan.training.rounds,
                expected_nodes=self.request.expected_nodes,
            )
        )
        if resumed is not None:
            self.store.event(
                RunResumed(
                    run_id=self.request.run_id,
                    from_round=resumed.from_round,
                    checkpoint_round=resumed.checkpoint_round,
                )
            )

    def _resume_point(self) -> ResumePoint | None:
        """Record the run's start; resuming, restore its checkpoint, record that and
        return where the run continues (None: it starts from scratch)."""
        ledger = self.log.ledger
        if not self.request.resume:
            ledger.run_started(self.request)
            return None
        history = ledger.history(self.request.run_id)
        point = resume_point(self.request, history)
        if not history.started:  # the crash came before the run was recorded: a fresh start
            ledger.run_started(self.request)
            return None
        if point.checkpoint is not None:
            self._restore(point.checkpoint)
        if point.record_checkpoint:
            ledger.checkpoint_written(point.checkpoint_round, point.sha256)
        ledger.run_resumed(self.request, point.from_round, (point.checkpoint_round, point.sha256))
        return point

    def _restore(self, checkpoint: Checkpoint) -> None:
        """Continue from ``checkpoint``: the accountant, then the run's record."""
        restore_accountant(self.enterprise, checkpoint, self.store.dir / CHECKPOINT_FILE)
        self.log.restore(checkpoint)
        self.resumed = checkpoint

    def _wait_for_nodes(self) -> list[int]:
        """The nodes connected when all are expected or the wait is over (enough of them)."""
        config = self.request.config
        deadline = time.monotonic() + self.request.node_wait_timeout_s
        while True:
            node_ids = sorted(self.grid.get_node_ids())
            if len(node_ids) >= self.request.expected_nodes or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.store.event(NodesReady(len(node_ids)))
        if len(node_ids) < config.federation.min_nodes:
            raise RunFailedError(
                f"only {len(node_ids)} node(s) connected within "
                f"{self.request.node_wait_timeout_s:g} s; the run needs at least "
                f"{config.federation.min_nodes}"
            )
        return node_ids

    def _outputs(self, arrays: ArrayRecord, curves: list[RiskCurve], seconds: float) -> None:
        """Write the run's outputs and summary, then record them in the ledger."""
        write_outputs(
            self.store,
            self.request,
            arrays=arrays,
            curves=curves,
            rounds=self.log.rounds,
            privacy=self.log.privacy_summary(),
            seconds=seconds,
        )
        curves_path = self.store.dir / "curves.json"
        self.log.ledger.outputs(
            self.store.dir / MODEL_FILE,
            curves_path if curves_path.exists() else None,
            [c.segment for c in curves if c.published],
            [c.segment for c in curves if not c.published],
        )

    def _fail(self, err: FedriskError, seconds: float) -> None:
        """Leave the failed run's summary, its run_end event and its ledger entry."""
        summary = RunSummary(
            run_id=self.request.run_id,
            status="failed",
            error=str(err),
            plan_digest=self.plan.digest,
            rounds=tuple(self.log.rounds),
            privacy=self.log.privacy_summary(),
            seconds=round(seconds, 3),
        )
        write_summary(self.store.summary_path, summary)
        self.store.event(RunEnd("failed", seconds, str(err)))
        self.log.ledger.run_ended("failed", str(err))

    # ---- model rounds ---------------------------------------------------------------
    def _train(self, context: RoundContext) -> ArrayRecord:
        """The model rounds left, each followed by its checkpoint; the last model."""
        training, resumed = self.plan.training, self.resumed
        arrays = self._initial_arrays()
        optimizer = ServerOptimizer(
            arrays, learning_rate=training.server_learning_rate, momentum=training.server_momentum
        )
        if resumed is not None:
            optimizer.load_momentum(resumed.momentum)
            if resumed.training_done:
                return arrays
        newton = None if resumed is None else resumed.newton
        model_round = _model_round(context, optimizer, arrays, self.enterprise, newton)
        first = 1 if resumed is None else resumed.round + 1
        for round_number in range(first, training.rounds + 1):
            trained = model_round.train(round_number, arrays)
            if trained is None:  # the enterprise budget stop: keep the last model
                self._checkpoint(round_number - 1, arrays, optimizer, training_done=True)
                break
            arrays = trained.arrays
            self._checkpoint(round_number, arrays, optimizer, newton=trained.newton)
        return arrays

    def _initial_arrays(self) -> ArrayRecord:
        """The global model training starts from: a resumed run's, else the plan's."""
        if self.resumed is not None:
            return ArrayRecord({name: Array(a) for name, a in self.resumed.arrays})
        spec, training = self.plan.model_spec, self.plan.training
        initial = (
            hazard_arrays(initial_theta(spec), spec)
            if training.method == "newton"
            else init_arrays(spec, seed=training.seed)
        )
        return ArrayRecord({f"param_{i:03d}": Array(a) for i, a in enumerate(initial)})

    def _checkpoint(
        self,
        round_number: int,
        arrays: ArrayRecord,
        optimizer: ServerOptimizer,
        *,
        training_done: bool = False,
        newton: NewtonState | None = None,
    ) -> None:
        """Write the state after model round ``round_number`` (atomic, fsynced), then
        record it: the round is complete and will never run again."""
        momentum = optimizer.momentum()
        checkpoint = Checkpoint(
            run_id=self.request.run_id,
            plan_digest=self.plan.digest,
            round=round_number,
            training_done=training_done or round_number == self.plan.training.rounds,
            arrays=tuple((name, arrays[name].numpy()) for name in arrays),
            momentum=None if momentum is None else tuple(momentum),
            enterprise=None if self.enterprise is None else self.enterprise.state_dict(),
            rounds=tuple(self.log.summaries()),
            receipts=tuple(self.log.privacy.rows()),
            privacy_notes=self.log.notes.to_json(),
            pseudonyms=self.log.pseudonyms(),
            newton=newton,
        )
        sha256 = write_checkpoint(self.store.dir / CHECKPOINT_FILE, checkpoint)
        self.store.event(CheckpointSaved(round_number, sha256))
        self.log.ledger.checkpoint_written(round_number, sha256)


def _model_round(
    context: RoundContext,
    optimizer: ServerOptimizer,
    arrays: ArrayRecord,
    accountant: EnterpriseAccountant | None,
    newton: NewtonState | None,
) -> ModelRound:
    """The plan's kind of model round (enterprise-level DP wraps the secure one)."""
    plan = context.plan
    if plan.training.method == "newton":
        return NewtonRound(context, arrays, newton)
    if not plan.secure_aggregation:
        return FedAvgRound(context, optimizer)
    if accountant is None:
        return SecureFedAvgRound(context, optimizer)
    inner = SecureFedAvgRound(context, optimizer, note_noise=False)
    return EnterpriseDP(inner, context, accountant)


def _curve_round(context: RoundContext) -> CurveRound:
    """The plan's kind of curve round."""
    if context.plan.secure_aggregation:
        return SecureCurveRound(context)
    return PlainCurveRound(context)
