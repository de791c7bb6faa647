"""The fedrisk Flower ServerApp: model rounds (FedAvgM of DP-SGD updates), then the curve round.

The ServerApp reads its run request (see ``coordinator/run_request.py``), drives the
rounds through Flower's Grid, and writes outputs to the run directory. A round with
fewer good replies than ``federation.min_nodes`` releases nothing and ends the run with
an error: a run never "finishes" with an untrained model.

With ``plan.secure_aggregation`` every round is a secure round
(``coordinator/secure_round.py``): the coordinator sees only the sum of the model
updates and of the noised histograms. With ``plan.privacy.enterprise`` each update is
clipped and carries an enterprise-level noise share; the coordinator's accountant
(:class:`privacy.enterprise_accounting.EnterpriseAccountant`) stops training before
``enterprise_budget.epsilon_cap`` would be passed and keeps the last model.

After every completed model round the coordinator writes a checkpoint
(:mod:`coordinator.checkpoint`) and records it in its ledger; a run restarted with
``RunRequest.resume`` continues from it (:mod:`coordinator.resumption`) and never runs a
completed round again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, Context, RecordDict
from flwr.serverapp import Grid, ServerApp

from common.errors import FedriskError, RunFailedError, StateError
from coordinator.aggregation import ServerOptimizer, check_update
from coordinator.checkpoint import CHECKPOINT_FILE, Checkpoint, write_checkpoint
from coordinator.curves import check_counts, estimate_curves, sum_counts
from coordinator.newton_fit import NewtonState, NewtonStep, take_newton_step
from coordinator.outputs import MODEL_FILE, write_outputs
from coordinator.privacy_notes import EnterpriseSpend, PrivacyNotes
from coordinator.privacy_summary import PrivacyLedgerView
from coordinator.publication import apply_publication_rules, segment_contributors
from coordinator.resumption import ResumePoint, resume_point
from coordinator.round_summary import NodeNote, RoundSummary, reasons
from coordinator.rounds import NodeProblem, NodeReply, RoundOutcome, run_round
from coordinator.run_ledger import open_run_ledger
from coordinator.run_request import RunRequest, read_run_request
from coordinator.run_store import RunStore
from coordinator.secure_round import (
    VALUE_BOUND,
    SecureTotal,
    round_threshold,
    run_secure_round,
)
from coordinator.secure_summary import curve_noise_summary, enterprise_dp_summary
from coordinator.update_noise import update_noise
from models.curves import RiskCurve
from models.glm import hazard_arrays, initial_theta, theta_from_arrays
from models.hazard import init_arrays
from models.histogram import ExitCounts
from privacy.accounting import Spend, rdp_epsilon
from privacy.distributed_noise import effective_noise_multiplier
from privacy.enterprise_accounting import EnterpriseAccountant
from protocols.messages import (
    ARRAYS_KEY,
    CURVE_TASK,
    METRICS_KEY,
    MODEL_TASK,
    TASK_KEY,
    TaskHeader,
)
from protocols.secure_curve import curve_vector_length, decode_curve_vector
from protocols.secure_glm import round_statistics_length
from protocols.secure_round import THETA_KEY
from protocols.secure_update import (
    EnterpriseShare,
    decode_mean_update,
    enterprise_share,
    flatten,
    quantised_sensitivity,
    unflatten,
)
from secagg.messages import SecAggError

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
        #: Every exchange of the run: a resumed run's earlier ones, then this attempt's.
        self.rounds: list[RoundSummary] = []
        budget = request.config.enterprise_budget
        self.enterprise: EnterpriseAccountant | None = None
        if self.plan.privacy.enterprise is not None and budget is not None:
            self.enterprise = EnterpriseAccountant(delta=budget.delta, cap=budget.epsilon_cap)
        #: Extra privacy figures for the run summary (distributed noise, enterprise DP).
        self.notes = PrivacyNotes()
        self.ledger = open_run_ledger(request, self.store)
        #: Flower node id -> the node's pseudonymous id (its ledger key id).
        self.node_keys: dict[int, str] = {}
        #: A resumed run's checkpoint.
        self.resumed: Checkpoint | None = None

    # ---- the run ------------------------------------------------------------------
    def run(self) -> None:
        start = time.monotonic()
        try:
            resumed = self._begin()
        except FedriskError as err:  # nothing ran: the run's summary and ledger stay as they are
            self.store.event("run_end", status="resume_refused", error=str(err), seconds=0.0)
            raise
        self.store.event(
            "run_start",
            run_id=self.request.run_id,
            plan_digest=self.plan.digest,
            rounds=self.plan.training.rounds,
            expected_nodes=self.request.expected_nodes,
        )
        if resumed is not None:
            self.store.event(
                "run_resumed",
                run_id=self.request.run_id,
                from_round=resumed.from_round,
                checkpoint_round=resumed.checkpoint_round,
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
                rounds=self._round_summaries(),
                privacy=self.privacy,
                privacy_notes=self.notes.to_json(),
                seconds=time.monotonic() - start,
            )
            self._ledger_outputs(curves)
        except FedriskError as err:
            self._fail(err, time.monotonic() - start)
            raise
        except Exception as err:  # a bug must still leave a failed summary, never silence
            self._fail(RunFailedError(f"coordinator error: {type(err).__name__}: {err}"), 0.0)
            raise
        self.store.event("run_end", status="completed", seconds=time.monotonic() - start)
        self.ledger.run_ended("completed", None)

    def _ledger_outputs(self, curves: list[RiskCurve]) -> None:
        curves_path = self.store.dir / "curves.json"
        self.ledger.outputs(
            self.store.dir / MODEL_FILE,
            curves_path if curves_path.exists() else None,
            [c.segment for c in curves if c.published],
            [c.segment for c in curves if not c.published],
        )

    def _fail(self, err: FedriskError, seconds: float) -> None:
        self.store.write_json(
            "summary.json",
            {
                "run_id": self.request.run_id,
                "status": "failed",
                "error": str(err),
                "plan_digest": self.plan.digest,
                "rounds": self._round_summaries(),
                "privacy": {**self.privacy.summary(), **self.notes.to_json()},
                "seconds": round(seconds, 3),
            },
        )
        self.store.event("run_end", status="failed", error=str(err), seconds=seconds)
        self.ledger.run_ended("failed", str(err))

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
        training, resumed = self.plan.training, self.resumed
        if resumed is None:
            spec = self.plan.model_spec
            initial = (
                hazard_arrays(initial_theta(spec), spec)
                if training.method == "newton"
                else init_arrays(spec, seed=training.seed)
            )
            arrays = ArrayRecord({f"param_{i:03d}": Array(a) for i, a in enumerate(initial)})
        else:
            arrays = ArrayRecord({name: Array(a) for name, a in resumed.arrays})
        optimizer = ServerOptimizer(
            arrays, learning_rate=training.server_learning_rate, momentum=training.server_momentum
        )
        if resumed is not None:
            optimizer.load_momentum(resumed.momentum)
            if resumed.training_done:
                return arrays
        if self.enterprise is not None and self.notes.enterprise is None:
            self._announce_enterprise_dp(node_ids, arrays)
        first = 1 if resumed is None else resumed.round + 1
        if training.method == "newton":
            return self._newton_fit(node_ids, first, arrays, optimizer)
        for round_number in range(first, training.rounds + 1):
            header = self._header(round_number, "model")
            if self.plan.secure_aggregation:
                mean = self._secure_model_round(node_ids, round_number, arrays)
                if mean is None:  # the enterprise budget stop: keep the last model
                    self._checkpoint(round_number - 1, arrays, optimizer, training_done=True)
                    break
                arrays = optimizer.step_to_mean(round_number, mean)
                self._checkpoint(round_number, arrays, optimizer)
                continue

            def content_for(
                _node: int, header: TaskHeader = header, arrays: ArrayRecord = arrays
            ) -> RecordDict:
                return RecordDict({TASK_KEY: header.to_record(), ARRAYS_KEY: arrays})

            outcome = self._round(node_ids, round_number, "model", MODEL_TASK, content_for)
            good = self._valid(outcome, lambda c, ref=arrays: check_update(c, ref))
            self._require_quorum(outcome, good)
            self._check_update_noise(round_number, arrays, good)
            arrays = optimizer.step(round_number, [reply.message for reply in good])
            self._checkpoint(round_number, arrays, optimizer)
        return arrays

    # ---- checkpoints and resumption ---------------------------------------------------
    def _begin(self) -> ResumePoint | None:
        """Record the run's start; resuming, restore its checkpoint, record that and
        return where the run continues (None: it starts from scratch)."""
        if not self.request.resume:
            self.ledger.run_started(self.request)
            return None
        history = self.ledger.history(self.request.run_id)
        point = resume_point(self.request, history)
        if not history.started:  # the crash came before the run was recorded: a fresh start
            self.ledger.run_started(self.request)
            return None
        if point.checkpoint is not None:
            self._restore(point.checkpoint)
        if point.record_checkpoint:
            self.ledger.checkpoint_written(point.checkpoint_round, point.sha256)
        self.ledger.run_resumed(
            self.request, point.from_round, (point.checkpoint_round, point.sha256)
        )
        return point

    def _restore(self, checkpoint: Checkpoint) -> None:
        """Continue from ``checkpoint``: accountants, receipts, summaries and notes."""
        if (self.enterprise is None) != (checkpoint.enterprise is None):
            raise StateError(
                f"{self.store.dir / CHECKPOINT_FILE}: enterprise-level DP is "
                f"{'on' if checkpoint.enterprise is not None else 'off'} in the checkpoint "
                "and not in this run's configuration"
            )
        if self.enterprise is not None and checkpoint.enterprise is not None:
            try:
                self.enterprise.load_state_dict(checkpoint.enterprise)
            except (KeyError, TypeError, ValueError) as err:
                raise StateError(
                    f"{self.store.dir / CHECKPOINT_FILE}: enterprise accountant state: {err}"
                ) from None
        try:
            self.privacy.restore(checkpoint.receipts)
        except (KeyError, TypeError, ValueError) as err:
            raise StateError(f"{self.store.dir / CHECKPOINT_FILE}: receipts: {err}") from None
        self.notes = PrivacyNotes.from_json(checkpoint.privacy_notes)
        self.rounds = [RoundSummary.from_json(r) for r in checkpoint.rounds]
        self.resumed = checkpoint

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
        earlier = () if self.resumed is None else self.resumed.pseudonyms
        checkpoint = Checkpoint(
            run_id=self.request.run_id,
            plan_digest=self.plan.digest,
            round=round_number,
            training_done=training_done or round_number == self.plan.training.rounds,
            arrays=tuple((name, arrays[name].numpy()) for name in arrays),
            momentum=None if momentum is None else tuple(momentum),
            enterprise=None if self.enterprise is None else self.enterprise.state_dict(),
            rounds=tuple(self._round_summaries()),
            receipts=tuple(self.privacy.rows()),
            privacy_notes=self.notes.to_json(),
            pseudonyms=tuple(sorted({*earlier, *self.node_keys.values()})),
            newton=newton,
        )
        sha256 = write_checkpoint(self.store.dir / CHECKPOINT_FILE, checkpoint)
        self.store.event("checkpoint", round=round_number, sha256=sha256)
        self.ledger.checkpoint_written(round_number, sha256)

    def _round_summaries(self) -> list[dict[str, Any]]:
        """Every exchange of the run, JSON-ready: a resumed run's earlier ones, then this
        attempt's."""
        return [r.to_json() for r in self.rounds]

    def _secure_model_round(
        self, node_ids: list[int], round_number: int, arrays: ArrayRecord
    ) -> ArrayRecord | None:
        """One securely aggregated model round: the mean model, or None at the budget stop."""
        reference = [arrays[name].numpy() for name in arrays]
        dimension = sum(a.size for a in reference)
        threshold = self._threshold(len(node_ids))
        planned = None
        if self.enterprise is not None:
            planned = enterprise_share(self.plan, n_shares=threshold, dimension=dimension)
            z = planned.noise.effective_noise_multiplier
            if not self.enterprise.can_run_round(noise_multiplier=z, sample_rate=1.0):
                projected = self.enterprise.project(noise_multiplier=z, sample_rate=1.0)
                self._stop_training(round_number, projected)
                return None
        released: list[NodeReply] = []
        secure = self._secure_model_sum(
            round_number,
            node_ids,
            released,
            vector_length=dimension,
            bound=self.plan.secure_update.integer_bound,
            arrays=arrays,
        )
        if planned is not None:
            self._charge_enterprise_round(round_number, secure, planned, dimension)
        mean_update = decode_mean_update(
            secure.total, secure.survivors, self.plan.secure_update.scale
        )
        if planned is None:  # with enterprise DP the update's noise is stated separately
            survivors = [r for r in released if r.node_id in secure.survivor_ids]
            norm = float(np.linalg.norm(mean_update))
            self._note_update_noise(round_number, norm, survivors, dimension)
        mean = unflatten(flatten(reference) + mean_update, reference)
        return ArrayRecord({name: Array(a) for name, a in zip(arrays, mean, strict=True)})

    def _secure_model_sum(
        self,
        round_number: int,
        node_ids: list[int],
        released: list[NodeReply],
        *,
        vector_length: int,
        bound: int,
        arrays: ArrayRecord,
    ) -> SecureTotal:
        """A model round's secure sum (quorum checked); the masked-input replies are kept
        in ``released``. ``arrays`` go to the nodes with the masked-input stage."""
        secure = self._secure_sum(
            round_number,
            "model",
            self._exchange(round_number, released),
            node_ids,
            header=self._header(round_number, "model"),
            task=("model", MODEL_TASK),
            vector_length=vector_length,
            bound=bound,
            threshold=self.config.federation.reconstruction_threshold,
            num_shares=self.config.federation.num_shares,
            arrays=arrays,
        )
        self._require_secure_quorum(round_number, "model", secure)
        return secure

    def _newton_fit(
        self, node_ids: list[int], first: int, arrays: ArrayRecord, optimizer: ServerOptimizer
    ) -> ArrayRecord:
        """Newton rounds of the GLM hazard model on securely summed, noised statistics."""
        spec = self.plan.model_spec
        theta = theta_from_arrays([arrays[name].numpy() for name in arrays], spec)
        state = None if self.resumed is None else self.resumed.newton
        for round_number in range(first, self.plan.training.rounds + 1):
            released: list[NodeReply] = []
            secure = self._secure_model_sum(
                round_number,
                node_ids,
                released,
                vector_length=round_statistics_length(self.plan, round_number),
                bound=VALUE_BOUND,
                arrays=ArrayRecord({THETA_KEY: Array(theta)}),
            )
            survivors = [r for r in released if r.node_id in secure.survivor_ids]
            step = take_newton_step(
                theta,
                secure.total,
                [_metric(r, "noise-std") for r in survivors],
                self.plan,
                round_number=round_number,
                state=state,
            )
            self._note_newton_step(step)
            theta, state = step.theta, step.state
            arrays = ArrayRecord(
                {f"param_{i:03d}": Array(a) for i, a in enumerate(hazard_arrays(theta, spec))}
            )
            self._checkpoint(round_number, arrays, optimizer, newton=state)
        return arrays

    def _check_update_noise(
        self, round_number: int, reference: ArrayRecord, good: list[NodeReply]
    ) -> None:
        """The mean of the clear updates next to the DP noise expected in it."""
        before = flatten([reference[name].numpy() for name in reference])
        updates = [
            flatten([a.numpy() for a in reply.content.array_records[ARRAYS_KEY].values()])
            - before
            for reply in good
        ]
        norm = float(np.linalg.norm(np.mean(updates, axis=0)))
        self._note_update_noise(round_number, norm, good, before.size)

    def _note_update_noise(
        self, round_number: int, norm: float, replies: list[NodeReply], dimension: int
    ) -> None:
        receipts = [r.receipt for r in replies if r.receipt is not None]
        check = update_noise(round_number, norm, receipts, self.plan.training, dimension)
        warning = self.notes.add_update_noise(check)
        if warning is not None:
            _log.warning("%s", warning)
            self.store.event("model_noise_warning", round=round_number, warning=warning)

    def _note_newton_step(self, step: NewtonStep) -> None:
        """The step next to its noise: in the progress log, the summary and, the first
        time the noise dominates, a warning (the rounds that reuse one information matrix
        would repeat it word for word)."""
        summary = step.summary()
        self.store.event("newton_step", **summary)
        warning = self.notes.add_newton_step(summary, step.warning)
        if warning is not None:
            _log.warning("%s", warning)
            self.store.event("model_noise_warning", round=step.round, warning=warning)

    def _announce_enterprise_dp(self, node_ids: list[int], arrays: ArrayRecord) -> None:
        """State the expected noise next to the update norm (expensive with few enterprises)."""
        dimension = sum(arrays[name].numpy().size for name in arrays)
        threshold = self._threshold(len(node_ids))
        share = enterprise_share(self.plan, n_shares=threshold, dimension=dimension)
        assert self.enterprise is not None
        notes = enterprise_dp_summary(
            self.plan,
            share,
            n_nodes=len(node_ids),
            dimension=dimension,
            delta=self.enterprise.delta,
        )
        self.notes.announce_enterprise(notes)
        self.store.event("enterprise_dp", **notes)
        if notes["warning"]:
            _log.warning("%s", notes["warning"])

    def _stop_training(self, round_number: int, projected: float) -> None:
        assert self.enterprise is not None
        spent = self.enterprise.epsilon()
        self.store.event(
            "enterprise_budget_stop", round=round_number, epsilon=spent, projected=projected
        )
        self.notes.stop_enterprise(round_number)
        if round_number == 1:
            raise RunFailedError(
                f"enterprise budget: one round would spend epsilon {projected:.4g}, over the "
                f"cap {self.enterprise.cap:g}; no model round could run"
            )
        _log.warning(
            "enterprise budget stop before round %d: epsilon %.4g, the next round would reach "
            "%.4g > cap %g; keeping the model of round %d",
            round_number,
            spent,
            projected,
            self.enterprise.cap,
            round_number - 1,
        )

    def _charge_enterprise_round(
        self, round_number: int, secure: SecureTotal, share: EnterpriseShare, dimension: int
    ) -> None:
        """Account the noise actually in the sum: the planned share from each survivor."""
        assert self.enterprise is not None
        l2, l1 = quantised_sensitivity(
            self.plan.privacy.enterprise.clip_norm,  # type: ignore[union-attr]
            share.scale,
            dimension,
        )
        z_actual = effective_noise_multiplier(
            share.noise.share_sigma,
            n_shares=secure.survivors,
            l2_sensitivity=l2,
            l1_sensitivity=l1,
            dimension=dimension,
        )
        epsilon = self.enterprise.record(
            noise_multiplier=z_actual, sample_rate=1.0, round_number=round_number
        )
        self.ledger.enterprise_round(
            round_number,
            noise_multiplier=z_actual,
            clip_norm=self.plan.privacy.enterprise.clip_norm,  # type: ignore[union-attr]
            shares=secure.survivors,
            epsilon_round=rdp_epsilon(
                [Spend(z_actual, 1.0, 1, "enterprise")], self.enterprise.delta
            ),
            epsilon_total=epsilon,
            cap=self.enterprise.cap,
            delta=self.enterprise.delta,
        )
        self.notes.charge_enterprise(
            EnterpriseSpend(
                epsilon=round(epsilon, 6),
                delta=self.enterprise.delta,
                epsilon_cap=self.enterprise.cap,
                rounds_accounted=len(self.enterprise.history),
                accountant=self.enterprise.state_dict(),
            )
        )
        self.store.event("enterprise_epsilon", round=round_number, epsilon=epsilon)

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
        """The curve round through secure aggregation: only the noised sum is unmasked."""
        round_number = self.plan.training.rounds + 1
        header = self._header(round_number, "curve")
        settings = self.config.curves
        spec = self.plan.model_spec
        with_entries = self.plan.delayed_entry
        released: list[NodeReply] = []
        secure = self._secure_sum(
            round_number,
            "curve",
            self._exchange(round_number, released),
            node_ids,
            header=header,
            task=("curve", CURVE_TASK),
            vector_length=curve_vector_length(spec, with_entries=with_entries),
            bound=VALUE_BOUND,
            threshold=self.config.federation.reconstruction_threshold,
            num_shares=self.config.federation.num_shares,
        )
        self._require_secure_quorum(round_number, "curve", secure)
        counts, contributors = decode_curve_vector(secure.total, spec, with_entries=with_entries)
        # only the survivors' noise shares are in the sum (a dropout's input was discarded)
        survivors = [r for r in released if r.node_id in secure.survivor_ids]
        noise_var = sum(_metric(r, "noise-std") ** 2 for r in survivors)
        self.notes.note_curve_noise(
            curve_noise_summary(
                self.plan, [r.receipt for r in survivors if r.receipt is not None], secure
            )
        )
        curves = estimate_curves(
            sum_counts(spec, [counts]),
            censor_weight=settings.censor_weight,
            cell_noise_var=noise_var,
            entry_noise_var=noise_var if with_entries else None,
        )
        return apply_publication_rules(
            curves,
            contributors,
            min_enterprises=settings.min_enterprises,
            min_failures=settings.min_failures,
        )

    def _exchange(self, round_number: int, released: list[NodeReply]):
        """One stage of a secure round as a Flower round; masked-input replies are kept in
        ``released`` (their receipts and noise figures)."""

        def exchange(stage, message_type, nodes, content_for) -> dict[int, RecordDict]:
            outcome = self._round(nodes, round_number, stage, message_type, content_for)
            good = self._valid(outcome, _no_check)
            if message_type in (CURVE_TASK, MODEL_TASK):
                released.extend(good)
            return {reply.node_id: reply.content for reply in good}

        return exchange

    def _pseudonym(self, node_id: int) -> str:
        return self.node_keys.get(node_id, f"flower-node-{node_id}")

    def _threshold(self, n_nodes: int) -> int:
        federation = self.config.federation
        return round_threshold(
            n_nodes,
            threshold=federation.reconstruction_threshold,
            num_shares=federation.num_shares,
        )

    def _secure_sum(self, round_number: int, what: str, *args: Any, **kwargs: Any) -> SecureTotal:
        """``run_secure_round``; a round it aborts (too few nodes at a stage) fails the run
        naming the nodes that refused or failed, as the quorum checks do."""
        try:
            return run_secure_round(*args, **kwargs)
        except SecAggError as err:
            problems = [p for r in self.rounds if r.round == round_number for p in r.problems]
            raise RunFailedError(
                f"round {round_number} ({what}): {err}. Refusals and failures: {reasons(problems)}"
            ) from err

    def _require_secure_quorum(self, round_number: int, task: str, secure: SecureTotal) -> None:
        self.store.event(
            "secure_sum",
            round=round_number,
            task=task,
            survivors=secure.survivors,
            dropped=secure.dropped,
        )
        self.ledger.secure_sum(
            round_number,
            task,
            [self._pseudonym(n) for n in sorted(secure.survivor_ids)],
            [self._pseudonym(n) for n in sorted(secure.dropped_ids)],
        )
        needed = self.config.federation.min_nodes
        if secure.survivors < needed:
            problems = [p for r in self.rounds if r.round == round_number for p in r.problems]
            raise RunFailedError(
                f"round {round_number} ({task}): {secure.survivors} node(s) in the secure sum, "
                f"fewer than the minimum of {needed}; nothing from this round is released. "
                f"Refusals and failures: {reasons(problems)}"
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
                outcome.failed.append(
                    NodeProblem(
                        reply.node_id, reply.node_name, problem, reply.node_key, reply.sha256
                    )
                )
        for reply in good:
            self.privacy.record(outcome.round, outcome.task, reply)
        answers: list[NodeReply | NodeProblem] = [*outcome.ok, *outcome.refused, *outcome.failed]
        for answer in answers:
            if answer.node_key:
                self.node_keys[answer.node_id] = answer.node_key
        summary = RoundSummary.from_outcome(outcome)
        self.rounds.append(summary)
        self.ledger.round(outcome)
        epsilon_max, delta_max = self.privacy.max_total()
        self.store.event(
            "round_end",
            **summary.to_json(),
            epsilon_max=epsilon_max,
            **({} if delta_max is None else {"delta_max": delta_max}),
        )
        return good

    def _require_quorum(self, outcome: RoundOutcome, good: list[NodeReply]) -> None:
        needed = self.config.federation.min_nodes
        if len(good) < needed:
            raise RunFailedError(
                f"round {outcome.round} ({outcome.task}): {len(good)} good repl(ies), "
                f"fewer than the minimum of {needed}; nothing from this round is released. "
                f"Refusals and failures: {reasons(NodeNote.of(p) for p in outcome.problems)}"
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


def _metric(reply: NodeReply, key: str) -> float:
    metrics = reply.content.metric_records.get(METRICS_KEY)
    value = None if metrics is None else metrics.get(key)
    return float(value) if isinstance(value, (int, float)) else 0.0


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
