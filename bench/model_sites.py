"""Enterprise sites for the model benchmark: one node folder per table of a partition.

Each folder is what ``fedrisk-node init`` and an enterprise's export would leave: the
unit file (canonical column names, only the spec's columns), node.yaml declaring the
node's segments (secure aggregation counts a node as a contributor to exactly these),
the site secret, the ledger key and the state directory (an ``entry_age`` column only
when some unit has one); the plan is then approved at
every node as its IT would (``fedrisk-node approve``), unless ``approve_by`` is None.

The benchmark's sites serve many runs (noise repetitions, settings), so their lifetime
cap defaults to :data:`BENCH_EPSILON_CAP`; what one run spends is the plan's epsilon.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import yaml

from bench.entry import BENCH_APPROVER
from common.atomic import atomic_write_bytes, atomic_write_text
from common.errors import ConfigError
from coordinator.config import CoordinatorConfig
from enterprise_node.approval import approve_at_nodes
from enterprise_node.config import CANONICAL_COLUMNS, load_node_config
from enterprise_node.node_ledger import node_key
from enterprise_node.pseudonym import load_or_create_site_secret
from models.spec import ModelSpec
from protocols.plan import TrainingPlan

__all__ = ["BENCH_EPSILON_CAP", "BENCH_DELTA_CAP", "config_for", "write_site", "write_sites"]

#: Lifetime record-level cap of a benchmark site: room for a sweep's repeated runs.
BENCH_EPSILON_CAP = 1000.0
BENCH_DELTA_CAP = 1e-5
_HEADER = "# fedrisk model-benchmark site: {name}, {n} units (written by bench/model_sites.py)\n"


def config_for(spec: ModelSpec, base: CoordinatorConfig) -> CoordinatorConfig:
    """``base`` with its plan's model spec replaced by ``spec`` (everything else kept)."""
    plan = base.plan.model_copy(update={"model_spec": spec})
    return base.model_copy(update={"plan": TrainingPlan.model_validate(plan.model_dump())})


def _node_document(
    name: str,
    spec: ModelSpec,
    segments: list[str],
    data_name: str,
    delayed: bool,
    caps: tuple[float, float],
) -> dict:
    columns: dict[str, object] = {c: c for c in CANONICAL_COLUMNS if c != "entry_age"}
    columns["entry_age"] = "entry_age" if delayed else None
    columns["covariates"] = {f: f for f in spec.feature_names}
    return {
        "node": {
            "name": name,
            "segments": segments,
            "state_dir": "state",
            "site_secret_file": "secrets/site_secret.key",
        },
        "data": {
            "path": data_name,
            "format": "auto",
            "columns": columns,
            "duration_scale": 1.0,
            "max_bad_fraction": 0.0,
        },
        "privacy": {"epsilon": caps[0], "delta": caps[1], "accountant": "rdp"},
    }


def write_site(
    folder: Path,
    units: pd.DataFrame,
    spec: ModelSpec,
    *,
    name: str,
    epsilon_cap: float = BENCH_EPSILON_CAP,
    delta_cap: float = BENCH_DELTA_CAP,
    data_format: str = "parquet",
) -> Path:
    """Write one site (data, node.yaml, secret, ledger key, state dir); its node.yaml."""
    unknown = sorted(set(units["segment"].astype(str)) - set(spec.segments))
    if unknown:
        raise ConfigError(f"site {name}: segments {unknown} are not in the spec")
    folder = Path(folder)
    delayed = bool(units["entry_age"].notna().any())
    base = [c for c in CANONICAL_COLUMNS if delayed or c != "entry_age"]
    table = units[[*base, *spec.feature_names]]
    data_name = f"units.{data_format}"
    if data_format == "parquet":
        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False)
        atomic_write_bytes(folder / data_name, buffer.getvalue())
    elif data_format == "csv":
        atomic_write_text(folder / data_name, table.to_csv(index=False))
    else:
        raise ConfigError(f"data_format must be parquet or csv, not {data_format!r}")
    segments = [s for s in spec.segments if (units["segment"] == s).any()]
    document = _node_document(name, spec, segments, data_name, delayed, (epsilon_cap, delta_cap))
    node_yaml = folder / "node.yaml"
    header = _HEADER.format(name=name, n=len(units))
    atomic_write_text(node_yaml, header + yaml.safe_dump(document, sort_keys=False))
    config = load_node_config(node_yaml)
    config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    load_or_create_site_secret(config.site_secret_path)  # HMAC key of the pseudonyms
    node_key(config)  # the ledger signing key
    return node_yaml


def write_sites(
    partition: Sequence[pd.DataFrame],
    root: Path,
    plan: TrainingPlan,
    *,
    approve_by: str | None = BENCH_APPROVER,
    prefix: str = "enterprise",
    epsilon_cap: float = BENCH_EPSILON_CAP,
    delta_cap: float = BENCH_DELTA_CAP,
    data_format: str = "parquet",
) -> list[Path]:
    """One site per table under ``root`` (``<prefix>-01`` ...), the plan approved at each
    (as their IT, by ``approve_by``; None: not approved); their node.yaml paths."""
    width = max(2, len(str(len(partition))))
    paths = [
        write_site(
            Path(root) / f"{prefix}-{i + 1:0{width}d}",
            units,
            plan.model_spec,
            name=f"{prefix}-{i + 1:0{width}d}",
            epsilon_cap=epsilon_cap,
            delta_cap=delta_cap,
            data_format=data_format,
        )
        for i, units in enumerate(partition)
    ]
    if approve_by is not None:
        approve_at_nodes(paths, plan, by=approve_by)
    return paths
