"""Durations from the dates a maintenance system exports (node.yaml ``data.dates``):
installation, failure and removal dates with the export's observation end give each unit's
duration, failure flag and (with an observation start) late entry; impossible dates are row
errors naming the column and the file line. The fixture is a German CMMS export:
tests/enterprise_node/data/maintenance_export_de.csv (cp1252, ';', dd.mm.yyyy dates)."""

from __future__ import annotations

import shutil
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from lifelines.utils import datetimes_to_durations
from node_site import load_spec
from rich.console import Console

from common.errors import ConfigError, DataRefusedError
from enterprise_node.check import date_format_notes, run_check
from enterprise_node.config import load_node_config
from enterprise_node.ingest import ingest, load_and_validate
from enterprise_node.validation import RowError
from models.spec import ModelSpec

EXPORT = Path(__file__).parent / "data" / "maintenance_export_de.csv"
MONTH_DAYS = 365.25 / 12
COLUMNS = {
    "unit_id": "Anlage",
    "segment": "Branche",
    "equipment_class": "Klasse",
    "covariates": {
        "load_pct": "Auslastung",
        "ambient_temp_c": "Temperatur",
        "maintenance_interval_days": "Wartung",
        "vendor_origin": "Herkunft",
    },
}
DATES = {
    "installed_on": "Inbetriebnahme",
    "failed_on": "Ausfalldatum",
    "removed_on": "Stilllegung",
    "observation_end": "2026-06-30",
    "format": "%d.%m.%Y",
}
GERMAN = {"delimiter": ";", "decimal": ",", "encoding": "cp1252"}


def _node_yaml(root: Path, *, dates: dict, columns: dict = COLUMNS, **data: object) -> Path:
    if not (root / "export.csv").exists():
        shutil.copy(EXPORT, root / "export.csv")
    source = {"path": "export.csv", "csv": GERMAN, "columns": columns, "dates": dates, **data}
    document = {
        "node": {"name": "werk", "state_dir": "state", "site_secret_file": "secrets/s.key"},
        "data": {"max_bad_fraction": 0.5, **source},
        "privacy": {"epsilon": 5.0, "delta": 1e-5},
    }
    path = root / "node.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


def _months(start: date, end: date) -> float:
    return (end - start).days / MONTH_DAYS


def _write_export(root: Path, rows: list[str]) -> None:
    header = EXPORT.read_text(encoding="cp1252").splitlines()[0]
    (root / "export.csv").write_bytes("\r\n".join([header, *rows, ""]).encode("cp1252"))


def test_the_export_gives_durations_failures_and_censoring(tmp_path: Path) -> None:
    result = ingest(load_node_config(_node_yaml(tmp_path, dates=DATES)), load_spec())
    frame = result.frame
    assert result.n_rows_accepted == 6
    end = date(2026, 6, 30)
    expected = [
        _months(date(2020, 1, 1), date(2021, 7, 1)),  # failed
        _months(date(2019, 3, 15), end),  # still running: censored at the export
        _months(date(2018, 6, 1), date(2023, 6, 1)),  # removed without failing
        _months(date(2016, 10, 10), date(2022, 2, 20)),  # failed, then removed
        _months(date(2015, 1, 1), date(2020, 12, 31)),  # failed
        0.0,  # failed on the day it was installed
    ]
    np.testing.assert_allclose(frame["duration"], expected, rtol=1e-12)
    assert frame["failed"].tolist() == [1, 0, 0, 1, 1, 1]
    assert frame["entry_age"].isna().all()  # no observation start: nobody entered late
    assert result.quality.completeness == 1.0  # empty failure/removal dates are not missing


def test_an_observation_start_gives_units_installed_before_it_a_late_entry(
    tmp_path: Path,
) -> None:
    dates = {**DATES, "observation_start": "2019-01-01"}
    frame = ingest(load_node_config(_node_yaml(tmp_path, dates=dates)), load_spec()).frame
    start = date(2019, 1, 1)
    late = [np.nan, np.nan] + [
        _months(installed, start)
        for installed in (date(2018, 6, 1), date(2016, 10, 10), date(2015, 1, 1))
    ]
    np.testing.assert_allclose(frame["entry_age"], [*late, np.nan], rtol=1e-12)
    assert (frame["entry_age"].dropna() < frame["duration"][frame["entry_age"].notna()]).all()


