"""Local training of the hazard model at a node: DP-SGD with Opacus, and a plain baseline.

One DP-SGD example is one equipment unit: its whole likelihood term (all its at-risk
intervals) is one per-sample loss, so clipping bounds each unit's influence and the
privacy unit is the unit's history. Batches are Poisson samples at rate q = batch_size / n
and training runs exactly ``steps = ceil(local_epochs / q)`` noisy steps, so the privacy
cost can be planned (and refused) BEFORE any data is touched; see :func:`dp_sgd_schedule`.

The node's persistent accountant lives elsewhere: this module only returns the mechanism
parameters (sigma, q, steps). Opacus's own accountant is not used for budgets.
"""

from __future__ import annotations

import math
import secrets
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from opacus import PrivacyEngine
from opacus.data_loader import DPDataLoader
from torch.utils.data import DataLoader, TensorDataset

from common.errors import ConfigError
from enterprise_node.noise_plan import dp_sgd_schedule
from models.features import EncodedUnits
from models.hazard import (
    HazardNet,
    arrays_to_state,
    hazard_nll,
    make_optimizer,
    single_thread,
    state_to_arrays,
)
from models.spec import ModelSpec, TrainingSettings

__all__ = [
    "OPACUS_SECURE_RNG",
    "LocalUpdate",
    "dp_sgd_schedule",
    "train_dp",
    "train_plain",
]

OPACUS_SECURE_RNG = False
"""Opacus runs with secure_mode=False: torchcsprng is not installable here, so DP-SGD noise
and Poisson sampling come from torch's non-cryptographic generator (seeded from the OS)."""

_INSECURE_RNG_WARNING = (
    "Opacus DP-SGD noise and Poisson sampling come from torch's non-cryptographic RNG "
    "(secure_mode=False; torchcsprng is unavailable). The generator is seeded from the OS "
    "CSPRNG, not from the public plan seed; say so in reports."
)
_HOOK_WARNING = "Full backward hook is firing when gradients are computed"


@dataclass(frozen=True, eq=False)
class LocalUpdate:
    """Result of one local training task.

    ``arrays`` are the new model weights (state_dict order). ``sample_rate``, ``steps``,
    ``noise_multiplier`` (noise std / max_grad_norm) and ``max_grad_norm`` are the DP-SGD
    mechanism parameters to account for (noise_multiplier 0 = no DP). ``mean_loss`` (mean
    per-unit NLL over the non-empty batches) and ``num_examples`` are NOT privatised:
    keep them at the node or treat them as extra releases.
    """

    arrays: list[np.ndarray]
    num_examples: int
    sample_rate: float
    steps: int
    noise_multiplier: float
    max_grad_norm: float
    mean_loss: float
    seconds: float


def train_dp(
    arrays: list[np.ndarray],
    units: EncodedUnits,
    spec: ModelSpec,
    settings: TrainingSettings,
    *,
    noise_multiplier: float,
    max_grad_norm: float,
    seed: int,
) -> LocalUpdate:
    """Run exactly the scheduled DP-SGD steps (Opacus, flat clipping, Poisson sampling).

    ``seed`` seeds torch for the non-private parts only; noise and sampling use a generator
    seeded from the OS, because the plan's seed is public and would reveal the noise.
    """
    if noise_multiplier < 0 or max_grad_norm <= 0:
        raise ConfigError("DP-SGD needs noise_multiplier >= 0 and max_grad_norm > 0")
    warnings.warn(_INSECURE_RNG_WARNING, UserWarning, stacklevel=2)
    sample_rate, steps = dp_sgd_schedule(len(units), settings)
    net = _model_from(arrays, spec)
    private_rng = torch.Generator().manual_seed(_private_seed())
    # Poisson sampling at exactly the accounted rate q. make_private(poisson_sampling=True)
    # would re-derive q as 1 / ceil(n / batch_size), which differs from what is accounted.
    loader = DPDataLoader(_dataset(units), sample_rate=sample_rate, generator=private_rng)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Secure RNG turned off")  # ours is above
        engine = PrivacyEngine(accountant="rdp", secure_mode=OPACUS_SECURE_RNG)
    module, optimizer, loader = engine.make_private(
        module=net,
        optimizer=make_optimizer(net, settings),
        data_loader=loader,
        noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm,
        poisson_sampling=False,  # the loader above already samples Poisson at rate q
        noise_generator=private_rng,
    )
    module.forbid_grad_accumulation()
    mean_loss, seconds = _run_steps(module, optimizer, loader, steps, seed)
    return LocalUpdate(
        arrays=state_to_arrays(net),
        num_examples=len(units),
        sample_rate=sample_rate,
        steps=steps,
        noise_multiplier=float(noise_multiplier),
        max_grad_norm=float(max_grad_norm),
        mean_loss=mean_loss,
        seconds=seconds,
    )


