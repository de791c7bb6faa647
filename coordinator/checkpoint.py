"""The coordinator's checkpoint: a run's state after its last completed model round.

A model round is complete when its mean is known and applied to the global model. The
coordinator then writes ``<run_dir>/checkpoint.json`` (atomically, fsynced) and records
its digest in its ledger (CheckpointWritten); a run restarted with ``RunRequest.resume``
continues from it and never runs a completed round again. It holds what the rest of the
run and ``summary.json`` need: the round, the global model, FedAvgM's momentum, the
enterprise accountant's history, every exchange's summary, the record-level receipts and
privacy notes so far, the nodes' pseudonyms, and a Newton fit's curvature and last move.

File format (version 2). Compatibility rule: keys are never removed and their meanings
never change; a new key comes with a default and a new version::

    {"version": 2, "sha256": <SHA-256 of the canonical JSON of "state">, "state": {
        "run_id", "plan_digest", "round", "training_done", "arrays": [[name, array]],
        "momentum": [array] | null, "enterprise": {...} | null, "rounds": [...],
        "receipts": [...], "privacy_notes": {...}, "pseudonyms": [...],
        "newton": {"information_round", "noise_std", "floor", "curvature": array,
                   "velocity": array} | null}}

Version 1 (no "newton", read as null) is still read.

Arrays are stored as in :mod:`common.array_json`. A file that does not parse, whose
digest does not match, or that belongs to another run or plan is refused (StateError).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.array_json import decode_array, encode_array
from common.atomic import atomic_write_text
from common.codec import decode, encode
from common.errors import StateError
from coordinator.newton_fit import Curvature, NewtonState

__all__ = ["CHECKPOINT_FILE", "Checkpoint", "write_checkpoint", "read_checkpoint"]

CHECKPOINT_FILE = "checkpoint.json"
_VERSION = 2
_KEYS_V1 = (
    "run_id",
    "plan_digest",
    "round",
    "training_done",
    "arrays",
    "momentum",
    "enterprise",
    "rounds",
    "receipts",
    "privacy_notes",
    "pseudonyms",
)
_KEYS = (*_KEYS_V1, "newton")


@dataclass(frozen=True)
class Checkpoint:
    """A run's state after model round ``round`` (0: none completed).

    ``training_done``: no model round is left (all ran, or the enterprise budget stopped
    training); ``arrays`` the global model by parameter name, in order; ``momentum``
    FedAvgM's momentum vector (None before its first step or without momentum);
    ``enterprise`` the enterprise accountant's ``state_dict`` (None without enterprise DP);
    ``rounds`` each exchange's summary; ``receipts`` the record-level receipts by node;
    ``privacy_notes`` the summary's extra privacy figures; ``pseudonyms`` the nodes'
    pseudonymous ids seen so far; ``newton`` what a Newton fit's next round needs (None
    for DP-SGD, before the first Newton round, or read from a version 1 file).
    """

    run_id: str
    plan_digest: str
    round: int
    training_done: bool
    arrays: tuple[tuple[str, np.ndarray], ...]
    momentum: tuple[np.ndarray, ...] | None
    enterprise: dict[str, Any] | None
    rounds: tuple[dict[str, Any], ...]
    receipts: tuple[dict[str, Any], ...]
    privacy_notes: dict[str, Any]
    pseudonyms: tuple[str, ...]
    newton: NewtonState | None = None


@dataclass(frozen=True)
class _NewtonFile:
    """The file form of a NewtonState (arrays as :mod:`common.array_json` objects)."""

    information_round: int
    noise_std: float
    floor: float
    curvature: dict[str, Any]
    velocity: dict[str, Any]


@dataclass(frozen=True)
class _StateFile:
    """The file form of a Checkpoint: the "state" object, checked key by key on reading
    (arrays as :mod:`common.array_json` objects, decoded afterwards by name)."""

    run_id: str
    plan_digest: str
    round: int
    training_done: bool
    arrays: tuple[tuple[str, dict[str, Any]], ...]
    momentum: tuple[dict[str, Any], ...] | None
    enterprise: dict[str, Any] | None
    rounds: tuple[dict[str, Any], ...]
    receipts: tuple[dict[str, Any], ...]
    privacy_notes: dict[str, Any]
    pseudonyms: tuple[str, ...]
    newton: _NewtonFile | None = None


def _state(checkpoint: Checkpoint) -> dict[str, Any]:
    momentum, newton = checkpoint.momentum, checkpoint.newton
    state = _StateFile(
        run_id=checkpoint.run_id,
        plan_digest=checkpoint.plan_digest,
        round=checkpoint.round,
        training_done=checkpoint.training_done,
        arrays=tuple((name, encode_array(a)) for name, a in checkpoint.arrays),
        momentum=None if momentum is None else tuple(encode_array(a) for a in momentum),
        enterprise=checkpoint.enterprise,
        rounds=checkpoint.rounds,
        receipts=checkpoint.receipts,
        privacy_notes=checkpoint.privacy_notes,
        pseudonyms=checkpoint.pseudonyms,
        newton=None
        if newton is None
        else _NewtonFile(
            information_round=newton.curvature.round,
            noise_std=newton.curvature.noise_std,
            floor=newton.curvature.floor,
            curvature=encode_array(newton.curvature.matrix),
            velocity=encode_array(newton.velocity),
        ),
    )
    body = encode(state)
    assert isinstance(body, dict)
    return body


def _digest(state: dict[str, Any]) -> str:
    text = json.dumps(state, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_checkpoint(path: Path, checkpoint: Checkpoint) -> str:
    """Write ``checkpoint`` to ``path`` atomically (fsynced); returns its SHA-256."""
    state = _state(checkpoint)
    digest = _digest(state)
    document = {"version": _VERSION, "sha256": digest, "state": state}
    atomic_write_text(path, json.dumps(document, sort_keys=True) + "\n", mode=0o600)
    return digest


def read_checkpoint(path: Path, *, run_id: str, plan_digest: str) -> tuple[Checkpoint, str]:
    """The checkpoint in ``path`` and its SHA-256, after checking that it is intact and
    belongs to run ``run_id`` under plan ``plan_digest``; StateError says what is wrong."""
    where = str(path)
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StateError(f"{where}: the checkpoint cannot be read: {err}") from None
    if not isinstance(document, dict) or set(document) != {"version", "sha256", "state"}:
        raise StateError(f"{where}: not a fedrisk checkpoint (keys version, sha256, state)")
    version = document["version"]
    if version not in (1, _VERSION):
        raise StateError(f"{where}: checkpoint version {version!r}, this reads 1 and 2")
    keys = _KEYS if version == _VERSION else _KEYS_V1
    state = document["state"]
    if not isinstance(state, dict) or sorted(state) != sorted(keys):
        raise StateError(f"{where}: the checkpoint state must have exactly keys {list(keys)}")
    digest = _digest(state)
    if digest != document["sha256"]:
        raise StateError(
            f"{where}: checkpoint digest mismatch (stored {str(document['sha256'])[:16]}..., "
            f"content {digest[:16]}...): the file is corrupt"
        )
    if state["run_id"] != run_id:
        raise StateError(f"{where}: the checkpoint is of run {state['run_id']!r}, not {run_id!r}")
    if state["plan_digest"] != plan_digest:
        raise StateError(
            f"{where}: the checkpoint is of plan {str(state['plan_digest'])[:12]}, not of this "
            f"run's plan {plan_digest[:12]}"
        )
    return _checkpoint(state, where), digest


def _checkpoint(state: dict[str, Any], where: str) -> Checkpoint:
    """The typed checkpoint of a verified ``state``."""
    file = decode(_StateFile, state, f"{where}: checkpoint state", StateError)
    momentum = file.momentum
    return Checkpoint(
        run_id=file.run_id,
        plan_digest=file.plan_digest,
        round=file.round,
        training_done=file.training_done,
        arrays=tuple(
            (name, decode_array(obj, f"{where}: arrays[{name}]")) for name, obj in file.arrays
        ),
        momentum=None
        if momentum is None
        else tuple(decode_array(a, f"{where}: momentum[{i}]") for i, a in enumerate(momentum)),
        enterprise=file.enterprise,
        rounds=file.rounds,
        receipts=file.receipts,
        privacy_notes=file.privacy_notes,
        pseudonyms=file.pseudonyms,
        newton=None if file.newton is None else _newton_state(file.newton, where),
    )


def _newton_state(file: _NewtonFile, where: str) -> NewtonState:
    curvature = Curvature(
        round=file.information_round,
        matrix=decode_array(file.curvature, f"{where}: newton.curvature"),
        noise_std=file.noise_std,
        floor=file.floor,
    )
    return NewtonState(curvature, decode_array(file.velocity, f"{where}: newton.velocity"))
