"""Training-plan approval at the node: what a plan will do here, shown before it is approved.

``fedrisk-node approve PLAN`` reads a plan (the broker's coordinator.yaml or the plan's
canonical JSON), shows a human summary (the data it reads, the time grid, the privacy
mechanisms, the rounds, the most epsilon it can spend here and where results go), and
records the plan's digest in ``state/approved_plans.json`` and in the node's signed ledger
(PlanApproved). The node serves only approved plans: every task (model, curve and each
secure-aggregation stage) passes :func:`require_approved` before any data is read or any
budget is charged; an unapproved plan is refused with a status-only reply, a TaskRefused
ledger entry and a line in the node's log. Approval is by the plan's digest, so a plan
that differs in anything (rounds, features, noise) needs its own approval.

Whoever runs a local federation for the nodes (``fedrisk-lab federate --approve``,
the demo, benchmarks, tests) approves explicitly with :func:`approve_at_nodes`, acting as
each node's IT; :func:`unapproved_nodes` is the coordinator's early check.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path

import yaml

from common.atomic import atomic_write_text
from common.config_file import parse_model
from common.errors import ConfigError, FedriskError, StateError
from enterprise_node.config import NodeConfig, load_node_config
from enterprise_node.node_ledger import NodeLedger
from ledger.records import PlanApproved
from privacy.epsilon_wording import epsilon_at, epsilon_number, lifetime_at
from protocols.plan import TrainingPlan

__all__ = [
    "load_plan",
    "plan_summary",
    "units_or_none",
    "Approvals",
    "not_approved_reason",
    "require_approved",
    "approve_at_nodes",
    "unapproved_nodes",
]

APPROVALS_FILE = "approved_plans.json"
_log = logging.getLogger("fedrisk.node")


def load_plan(path: Path) -> TrainingPlan:
    """The plan in a coordinator.yaml (``plan``) or in a plan JSON file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the plan: {err.strerror}") from None
    try:
        data = json.loads(text) if Path(path).suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: not valid JSON/YAML: {err}") from None
    if isinstance(data, dict) and isinstance(data.get("plan"), dict):
        data = data["plan"]
    return parse_model(TrainingPlan, data, f"{path}: plan")


def _mechanisms(plan: TrainingPlan) -> list[str]:
    record = plan.privacy.record
    lines = []
    if record.enabled and plan.training.method == "newton":
        newton = plan.newton
        rounds = ", ".join(str(r) for r in newton.information_rounds)
        lines.append(
            "Newton fit: each round your units' gradients (in round(s) "
            f"{rounds} also their information matrices), each unit's clipped (bounds "
            f"{newton.gradient_clip:g} and {newton.hessian_clip:g} of the spec's design "
            "norm), summed, with a discrete Gaussian noise share inside the secure sum"
        )
    elif record.enabled:
        lines.append(
            f"DP-SGD (Opacus) on each model round, gradients clipped to {record.max_grad_norm:g}"
        )
    else:
        lines.append("NONE: record-level DP is off (refused unless node.yaml allows it)")
    if record.enabled and plan.curve_release:
        where = "as a share inside the secure sum" if plan.secure_aggregation else "locally"
        lines.append(f"discrete Gaussian noise on the curve histograms, added {where}")
    if plan.privacy.enterprise is not None:
        e = plan.privacy.enterprise
        lines.append(
            f"enterprise-level DP: update clipped to {e.clip_norm:g}, noise multiplier "
            f"{e.noise_multiplier:g}"
        )
    return lines


def plan_summary(
    plan: TrainingPlan, config: NodeConfig, n_units: int | None
) -> list[tuple[str, str]]:
    """(label, text) rows of what ``plan`` does at this node; ``n_units`` (the node's valid
    units, if known) gives the epsilon at the node's own cap delta and what training makes
    of its units (a WARNING row when its contribution would be mostly noise)."""
    spec, training, record = plan.model_spec, plan.training, plan.privacy.record
    columns = config.data.columns
    features = ", ".join(
        f"{f.name} (your column {columns.covariates.get(f.name, '?')})" for f in spec.features
    )
    rows = [
        ("plan digest", plan.digest),
        ("data read", f"segment, equipment class, duration, failed; features: {features}"),
        (
            "time grid",
            f"{len(spec.time_grid.edges) - 1} intervals to {spec.time_grid.horizon:g} "
            f"{spec.time_grid.unit}",
        ),
        (
            "rounds",
            (
                f"{training.rounds} Newton round(s)"
                if training.method == "newton"
                else f"{training.rounds} model round(s) of {training.local_epochs:g} local "
                "epoch(s)"
            )
            + (", then one curve release" if plan.curve_release else ""),
        ),
        ("privacy", "; ".join(_mechanisms(plan))),
        (
            "most epsilon per run",
            f"epsilon {record.epsilon:g} at delta {record.delta:g} (record level, the plan's)",
        ),
    ]
    if record.enabled and n_units:
        # imported here: the accountants pull in torch and Opacus, which every task
        # process would otherwise load just to check an approval
        from enterprise_node.budget import BudgetGuard
        from enterprise_node.noise_calibration import calibrated_noise

        noise = calibrated_noise(config.state_dir, plan, n_units)
        guard = BudgetGuard(
            config.state_dir, epsilon_cap=config.privacy.epsilon, delta=config.privacy.delta
        )
        spent = guard.status().epsilon_spent
        after = guard.projected_epsilon(noise.run_spends())
        rows.append(("this run would cost you", epsilon_at(noise.run_epsilon(), record.delta)))
        rows.append(
            (
                "your lifetime budget",
                f"{lifetime_at(spent, config.privacy.epsilon, config.privacy.delta)} now; "
                f"{epsilon_number(after)} after this run",
            )
        )
    if n_units:
        from enterprise_node.contribution import contribution_outlook

        outlook = contribution_outlook(n_units, plan)
        rows.append(("your model contribution", outlook.describe()))
        rows += [("WARNING", warning) for warning in outlook.warnings]
    rows.append(
        (
            "results go to",
            "the coordinator sees only sums of all nodes' contributions"
            if plan.secure_aggregation
            else "the coordinator sees each node's noised update",
        )
    )
    return rows


