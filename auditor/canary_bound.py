"""The epsilon lower bound of a one-run privacy audit (Steinke, Nasr, Jagielski 2023).

m canaries are each included with probability 1/2 by secret coin flips, the federation
runs once, and every canary gets a score from the released outputs alone (higher: more
likely included). Guessing "included" for the canaries above a threshold, the number of
correct guesses of an (epsilon, delta)-DP release is stochastically dominated by a
binomial (the paper's Theorem 3.1 with its delta term); the largest epsilon that this
rejects at the given confidence is a lower bound on the true epsilon, whatever the
parameters claim. The bound, with its search over thresholds (Bonferroni-corrected), is
Google DeepMind's ``jax_privacy.auditing.CanaryScoreAuditor.epsilon_one_run``; this module
only checks its input and states what it returns.

A lower bound, not a proof: a run whose bound stays below the claimed epsilon has not been
shown private, only not shown leaky by these canaries; one above it (at 95 % confidence,
so 1 run in 20 of an honest mechanism can still show it) names a broken promise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["CONFIDENCE", "AuditBound", "one_run_bound"]

#: Confidence of the lower bound (significance 0.05).
CONFIDENCE = 0.95


@dataclass(frozen=True)
class AuditBound:
    """The lower bound ``epsilon`` at ``delta`` from ``m`` canaries, ``included`` of them
    in the run, at ``confidence``."""

    epsilon: float
    delta: float
    m: int
    included: int
    confidence: float


def one_run_bound(
    included_scores: Sequence[float],
    excluded_scores: Sequence[float],
    *,
    delta: float,
    confidence: float = CONFIDENCE,
) -> AuditBound:
    """The one-run lower bound on epsilon at ``delta`` from the scores of the included and
    the excluded canaries (higher: more likely included; -inf for a canary the release
    says nothing about, which is then never guessed "included")."""
    included = np.asarray(included_scores, dtype=float)
    excluded = np.asarray(excluded_scores, dtype=float)
    if included.size == 0 or excluded.size == 0:
        raise ValueError("a one-run audit needs included and excluded canaries")
    if np.isnan(included).any() or np.isnan(excluded).any():
        raise ValueError("canary scores must not be NaN (use -inf for 'no information')")
    if np.isposinf(included).any() or np.isposinf(excluded).any():
        raise ValueError("canary scores must be finite or -inf")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence}")
    # imported here: jax loads with it (a second or two), and only audits need it
    from jax_privacy.auditing import CanaryScoreAuditor

    floor = min(np.min(included[np.isfinite(included)], initial=0.0), 0.0)
    floor = min(floor, np.min(excluded[np.isfinite(excluded)], initial=0.0)) - 1.0
    # the library wants finite scores; "no information" sits below every real score
    auditor = CanaryScoreAuditor(
        np.where(np.isneginf(included), floor, included),
        np.where(np.isneginf(excluded), floor, excluded),
    )
    epsilon = float(auditor.epsilon_one_run(significance=1.0 - confidence, delta=delta))
    return AuditBound(
        epsilon=epsilon,
        delta=delta,
        m=int(included.size + excluded.size),
        included=int(included.size),
        confidence=confidence,
    )
