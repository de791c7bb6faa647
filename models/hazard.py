"""Discrete-time hazard network: a logistic hazard per grid interval, covariates in.

For interval j (0-based) the network gives a logit; h_j = sigmoid(logit_j) is the
probability of failing in interval j given survival to its start, and
S(t_j) = prod_{k<=j} (1 - h_k). A unit at risk in intervals [entry, interval] contributes
the Bernoulli likelihood of "survived" cells before its exit interval and of its exit
cell (failure or survival). Only Opacus-supported layers are used (Linear, ReLU).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.digest import model_digest
from models.glm import INITIAL_HAZARD_LOGIT
from models.spec import ModelSpec, TrainingSettings

__all__ = [
    "HazardNet",
    "hazard_nll",
    "survival_curves",
    "risk_score",
    "horizon_cumulative_hazard",
    "init_arrays",
    "state_to_arrays",
    "arrays_to_state",
    "model_digest",
    "make_optimizer",
    "single_thread",
]


class HazardNet(nn.Module):
    """Logistic hazard per interval: logit h_j(x) = baseline_j(x) + risk(x).

    ``baseline`` is linear in the inputs, one output per interval: through the segment and
    equipment-class one-hots it gives each its own baseline hazard shape, and lets the
    covariates' effects vary over time. ``risk`` is a scalar score shared by every
    interval (an MLP over ``hidden_units``, linear when empty): a covariate effect that
    holds at all ages is learnt once from all intervals' data, not once per interval,
    which matters under DP-SGD where every extra free parameter adds noise.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        width = spec.input_width
        self.baseline = nn.Linear(width, spec.time_grid.n_intervals)
        layers: list[nn.Module] = []
        for hidden in spec.hidden_units:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.risk = nn.Sequential(*layers)
        self.n_intervals = spec.time_grid.n_intervals
        # Start from a small hazard in every interval (a fixed, public prior) rather than
        # 0.5: equipment rarely fails in any one interval, and every step spent walking the
        # baseline down is a DP-SGD step not spent on the covariates.
        nn.init.constant_(self.baseline.bias, INITIAL_HAZARD_LOGIT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.baseline(x) + self.risk(x)


def hazard_nll(
    logits: torch.Tensor,
    interval: torch.Tensor,
    event: torch.Tensor,
    entry_interval: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-unit negative log-likelihood, shape (B,), summed over the unit's at-risk cells.

    Cell j counts when entry_interval <= j <= interval; its target is 1 only for a
    failure in the exit interval. The batch loss is the MEAN of these values: never divide
    by the number of at-risk cells, which would make one unit's gradient depend on others.
    """
    n_intervals = logits.shape[1]
    cells = torch.arange(n_intervals, device=logits.device).unsqueeze(0)
    exit_at = interval.long().unsqueeze(1)
    at_risk = cells <= exit_at
    if entry_interval is not None:
        at_risk = at_risk & (cells >= entry_interval.long().unsqueeze(1))
    target = ((cells == exit_at) & (event.long().unsqueeze(1) == 1)).to(logits.dtype)
    cell_nll = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return torch.where(at_risk, cell_nll, torch.zeros_like(cell_nll)).sum(dim=1)


def survival_curves(model: nn.Module, x: np.ndarray | torch.Tensor) -> np.ndarray:
    """S(t) on the grid, shape (n, J+1): S(t_0) = 1 and S(t_j) = prod_{k<=j} (1 - h_k)."""
    inputs = torch.as_tensor(np.asarray(x, dtype=np.float32))
    with torch.no_grad():
        logits = model(inputs).double()
    log_survival = torch.cumsum(F.logsigmoid(-logits), dim=1)
    ones = torch.ones((logits.shape[0], 1), dtype=torch.float64)
    return torch.cat([ones, torch.exp(log_survival)], dim=1).numpy()


def risk_score(model: nn.Module, x: np.ndarray | torch.Tensor) -> np.ndarray:
    """THE risk score of fedrisk: F(t_J | x) = 1 - S(t_J | x), shape (n,), float64.

    The predicted probability that the unit fails by the end of the published grid t_J.
    It is the one score by which fedrisk ranks units and computes its C-index (Harrell's
    C, :func:`models.metrics.harrell_c`), because:

    - it is defined for every model the plan can train (any model that gives a logit per
      interval, whatever its architecture or time-varying effects; a network's inner
      ``risk`` head is not: the baseline can vary with the covariates too);
    - it is what insurance pricing needs: the probability of a claim over the horizon;
    - for a GLM hazard model (logit h_j = alpha_j + eta(x): a linear risk, no
      time-varying effects), -log S(t_J) = sum_j log(1 + exp(alpha_j + eta)) is strictly
      increasing in eta, so it ranks units exactly as the linear predictor does.

    Computed in float64 (the model is run on a float64 copy) through the log-survival
    log S(t_J) = sum_j logsigmoid(-logit_j) and F = -expm1(log S), so F is accurate to
    the last digits even near 0. Near 1, distinct units can round to the same F; rank by
    :func:`horizon_cumulative_hazard`, which is strictly increasing in F and keeps them
    apart.
    """
    return -np.expm1(-horizon_cumulative_hazard(model, x))


def horizon_cumulative_hazard(model: nn.Module, x: np.ndarray | torch.Tensor) -> np.ndarray:
    """H(t_J | x) = -log S(t_J | x) = -sum_j logsigmoid(-logit_j), shape (n,), float64.

    The ranking form of :func:`risk_score`: F = 1 - exp(-H) is strictly increasing in H,
    so both order units alike, but H separates units whose F rounds to the same float
    (F near 1). Harrell's C on the risk score is computed on H.
    """
    inputs = torch.as_tensor(np.asarray(x, dtype=np.float64))
    exact = copy.deepcopy(model).double()
    with torch.no_grad():
        logits = exact(inputs)
    return -F.logsigmoid(-logits).sum(dim=1).numpy()


def init_arrays(spec: ModelSpec, *, seed: int) -> list[np.ndarray]:
    """Initial weights of a fresh HazardNet, reproducible from ``seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return state_to_arrays(HazardNet(spec))


def state_to_arrays(model: nn.Module) -> list[np.ndarray]:
    """The model's state as numpy arrays, in state_dict order (fixed by the architecture)."""
    return [t.detach().cpu().numpy().copy() for t in model.state_dict().values()]


def arrays_to_state(model: nn.Module, arrays: list[np.ndarray]) -> None:
    """Load arrays (from :func:`state_to_arrays` order) into the model, checking shapes."""
    state = model.state_dict()
    if len(arrays) != len(state):
        raise ValueError(f"model arrays: expected {len(state)} arrays, got {len(arrays)}")
    loaded = {}
    for (name, current), array in zip(state.items(), arrays, strict=True):
        values = np.asarray(array)
        if tuple(values.shape) != tuple(current.shape):
            raise ValueError(
                f"model arrays: {name} expected shape {tuple(current.shape)}, "
                f"got {tuple(values.shape)}"
            )
        if not np.all(np.isfinite(values)):
            raise ValueError(f"model arrays: {name} has non-finite values")
        loaded[name] = torch.as_tensor(values, dtype=current.dtype).clone()
    model.load_state_dict(loaded)


def make_optimizer(model: nn.Module, settings: TrainingSettings) -> torch.optim.Optimizer:
    """The optimizer named in the training settings (sgd or adam) at its learning rate."""
    if settings.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=settings.learning_rate)
    return torch.optim.Adam(model.parameters(), lr=settings.learning_rate)


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread, then restore the setting.

    The network is tiny: extra threads only add overhead, and they oversubscribe the CPU
    when several nodes share a machine (measured: 10x slower median under contention).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
