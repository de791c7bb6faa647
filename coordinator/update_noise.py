"""Is a DP-SGD round's mean update signal or noise? The coordinator's check.

From the mechanism parameters each node's receipt carries (noise multiplier sigma,
steps S, clip C) and the plan's optimiser, the expected L2 norm of the DP noise that
local training leaves in one node's update over P parameters is about

- SGD: lr sigma C / B sqrt(S P), B the expected batch size (Opacus adds N(0, sigma^2 C^2)
  to the summed clipped gradients and divides by B);
- Adam: lr sqrt(S P). Adam normalises each coordinate by its running gradient scale,
  so a coordinate that is mostly noise walks about lr per step at random (the failure
  seen on real data with lr 0.1; STACK.md).

The mean of k nodes' independent noises has norm sqrt(sum of squares) / k. A round whose
mean update is not clearly longer than that is noise; the run says so, in plain words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from models.spec import TrainingSettings
from privacy.mechanisms import Mechanism
from protocols.messages import PrivacyReceipt

__all__ = ["UpdateNoise", "expected_noise_norm", "update_noise"]

#: A mean update shorter than this multiple of its expected noise norm is warned of.
SIGNAL_RATIO = 2.0


@dataclass(frozen=True)
class UpdateNoise:
    """A round's mean-update norm next to the DP noise expected in it."""

    round: int
    update_norm: float
    noise_norm: float

    @property
    def ratio(self) -> float:
        return self.update_norm / self.noise_norm if self.noise_norm > 0 else math.inf

    @property
    def warning(self) -> str | None:
        if self.ratio >= SIGNAL_RATIO:
            return None
        return (
            f"model round {self.round}: the mean update (norm {self.update_norm:.3g}) is "
            f"within {SIGNAL_RATIO:g}x the DP noise expected in it (norm "
            f"{self.noise_norm:.3g}): the model is mostly noise. Try a smaller learning "
            "rate or SGD instead of Adam, fewer rounds, or training.method newton."
        )

    def summary(self) -> dict[str, float | int]:
        return {
            "round": self.round,
            "update_norm": round(self.update_norm, 6),
            "noise_norm": round(self.noise_norm, 6),
            "ratio": round(self.ratio, 4) if math.isfinite(self.ratio) else -1.0,
        }


def expected_noise_norm(
    receipts: Sequence[PrivacyReceipt], training: TrainingSettings, dimension: int
) -> float:
    """Expected norm of the DP noise in the unweighted mean of the nodes' updates (0
    when no receipt carries DP-SGD noise)."""
    squares = []
    for receipt in receipts:
        if receipt.mechanism != Mechanism.DP_SGD or receipt.noise_multiplier <= 0:
            continue
        walk = training.learning_rate * math.sqrt(receipt.steps * dimension)
        if training.optimizer == "sgd":
            walk *= receipt.noise_multiplier * receipt.max_grad_norm / training.batch_size
        squares.append(walk * walk)
    if not squares:
        return 0.0
    return math.sqrt(math.fsum(squares)) / len(receipts)


def update_noise(
    round_number: int,
    update_norm: float,
    receipts: Sequence[PrivacyReceipt],
    training: TrainingSettings,
    dimension: int,
) -> UpdateNoise:
    return UpdateNoise(
        round_number, update_norm, expected_noise_norm(receipts, training, dimension)
    )
