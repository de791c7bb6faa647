"""Sharing the fleet's relative risk with the broker: a DP release the site chooses.

Nothing is shared unless the enterprise asks. When it does, the release is the pair of
weighted sums behind :class:`enterprise_node.fleet_risk.FleetRisk`'s factor,
S = sum(w x min(r, clip)) and W = sum(w), with each unit's weight w = q_base / q_ref in
[0, 1] (q_ref: the largest baseline q of the covered curves, public). One unit added or
removed moves (S, W) by at most (clip, 1): L2 sensitivity sqrt(clip^2 + 1). Both sums are
rounded to 1/``INTEGER_SCALE`` and get discrete Gaussian noise from OpenDP (a CSPRNG),
charged as a Gaussian mechanism of noise multiplier z calibrated to the epsilon the site
chose at its cap's delta. The shared factor is S~ / W~; the coarse grade ("lower",
"typical", "higher") is read from it (post-processing: the same charge).

Order, as for every release (:mod:`enterprise_node.release`): the budget is checked
before the noise is drawn, the spend is charged durably before anything is written out,
then the node's ledger gets exactly one RiskShared entry (spend and message digest), the
outbox one line, and the signed message is written where the site sends it from.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from common.atomic import atomic_write_bytes
from enterprise_node.budget import BudgetGuard
from enterprise_node.config import NodeConfig
from enterprise_node.curve_release import discrete_gaussian
from enterprise_node.fleet_risk import RELATIVE_RISK_CLIP, FleetRisk, clipped_risk
from enterprise_node.node_ledger import NodeLedger, node_key
from enterprise_node.outbox import Outbox, OutboxEntry
from ledger.records import RiskShared
from ledger.signing import key_id, sign
from privacy.accounting import Spend, calibrate_noise_multiplier, rdp_epsilon
from privacy.mechanisms import Mechanism

__all__ = [
    "INTEGER_SCALE",
    "SENSITIVITY",
    "RISK_GRADES",
    "Shared",
    "ShareOffer",
    "SharedRisk",
    "offer",
    "risk_grade",
    "noised_factor",
    "share_risk",
]

#: The sums are rounded to multiples of 1 / INTEGER_SCALE before the integer noise.
INTEGER_SCALE = 1024
#: L2 sensitivity of (S, W) when one unit is added or removed.
SENSITIVITY = math.sqrt(RELATIVE_RISK_CLIP**2 + 1.0)
#: The coarse grades by the shared factor's upper bounds (the last has none).
RISK_GRADES: tuple[tuple[str, float], ...] = (
    ("lower", 0.8),
    ("typical", 1.25),
    ("higher", math.inf),
)
_TASK = "risk_share"

Shared = Literal["grade", "factor"]


@dataclass(frozen=True)
class ShareOffer:
    """What sharing would cost and how precise it would be, shown before anything is
    sent: the epsilon at the node's cap delta, the noise multiplier, the lifetime epsilon
    now and after, and the factor's noise sd (about; from the fleet's own weight)."""

    epsilon: float
    delta: float
    noise_multiplier: float
    lifetime_now: float
    lifetime_after: float
    epsilon_cap: float
    factor_noise_sd: float

    @property
    def affordable(self) -> bool:
        return self.lifetime_after <= self.epsilon_cap


@dataclass(frozen=True)
class SharedRisk:
    """What was sent: the ``message`` file, its SHA-256 and size, the shared value (a
    grade, or the noised factor with its noise sd) and the lifetime epsilon after it."""

    share_id: str
    shared: Shared
    grade: str
    factor: float
    factor_noise_sd: float
    message: Path
    sha256: str
    bytes: int
    epsilon_total: float


def _guard(config: NodeConfig) -> BudgetGuard:
    return BudgetGuard(
        config.state_dir, epsilon_cap=config.privacy.epsilon, delta=config.privacy.delta
    )


def _sums(risk: FleetRisk, reference_q: float) -> tuple[int, int]:
    """(S, W) in units of 1 / INTEGER_SCALE (see the module docstring)."""
    weights = np.clip(risk.q_base / reference_q, 0.0, 1.0) if reference_q > 0 else risk.q_base * 0
    s = np.rint(weights * clipped_risk(risk.relative) * INTEGER_SCALE).astype(np.int64)
    w = np.rint(weights * INTEGER_SCALE).astype(np.int64)
    return int(s.sum()), int(w.sum())


def _spend(noise_multiplier: float, share_id: str) -> Spend:
    return Spend(noise_multiplier, 1.0, 1, Mechanism.RISK_FACTOR, share_id, 0, _TASK)


def offer(config: NodeConfig, risk: FleetRisk, reference_q: float, epsilon: float) -> ShareOffer:
    """The :class:`ShareOffer` of sharing at ``epsilon`` (nothing is charged)."""
    guard = _guard(config)
    z = calibrate_noise_multiplier(
        target_epsilon=epsilon, target_delta=guard.delta, sample_rate=1.0, steps=1
    )
    _, w = _sums(risk, reference_q)
    weight = w / INTEGER_SCALE
    sd = z * SENSITIVITY * math.sqrt(1.0 + risk.factor**2) / weight if weight > 0 else math.inf
    return ShareOffer(
        epsilon=epsilon,
        delta=guard.delta,
        noise_multiplier=z,
        lifetime_now=guard.status().epsilon_spent,
        lifetime_after=guard.projected_epsilon([_spend(z, "offer")]),
        epsilon_cap=guard.epsilon_cap,
        factor_noise_sd=sd,
    )


def risk_grade(factor: float) -> str:
    """The coarse grade of a (noised) factor; "unknown" when it is not a number."""
    if not math.isfinite(factor):
        return "unknown"
    return next(name for name, upper in RISK_GRADES if factor < upper)


def share_risk(
    config: NodeConfig,
    risk: FleetRisk,
    reference_q: float,
    terms: ShareOffer,
    *,
    shared: Shared,
    run_id: str,
    to: Path | None = None,
) -> SharedRisk:
    """Release the fleet's factor under ``terms``, charge it, record it and write the
    signed message (``to``, or ``outgoing/<share id>.json`` beside node.yaml).
    BudgetExceededError before any noise is drawn when the spend would pass the cap."""
    share_id = f"risk-{uuid.uuid4().hex[:12]}"
    guard = _guard(config)
    spend = _spend(terms.noise_multiplier, share_id)
    guard.check([spend])
    factor, sd = noised_factor(risk, reference_q, terms.noise_multiplier)
    total = guard.charge([spend])
    grade = risk_grade(factor)
    key = node_key(config)
    payload = {
        "kind": "fedrisk.risk_share",
        "version": 1,
        "share_id": share_id,
        "node": key_id(key.public_key()),
        "run_id": run_id,
        "segments": list(risk.segments),
        "term": risk.term,
        "shared": shared,
        "risk_grade": grade,
        "data_quality_grade": risk.quality_grade,
        "privacy": {
            "mechanism": str(Mechanism.RISK_FACTOR),
            "noise_multiplier": terms.noise_multiplier,
            "sensitivity": SENSITIVITY,
            "epsilon": rdp_epsilon([spend], guard.delta),
            "delta": guard.delta,
            "relative_risk_clip": RELATIVE_RISK_CLIP,
        },
        "issued_at": time.time(),
    }
    if shared == "factor":
        payload |= {"factor": factor, "factor_noise_sd": sd}
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
    message = {"payload": payload, "signature": base64.b64encode(sign(key, body)).decode()}
    data = (json.dumps(message, indent=2, sort_keys=True) + "\n").encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    NodeLedger(config).append([_record(share_id, shared, digest, len(data), spend, guard, total)])
    Outbox(config.state_dir).append(
        OutboxEntry(
            time=time.time(), run_id=share_id, round=0, task=_TASK, status="ok",
            purpose=f"fleet risk {shared} to the broker", sha256=digest, bytes=len(data),
            arrays=(),
        )
    )  # fmt: skip
    path = Path(to) if to is not None else config.resolve(f"outgoing/{share_id}.json")
    atomic_write_bytes(path, data)
    return SharedRisk(share_id, shared, grade, factor, sd, path, digest, len(data), total)


def noised_factor(risk: FleetRisk, reference_q: float, z: float) -> tuple[float, float]:
    """S~ / W~ and its noise sd (about), from the noised integer sums."""
    s, w = _sums(risk, reference_q)
    noise = discrete_gaussian((2,), z * SENSITIVITY * INTEGER_SCALE)
    s_noised, w_noised = (s + int(noise[0])) / INTEGER_SCALE, (w + int(noise[1])) / INTEGER_SCALE
    if w_noised <= 0:
        return math.nan, math.inf
    factor = max(0.0, s_noised / w_noised)
    return factor, z * SENSITIVITY * math.sqrt(1.0 + factor**2) / w_noised


def _record(
    share_id: str,
    shared: str,
    digest: str,
    size: int,
    spend: Spend,
    guard: BudgetGuard,
    total: float,
) -> RiskShared:
    return RiskShared(
        run_id=share_id, round=0, task=_TASK, shared=shared, sha256=digest, bytes=size,
        unit="record", mechanism=spend.mechanism, noise_multiplier=spend.noise_multiplier,
        sample_rate=spend.sample_rate, steps=spend.steps, sensitivity=SENSITIVITY,
        noise_shares=1, epsilon_task=rdp_epsilon([spend], guard.delta), epsilon_total=total,
        epsilon_remaining=guard.epsilon_cap - total, epsilon_cap=guard.epsilon_cap,
        delta=guard.delta,
    )  # fmt: skip
