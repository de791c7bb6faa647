"""Factory data as it really comes: a German Excel export (``;`` between cells, decimal
commas, cp1252 text, ja/nein flags, a blank line, CRLF) is read when node.yaml declares its
dialect, and refused with the setting to change when it does not; errors name file lines.
The export ships as a fixture: tests/enterprise_node/data/export_de_cp1252.csv."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from node_site import load_spec

from common.errors import ConfigError, DataError, DataRefusedError
from enterprise_node.config import load_node_config
from enterprise_node.ingest import ingest, load_and_validate

EXPORT = Path(__file__).parent / "data" / "export_de_cp1252.csv"
COLUMNS = {
    "unit_id": "Anlagen-Nr",
    "segment": "Branche",
    "equipment_class": "Geräteklasse",
    "duration": "Laufzeit",
    "failed": "Ausfall",
    "covariates": {
        "load_pct": "Auslastung",
        "ambient_temp_c": "Umgebungstemp",
        "maintenance_interval_days": "Wartungsintervall",
        "vendor_origin": "Herkunft",
    },
}
GERMAN = {
    "delimiter": ";",
    "decimal": ",",
    "encoding": "cp1252",
    "true_values": ["ja"],
    "false_values": ["nein"],
}


def _site(root: Path, dialect: dict | None, *, text: str | None = None) -> Path:
    data = root / "export.csv"
    if text is None:
        shutil.copy(EXPORT, data)
    else:
        data.write_bytes(text.encode("cp1252"))
    source: dict = {"path": "export.csv", "columns": COLUMNS, "max_bad_fraction": 0.5}
    if dialect is not None:
        source["csv"] = dialect
    document = {
        "node": {"name": "werk", "state_dir": "state", "site_secret_file": "secrets/s.key"},
        "data": source,
        "privacy": {"epsilon": 5.0, "delta": 1e-5},
    }
    path = root / "node.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


def test_the_declared_dialect_reads_every_row(tmp_path: Path) -> None:
    result = ingest(load_node_config(_site(tmp_path, GERMAN)), load_spec())
    assert result.n_rows_read == 12 and result.n_rows_accepted == 12
    frame = result.frame
    assert frame["duration"].iloc[0] == 6.5 and frame["load_pct"].iloc[1] == 41.5
    assert frame["failed"].tolist()[:4] == [1, 0, 0, 0]  # ja, nein, nein, nein


def test_without_the_dialect_the_encoding_then_the_separator_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"line 1 is not valid utf-8 text .*encoding: cp1252"):
        ingest(load_node_config(_site(tmp_path, None)), load_spec())
    with pytest.raises(DataError, match=r"looks ';'-separated") as caught:
        ingest(load_node_config(_site(tmp_path, {"encoding": "cp1252"})), load_spec())
    assert "data.csv.delimiter: ';'" in caught.value.advice


def test_a_cp1252_file_read_as_utf8_names_the_line_and_the_encoding(tmp_path: Path) -> None:
    dialect = {**GERMAN, "encoding": "utf-8"}
    with pytest.raises(DataError, match=r"line 1 is not valid utf-8 text \(byte 0xe4\)") as err:
        ingest(load_node_config(_site(tmp_path, dialect)), load_spec())
    assert "cp1252" in str(err.value)


def test_decimal_commas_without_the_setting_are_refused_rows_not_guesses(tmp_path: Path) -> None:
    dialect = {**GERMAN, "decimal": "."}
    with pytest.raises(DataRefusedError):
        ingest(load_node_config(_site(tmp_path, dialect)), load_spec())


def test_errors_name_the_file_line_even_after_a_blank_line(tmp_path: Path) -> None:
    # the fixture has a blank line after data row 5: data row 6 is on line 8
    lines = EXPORT.read_bytes().decode("cp1252").split("\r\n")
    assert lines[6] == "" and lines[7].startswith("ANL-0006;")  # 0-based: line 8 is [7]
    cells = lines[7].split(";")
    lines[7] = ";".join([cells[0], "bakery", *cells[2:]])
    text = "\r\n".join(lines)
    result = load_and_validate(load_node_config(_site(tmp_path, GERMAN, text=text)), load_spec())
    [error] = result.errors
    assert (error.row, error.line) == (6, 8)
    assert str(error).endswith(
        "line 8, column Branche (segment): not in the published list "
        "(semiconductor_fab, nev_battery, industrial_robot) (got 'bakery')"
    )


@pytest.mark.parametrize(
    ("dialect", "message"),
    [
        ({"delimiter": ",", "decimal": ","}, "both ','"),
        ({"encoding": "klingon"}, "unknown text encoding 'klingon'"),
        ({"true_values": ["ja"], "false_values": ["JA"]}, "words both true and false"),
        ({"delimiter": ";;"}, "at most 1 character"),
    ],
)
def test_a_dialect_that_cannot_be_is_a_config_error(tmp_path: Path, dialect, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load_node_config(_site(tmp_path, dialect))


def test_check_proposes_the_decimal_comma_it_sees(tmp_path: Path) -> None:
    # Prepare: the export read with ';' and cp1252 but decimal '.': its durations refuse
    from rich.console import Console

    from enterprise_node.check import run_check

    config = load_node_config(_site(tmp_path, {**GERMAN, "decimal": "."}))
    console = Console(record=True, width=200)
    # Execute
    with pytest.raises(DataRefusedError):
        run_check(config, load_spec(), console=console)
    # Assert: the note names the column, an example and the setting
    text = console.export_text()
    assert "value(s) of Laufzeit (duration) like '6,5' are numbers with a decimal comma" in text
    assert "set data.csv.decimal: ','" in text
