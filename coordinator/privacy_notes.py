"""The run summary's extra privacy figures (``summary.json`` "privacy", beside the
receipts), kept by one owner in named fields.

Three kinds, each a key of the summary's "privacy" object and of the checkpoint's
``privacy_notes``: ``model_noise`` (each model round's update next to its DP noise),
``enterprise`` (enterprise-level DP: settings, spend, budget stop) and ``curve_noise``
(the secure curve release's distributed noise). :meth:`PrivacyNotes.to_json` writes
exactly the keys and values those have always had; :meth:`PrivacyNotes.from_json` reads
them back from a checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, TypeVar

from common.codec import decode, encode
from coordinator.update_noise import UpdateNoise

__all__ = ["ModelNoise", "EnterpriseSpend", "EnterpriseNotes", "PrivacyNotes"]

T = TypeVar("T")


@dataclass(frozen=True)
class ModelNoise:
    """Each model round's step next to its noise (DP-SGD rounds or Newton steps), and the
    warnings the run gave when noise dominated; None: none of that kind (no key)."""

    dp_sgd_rounds: tuple[dict[str, Any], ...] | None = None
    newton_steps: tuple[dict[str, Any], ...] | None = None
    warnings: tuple[str, ...] | None = None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ModelNoise:
        return decode(cls, obj, "privacy notes.model_noise", ValueError)

    def to_json(self) -> dict[str, Any]:
        """The kinds noted (a kind of step never taken has no key)."""
        body = encode(self, omit_none=True)
        assert isinstance(body, dict)
        return body


@dataclass(frozen=True)
class EnterpriseSpend:
    """The enterprise accountant after the last charged round."""

    epsilon: float
    delta: float
    epsilon_cap: float
    rounds_accounted: int
    accountant: dict[str, Any]


#: Keys of the enterprise notes that only a spend writes ("delta" is also a setting).
_SPEND_ONLY = ("epsilon", "epsilon_cap", "rounds_accounted", "accountant")
_STOP = "stopped_before_round"


@dataclass(frozen=True)
class EnterpriseNotes:
    """Enterprise-level DP: its settings and expected noise (``figures``, from
    :func:`coordinator.secure_summary.enterprise_dp_summary`), the spend so far and the
    round training stopped before (None: it did not stop)."""

    figures: Mapping[str, Any]
    spend: EnterpriseSpend | None = None
    stopped_before_round: int | None = None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> EnterpriseNotes:
        figures = {k: v for k, v in obj.items() if k not in (*_SPEND_ONLY, _STOP)}
        spend = None
        if "epsilon" in obj:
            spend = EnterpriseSpend(**{f.name: obj[f.name] for f in fields(EnterpriseSpend)})
        return cls(figures, spend, obj.get(_STOP))

    def to_json(self) -> dict[str, Any]:
        notes = dict(self.figures)
        if self.spend is not None:
            notes.update(asdict(self.spend))
        if self.stopped_before_round is not None:
            notes[_STOP] = self.stopped_before_round
        return notes


@dataclass
class PrivacyNotes:
    """The run's extra privacy figures; the only place they are written."""

    model_noise: ModelNoise = field(default_factory=ModelNoise)
    enterprise: EnterpriseNotes | None = None
    curve_noise: Mapping[str, Any] | None = None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> PrivacyNotes:
        """The notes a checkpoint holds (a resumed run continues them)."""
        enterprise = obj.get("enterprise")
        return cls(
            ModelNoise.from_json(obj.get("model_noise", {})),
            None if enterprise is None else EnterpriseNotes.from_json(enterprise),
            obj.get("curve_noise"),
        )

    def to_json(self) -> dict[str, Any]:
        """The notes as summary.json and the checkpoint hold them (only kinds noted)."""
        notes: dict[str, Any] = {}
        if model_noise := self.model_noise.to_json():
            notes["model_noise"] = model_noise
        if self.enterprise is not None:
            notes["enterprise"] = self.enterprise.to_json()
        if self.curve_noise is not None:
            notes["curve_noise"] = dict(self.curve_noise)
        return notes

    def add_update_noise(self, check: UpdateNoise) -> str | None:
        """Note a DP-SGD round's mean update next to its noise (nothing without noise);
        the warning to give, in round 1 only (later rounds converge: the signal fades)."""
        if check.noise_norm == 0.0:
            return None
        noise = self.model_noise
        warning = check.warning if check.round == 1 else None
        warnings = _added(noise.warnings, warning)
        rounds = _added(noise.dp_sgd_rounds, check.summary())
        self.model_noise = replace(noise, dp_sgd_rounds=rounds, warnings=warnings)
        return warning

    def add_newton_step(self, summary: dict[str, Any], warning: str | None) -> str | None:
        """Note a Newton step (its ``summary``); the warning to give, only the first time
        noise dominates (rounds reusing one information matrix would repeat it)."""
        noise = self.model_noise
        given = None if noise.warnings else warning
        warnings = _added(noise.warnings, given)
        steps = _added(noise.newton_steps, summary)
        self.model_noise = replace(noise, newton_steps=steps, warnings=warnings)
        return given

    def announce_enterprise(self, figures: Mapping[str, Any]) -> None:
        """Enterprise-level DP's settings and expected noise, stated before training."""
        self.enterprise = EnterpriseNotes(figures)

    def charge_enterprise(self, spend: EnterpriseSpend) -> None:
        """The enterprise accountant after a charged round."""
        self.enterprise = replace(self._enterprise(), spend=spend)

    def stop_enterprise(self, round_number: int) -> None:
        """Training stopped before ``round_number``: the budget would have been passed."""
        self.enterprise = replace(self._enterprise(), stopped_before_round=round_number)

    def note_curve_noise(self, figures: Mapping[str, Any]) -> None:
        """The secure curve release's planned and realised distributed noise."""
        self.curve_noise = figures

    def _enterprise(self) -> EnterpriseNotes:
        return EnterpriseNotes({}) if self.enterprise is None else self.enterprise


def _added(items: tuple[T, ...] | None, item: T | None) -> tuple[T, ...] | None:
    """``items`` with ``item`` appended (unchanged when ``item`` is None)."""
    if item is None:
        return items
    return (*(items or ()), item)
