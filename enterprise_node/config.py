"""node.yaml: where the site's data is, how its columns map, and the node's privacy cap.

Relative paths are resolved against the directory holding node.yaml. Unknown keys are
errors naming the key and the file.
"""

from __future__ import annotations

import codecs
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from common.config_file import StrictModel, load_yaml_model

__all__ = [
    "CANONICAL_COLUMNS",
    "ColumnMap",
    "ConstantColumn",
    "CONSTANT_ALLOWED",
    "CsvDialect",
    "ServiceDates",
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


class ConstantColumn(StrictModel):
    """One value for every row, in place of a column: ``segment: {value: hdd}`` for a site
    whose file has no segment column because all its units are in one segment."""

    value: str = Field(min_length=1)


def _column_or_constant(value: object) -> str:
    return "constant" if isinstance(value, dict | ConstantColumn) else "column"


#: A site column name, or ``{value: ...}``: the same value in every row.
ColumnOrConstant = Annotated[
    Annotated[str, Tag("column")] | Annotated[ConstantColumn, Tag("constant")],
    Discriminator(_column_or_constant),
]

#: The canonical columns node.yaml may give as a constant instead of a column.
CONSTANT_ALLOWED: tuple[str, ...] = ("segment", "equipment_class")


class ColumnMap(StrictModel):
    """Canonical column name -> the site's own column name.

    ``segment`` and ``equipment_class`` may instead be a constant (``{value: hdd}``): every
    row then has that value, checked against the spec's published list like a column's.
    ``entry_age`` is optional (None: no delayed entry). ``covariates`` maps each
    feature of the coordinator's model spec to the site's column.
    """

    unit_id: str = "unit_id"
    segment: ColumnOrConstant = "segment"
    equipment_class: ColumnOrConstant = "equipment_class"
    duration: str = "duration"
    failed: str = "failed"
    entry_age: str | None = None
    covariates: dict[str, str] = Field(default_factory=dict)

    def constants(self) -> dict[str, str]:
        """Canonical name -> value, for the columns node.yaml gives as a constant."""
        return {
            name: mapped.value
            for name in CONSTANT_ALLOWED
            if isinstance(mapped := getattr(self, name), ConstantColumn)
        }

    def site_columns(self, *, lifetimes: bool = True) -> dict[str, str]:
        """Canonical name -> the site's column, for the contract columns read from the file
        (constants and an unset ``entry_age`` left out; covariates apart). Without
        ``lifetimes`` duration, failed and entry_age are left out too: they come from dates."""
        mapped: dict[str, str | ConstantColumn | None] = {
            "unit_id": self.unit_id,
            "segment": self.segment,
            "equipment_class": self.equipment_class,
        }
        if lifetimes:
            mapped |= {"duration": self.duration, "failed": self.failed}
            mapped |= {"entry_age": self.entry_age}
        return {name: site for name, site in mapped.items() if isinstance(site, str)}


class CsvDialect(StrictModel):
    """How the site's CSV export is written: spreadsheet exports differ by locale (a
    German Excel writes ``;`` between cells, ``,`` in numbers and cp1252 text)."""

    delimiter: str = Field(",", min_length=1, max_length=1)
    decimal: Literal[".", ","] = "."
    encoding: str = "utf-8"
    #: Extra words read as failed = 1 / 0 in the ``failed`` column (any case), e.g. yes/no.
    true_values: list[str] = Field(default_factory=list)
    false_values: list[str] = Field(default_factory=list)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(
                f"unknown text encoding {value!r} (e.g. utf-8, cp1252, latin-1)"
            ) from None
        return value

    @model_validator(mode="after")
    def _distinct_marks(self) -> CsvDialect:
        if self.delimiter == self.decimal:
            raise ValueError(
                f"delimiter and decimal mark are both {self.delimiter!r}; a file with decimal "
                "commas separates its cells with ';'"
            )
        both = {w.lower() for w in self.true_values} & {w.lower() for w in self.false_values}
        if both:
            raise ValueError(f"words both true and false: {sorted(both)}")
        return self


class ServiceDates(StrictModel):
    """Lifetimes from the dates a maintenance system exports, in place of duration and
    failed columns: a unit is observed from installation to its failure, its removal or
    the observation end, whichever comes first, and failed if it has a failure date."""

    installed_on: str = Field(description="column: the date the unit went into service")
    failed_on: str = Field(description="column: the date it failed; empty if it has not")
    removed_on: str | None = Field(
        None,
        description="column: the date it left service without failing; empty while in service",
    )
    observation_end: date = Field(
        description="the day the export was taken: units still in service are censored there"
    )
    observation_start: date | None = Field(
        None,
        description="the day records begin: a unit installed earlier enters observation late "
        "(its entry_age), one that ended earlier cannot be in the data",
    )
    format: str | None = Field(
        None,
        description="how the dates are written, as a strftime pattern such as '%d.%m.%Y'; "
        "none: ISO 8601 (2024-03-31, a time of day allowed)",
    )

    @field_validator("format")
    @classmethod
    def _whole_date_format(cls, value: str | None) -> str | None:
        if value is None:
            return value
        example = datetime(2024, 3, 31)
        try:
            round_trip = datetime.strptime(example.strftime(value), value)
        except ValueError:
            round_trip = None
        if round_trip is None or round_trip.date() != example.date():
            raise ValueError(
                f"{value!r} does not write a whole date (day, month and year), e.g. '%d.%m.%Y'"
            )
        return value

    @model_validator(mode="after")
    def _start_before_end(self) -> ServiceDates:
        if self.observation_start is not None and self.observation_start >= self.observation_end:
            raise ValueError("observation_start must be before observation_end")
        named = [self.installed_on, self.failed_on, self.removed_on]
        columns = [name for name in named if name is not None]
        if len(set(columns)) != len(columns):
            raise ValueError("installed_on, failed_on and removed_on must be different columns")
        return self

    def columns(self) -> dict[str, str]:
        """Date name (installed_on, failed_on, removed_on) -> the site's column."""
        named = {
            "installed_on": self.installed_on,
            "failed_on": self.failed_on,
            "removed_on": self.removed_on,
        }
        return {name: site for name, site in named.items() if site is not None}


class DataSource(StrictModel):
    """The site's data file and how to read it; durations come from a duration column, or
    from ``dates`` (then node.yaml maps no duration, failed or entry_age column)."""

    path: str
    format: Literal["auto", "csv", "parquet"] = "auto"
    csv: CsvDialect = CsvDialect()
    columns: ColumnMap = ColumnMap()
    duration_scale: float = Field(
        1.0, gt=0, description="multiply site durations by this to get the federation's unit"
    )
    max_bad_fraction: float = Field(0.01, ge=0, le=1)
    dates: ServiceDates | None = None

    @model_validator(mode="after")
    def _one_source_of_lifetimes(self) -> DataSource:
        if self.dates is None:
            return self
        mapped = sorted({"duration", "failed", "entry_age"} & self.columns.model_fields_set)
        if mapped:
            raise ValueError(
                f"with data.dates, durations come from the dates: remove data.columns."
                f"{', data.columns.'.join(mapped)}"
            )
        if self.duration_scale != 1.0:
            raise ValueError(
                "with data.dates, durations are counted in the federation's time unit: remove "
                "data.duration_scale"
            )
        return self


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
