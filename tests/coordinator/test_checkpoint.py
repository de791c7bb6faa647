"""The coordinator's checkpoint: round trip, and a corrupt or foreign one refused by name."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from common.errors import StateError
from coordinator.checkpoint import CHECKPOINT_FILE, Checkpoint, read_checkpoint, write_checkpoint
from coordinator.newton_fit import Curvature, NewtonState

RUN, PLAN = "run-a", "ab" * 32


def a_checkpoint(**changes) -> Checkpoint:
    """Factory: the state after round 2 of a small model, with recognisable values."""
    rng = np.random.default_rng(5)
    fields = dict(
        run_id=RUN,
        plan_digest=PLAN,
        round=2,
        training_done=False,
        arrays=(("param_000", rng.normal(size=(3, 4))), ("param_001", rng.normal(size=4))),
        momentum=(rng.normal(size=(3, 4)), rng.normal(size=4)),
        enterprise={"delta": 1e-5, "cap": 8.0, "history": [[1.2, 1.0, 1], [1.2, 1.0, 2]]},
        rounds=({"round": 1, "task": "model", "ok": ["a", "b"], "refused": [], "failed": []},),
        receipts=({"node": "a", "round": 1, "task": "model", "receipt": {"steps": 3}},),
        privacy_notes={"enterprise": {"epsilon": 1.25, "warning": ""}},
        pseudonyms=("key-a", "key-b"),
    )
    return Checkpoint(**{**fields, **changes})  # type: ignore[arg-type]


def assert_same(got: Checkpoint, want: Checkpoint) -> None:
    assert [name for name, _ in got.arrays] == [name for name, _ in want.arrays]
    for (_, a), (_, b) in zip(got.arrays, want.arrays, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert got.momentum is not None and want.momentum is not None
    assert all(np.array_equal(a, b) for a, b in zip(got.momentum, want.momentum, strict=True))
    for name in ("run_id", "plan_digest", "round", "training_done", "enterprise", "rounds"):
        assert getattr(got, name) == getattr(want, name)
    assert (got.receipts, got.privacy_notes, got.pseudonyms) == (
        want.receipts,
        want.privacy_notes,
        want.pseudonyms,
    )


def test_a_checkpoint_round_trips_bit_for_bit(tmp_path: Path) -> None:
    # Prepare
    path, checkpoint = tmp_path / CHECKPOINT_FILE, a_checkpoint()
    # Execute
    written = write_checkpoint(path, checkpoint)
    again, digest = read_checkpoint(path, run_id=RUN, plan_digest=PLAN)
    # Assert: the same state, the digest the writer returned, a private file
    assert_same(again, checkpoint)
    assert digest == written and len(digest) == 64
    assert path.stat().st_mode & 0o777 == 0o600


def test_no_momentum_and_no_enterprise_accountant_round_trip(tmp_path: Path) -> None:
    checkpoint = a_checkpoint(momentum=None, enterprise=None, training_done=True)
    write_checkpoint(tmp_path / CHECKPOINT_FILE, checkpoint)
    again, _ = read_checkpoint(tmp_path / CHECKPOINT_FILE, run_id=RUN, plan_digest=PLAN)
    assert again.momentum is None and again.enterprise is None and again.training_done


def test_a_newton_fits_curvature_and_last_move_round_trip(tmp_path: Path) -> None:
    # Prepare
    rng = np.random.default_rng(6)
    state = NewtonState(Curvature(1, rng.normal(size=(4, 4)), 0.25, 3.5), rng.normal(size=4))
    path = tmp_path / CHECKPOINT_FILE
    # Execute
    write_checkpoint(path, a_checkpoint(momentum=None, newton=state))
    again, _ = read_checkpoint(path, run_id=RUN, plan_digest=PLAN)
    # Assert
    assert again.newton is not None
    got = again.newton.curvature
    assert (got.round, got.noise_std, got.floor) == (1, 0.25, 3.5)
    assert np.array_equal(got.matrix, state.curvature.matrix)
    assert np.array_equal(again.newton.velocity, state.velocity)


def test_a_version_1_checkpoint_is_still_read(tmp_path: Path) -> None:
    # Prepare: the file as version 1 wrote it (no "newton" key), digest recomputed
    path = tmp_path / CHECKPOINT_FILE
    write_checkpoint(path, a_checkpoint())
    document = json.loads(path.read_text())
    del document["state"]["newton"]
    text = json.dumps(document["state"], sort_keys=True, separators=(",", ":"))
    document.update(version=1, sha256=hashlib.sha256(text.encode()).hexdigest())
    path.write_text(json.dumps(document))
    # Execute
    again, _ = read_checkpoint(path, run_id=RUN, plan_digest=PLAN)
    # Assert
    assert_same(again, a_checkpoint())
    assert again.newton is None


def test_a_changed_value_is_refused_as_corrupt(tmp_path: Path) -> None:
    # Prepare: one completed round turned into three, digest left as it was
    path = tmp_path / CHECKPOINT_FILE
    write_checkpoint(path, a_checkpoint())
    document = json.loads(path.read_text())
    document["state"]["round"] = 3
    path.write_text(json.dumps(document))
    # Execute / Assert
    with pytest.raises(StateError, match="checkpoint digest mismatch.*corrupt") as err:
        read_checkpoint(path, run_id=RUN, plan_digest=PLAN)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda text: text[: len(text) // 2], "cannot be read"),
        (lambda text: "[]", "not a fedrisk checkpoint"),
        (lambda text: text.replace('"version": 2', '"version": 3'), "version 3"),
    ],
    ids=["torn", "not-a-checkpoint", "newer-version"],
)
def test_a_torn_or_foreign_file_is_refused(tmp_path: Path, damage, message: str) -> None:
    path = tmp_path / CHECKPOINT_FILE
    write_checkpoint(path, a_checkpoint())
    path.write_text(damage(path.read_text()))
    with pytest.raises(StateError, match=message):
        read_checkpoint(path, run_id=RUN, plan_digest=PLAN)


def test_a_checkpoint_of_another_run_or_plan_is_refused(tmp_path: Path) -> None:
    path = tmp_path / CHECKPOINT_FILE
    write_checkpoint(path, a_checkpoint())
    with pytest.raises(StateError, match="of run 'run-a', not 'run-b'"):
        read_checkpoint(path, run_id="run-b", plan_digest=PLAN)
    with pytest.raises(StateError, match=f"of plan {PLAN[:12]}, not of this run's plan cdcd"):
        read_checkpoint(path, run_id=RUN, plan_digest="cd" * 32)


def test_a_bad_array_is_named(tmp_path: Path) -> None:
    # Prepare: an array whose data is shorter than its shape, digest recomputed (so only
    # the array check can catch it)
    from coordinator.checkpoint import _digest

    path = tmp_path / CHECKPOINT_FILE
    write_checkpoint(path, a_checkpoint())
    document = json.loads(path.read_text())
    document["state"]["arrays"][1][1]["shape"] = [5]
    document["sha256"] = _digest(document["state"])
    path.write_text(json.dumps(document))
    # Execute / Assert
    with pytest.raises(StateError, match=r"arrays\[param_001\]: 32 bytes of data, the shape"):
        read_checkpoint(path, run_id=RUN, plan_digest=PLAN)


def test_a_mistyped_or_unknown_state_value_is_named(tmp_path: Path) -> None:
    # Prepare: the round as a string, digest recomputed (only the type check can catch it)
    from coordinator.checkpoint import _digest

    path = tmp_path / CHECKPOINT_FILE
    write_checkpoint(path, a_checkpoint())
    document = json.loads(path.read_text())
    document["state"]["round"] = "3"
    document["sha256"] = _digest(document["state"])
    path.write_text(json.dumps(document))
    # Execute / Assert
    with pytest.raises(StateError, match="checkpoint state.round must be int, got str '3'"):
        read_checkpoint(path, run_id=RUN, plan_digest=PLAN)
