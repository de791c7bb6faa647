"""An annual loss distribution on an evenly spaced grid: P(S = k h) for k = 0, 1, ...

The pool's aggregate loss, and the loss to a reinsurance layer, are sums of independent
risk cells' losses, each a distribution on the same grid (the severity discretised with
step h by :mod:`insurance.aggregate_loss`); the sum's distribution is the convolution of
theirs (:meth:`LossDistribution.plus`, scipy's FFT convolution). The risk measures are
read off the grid exactly:

- VaR_p = min{x : F(x) >= p};
- TVaR_p (expected shortfall) = VaR_p + E[(S - VaR_p)+] / (1 - p), the mean of the worst
  1 - p of outcomes (Acerbi and Tasche 2002; equal to E[S | S >= VaR_p] where F is
  continuous at VaR_p);
- the layer mean E[min(max(S - a, 0), c)] = E[min(S, a + c)] - E[min(S, a)].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve

__all__ = ["LossDistribution"]

#: Trailing grid points holding less than this much probability together are dropped.
_TAIL_MASS = 1e-15


@dataclass(frozen=True, eq=False)
class LossDistribution:
    """P(S = k ``step``) = ``pmf[k]`` (currency units; the pmf sums to 1).

    >>> loss = LossDistribution(10.0, np.array([0.9, 0.06, 0.03, 0.01]))
    >>> loss.value_at_risk(0.95), round(loss.tail_value_at_risk(0.95), 9)
    (10.0, 20.0)
    """

    step: float
    pmf: np.ndarray

    def __post_init__(self) -> None:
        if not self.step > 0:
            raise ValueError(f"step must be positive, not {self.step}")
        if self.pmf.ndim != 1 or len(self.pmf) == 0:
            raise ValueError("pmf must be a non-empty vector")

    @classmethod
    def from_masses(cls, step: float, masses: np.ndarray) -> LossDistribution:
        """From probabilities that may carry round-off: negatives clipped, the negligible
        tail trimmed, normalised to sum 1."""
        pmf = np.clip(np.asarray(masses, float), 0.0, None)
        tail = np.cumsum(pmf[::-1])[::-1]
        keep = max(int(np.searchsorted(-tail, -_TAIL_MASS, side="right")), 1)
        pmf = pmf[:keep]
        return cls(float(step), pmf / pmf.sum())

    @property
    def nodes(self) -> np.ndarray:
        """The loss amounts k h of the grid."""
        return self.step * np.arange(len(self.pmf))

    def plus(self, other: LossDistribution) -> LossDistribution:
        """The distribution of the sum of two independent losses on the same grid."""
        if not np.isclose(self.step, other.step, rtol=1e-12, atol=0.0):
            raise ValueError(f"grids differ: step {self.step} vs {other.step}")
        return LossDistribution.from_masses(self.step, fftconvolve(self.pmf, other.pmf))

    def mean(self) -> float:
        return float(self.pmf @ self.nodes)

    def sd(self) -> float:
        deviation = self.nodes - self.mean()
        return float(np.sqrt(self.pmf @ deviation**2))

    def value_at_risk(self, level: float) -> float:
        """VaR at ``level``: the smallest node x with F(x) >= level."""
        index = int(np.searchsorted(np.cumsum(self.pmf), level, side="left"))
        return float(self.nodes[min(index, len(self.pmf) - 1)])

    def tail_value_at_risk(self, level: float) -> float:
        """TVaR (expected shortfall) at ``level`` (see the module docstring)."""
        var = self.value_at_risk(level)
        excess = float(self.pmf @ np.maximum(self.nodes - var, 0.0))
        return var + excess / (1.0 - level)

    def limited_mean(self, limit: float) -> float:
        """E[min(S, limit)]."""
        return float(self.pmf @ np.minimum(self.nodes, limit))

    def layer_mean(self, attachment: float, width: float) -> float:
        """E[min(max(S - attachment, 0), width)]."""
        return self.limited_mean(attachment + width) - self.limited_mean(attachment)

    def exceedance(self, threshold: float) -> float:
        """P(S > threshold)."""
        return float(self.pmf[self.nodes > threshold * (1 + 1e-12)].sum())

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Independent draws of S (inverse transform on the grid)."""
        cdf = np.cumsum(self.pmf)
        index = np.searchsorted(cdf, rng.random(shape) * cdf[-1], side="right")
        return self.nodes[np.minimum(index, len(self.pmf) - 1)]
