"""Lifetimes from service dates (node.yaml ``data.dates``), as maintenance systems export them.

A unit is observed from ``installed_on`` to the first of: its failure (``failed_on``), its
removal from service (``removed_on``) and the export's ``observation_end``. Its duration is
that span in the federation's time unit; it failed when it has a failure date. With
``observation_start`` (the day records begin) a unit installed earlier entered
observation late: its entry_age is the span from installation to that day.

This module only reads dates and does the arithmetic; :mod:`enterprise_node.validation`
turns impossible dates (a failure before installation, a date after the export) into
row errors, and a row with any such error is quarantined, whatever its duration says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from enterprise_node.config import ServiceDates

__all__ = [
    "DATE_NAMES",
    "COMMON_FORMATS",
    "DatedLifetimes",
    "parse_dates",
    "dated_lifetimes",
    "expected_format",
    "formats_reading",
]

#: The dates a row may carry, in order (``removed_on`` is optional in node.yaml).
DATE_NAMES: tuple[str, ...] = ("installed_on", "failed_on", "removed_on")

#: Date formats seen in spreadsheet exports, tried by ``check`` to propose one.
COMMON_FORMATS: tuple[str, ...] = (
    "%Y-%m-%d",
    "%d.%m.%Y",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%Y/%m/%d",
    "%d-%m-%Y",
    "%Y%m%d",
    "%d.%m.%y",
)

_EXAMPLE_DAY = datetime(2024, 3, 31)
_DAY = pd.Timedelta(days=1)


@dataclass(frozen=True, eq=False)
class DatedLifetimes:
    """Each row's dates (NaT where empty or not a date) and what they give.

    ``duration`` is in the grid's unit (NaN where the installation date is unusable or an
    end date given is not a date), ``failed`` 1.0 for a failure date, else 0.0, and
    ``entry_age`` the late entry (NaN when observation began at installation).
    """

    dates: Mapping[str, pd.Series]
    end: pd.Series
    duration: np.ndarray
    failed: np.ndarray
    entry_age: np.ndarray


def parse_dates(values: pd.Series, date_format: str | None) -> pd.Series:
    """Dates at day resolution or finer (timezone-naive, in UTC where the cells name a
    zone), NaT where a cell is empty or not a date in ``date_format`` (None: ISO 8601).
    Parquet date and timestamp columns are taken as they are."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        days = pd.to_datetime(values, utc=True)
    elif pd.api.types.infer_dtype(values, skipna=True) in ("date", "datetime", "datetime64"):
        days = pd.to_datetime(values, utc=True, errors="coerce")
    else:
        text = values.astype(object).where(values.notna(), None)
        text = text.map(lambda v: v if v is None else str(v))
        days = pd.to_datetime(text, format=date_format or "ISO8601", utc=True, errors="coerce")
    return pd.Series(days.dt.tz_localize(None).to_numpy(), index=values.index)


def dated_lifetimes(
    table: pd.DataFrame,
    dates: ServiceDates,
    site_columns: Mapping[str, str],
    days_per_unit: float,
) -> DatedLifetimes:
    """The lifetimes ``dates`` give for every row of ``table`` (site column names, in
    ``site_columns`` under installed_on, failed_on and removed_on)."""
    parsed = {
        name: parse_dates(table[site_columns[name]], dates.format)
        if name in site_columns
        else pd.Series(pd.NaT, index=table.index, dtype="datetime64[ns]")
        for name in DATE_NAMES
    }
    installed, failed_on, removed_on = (parsed[name] for name in DATE_NAMES)
    observation_end = pd.Timestamp(dates.observation_end)
    end = failed_on.fillna(removed_on).fillna(observation_end)
    duration = ((end - installed) / _DAY / days_per_unit).to_numpy(dtype=float)
    unusable = np.zeros(len(table), dtype=bool)
    for name in ("failed_on", "removed_on"):
        if name in site_columns:
            given = table[site_columns[name]].notna().to_numpy()
            unusable |= given & parsed[name].isna().to_numpy()
    duration[unusable] = np.nan
    entry_age = np.full(len(table), np.nan)
    if dates.observation_start is not None:
        start = pd.Timestamp(dates.observation_start)
        late = (installed < start).to_numpy()
        entry_age[late] = ((start - installed[late]) / _DAY / days_per_unit).to_numpy(dtype=float)
    return DatedLifetimes(
        dates=parsed,
        end=end,
        duration=duration,
        failed=failed_on.notna().to_numpy(dtype=float),
        entry_age=entry_age,
    )


def expected_format(date_format: str | None) -> str:
    """How a date should be written, for messages: ``e.g. 31.03.2024 (%d.%m.%Y)``."""
    if date_format is None:
        return "expected an ISO date, e.g. 2024-03-31"
    return f"expected {date_format}, e.g. {_EXAMPLE_DAY.strftime(date_format)}"


#: A refused cell as an error shows it: its repr in quotes.
_QUOTED = re.compile(r"^'(.*)'$")


def formats_reading(shown: Sequence[str]) -> tuple[str, ...]:
    """The :data:`COMMON_FORMATS` that read every one of the refused cells ``shown`` (as
    errors show them, quoted); more than one when they cannot tell, e.g. 01/02/2024."""
    cells = [m.group(1) for value in shown if (m := _QUOTED.match(value))]
    if not cells:
        return ()
    return tuple(fmt for fmt in COMMON_FORMATS if all(_reads(cell, fmt) for cell in cells))


def _reads(cell: str, date_format: str) -> bool:
    try:
        datetime.strptime(cell, date_format)
    except ValueError:
        return False
    return True
