"""The GLM hazard model fitted by Newton steps on summed, clipped per-unit statistics.

Model: for interval j (0-based) and encoded unit x (``models.features``),
``logit h_j(x) = alpha_j + (x - c) . beta``; theta = (alpha_0 .. alpha_{J-1}, beta), p = J + W
parameters. c (:func:`design_centers`) is the public middle of each input's range: 1/K for
a K-level one-hot, 1/2 for a numeric feature scaled to [0, 1]. Centring changes nothing in
the model, only its coordinates: without it every covariate effect is tangled with the
intercepts (x >= 0), the information matrix is badly conditioned, and under noise the
Newton steps crawl. Unit i is at risk in cells j = entry_i .. exit_i, with y_ij = 1 only
for a failure in its exit interval. With z_ij = (e_j, x_i - c), r_ij = y_ij - h_ij and
w_ij = h_ij (1 - h_ij), the unit's log-likelihood term has

    gradient     g_i = sum_j r_ij z_ij = (r_i, (sum_j r_ij) x_i)
    information  H_i = sum_j w_ij z_ij z_ij^T
                     = [[diag(w_i), w_i x_i^T], [x_i w_i^T, (sum_j w_ij) x_i x_i^T]]
                       (x_i centred).

Each unit's g_i is clipped to L2 norm C_g and H_i to Frobenius norm C_H (public bounds
from the plan). A round releases u = (sum g_i / C_g, sqrt(w) vech(sum H_i) / C_H), vech
the upper triangle row by row and w the plan's information weight, or in a round that
reuses earlier curvature only u = sum g_i / C_g. Adding or removing one unit moves u by
at most sqrt(1 + w), resp. 1, in L2 (||vech(H)||_2 <= ||H||_F), whatever the unit's
data (:func:`release_sensitivity`). This is the DP mechanism's sensitivity: everything
above is a sum over units, so it can be summed across sites inside secure aggregation
and noised once (DESIGN.md, "Privacy model"); the same noise std on every coordinate of
u is 1/sqrt(w) of it on the information matrix.

The coordinator takes a Newton step on the penalised log-likelihood
``l(theta) - ridge/2 ||theta||^2`` from the (noised) sums: theta + (H + ridge I)^-1
(G - ridge theta), with the last released H's eigenvalues raised to a floor that covers
its noise. With no
noise and no clipping the iterates are exactly Newton's method on the pooled person-period
logistic regression (tested against scikit-learn).

A GLM is a HazardNet with ``hidden_units = ()`` whose time-varying weights are zero and
whose intercepts are alpha_j - c . beta (:func:`hazard_arrays`), so outputs, scoring and
checkpoints need nothing new.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models.features import EncodedUnits
from models.spec import CategoryFeature, ModelSpec

__all__ = [
    "INITIAL_HAZARD_LOGIT",
    "release_sensitivity",
    "GlmStatistics",
    "design_centers",
    "design_norm_bound",
    "parameter_count",
    "statistics_length",
    "initial_theta",
    "unit_statistics",
    "encode_statistics",
    "decode_statistics",
    "floored_curvature",
    "floored_information",
    "newton_step",
    "noise_floor",
    "hazard_arrays",
    "theta_from_arrays",
]

#: Initial logit of every interval's hazard: logit(0.05), a public, data-independent prior,
#: for the GLM and the hazard network alike (here: the node's Newton task loads no torch).
INITIAL_HAZARD_LOGIT = -2.944


@dataclass(frozen=True, eq=False)
class GlmStatistics:
    """Summed (clipped) statistics at theta: gradient G (p,) of the log-likelihood and
    information H (p, p), symmetric; ``clipped_gradients`` / ``clipped_hessians`` count
    the units whose term the bounds shortened (they stay at the node)."""

    gradient: np.ndarray
    hessian: np.ndarray
    clipped_gradients: int = 0
    clipped_hessians: int = 0


def design_centers(spec: ModelSpec) -> np.ndarray:
    """c: the public middle of each encoded input, 1/K for each of a K-level one-hot's
    columns (segment, equipment class, category features), 1/2 for a numeric feature."""
    centers = [np.full(len(spec.segments), 1.0 / len(spec.segments))]
    centers.append(np.full(len(spec.equipment_classes), 1.0 / len(spec.equipment_classes)))
    for feature in spec.features:
        if isinstance(feature, CategoryFeature):
            centers.append(np.full(len(feature.levels), 1.0 / len(feature.levels)))
        else:
            centers.append(np.array([0.5]))
    return np.concatenate(centers)


def design_norm_bound(spec: ModelSpec) -> float:
    """z_max: the largest ||z_ij|| = ||(e_j, x - c)|| the spec's public bounds allow. Its
    square is 1 (the interval indicator), plus (K - 1) / K per K-level one-hot (exactly
    one 1), plus 1/4 per numeric feature in [0, 1]. Clip bounds are relative to it."""
    squared = 1.0 + sum((k - 1) / k for k in (len(spec.segments), len(spec.equipment_classes)))
    for feature in spec.features:
        if isinstance(feature, CategoryFeature):
            squared += (len(feature.levels) - 1) / len(feature.levels)
        else:
            squared += 0.25
    return math.sqrt(squared)


def parameter_count(spec: ModelSpec) -> int:
    """p = J interval intercepts + the encoded input width."""
    return spec.time_grid.n_intervals + spec.input_width


def statistics_length(spec: ModelSpec, *, with_information: bool = True) -> int:
    """Length of the released vector: p gradient entries, + p(p+1)/2 for vech(H) in a
    round that releases the information matrix."""
    p = parameter_count(spec)
    return p + p * (p + 1) // 2 if with_information else p


def release_sensitivity(information_weight: int | None) -> float:
    """L2 sensitivity of u to adding or removing one unit: sqrt(1 + w) with the
    information matrix at weight w, 1 for the gradient alone (None)."""
    return 1.0 if information_weight is None else math.sqrt(1.0 + information_weight)


def initial_theta(spec: ModelSpec) -> np.ndarray:
    """The public starting point: every interval's hazard 0.05, no covariate effect."""
    theta = np.zeros(parameter_count(spec))
    theta[: spec.time_grid.n_intervals] = INITIAL_HAZARD_LOGIT
    return theta


