"""Where a node's configuration, data and state are, for one Flower ClientApp process.

In a deployment the SuperNode is started with ``--node-config "node-config='PATH'"``.
In a local federation (Simulation Engine) the run config names a manifest (JSON list of
node.yaml paths) and the node takes the entry at its ``partition-id``.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from enterprise_node.budget import BudgetGuard
from enterprise_node.config import NodeConfig, load_node_config
from enterprise_node.ingest import IngestResult, ingest
from enterprise_node.noise_calibration import calibrated_noise
from enterprise_node.noise_plan import NoisePlan
from enterprise_node.outbox import Outbox
from models.spec import ModelSpec
from protocols.plan import TrainingPlan

__all__ = ["NodeRuntime", "resolve_node_config_path", "load_runtime"]

#: Ingested tables by (node.yaml, spec, file mtime and size), least recently used first.
#: A deployed node's task process serves one node; a simulation worker (or the in-process
#: benchmark) serves many in turn, and re-ingesting each one's data for every message
#: cost seconds per round.
_INGEST_CACHE: OrderedDict[tuple[str, str, int, int], IngestResult] = OrderedDict()
_INGEST_CACHE_SIZE = 64


@dataclass(frozen=True)
class NodeRuntime:
    """A node's configuration with its accountant and outbox, for one task (one message):
    the guard and the outbox are built once per runtime (the accountant file stays the
    source of truth: the guard reads it on every check and charge)."""

    config: NodeConfig
    config_path: Path

    @cached_property
    def guard(self) -> BudgetGuard:
        return BudgetGuard(
            self.config.state_dir,
            epsilon_cap=self.config.privacy.epsilon,
            delta=self.config.privacy.delta,
        )

    @cached_property
    def outbox(self) -> Outbox:
        return Outbox(self.config.state_dir)

    def noise(self, plan: TrainingPlan, n_units: int) -> NoisePlan:
        """The node's calibrated noise for ``plan`` and ``n_units`` (kept once calibrated)."""
        return calibrated_noise(self.config.state_dir, plan, n_units)

    def units(self, spec: ModelSpec) -> IngestResult:
        """Ingested, validated units; cached per process while the file is unchanged."""
        path = self.config.data_path
        stat = path.stat() if path.exists() else None
        key = (
            str(self.config_path),
            spec.digest,
            stat.st_mtime_ns if stat else -1,
            stat.st_size if stat else -1,
        )
        if key in _INGEST_CACHE:
            _INGEST_CACHE.move_to_end(key)
            return _INGEST_CACHE[key]
        result = ingest(self.config, spec)
        _INGEST_CACHE[key] = result
        while len(_INGEST_CACHE) > _INGEST_CACHE_SIZE:
            _INGEST_CACHE.popitem(last=False)
        return result


def resolve_node_config_path(node_config: dict[str, Any], run_config: dict[str, Any]) -> Path:
    """node.yaml for this ClientApp: from the SuperNode's node config, or the manifest."""
    explicit = str(node_config.get("node-config", "") or "")
    if explicit:
        return Path(explicit)
    manifest = str(run_config.get("node-manifest", "") or "")
    if manifest and "partition-id" in node_config:
        paths = json.loads(Path(manifest).read_text(encoding="utf-8"))
        index = int(node_config["partition-id"])
        if not 0 <= index < len(paths):
            raise ConfigError(f"{manifest}: no node.yaml for partition {index}")
        return Path(paths[index])
    raise ConfigError(
        "this node has no node.yaml: start the SuperNode with "
        "--node-config \"node-config='/path/to/node.yaml'\""
    )


def load_runtime(node_config: dict[str, Any], run_config: dict[str, Any]) -> NodeRuntime:
    path = resolve_node_config_path(node_config, run_config)
    return NodeRuntime(config=load_node_config(path), config_path=path)
