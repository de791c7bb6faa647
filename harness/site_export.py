"""How a synthetic enterprise exports its units: the export dialects of plant systems
(column names, time unit, id format, CSV or Parquet) and the site folder they write
(data file, node.yaml mapping it back to the canonical unit table, site secret)."""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from common.atomic import atomic_write_bytes, atomic_write_text
from models.spec import ModelSpec

__all__ = ["DECLARED_SEGMENT_MIN_UNITS", "DIALECTS", "Dialect", "SiteExport", "write_site"]

#: A site declares a segment in node.yaml when it holds at least this many of its units.
DECLARED_SEGMENT_MIN_UNITS = 20
_DAYS_PER = {"hours": 1 / 24, "days": 1.0, "months": 30.4375, "years": 365.25}


@dataclass(frozen=True)
class Dialect:
    """How one kind of plant system exports: column names, time unit, id format."""

    name: str
    columns: dict[str, str]
    features: dict[str, str]
    time_unit: str
    decimals: int
    id_format: str


DIALECTS = (
    Dialect("canonical", {}, {}, "months", 3, "U{n:06d}"),
    Dialect(
        "erp_hours",
        {
            "unit_id": "asset_no",
            "segment": "Sector",
            "equipment_class": "class",
            "duration": "hours_run",
            "failed": "broke_down",
            "entry_age": "hours_at_start",
        },
        {
            "load_pct": "avg_load",
            "ambient_temp_c": "ambient_c",
            "maintenance_interval_days": "pm_interval_d",
            "vendor_origin": "origin",
        },
        "hours",
        1,
        "A-{n:07d}",
    ),
    Dialect(
        "mes_days",
        {
            "unit_id": "EquipmentID",
            "segment": "Industry",
            "equipment_class": "EquipmentType",
            "duration": "DaysInService",
            "failed": "Failure",
            "entry_age": "DaysAtObservationStart",
        },
        {
            "load_pct": "LoadPercent",
            "ambient_temp_c": "AmbientTempC",
            "maintenance_interval_days": "MaintenanceIntervalDays",
            "vendor_origin": "VendorOrigin",
        },
        "days",
        2,
        "EQ{e:02d}-{n:06d}",
    ),
)


@dataclass(frozen=True)
class SiteExport:
    """One site's export choices: its dialect, Parquet or CSV, its number (in ids), and
    whether it records delayed entry."""

    dialect: Dialect
    parquet: bool
    number: int
    delayed_entry: bool


def _site_frame(
    units: pd.DataFrame, spec: ModelSpec, dialect: Dialect, delayed: bool, number: int
) -> tuple[pd.DataFrame, dict[str, str], float]:
    """The units as this site exports them; the canonical->site column map; duration_scale."""
    per_grid = _site_units_per_grid_unit(dialect.time_unit, spec.time_grid.unit)
    step = 10.0**dialect.decimals
    site = units.copy()
    site["unit_id"] = [dialect.id_format.format(e=number, n=k + 1) for k in range(len(site))]
    site["duration"] = np.ceil(site["duration"] * per_grid * step) / step
    site["entry_age"] = np.floor(site["entry_age"] * per_grid * step) / step
    if not delayed:
        site = site.drop(columns="entry_age")
    names = {c: dialect.columns.get(c, c) for c in site.columns if c not in spec.feature_names}
    names |= {f: dialect.features.get(f, f) for f in spec.feature_names}
    return site.rename(columns=names), names, 1.0 / per_grid


def _site_units_per_grid_unit(site_unit: str, grid_unit: str) -> float:
    if site_unit in _DAYS_PER and grid_unit in _DAYS_PER:
        return _DAYS_PER[grid_unit] / _DAYS_PER[site_unit]
    return 1.0


def write_site(
    folder: Path,
    name: str,
    units: pd.DataFrame,
    spec: ModelSpec,
    export: SiteExport,
    *,
    privacy: dict[str, object],
) -> Path:
    """Data file, node.yaml (with the node's ``privacy`` section) and site secret of one
    enterprise; returns node.yaml's path."""
    dialect, parquet = export.dialect, export.parquet
    site, names, scale = _site_frame(units, spec, dialect, export.delayed_entry, export.number)
    data_name = "units.parquet" if parquet else "units.csv"
    if parquet:
        buffer = io.BytesIO()
        site.to_parquet(buffer, index=False)
        atomic_write_bytes(folder / data_name, buffer.getvalue())
    else:
        atomic_write_text(folder / data_name, site.to_csv(index=False))
    columns: dict[str, object] = {
        c: names[c] for c in ("unit_id", "segment", "equipment_class", "duration", "failed")
    }
    columns["entry_age"] = names.get("entry_age")
    columns["covariates"] = {f: names[f] for f in spec.feature_names}
    sizes = units["segment"].value_counts()
    declared = [seg for seg in spec.segments if sizes.get(seg, 0) >= DECLARED_SEGMENT_MIN_UNITS]
    node = {
        "node": {
            "name": name,
            "segments": declared,
            "state_dir": "state",
            "site_secret_file": "secrets/site_secret.key",
        },
        "data": {
            "path": data_name,
            "format": "parquet" if parquet else "csv",
            "columns": columns,
            "duration_scale": scale,
            "max_bad_fraction": 0.01,
        },
        "privacy": privacy,
    }
    header = f"# {name}: synthetic export ({dialect.name}, durations in {dialect.time_unit})\n"
    node_path = folder / "node.yaml"
    atomic_write_text(node_path, header + yaml.safe_dump(node, sort_keys=False))
    secret = folder / "secrets" / "site_secret.key"
    if not secret.exists():
        secret.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write_text(secret, secrets.token_hex(32) + "\n", mode=0o600)
    return node_path