def _cells(units: EncodedUnits, theta: np.ndarray, spec: ModelSpec):
    """(x - c, r, w): centred inputs, residuals y - h and weights h(1-h), zero outside
    the risk set."""
    n_intervals = spec.time_grid.n_intervals
    x = np.asarray(units.x, dtype=np.float64) - design_centers(spec)
    alpha, beta = theta[:n_intervals], theta[n_intervals:]
    cells = np.arange(n_intervals)[None, :]
    at_risk = (cells >= units.entry_interval[:, None]) & (cells <= units.interval[:, None])
    target = (cells == units.interval[:, None]) & (units.event[:, None] == 1)
    eta = alpha[None, :] + (x @ beta)[:, None]
    h = 0.5 * (1.0 + np.tanh(0.5 * eta))  # sigmoid without overflow warnings
    r = np.where(at_risk, target - h, 0.0)
    w = np.where(at_risk, h * (1.0 - h), 0.0)
    return x, r, w


def _clip_factors(norms: np.ndarray, bound: float) -> np.ndarray:
    """min(1, bound / norm) per unit (1 for a zero norm)."""
    safe = np.where(norms > 0, norms, 1.0)
    return np.minimum(1.0, bound / safe)


def unit_statistics(
    units: EncodedUnits,
    theta: np.ndarray,
    spec: ModelSpec,
    *,
    gradient_clip: float = math.inf,
    hessian_clip: float = math.inf,
) -> GlmStatistics:
    """Sum over units of each unit's gradient and information, each clipped to its bound.

    Vectorised: no per-unit p x p matrix is formed (the block form in the module
    docstring gives every norm and sum from n x J arrays).
    """
    n_intervals = spec.time_grid.n_intervals
    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape != (parameter_count(spec),):
        raise ValueError(f"theta: expected shape ({parameter_count(spec)},), got {theta.shape}")
    x, r, w = _cells(units, theta, spec)
    x_sq = np.einsum("ij,ij->i", x, x)
    r_sum, w_sum = r.sum(axis=1), w.sum(axis=1)
    g_norm = np.sqrt(np.einsum("ij,ij->i", r, r) + r_sum**2 * x_sq)
    w_sq = np.einsum("ij,ij->i", w, w)
    h_norm = np.sqrt(w_sq + 2.0 * x_sq * w_sq + w_sum**2 * x_sq**2)
    c_g = _clip_factors(g_norm, gradient_clip)
    c_h = _clip_factors(h_norm, hessian_clip)
    gradient = np.concatenate([c_g @ r, x.T @ (c_g * r_sum)])
    weighted = c_h[:, None] * w
    hessian = np.zeros((parameter_count(spec), parameter_count(spec)))
    hessian[:n_intervals, :n_intervals] = np.diag(weighted.sum(axis=0))
    cross = weighted.T @ x
    hessian[:n_intervals, n_intervals:] = cross
    hessian[n_intervals:, :n_intervals] = cross.T
    hessian[n_intervals:, n_intervals:] = (x * (c_h * w_sum)[:, None]).T @ x
    return GlmStatistics(
        gradient=gradient,
        hessian=hessian,
        clipped_gradients=int(np.sum(c_g < 1.0)),
        clipped_hessians=int(np.sum(c_h < 1.0)),
    )


def encode_statistics(
    stats: GlmStatistics,
    *,
    gradient_clip: float,
    hessian_clip: float,
    information_weight: int | None,
) -> np.ndarray:
    """u = (G / C_g, sqrt(w) vech(H) / C_H), or G / C_g alone when ``information_weight``
    is None: the vector whose per-unit sensitivity is :func:`release_sensitivity`."""
    gradient = stats.gradient / gradient_clip
    if information_weight is None:
        return gradient
    upper = np.triu_indices(gradient.shape[0])
    weight = math.sqrt(information_weight)
    return np.concatenate([gradient, weight * stats.hessian[upper] / hessian_clip])


