"""Publication rules: a segment's curve is released only with enough enterprises and failures.

A curve built from one or two enterprises would describe those enterprises, not an
industry; one built on a handful of failures is noise. A segment is published only when
at least ``min_enterprises`` enterprises contributed to it and its (noisy) failure count
reaches ``min_failures``. Both are judged on released, noised counts only
(post-processing of DP outputs costs no privacy): an enterprise counts for a segment when
its noised unit total there reaches ``min_units_per_enterprise``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from coordinator.run_summary import WithheldSegment
from models.curves import RiskCurve
from models.histogram import ExitCounts

__all__ = ["segment_contributors", "apply_publication_rules", "withheld_summary"]


def segment_contributors(parts: list[ExitCounts], *, min_units: float) -> np.ndarray:
    """How many enterprises have a noised unit total of at least ``min_units`` per segment."""
    if not parts:
        return np.zeros(0, dtype=np.int64)
    totals = np.stack([p.exits.sum(axis=(1, 2)) + p.survivors for p in parts])
    return (totals >= min_units).sum(axis=0).astype(np.int64)


def apply_publication_rules(
    curves: list[RiskCurve],
    contributors: np.ndarray,
    *,
    min_enterprises: int,
    min_failures: float,
) -> list[RiskCurve]:
    """The curves with ``published`` and ``note`` set by the rules (order kept)."""
    judged = []
    for curve, count in zip(curves, contributors, strict=True):
        reasons = []
        if count < min_enterprises:
            reasons.append(f"{int(count)} enterprise(s) contributed, fewer than {min_enterprises}")
        if curve.n_failures < min_failures:
            reasons.append(
                f"{curve.n_failures:.0f} failures (noisy count), fewer than {min_failures:g}"
            )
        judged.append(dataclasses.replace(curve, published=not reasons, note="; ".join(reasons)))
    return judged


def withheld_summary(curves: list[RiskCurve]) -> tuple[WithheldSegment, ...]:
    """For the run summary: each withheld segment and why."""
    return tuple(WithheldSegment(c.segment, c.note) for c in curves if not c.published)
