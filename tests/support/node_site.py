"""Test helper: a small factory site (data file + node.yaml) with injectable bad cells.

Used by the node ingestion tests; the synthetic-data generator lives elsewhere. Also the
plan and config factories tests share (:func:`plan_with`, :func:`config_with`): they
re-validate, so a test that needs DP-SGD or clear tasks pins them (:data:`DP_SGD`,
:data:`CLEAR_DP_SGD`) instead of relying on the shipped defaults.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from coordinator.config import CoordinatorConfig, load_coordinator_config
from enterprise_node.approval import approve_at_nodes
from enterprise_node.config import NodeConfig, load_node_config
from models.spec import ModelSpec
from protocols.plan import TrainingPlan

__all__ = [
    "REPO",
    "COORDINATOR_YAML",
    "DP_SGD",
    "CLEAR_DP_SGD",
    "load_spec",
    "plan_with",
    "config_with",
    "good_rows",
    "approve_plan",
    "NodeSite",
]

REPO = Path(__file__).resolve().parents[2]
COORDINATOR_YAML = REPO / "configs" / "coordinator.yaml"

_CLASSES = {
    "semiconductor_fab": ("lithography", "etch", "deposition"),
    "nev_battery": ("cell_former", "formation", "coating"),
    "industrial_robot": ("robot_arm", "agv", "welding_cell"),
}
_SEGMENTS = tuple(_CLASSES)


#: Plan settings (for :func:`plan_with` / :func:`config_with`) of tests of local DP-SGD +
#: FedAvgM: Opacus, model updates, update ranges, server momentum, enterprise-level DP.
DP_SGD: dict[str, Any] = {"training": {"method": "dp_sgd"}}
#: ... and of tests of tasks served in the clear (no secure aggregation), which only
#: DP-SGD allows (the Newton fit adds its noise once, in the secure sum).
CLEAR_DP_SGD: dict[str, Any] = {"secure_aggregation": False, "training": {"method": "dp_sgd"}}


def _merged(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes``: nested mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def plan_with(plan: TrainingPlan, *changes: Mapping[str, Any]) -> TrainingPlan:
    """``plan`` with each of ``changes`` (nested plan settings) merged in, RE-VALIDATED
    (``model_copy(update=...)`` is not): an invalid combination fails here, loudly."""
    data = plan.model_dump(mode="json")
    for change in changes:
        data = _merged(data, change)
    return TrainingPlan.model_validate(data)


def config_with(
    config: CoordinatorConfig | None = None,
    *,
    plan: Mapping[str, Any] | None = None,
    **top: Any,
) -> CoordinatorConfig:
    """``config`` (default: configs/coordinator.yaml) with nested ``plan`` settings and
    top-level sections (``enterprise_budget={...}``, ``federation={...}``) merged in,
    re-validated as a whole."""
    base = load_coordinator_config(COORDINATOR_YAML) if config is None else config
    data = _merged(base.model_dump(mode="json"), {"plan": dict(plan or {}), **top})
    return CoordinatorConfig.model_validate(data)


def load_spec() -> ModelSpec:
    """The demo model spec from configs/coordinator.yaml."""
    return load_coordinator_config(COORDINATOR_YAML).plan.model_spec


def approve_plan(node_yamls: Iterable[Path], plan: TrainingPlan) -> None:
    """Approve ``plan`` at each node as its IT would: nodes serve only approved plans."""
    approve_at_nodes(node_yamls, plan, by="tests: enterprise IT")


def good_rows(n_rows: int, *, id_prefix: str = "UNIT-") -> list[dict[str, str]]:
    """``n_rows`` valid rows (canonical names, text cells), deterministic and varied."""
    rows = []
    for i in range(n_rows):
        segment = _SEGMENTS[i % 3]
        rows.append(
            {
                "unit_id": f"{id_prefix}{i + 1:04d}",
                "segment": segment,
                "equipment_class": _CLASSES[segment][(i // 3) % 3],
                "duration": f"{6.5 + 3 * i:g}",
                "failed": "1" if i % 4 == 0 else "0",
                "entry_age": f"{i % 5:g}",
                "load_pct": f"{40 + i % 50:g}",
                "ambient_temp_c": f"{18 + i % 10:g}",
                "maintenance_interval_days": f"{30 + 7 * (i % 20):g}",
                "vendor_origin": "domestic" if i % 2 else "imported",
            }
        )
    return rows


@dataclass
class NodeSite:
    """One site in ``root``: writes the data file and node.yaml, returns the loaded config.

    ``rename`` maps canonical -> site column names (used in the header and node.yaml);
    ``bad`` maps (1-based data row, canonical column) -> the cell text to inject.
    """

    root: Path
    rename: dict[str, str] = field(default_factory=dict)

    def site_name(self, canonical: str) -> str:
        return self.rename.get(canonical, canonical)

    def table(
        self,
        n_rows: int = 20,
        *,
        bad: dict[tuple[int, str], str] | None = None,
        id_prefix: str = "UNIT-",
    ) -> pd.DataFrame:
        rows = good_rows(n_rows, id_prefix=id_prefix)
        for (row, column), value in (bad or {}).items():
            rows[row - 1][column] = value
        frame = pd.DataFrame(rows)
        return frame.rename(columns=self.rename)

    def write_data(
        self,
        n_rows: int = 20,
        *,
        bad: dict[tuple[int, str], str] | None = None,
        drop: tuple[str, ...] = (),
        name: str = "units.csv",
        id_prefix: str = "UNIT-",
    ) -> Path:
        frame = self.table(n_rows, bad=bad, id_prefix=id_prefix)
        frame = frame.drop(columns=[self.site_name(c) for c in drop])
        path = self.root / name
        if path.suffix == ".parquet":
            typed = frame.copy()
            for canonical in (
                "duration",
                "entry_age",
                "load_pct",
                "ambient_temp_c",
                "maintenance_interval_days",
            ):
                typed[self.site_name(canonical)] = typed[self.site_name(canonical)].astype(float)
            typed[self.site_name("failed")] = typed[self.site_name("failed")].astype("int64")
            typed.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
        return path

    def write_config(
        self,
        *,
        data: str = "units.csv",
        entry_age: bool = False,
        max_bad_fraction: float = 0.5,
        duration_scale: float = 1.0,
        covariates: dict[str, str] | None = None,
        extra: dict[str, object] | None = None,
    ) -> Path:
        columns: dict[str, object] = {
            name: self.site_name(name)
            for name in ("unit_id", "segment", "equipment_class", "duration", "failed")
        }
        columns["entry_age"] = self.site_name("entry_age") if entry_age else None
        columns["covariates"] = (
            covariates
            if covariates is not None
            else {
                name: self.site_name(name)
                for name in (
                    "load_pct",
                    "ambient_temp_c",
                    "maintenance_interval_days",
                    "vendor_origin",
                )
            }
        )
        document: dict[str, object] = {
            "node": {
                "name": "test-site",
                "state_dir": "state",
                "site_secret_file": "secrets/site_secret.key",
            },
            "data": {
                "path": data,
                "format": "auto",
                "columns": columns,
                "duration_scale": duration_scale,
                "max_bad_fraction": max_bad_fraction,
            },
            "privacy": {"epsilon": 5.0, "delta": 1e-5},
        }
        document.update(extra or {})
        path = self.root / "node.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        return path

    def build(
        self,
        n_rows: int = 20,
        *,
        bad: dict[tuple[int, str], str] | None = None,
        entry_age: bool = False,
        max_bad_fraction: float = 0.5,
        duration_scale: float = 1.0,
        name: str = "units.csv",
        id_prefix: str = "UNIT-",
    ) -> NodeConfig:
        """Write data and node.yaml; return the loaded NodeConfig."""
        self.write_data(n_rows, bad=bad, name=name, id_prefix=id_prefix)
        path = self.write_config(
            data=name,
            entry_age=entry_age,
            max_bad_fraction=max_bad_fraction,
            duration_scale=duration_scale,
        )
        return load_node_config(path)
