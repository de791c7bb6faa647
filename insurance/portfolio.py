"""The pool's portfolio: enterprises' groups of alike units, inline in pool.yaml or in a
broker's CSV with the same columns.

A group is ``units`` units of one ``enterprise``, ``segment`` and ``equipment_class``, of
current ``age`` (the curves' time unit) and ``sum_insured`` per unit (currency units).
The CSV has exactly the columns of :data:`COLUMNS`, a header line, one group a line;
an unknown or missing column is an error naming it and the file, and every bad row is
reported at once (file, line and column), not the first only.
"""

from __future__ import annotations

import csv
from pathlib import Path

from pydantic import Field, ValidationError

from common.config_file import StrictModel
from common.errors import ConfigError, permission_denied

__all__ = ["COLUMNS", "UnitGroup", "read_portfolio_csv"]

#: The portfolio CSV's columns, in order.
COLUMNS = ("enterprise", "segment", "equipment_class", "units", "age", "sum_insured")


class UnitGroup(StrictModel):
    """``units`` alike units of an enterprise (see the module docstring)."""

    enterprise: str = Field(min_length=1)
    segment: str = Field(min_length=1)
    equipment_class: str = Field(min_length=1)
    units: int = Field(ge=1)
    age: float = Field(ge=0)
    sum_insured: float = Field(gt=0)


def read_portfolio_csv(path: Path) -> list[UnitGroup]:
    """The groups of a portfolio CSV; ConfigError listing every problem."""
    try:
        with Path(path).open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            header = list(reader.fieldnames or [])
    except FileNotFoundError:
        raise ConfigError(f"{path}: portfolio CSV not found") from None
    except PermissionError:
        raise permission_denied(path, "read") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ConfigError(f"{path}: cannot read the portfolio CSV: {err}") from None
    problems = _header_problems(path, header)
    if problems:
        raise ConfigError("\n".join(problems))
    groups, problems = [], []
    for line, row in enumerate(rows, start=2):
        if None in row:
            problems.append(f"{path}: line {line}: more fields than columns")
            continue
        try:
            groups.append(UnitGroup.model_validate({c: row[c] for c in COLUMNS}))
        except ValidationError as err:
            problems += [
                f"{path}: line {line}: {'.'.join(map(str, p['loc']))}: {p['msg']}"
                for p in err.errors()
            ]
    if not groups and not problems:
        problems.append(f"{path}: no groups (a header line and one group a line)")
    if problems:
        raise ConfigError("\n".join(problems))
    return groups


def _header_problems(path: Path, header: list[str]) -> list[str]:
    unknown = [c for c in header if c not in COLUMNS]
    missing = [c for c in COLUMNS if c not in header]
    problems = [f"{path}: unknown column {c!r}" for c in unknown]
    problems += [f"{path}: missing column {c!r}" for c in missing]
    if problems:
        problems.append(f"{path}: the columns are {', '.join(COLUMNS)}")
    return problems
