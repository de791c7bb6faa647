"""The curves' accuracy under secure aggregation with DP, by simulation: each node adds a
discrete Gaussian share, so the band's noise variance is n share_sigma^2; max |F error|
against the truth and the bands' coverage per epsilon (bench/coverage.py's pieces)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from statistics import fmean
from typing import Any

import numpy as np

from bench.coverage import SimulationSetup, draw_replicate, node_sigma, noised_curves, share_sigma
from models.spec import ModelSpec

__all__ = ["EPSILONS", "accuracy_scale", "accuracy_study"]

EPSILONS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, math.inf)


def accuracy_study(
    spec: ModelSpec,
    *,
    replicates: int,
    setup: SimulationSetup,
    epsilons: Sequence[float] = EPSILONS,
    seed: int = 0,
    censor_weight: float = 0.5,
) -> dict[str, dict[str, float]]:
    """Per epsilon, with the noise of a secure run (each of the ``setup.n_enterprises``
    nodes adds a share of scale ``share_sigma``, the band's noise variance is
    n share_sigma^2): max |F_hat - F_federation| over segments and t_1..t_J (mean, p90
    and max over replicates) and the share of those points inside the 95 % band."""
    n_nodes = setup.n_enterprises
    shares = {eps: share_sigma(eps, spec, n_nodes=n_nodes) for eps in epsilons}
    max_errors: dict[float, list[float]] = {eps: [] for eps in epsilons}
    covered: dict[float, list[float]] = {eps: [] for eps in epsilons}
    for seq in np.random.SeedSequence(seed).spawn(replicates):
        rng = np.random.default_rng(seq)
        replicate = draw_replicate(rng, spec, setup)
        truth = replicate.true_failure[:, 1:]
        for eps in epsilons:
            curves = noised_curves(
                replicate, spec, sigma=shares[eps], rng=rng, censor_weight=censor_weight
            )
            estimate, lower, upper = (band[:, 1:] for band in curves)
            max_errors[eps].append(float(np.abs(estimate - truth).max()))
            covered[eps].append(float(np.mean((lower <= truth) & (truth <= upper))))
    return {
        _eps_key(eps): {
            "central_noise_multiplier": node_sigma(eps),
            "share_sigma": shares[eps],
            "total_noise_std": math.sqrt(n_nodes) * shares[eps],
            "max_abs_error_mean": fmean(max_errors[eps]),
            "max_abs_error_p90": float(np.percentile(max_errors[eps], 90)),
            "max_abs_error_max": max(max_errors[eps]),
            # the spine's acceptance bound (max |F error| <= 0.03 in every segment)
            "share_of_replicates_within_0_03": fmean(e <= 0.03 for e in max_errors[eps]),
            "coverage_mean": fmean(covered[eps]),
        }
        for eps in epsilons
    }


def accuracy_scale(
    spec: ModelSpec, setup: SimulationSetup, *, replicates: int, seed: int
) -> dict[str, Any]:
    """The accuracy study of one federation size, with its setup and secure-sum threshold."""
    return {
        "setup": asdict(setup),
        "threshold": setup.n_enterprises // 2 + 1,
        "epsilons": accuracy_study(spec, replicates=replicates, setup=setup, seed=seed),
    }


def _eps_key(epsilon: float) -> str:
    return "inf" if math.isinf(epsilon) else repr(float(epsilon))
