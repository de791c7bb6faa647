"""Test helper: a completed run's published outputs with a known curve, for the pricing,
pool, product sheet and fleet-risk tests.

The curve has a constant hazard of 0.03 a year on 12-month edges to 120 months, so a
unit of any age fails within a 12-month term with q = 0.03, and its band is F +- 0.02.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.curves import RiskCurve

__all__ = ["constant_hazard_curve", "toy_run_dir"]


def constant_hazard_curve(segment: str = "nev_battery", *, published: bool = True) -> RiskCurve:
    """S(12 k) = 0.97^k with its band F +- 0.02 (clipped to [0, 1])."""
    edges = np.arange(0.0, 121.0, 12.0)
    survival = 0.97 ** np.arange(len(edges))
    failure = 1 - survival
    return RiskCurve(
        segment=segment, edges=edges, survival=survival,
        hazard=np.full(len(edges) - 1, 0.03), failure=failure,
        failure_lower=np.clip(failure - 0.02, 0, 1), failure_upper=np.clip(failure + 0.02, 0, 1),
        n_units=5000.0, n_failures=800.0, published=published,
    )  # fmt: skip


def toy_run_dir(
    run: Path,
    *,
    segments: Sequence[str] = ("nev_battery",),
    published: bool = True,
    run_id: str = "run-7",
) -> Path:
    """``run`` (made) holding curves.json with a constant-hazard curve per segment and a
    summary.json naming ``run_id``."""
    run.mkdir(parents=True)
    curves = [constant_hazard_curve(s, published=published).to_dict() for s in segments]
    (run / "curves.json").write_text(json.dumps({"curves": curves}))
    (run / "summary.json").write_text(json.dumps({"run_id": run_id}))
    return run
