"""Survival data sets for the model benchmark, as fedrisk's canonical unit table.

Real public data sets that registry packages ship (no download at run time), each turned
into the factory data contract of DESIGN.md (``unit_id``, ``segment``,
``equipment_class``, ``duration``, ``failed``, ``entry_age`` = NaN, covariates) with a
:class:`ModelSpec` whose time grid is in the data's own time unit and whose feature
bounds are PUBLIC: documented or physically sensible ranges, never the data's min/max
(each bound's source is written beside it). Binary and categorical columns are
:class:`CategoryFeature` with string levels. Each table also has a ``group`` column: the
non-outcome category whose values make the natural enterprises (never written to a
site's data file).

- ``hdfail``: 52,422 hard drives of a backup provider (Backblaze, 2013-2015), as
  shipped by SurvSet 0.2.11 from R's frailtySurv. Time unit DAYS: frailtySurv built
  ``time`` as SMART 9 (power-on hours) / 24 (its preprocessing script
  ``preprocess_hd.py``: "HD age in days"; every value is a multiple of 1/24). Drive age
  is observed only while the drive was in the snapshots, but no entry age is given, so
  the table has none (delayed entry ignored, as in frailtySurv's own analysis).
- ``flchain``: 7,874 residents of Olmsted County aged 50+ (R survival::flchain), time
  in DAYS from the blood sample to death or last contact.
- ``gbsg2``: 686 breast-cancer patients of the German Breast Cancer Study Group 2 trial
  (R TH.data/pec GBSG2), recurrence-free survival time in DAYS.
- ``synthetic``: the project's synthetic factories (:mod:`harness.synthetic`), for
  comparison with the real sets; the grid is the demo plan's (months).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.errors import ConfigError
from enterprise_node.config import load_node_config
from enterprise_node.ingest import ingest
from harness.synthetic import SyntheticConfig, generate_federation
from models.spec import CategoryFeature, ModelSpec, NumericFeature, TimeGrid

__all__ = ["GROUP_COLUMN", "Dataset", "DATASETS", "load_dataset", "load_synthetic"]

#: Column of a data set's table naming the natural enterprise of each unit.
GROUP_COLUMN = "group"
_BINARY = ("0", "1")


@dataclass(frozen=True, eq=False)
class Dataset:
    """One data set: the canonical unit table (plus :data:`GROUP_COLUMN`) and its spec.

    ``group_rule`` says which non-outcome column made the groups; ``notes`` how the
    source was turned into the table (time unit, dropped columns, missing values).
    """

    name: str
    units: pd.DataFrame
    spec: ModelSpec
    source: str
    group_rule: str
    notes: str
    #: The true F(t) of each segment on the spec's grid, over the federation's own units
    #: (the synthetic factories' ``F_federation``); None for real data.
    truth: Mapping[str, np.ndarray] | None = None

    @property
    def event_rate(self) -> float:
        return float(self.units["failed"].mean())


def _survset(name: str) -> pd.DataFrame:
    from SurvSet.data import SurvLoader  # the data ship inside the package (no download)

    return SurvLoader().load_dataset(ds_name=name)["df"]


def _canonical(
    raw: pd.DataFrame, prefix: str, segment: str, equipment_class: pd.Series | str
) -> pd.DataFrame:
    """The contract's base columns from SurvSet's ``pid``/``time``/``event``."""
    return pd.DataFrame(
        {
            "unit_id": [f"{prefix}{int(p):06d}" for p in raw["pid"]],
            "segment": segment,
            "equipment_class": equipment_class,
            "duration": raw["time"].astype(float).to_numpy(),
            "failed": raw["event"].astype(np.int64).to_numpy(),
            "entry_age": np.nan,
        }
    )


def _as_levels(values: pd.Series) -> pd.Series:
    """Category cells as the strings the spec's levels use ('0'/'1', 'F'/'M', ...)."""
    return values.astype(str).str.replace(r"\.0$", "", regex=True)


def _grid(step: float, n_intervals: int) -> TimeGrid:
    return TimeGrid(unit="days", edges=tuple(step * k for k in range(n_intervals + 1)))


# ---- hdfail ---------------------------------------------------------------------------
#: Drive models with >= 100 drives in the public table get a class of their own; the 16
#: rarer ones (Seagate models and SAMSUNG, all filed under brand ST) share "ST_other".
#: HGST, Hitachi and WDC drives come with the brand as their model.
_HD_MODELS = (
    "HGST",
    "Hitachi",
    "WDC",
    "ST4000DM000",
    "ST3000DM001",
    "ST31500541AS",
    "ST31500341AS",
    "ST6000DX000",
    "ST32000542AS",
    "ST33000651AS",
    "ST500LM012",
    "ST4000DX000",
    "ST1500DL003",
    "TOSHIBA",
)