def decode_statistics(
    vector: np.ndarray,
    spec: ModelSpec,
    *,
    gradient_clip: float,
    hessian_clip: float,
    information_weight: int | None,
) -> GlmStatistics:
    """G, and symmetric H when the vector holds it (else an empty 0 x 0 matrix), from a
    (summed) u; H's structural zeros (the interval block is diagonal: a cell belongs to
    one interval) are restored, a public post-processing."""
    p = parameter_count(spec)
    vector = np.asarray(vector, dtype=np.float64)
    expected = statistics_length(spec, with_information=information_weight is not None)
    if vector.shape != (expected,):
        raise ValueError(f"GLM statistics: expected {expected} values, got {vector.shape}")
    gradient = vector[:p] * gradient_clip
    if information_weight is None:
        return GlmStatistics(gradient=gradient, hessian=np.zeros((0, 0)))
    hessian = np.zeros((p, p))
    hessian[np.triu_indices(p)] = vector[p:] * hessian_clip / math.sqrt(information_weight)
    hessian = hessian + hessian.T - np.diag(np.diag(hessian))
    n_intervals = spec.time_grid.n_intervals
    block = hessian[:n_intervals, :n_intervals]
    hessian[:n_intervals, :n_intervals] = np.diag(np.diag(block))
    return GlmStatistics(gradient=gradient, hessian=hessian)


def noise_floor(hessian_noise_std: float, p: int) -> float:
    """About the spectral norm of a symmetric p x p Gaussian noise matrix with entry std
    s: 2 s sqrt(p) (Wigner semicircle edge). Raising H's eigenvalues to it keeps a noisy
    H positive definite without shrinking the well-determined directions."""
    return 2.0 * hessian_noise_std * math.sqrt(p)


def floored_curvature(hessian: np.ndarray, eigen_floor: float) -> np.ndarray:
    """H with its eigenvalues raised to ``eigen_floor``: the noisy information matrix made
    positive definite where its noise could have flipped a direction."""
    values, vectors = np.linalg.eigh(hessian)
    return (vectors * np.maximum(values, eigen_floor)) @ vectors.T


def floored_information(hessian: np.ndarray, *, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """(eigenvalues, eigenvectors) of H + ridge I, the matrix a Newton step inverts (H
    already floored where it is noisy: :func:`floored_curvature`)."""
    values, vectors = np.linalg.eigh(hessian)
    values = values + ridge
    if np.any(values <= 0):
        raise ValueError("Newton step: the information matrix is singular; use a ridge > 0")
    return values, vectors


def newton_step(
    theta: np.ndarray,
    stats: GlmStatistics,
    *,
    ridge: float,
    information: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """theta + (H + ridge I)^-1 (G - ridge theta); ``information`` is
    :func:`floored_information` of the matrix to invert when the caller has one (a
    floored, earlier curvature), else the statistics' own H."""
    theta = np.asarray(theta, dtype=np.float64)
    values, vectors = information or floored_information(stats.hessian, ridge=ridge)
    direction = stats.gradient - ridge * theta
    return theta + vectors @ ((vectors.T @ direction) / values)


def hazard_arrays(theta: np.ndarray, spec: ModelSpec) -> list[np.ndarray]:
    """The GLM as HazardNet arrays (``hidden_units`` must be empty), state_dict order:
    baseline.weight (J, W) = 0, baseline.bias = alpha - c . beta, risk.0.weight (1, W) =
    beta, risk.0.bias = 0. Float64, so theta survives a checkpoint (to rounding)."""
    if spec.hidden_units:
        raise ValueError("the GLM hazard model needs model_spec.hidden_units: []")
    n_intervals, width = spec.time_grid.n_intervals, spec.input_width
    theta = np.asarray(theta, dtype=np.float64)
    return [
        np.zeros((n_intervals, width)),
        theta[:n_intervals] - float(design_centers(spec) @ theta[n_intervals:]),
        theta[n_intervals:].reshape(1, width).copy(),
        np.zeros(1),
    ]


def theta_from_arrays(arrays: list[np.ndarray], spec: ModelSpec) -> np.ndarray:
    """theta of HazardNet arrays that hold a GLM (time-varying weights zero)."""
    if spec.hidden_units or len(arrays) != 4:
        raise ValueError("not a GLM hazard model: expected a HazardNet with hidden_units []")
    baseline_w, baseline_b, risk_w, risk_b = (np.asarray(a, dtype=np.float64) for a in arrays)
    if np.any(baseline_w != 0.0):
        raise ValueError("not a GLM hazard model: its covariate effects vary by interval")
    beta = risk_w.reshape(-1)
    return np.concatenate([baseline_b + risk_b[0] + float(design_centers(spec) @ beta), beta])