def test_durations_agree_with_lifelines_on_a_large_random_export(tmp_path: Path) -> None:
    # Prepare: 2,000 units installed over 12 years; some fail, some are removed
    rng = np.random.default_rng(7)
    n, end = 2000, pd.Timestamp("2026-06-30")
    installed = pd.Timestamp("2014-01-01") + pd.to_timedelta(rng.integers(0, 4500, n), "D")
    life = pd.to_timedelta(rng.integers(0, 4000, n), "D")
    failed = (installed + life).where((installed + life <= end) & (rng.random(n) < 0.6))
    removed = (installed + life + pd.to_timedelta(rng.integers(0, 90, n), "D")).where(
        (rng.random(n) < 0.3) & (installed + life + pd.Timedelta(days=90) <= end)
    )

    def text(days: pd.Series) -> list[str]:
        return ["" if pd.isna(d) else d.strftime("%d.%m.%Y") for d in days]

    cells = zip(text(installed), text(failed), text(removed), strict=True)
    rows = [
        f"U{i};nev_battery;cell_former;{a};{b};{c};50;20;30;domestic"
        for i, (a, b, c) in enumerate(cells)
    ]
    _write_export(tmp_path, rows)
    # Execute
    result = ingest(load_node_config(_node_yaml(tmp_path, dates=DATES)), load_spec())
    # Assert: lifelines' own conversion of start/end dates (failure first, else removal)
    ended = [b or c or None for b, c in zip(text(failed), text(removed), strict=True)]
    days, _ = datetimes_to_durations(
        text(installed), ended, fill_date=datetime(2026, 6, 30), format="%d.%m.%Y"
    )
    assert result.n_rows_accepted == n
    assert removed.notna().sum() > 0 and 0 < failed.notna().sum() < n
    np.testing.assert_allclose(result.frame["duration"] * MONTH_DAYS, days, rtol=1e-12)
    assert result.frame["failed"].to_numpy().tolist() == failed.notna().astype(int).tolist()


def test_impossible_dates_are_row_errors_naming_the_column_and_line(tmp_path: Path) -> None:
    # Prepare: one impossible history per row (line 2 is fine)
    _write_export(
        tmp_path,
        [
            "A1;nev_battery;cell_former;01.01.2020;;;50;20;30;domestic",
            "A2;nev_battery;cell_former;31.02.2020;;;50;20;30;domestic",
            "A3;nev_battery;cell_former;01.01.2020;01.06.2019;;50;20;30;domestic",
            "A4;nev_battery;cell_former;01.01.2020;01.07.2026;;50;20;30;domestic",
            "A5;nev_battery;cell_former;01.01.2020;01.06.2022;01.01.2022;50;20;30;domestic",
            "A6;nev_battery;cell_former;;01.06.2022;;50;20;30;domestic",
            "A7;nev_battery;cell_former;01.01.2015;01.06.2018;;50;20;30;domestic",
            "A8;nev_battery;cell_former;01.01.2027;;;50;20;30;domestic",
        ],
    )
    dates = {**DATES, "observation_start": "2019-01-01"}
    # Execute
    result = load_and_validate(load_node_config(_node_yaml(tmp_path, dates=dates)), load_spec())
    # Assert
    found = {(e.line, e.column, e.kind) for e in result.errors}
    assert found == {
        (3, "Inbetriebnahme (installed_on)", "not_a_date"),
        (4, "Ausfalldatum (failed_on)", "before_installation"),
        (5, "Ausfalldatum (failed_on)", "after_observation_end"),
        (6, "Stilllegung (removed_on)", "removed_before_failure"),
        (7, "Inbetriebnahme (installed_on)", "missing"),
        (8, "Ausfalldatum (failed_on)", "ended_before_observation_start"),
        (9, "Inbetriebnahme (installed_on)", "after_observation_end"),
    }
    assert result.n_rows_accepted == 1
    messages = {e.line: str(e) for e in result.errors}
    assert "expected %d.%m.%Y, e.g. 31.03.2024 (got '31.02.2020')" in messages[3]
    assert "failure before installation (installed 2020-01-01)" in messages[4]
    assert "after the observation end 2026-06-30" in messages[5]


def test_the_refusal_sums_up_bad_dates_per_column(tmp_path: Path) -> None:
    # Prepare: ISO dates where node.yaml says dd.mm.yyyy
    rows = [f"B{i};nev_battery;cell_former;2020-01-0{i + 1};;;50;20;30;domestic" for i in range(9)]
    _write_export(tmp_path, rows)
    # Execute / Assert
    with pytest.raises(DataRefusedError) as caught:
        ingest(load_node_config(_node_yaml(tmp_path, dates=DATES)), load_spec())
    assert (
        "column Inbetriebnahme (installed_on): 9 x expected %d.%m.%Y, e.g. 31.03.2024 "
        "(got '2020-01-01'), first at line 2"
    ) in str(caught.value)