def load_hdfail() -> Dataset:
    raw = _survset("hdfail")
    model = raw["fac_type"].astype(str)
    units = _canonical(raw, "HD", "hdd", model.where(model.isin(_HD_MODELS), "ST_other"))
    # SMART 194, degrees Celsius. Bounds: the 0-60 C operating range of the drives'
    # datasheets (e.g. Seagate ST4000DM000: 0-60 C; HGST Deskstar: 5-60 C).
    units["temp_c"] = raw["num_temp"].astype(float).to_numpy()
    # SMART 5 / 1 / 197 raw > 0 (frailtySurv's rsc, rer, psc): 1 = reallocated sectors,
    # a non-zero read error rate, sectors pending remapping.
    for name in ("rsc", "rer", "psc"):
        units[name] = _as_levels(raw[f"fac_{name}"]).to_numpy()
    units[GROUP_COLUMN] = raw["fac_brand"].astype(str).to_numpy()
    spec = ModelSpec(
        # 120-day intervals to 2,400 days (6.6 years): the oldest drives but a handful
        # (99.9 % of ages are below 2,235 days); later ages are censored at the horizon.
        time_grid=_grid(120.0, 20),
        segments=("hdd",),
        equipment_classes=(*_HD_MODELS, "ST_other"),
        features=(
            NumericFeature(name="temp_c", lower=0.0, upper=60.0),
            *(CategoryFeature(name=n, levels=_BINARY) for n in ("rsc", "rer", "psc")),
        ),
        hidden_units=(),
    )
    return Dataset(
        name="hdfail",
        units=units,
        spec=spec,
        source="SurvSet 0.2.11 'hdfail' (R frailtySurv::hdfail; Backblaze drive stats)",
        group_rule="drive brand (fac_brand): HGST, Hitachi, ST (Seagate), WDC",
        notes="time in days (SMART 9 power-on hours / 24); equipment_class = drive model "
        "(rare Seagate models pooled); brand not a feature (it is a function of the model); "
        "left truncation at the start of the snapshots is not recorded (entry_age NaN)",
    )


# ---- flchain --------------------------------------------------------------------------
#: Creatinine given to units without a measurement: 1.0 mg/dL, a typical value inside the
#: adult reference range (about 0.6-1.2 mg/dL): a public constant, not a data statistic.
FLCHAIN_CREATININE_FILL = 1.0


def load_flchain() -> Dataset:
    raw = _survset("flchain")
    units = _canonical(raw, "FL", "flchain", "person")
    # The study enrolled residents aged 50 and over (Dispenzieri et al., Mayo Clin Proc
    # 2012); 105 years as a lifespan bound.
    units["age"] = raw["num_age"].astype(float).to_numpy()
    units["sex"] = _as_levels(raw["fac_sex"]).to_numpy()
    # Serum free light chains, mg/dL. Reference intervals (Katzmann et al., Clin Chem
    # 2002): kappa 0.33-1.94, lambda 0.57-2.63; bounds 0-10 (about 4-5x the upper limit,
    # higher values are clipped).
    units["kappa"] = raw["num_kappa"].astype(float).to_numpy()
    units["lambda_flc"] = raw["num_lambda"].astype(float).to_numpy()
    # Serum creatinine, mg/dL; adult reference about 0.6-1.2; bounds 0-5 (severe renal
    # failure above is clipped). 1,350 units have none: filled with a public constant,
    # flagged by creatinine_missing (no statistic of any split is used).
    creatinine = raw["num_creatinine"].astype(float)
    units["creatinine"] = creatinine.fillna(FLCHAIN_CREATININE_FILL).to_numpy()
    units["creatinine_missing"] = np.where(creatinine.isna(), "1", "0")
    units["mgus"] = _as_levels(raw["fac_mgus"]).to_numpy()
    year = raw["fac_sample_yr"].astype(int)
    units[GROUP_COLUMN] = np.where(year >= 1999, "1999-2003", year.astype(str)).astype(str)
    spec = ModelSpec(
        # One-year (365-day) intervals to 15 years; the longest follow-up is 5,215 days.
        time_grid=_grid(365.0, 15),
        segments=("flchain",),
        equipment_classes=("person",),
        features=(
            NumericFeature(name="age", lower=50.0, upper=105.0),
            CategoryFeature(name="sex", levels=("F", "M")),
            NumericFeature(name="kappa", lower=0.0, upper=10.0),
            NumericFeature(name="lambda_flc", lower=0.0, upper=10.0),
            NumericFeature(name="creatinine", lower=0.0, upper=5.0),
            CategoryFeature(name="creatinine_missing", levels=_BINARY),
            CategoryFeature(name="mgus", levels=_BINARY),
        ),
        hidden_units=(),
    )
    return Dataset(
        name="flchain",
        units=units,
        spec=spec,
        source="SurvSet 0.2.11 'flchain' (R survival::flchain)",
        group_rule="year the blood sample was taken: 1995, 1996, 1997, 1998, 1999-2003",
        notes="time in days; dropped: chapter (cause of death, derived from the outcome), "
        "flc.grp (deciles of the whole study's FLC: data-derived, redundant), sample.yr "
        f"(the enterprise split); missing creatinine set to {FLCHAIN_CREATININE_FILL} "
        "mg/dL with a missing flag",
    )


