"""node.yaml: where the site's data is, how its columns map, and the node's privacy cap.

Relative paths are resolved against the directory holding node.yaml. Unknown keys are
errors naming the key and the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from protocols.config_file import StrictModel, load_yaml_model

__all__ = [
    "CANONICAL_COLUMNS",
    "ColumnMap",
    "DataSource",
    "PrivacyCap",
    "NodeSettings",
    "NodeConfig",
    "load_node_config",
]

#: Canonical columns of the factory data contract (DESIGN.md), covariates aside.
CANONICAL_COLUMNS: tuple[str, ...] = (
    "unit_id",
    "segment",
    "equipment_class",
    "duration",
    "failed",
    "entry_age",
)


class ColumnMap(StrictModel):
    """Canonical column name -> the site's own column name.

    ``entry_age`` is optional (None: no delayed entry). ``covariates`` maps each
    feature of the coordinator's model spec to the site's column.
    """

    unit_id: str = "unit_id"
    segment: str = "segment"
    equipment_class: str = "equipment_class"
    duration: str = "duration"
    failed: str = "failed"
    entry_age: str | None = None
    covariates: dict[str, str] = Field(default_factory=dict)


class DataSource(StrictModel):
    """The site's data file and how to read it."""

    path: str
    format: Literal["auto", "csv", "parquet"] = "auto"
    columns: ColumnMap = ColumnMap()
    duration_scale: float = Field(
        1.0, gt=0, description="multiply site durations by this to get the federation's unit"
    )
    max_bad_fraction: float = Field(0.01, ge=0, le=1)


class PrivacyCap(StrictModel):
    """The enterprise's own lifetime cap on record-level privacy loss, across runs."""

    epsilon: float = Field(gt=0)
    delta: float = Field(gt=0, lt=1)
    accountant: Literal["rdp"] = "rdp"
    distributed_noise: bool = Field(
        True,
        description="under secure aggregation, add only a share of the curve noise, counting "
        "on the shares of the threshold's other nodes (honest-but-curious broker, honest "
        "peers); false: add the whole noise here, as without secure aggregation",
    )
    allow_non_private: bool = Field(
        False,
        description="serve plans with record-level DP off (synthetic benchmarks only); "
        "such results carry no privacy guarantee and are marked so",
    )


class NodeSettings(StrictModel):
    """Identity and local state of the node."""

    name: str
    segments: list[str] | None = Field(
        None,
        description="industry segments this enterprise declares (public registration); "
        "under secure aggregation it counts as a contributor to exactly these",
    )
    state_dir: str = "state"
    site_secret_file: str = "secrets/site_secret.key"
    auth_key_file: str = Field(
        "secrets/flwr_auth_key",
        description="ECDSA P-384 key (OpenSSH) the SuperNode authenticates with; the broker "
        "registers its .pub",
    )
    ledger_key_file: str = Field(
        "secrets/ledger_key.pem",
        description="Ed25519 key that signs the node's ledger (made on first use, 0600)",
    )


class NodeConfig(StrictModel):
    """The whole of node.yaml; ``base_dir`` is set by :func:`load_node_config`."""

    node: NodeSettings
    data: DataSource
    privacy: PrivacyCap
    base_dir: str = "."

    def resolve(self, relative: str) -> Path:
        """A path from node.yaml, resolved against node.yaml's directory."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else (Path(self.base_dir) / path).resolve()

    @property
    def data_path(self) -> Path:
        return self.resolve(self.data.path)

    @property
    def state_dir(self) -> Path:
        return self.resolve(self.node.state_dir)

    @property
    def site_secret_path(self) -> Path:
        return self.resolve(self.node.site_secret_file)


def load_node_config(path: Path) -> NodeConfig:
    """Load node.yaml strictly; relative paths in it refer to its own directory."""
    path = Path(path).resolve()
    config = load_yaml_model(NodeConfig, path)
    return config.model_copy(update={"base_dir": str(path.parent)})