def train_plain(
    arrays: list[np.ndarray],
    units: EncodedUnits,
    spec: ModelSpec,
    settings: TrainingSettings,
    *,
    seed: int,
) -> LocalUpdate:
    """The same schedule without DP (shuffled fixed-size batches): baseline and timing only."""
    sample_rate, steps = dp_sgd_schedule(len(units), settings)
    net = _model_from(arrays, spec)
    loader = DataLoader(
        _dataset(units),
        batch_size=settings.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    mean_loss, seconds = _run_steps(net, make_optimizer(net, settings), loader, steps, seed)
    return LocalUpdate(
        arrays=state_to_arrays(net),
        num_examples=len(units),
        sample_rate=sample_rate,
        steps=steps,
        noise_multiplier=0.0,
        max_grad_norm=math.inf,
        mean_loss=mean_loss,
        seconds=seconds,
    )


def _private_seed() -> int:
    """Seed of the noise/sampling generator: from the OS CSPRNG, never from the plan."""
    return secrets.randbits(63)


def _model_from(arrays: list[np.ndarray], spec: ModelSpec) -> HazardNet:
    net = HazardNet(spec)
    arrays_to_state(net, arrays)
    net.train()
    return net


def _dataset(units: EncodedUnits) -> TensorDataset:
    return TensorDataset(
        torch.from_numpy(np.ascontiguousarray(units.x, dtype=np.float32)),
        torch.from_numpy(units.interval.astype(np.int64)),
        torch.from_numpy(units.event.astype(np.int64)),
        torch.from_numpy(units.entry_interval.astype(np.int64)),
    )


def _run_steps(
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    steps: int,
    seed: int,
) -> tuple[float, float]:
    """Exactly ``steps`` optimizer steps, cycling the loader; returns (mean loss, seconds).

    Torch's global RNG is seeded with the (public) ``seed`` inside a forked RNG state, so
    any incidental randomness is reproducible and the caller's RNG state is untouched. The
    batch loss is the mean of per-unit losses; an empty Poisson batch contributes a
    zero loss, so a DP step still adds pure noise (as the accounting assumes).
    """
    losses: list[float] = []
    done = 0
    started = time.perf_counter()
    with warnings.catch_warnings(), single_thread(), torch.random.fork_rng(devices=[]):
        warnings.filterwarnings("ignore", message=_HOOK_WARNING)
        torch.manual_seed(seed)
        while done < steps:
            for x, interval, event, entry in loader:
                optimizer.zero_grad(set_to_none=True)
                per_unit = hazard_nll(module(x), interval, event, entry)
                loss = per_unit.mean() if len(per_unit) else per_unit.sum()
                loss.backward()
                optimizer.step()
                if len(per_unit):
                    losses.append(float(loss.detach()))
                done += 1
                if done == steps:
                    break
    seconds = time.perf_counter() - started
    return (float(np.mean(losses)) if losses else math.nan), seconds