# ---- GBSG2 ----------------------------------------------------------------------------
def load_gbsg2() -> Dataset:
    raw = _survset("GBSG2")
    units = _canonical(raw, "GB", "gbsg2", "patient")
    # Adult patients (the trial's ages are 21-80): 18-90 years.
    units["age"] = raw["num_age"].astype(float).to_numpy()
    # Tumour size, mm: 0-100 (T3 starts above 50 mm; larger tumours are clipped).
    units["tsize"] = raw["num_tsize"].astype(float).to_numpy()
    # Positive axillary lymph nodes: 0-50 (about the most an axillary dissection yields).
    units["pnodes"] = raw["num_pnodes"].astype(float).to_numpy()
    # Progesterone / oestrogen receptor, fmol/mg protein (positive from 10): 0-1000,
    # higher values are clipped.
    units["progrec"] = raw["num_progrec"].astype(float).to_numpy()
    units["estrec"] = raw["num_estrec"].astype(float).to_numpy()
    for name in ("horTh", "menostat", "tgrade"):
        units[name] = _as_levels(raw[f"fac_{name}"]).to_numpy()
    units[GROUP_COLUMN] = (units["tgrade"] + "-" + units["menostat"]).to_numpy()
    spec = ModelSpec(
        # 180-day intervals to 2,700 days; the longest follow-up is 2,659 days.
        time_grid=_grid(180.0, 15),
        segments=("gbsg2",),
        equipment_classes=("patient",),
        features=(
            NumericFeature(name="age", lower=18.0, upper=90.0),
            NumericFeature(name="tsize", lower=0.0, upper=100.0),
            NumericFeature(name="pnodes", lower=0.0, upper=50.0),
            NumericFeature(name="progrec", lower=0.0, upper=1000.0),
            NumericFeature(name="estrec", lower=0.0, upper=1000.0),
            CategoryFeature(name="horTh", levels=("no", "yes")),
            CategoryFeature(name="menostat", levels=("Pre", "Post")),
            CategoryFeature(name="tgrade", levels=("I", "II", "III")),
        ),
        hidden_units=(),
    )
    return Dataset(
        name="gbsg2",
        units=units,
        spec=spec,
        source="SurvSet 0.2.11 'GBSG2' (R TH.data::GBSG2)",
        group_rule="tumour grade x menopausal status (6 groups)",
        notes="recurrence-free survival time in days; no missing values",
    )


# ---- synthetic ------------------------------------------------------------------------
def load_synthetic(
    *, seed: int = 0, enterprises: int = 6, min_units: int = 500, max_units: int = 2500
) -> Dataset:
    """A synthetic federation (:func:`generate_federation`) read back through each
    node's own ingest (column mapping, time unit) into one table; the group is the
    generated enterprise. The spec is the demo plan's (configs/coordinator.yaml) with a
    linear risk score."""
    from coordinator.config import load_config_or_default

    spec = load_config_or_default(None).plan.model_spec.model_copy(update={"hidden_units": ()})
    config = SyntheticConfig(
        n_enterprises=enterprises,
        seed=seed,
        min_units=min_units,
        max_units=max_units,
        holdout_units=0,
    )
    parts = []
    with tempfile.TemporaryDirectory(prefix="fedrisk-synthetic-") as tmp:
        manifest = generate_federation(Path(tmp), spec, config)
        segments = json.loads(manifest.truth_path.read_text(encoding="utf-8"))["segments"]
        truth = {name: np.asarray(s["F_federation"], dtype=float) for name, s in segments.items()}
        for folder, node_yaml in zip(manifest.enterprise_dirs, manifest.node_configs, strict=True):
            frame = ingest(load_node_config(node_yaml), spec).frame.copy()
            frame["unit_id"] = [f"{folder.name}-{k + 1:06d}" for k in range(len(frame))]
            frame[GROUP_COLUMN] = folder.name
            parts.append(frame)
    units = pd.concat(parts, ignore_index=True)
    units["entry_age"] = pd.to_numeric(units["entry_age"], errors="coerce")
    return Dataset(
        name="synthetic",
        units=units,
        spec=spec,
        source=f"harness.synthetic.generate_federation (seed {seed}, {enterprises} enterprises)",
        group_rule="the generated enterprise",
        notes="durations in months after each site's own export unit; no delayed entry",
        truth=truth,
    )


#: Data set name -> loader.
DATASETS: dict[str, Callable[[], Dataset]] = {
    "hdfail": load_hdfail,
    "flchain": load_flchain,
    "gbsg2": load_gbsg2,
    "synthetic": load_synthetic,
}


def load_dataset(name: str) -> Dataset:
    """The data set called ``name`` (one of :data:`DATASETS`)."""
    if name not in DATASETS:
        raise ConfigError(f"unknown data set {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]()