def test_check_proposes_the_date_format_it_sees(tmp_path: Path, capsys) -> None:
    # Prepare: dd.mm.yyyy dates, but node.yaml names no format (ISO expected)
    dates = {key: value for key, value in DATES.items() if key != "format"}
    config = load_node_config(_node_yaml(tmp_path, dates=dates))
    # Execute
    with pytest.raises(DataRefusedError):
        run_check(config, load_spec(), console=Console(width=200))
    # Assert
    out = " ".join(capsys.readouterr().out.split())  # unwrapped
    assert "12 date(s) of Inbetriebnahme (installed_on), Ausfalldatum (failed_on)" in out
    assert out.count("set data.dates.format: '%d.%m.%Y'") == 1  # one setting, one note
    # a day-month order the cells cannot tell is named as a choice, not guessed
    [note] = date_format_notes(_not_a_date("Inbetriebnahme", ["'01/02/2020'"]), dated=True)
    assert "'%d/%m/%Y' or '%m/%d/%Y'" in note and "day or month first" in note
    assert date_format_notes(_not_a_date("Inbetriebnahme", ["'soon'"]), dated=True) == []


def _not_a_date(column: str, values: list[str]) -> list[RowError]:
    return [RowError("f.csv", 1, column, "not a date", v, "not_a_date", 2) for v in values]


def test_parquet_date_columns_are_read_as_they_are(tmp_path: Path) -> None:
    # Prepare: a Parquet export with real date and timestamp columns
    frame = pd.DataFrame(
        {
            "Anlage": ["P1", "P2"],
            "Branche": ["nev_battery", "nev_battery"],
            "Klasse": ["cell_former", "cell_former"],
            "Inbetriebnahme": pd.to_datetime(["2020-01-01", "2021-01-01"]).date,
            "Ausfalldatum": pd.to_datetime(["2022-01-01 12:00", None]),
            "Auslastung": [50.0, 60.0],
            "Temperatur": [20.0, 20.0],
            "Wartung": [30.0, 30.0],
            "Herkunft": ["domestic", "imported"],
        }
    )
    frame.to_parquet(tmp_path / "export.parquet")
    dates = {k: v for k, v in DATES.items() if k not in ("format", "removed_on")}
    path = _node_yaml(tmp_path, dates=dates, path="export.parquet")
    # Execute
    result = ingest(load_node_config(path), load_spec())
    # Assert
    expected = [(731 + 0.5) / MONTH_DAYS, _months(date(2021, 1, 1), date(2026, 6, 30))]
    np.testing.assert_allclose(result.frame["duration"], expected, rtol=1e-12)
    assert result.frame["failed"].tolist() == [1, 0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"columns": {**COLUMNS, "duration": "Laufzeit"}},
            "with data.dates, durations come from the dates: remove data.columns.duration",
        ),
        ({"duration_scale": 0.5}, "remove\ndata.duration_scale|remove data.duration_scale"),
        ({"dates": {**DATES, "format": "%m.%Y"}}, "does not write a whole date"),
        (
            {"dates": {**DATES, "observation_start": "2027-01-01"}},
            "observation_start must be before observation_end",
        ),
        ({"dates": {**DATES, "failed_on": "Inbetriebnahme"}}, "must be different columns"),
    ],
)
def test_contradictory_date_settings_are_config_errors(
    tmp_path: Path, change: dict, message: str
) -> None:
    settings = {"dates": DATES, **change}
    with pytest.raises(ConfigError, match=message):
        load_node_config(_node_yaml(tmp_path, **settings))


def test_dates_need_a_calendar_time_unit(tmp_path: Path) -> None:
    spec = load_spec()
    cycles = ModelSpec.model_validate(
        {**spec.model_dump(), "time_grid": {**spec.time_grid.model_dump(), "unit": "cycles"}}
    )
    config = load_node_config(_node_yaml(tmp_path, dates=DATES))
    with pytest.raises(ConfigError, match=r"'cycles', not a calendar unit"):
        ingest(config, cycles)


def test_the_commented_dates_example_in_the_shipped_node_yaml_loads(tmp_path: Path) -> None:
    # Prepare: uncomment data.dates, drop the duration columns it replaces
    shipped = (Path(__file__).parents[2] / "configs" / "node.yaml").read_text(encoding="utf-8")
    lines = []
    for line in shipped.splitlines():
        if line.strip().split(":")[0] in ("duration", "failed", "entry_age"):
            continue
        if line.startswith("  # dates:") or line.startswith("  #   "):
            line = "  " + line[4:]
        lines.append(line)
    (tmp_path / "node.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # Execute
    config = load_node_config(tmp_path / "node.yaml")
    # Assert
    assert config.data.dates is not None
    assert config.data.dates.columns() == {
        "installed_on": "commissioned",
        "failed_on": "failure_date",
    }
    assert config.data.dates.observation_end == date(2026, 6, 30)