class Approvals:
    """``state/approved_plans.json``: approved plan digests, each with a dict of who, when,
    a note and ``app_hashes``, the apps (FAB hashes, :mod:`protocols.app_identity`) the plan
    may run with in a deployment."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.path = config.state_dir / APPROVALS_FILE

    def all(self) -> dict[str, dict]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise StateError(f"{self.path}: corrupt approvals file: {err}") from None
        if not isinstance(data, dict):
            raise StateError(f"{self.path}: corrupt approvals file: not a mapping")
        return data

    def is_approved(self, digest: str, app_hash: str | None = None) -> bool:
        """Plan ``digest`` is approved (and, if ``app_hash`` is given, with that app)."""
        entry = self.all().get(digest)
        if entry is None:
            return False
        return app_hash is None or app_hash in entry.get("app_hashes", [])

    def approve(
        self, plan: TrainingPlan, *, by: str, note: str = "", app_hash: str | None = None
    ) -> None:
        """Record the approval (with the app ``app_hash``, if given) here and in the node's
        signed ledger; approving a plan again with another app adds that app."""
        approvals = self.all()
        hashes = list(approvals.get(plan.digest, {}).get("app_hashes", []))
        if app_hash and app_hash not in hashes:
            hashes.append(app_hash)
        approvals[plan.digest] = {
            "approved_at": time.time(),
            "approved_by": by,
            "note": note,
            "app_hashes": hashes,
        }
        atomic_write_text(self.path, json.dumps(approvals, indent=2, sort_keys=True) + "\n")
        NodeLedger(self.config).append([PlanApproved(plan.digest, by, note, app_hash or "")])


def not_approved_reason(plan_digest: str, app_hash: str | None = None) -> str:
    """Why a node refuses a plan it has not approved (no data in it: the digests only)."""
    if app_hash is not None:
        return (
            f"task refused: plan {plan_digest[:12]} with app {app_hash[:12]} is not approved "
            "at this node; run `fedrisk-node approve`"
        )
    return (
        f"task refused: plan {plan_digest[:12]} is not approved at this node; "
        "run `fedrisk-node approve`"
    )


def require_approved(config: NodeConfig, plan: TrainingPlan, app_hash: str | None = None) -> None:
    """Refuse (ConfigError "task refused: ...") a task whose plan this node has not approved,
    or, in a deployment (``app_hash`` given by the app guard), not with the app it came in;
    called before the task reads any data or charges any budget."""
    if not Approvals(config).is_approved(plan.digest, app_hash):
        _log.warning(
            "refusing a task: plan %s%s is not approved at node %s (approve it with "
            "`fedrisk-node approve`)",
            plan.digest,
            f" with app {app_hash}" if app_hash else "",
            config.node.name,
        )
        raise ConfigError(not_approved_reason(plan.digest, app_hash))


def approve_at_nodes(node_configs: Iterable[Path], plan: TrainingPlan, *, by: str) -> list[str]:
    """Approve ``plan`` at each node.yaml that has not approved it yet, recorded as
    approved by "``by`` of <node name>" (whoever runs the federation acting as each node's
    IT); returns the names of the nodes where it was newly approved."""
    approved = []
    for path in node_configs:
        config = load_node_config(Path(path))
        approvals = Approvals(config)
        if not approvals.is_approved(plan.digest):
            approvals.approve(plan, by=f"{by} of {config.node.name}")
            approved.append(config.node.name)
    return approved


def unapproved_nodes(node_configs: Iterable[Path], plan: TrainingPlan) -> list[str]:
    """Names of the nodes (node.yaml paths given) that have not approved ``plan``."""
    names = []
    for path in node_configs:
        config = load_node_config(Path(path))
        if not Approvals(config).is_approved(plan.digest):
            names.append(config.node.name)
    return names


def units_or_none(config: NodeConfig, plan: TrainingPlan) -> int | None:
    """The node's valid unit count for the summary, or None if the data cannot be read."""
    from enterprise_node.ingest import ingest

    try:
        return len(ingest(config, plan.model_spec).frame)
    except FedriskError:
        return None
