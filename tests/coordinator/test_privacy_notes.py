"""The run summary's extra privacy figures: their JSON shape (summary.json, checkpoint),
and what a resumed run reads back."""

from __future__ import annotations

import json

from coordinator.privacy_notes import EnterpriseSpend, PrivacyNotes
from coordinator.update_noise import UpdateNoise

FIGURES = {"clip_norm": 1.0, "delta": 1e-6, "epsilon_one_round": 0.5, "warning": ""}


def test_noted_figures_have_the_summarys_keys_and_values() -> None:
    # Prepare
    notes = PrivacyNotes()
    # Execute: round 1 mostly noise, round 2 not; an enterprise spend, then a stop
    first = notes.add_update_noise(UpdateNoise(1, update_norm=0.1, noise_norm=1.0))
    second = notes.add_update_noise(UpdateNoise(2, update_norm=0.1, noise_norm=1.0))
    notes.announce_enterprise(FIGURES)
    notes.charge_enterprise(EnterpriseSpend(0.5, 1e-6, 2.0, 1, {"history": [1]}))
    notes.stop_enterprise(3)
    notes.note_curve_noise({"distributed": False, "note": "no noise"})
    # Assert: only round 1 warns; the keys are those summary.json always had
    assert first is not None and second is None
    assert notes.to_json() == {
        "model_noise": {
            "dp_sgd_rounds": [
                UpdateNoise(1, 0.1, 1.0).summary(),
                UpdateNoise(2, 0.1, 1.0).summary(),
            ],
            "warnings": [first],
        },
        "enterprise": {
            **FIGURES,
            "epsilon": 0.5,
            "epsilon_cap": 2.0,
            "rounds_accounted": 1,
            "accountant": {"history": [1]},
            "stopped_before_round": 3,
        },
        "curve_noise": {"distributed": False, "note": "no noise"},
    }


def test_nothing_noted_is_no_key_and_noiseless_rounds_are_not_noted() -> None:
    notes = PrivacyNotes()
    assert notes.add_update_noise(UpdateNoise(1, update_norm=0.1, noise_norm=0.0)) is None
    assert notes.to_json() == {}


def test_a_newton_fit_warns_once_of_noise() -> None:
    notes = PrivacyNotes()
    assert notes.add_newton_step({"round": 1}, "noisy") == "noisy"
    assert notes.add_newton_step({"round": 2}, "noisy") is None
    assert notes.to_json() == {
        "model_noise": {"newton_steps": [{"round": 1}, {"round": 2}], "warnings": ["noisy"]}
    }


def test_notes_read_back_from_a_checkpoint_are_written_unchanged() -> None:
    # Prepare: notes of every kind, as a checkpoint stores them
    notes = PrivacyNotes()
    notes.add_update_noise(UpdateNoise(1, update_norm=0.1, noise_norm=1.0))
    notes.announce_enterprise(FIGURES)
    notes.charge_enterprise(EnterpriseSpend(0.5, 1e-6, 2.0, 1, {"history": [1]}))
    stored = json.loads(json.dumps(notes.to_json()))
    # Execute
    restored = PrivacyNotes.from_json(stored)
    # Assert: the same figures, and a resumed run continues them
    assert restored.to_json() == stored
    assert restored.enterprise == notes.enterprise
    restored.stop_enterprise(2)
    assert restored.to_json()["enterprise"] == {**stored["enterprise"], "stopped_before_round": 2}
