"""Non-private, centrally trained hazard network on pooled data: a benchmark baseline only.

Pooling raw data is exactly what fedrisk avoids; this model exists to measure what the
federation and DP cost in accuracy. Same architecture, encoding and loss as the nodes.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset

from common.errors import DataError
from models.features import encode_units
from models.hazard import HazardNet, hazard_nll, make_optimizer, single_thread
from models.spec import ModelSpec, TrainingSettings

__all__ = ["train_central"]


def train_central(
    frame: pd.DataFrame, spec: ModelSpec, settings: TrainingSettings, *, epochs: int, seed: int
) -> HazardNet:
    """Train on the pooled unit table for ``epochs`` shuffled passes (batch size, lr, optimizer
    from ``settings``); the batch loss is the mean per-unit NLL, as at the nodes."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    units = encode_units(frame, spec)
    if len(units) == 0:
        raise DataError("no equipment units to train on")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = HazardNet(spec)
    data = TensorDataset(
        torch.from_numpy(units.x),
        torch.from_numpy(units.interval),
        torch.from_numpy(units.event),
        torch.from_numpy(units.entry_interval),
    )
    loader = DataLoader(
        data,
        batch_size=settings.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = make_optimizer(model, settings)
    model.train()
    with single_thread():
        for _ in range(epochs):
            for x, interval, event, entry in loader:
                optimizer.zero_grad(set_to_none=True)
                hazard_nll(model(x), interval, event, entry).mean().backward()
                optimizer.step()
    model.eval()
    return model
