"""`fedrisk-coordinator pool`: the shipped pool on a toy run writes pool.json (with the run
and the curves' digest) and the fund's fan chart; a malformed pool.yaml or portfolio CSV
is refused with the key, column or line named; the sections for the product sheet."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
import yaml
from cli_runs import exit_code
from toy_run import toy_run_dir

from common.errors import ConfigError
from common.report_document import Document, render_html, render_markdown
from insurance.cli import main
from insurance.pool import load_pool
from insurance.pool_report import assess_pool, pool_sections, write_pool_report
from insurance.portfolio import COLUMNS
from insurance.product import load_product

CONFIGS = Path(__file__).parents[2] / "configs"


def _run_dir(tmp_path: Path) -> Path:
    """A run whose nev_battery curve has a constant hazard: q = 0.03 a year at any age."""
    return toy_run_dir(tmp_path / "run")


def _pool_args(run: Path, pool: Path, out: Path) -> list[str]:
    return ["pool", str(run), "--product", str(CONFIGS / "product.yaml"), "--pool", str(pool),
            "--out", str(out)]  # fmt: skip


def test_the_shipped_pool_is_written_with_its_provenance(tmp_path: Path, capsys) -> None:
    # Prepare
    run, out = _run_dir(tmp_path), tmp_path / "pool"
    # Execute
    code = exit_code(main, _pool_args(run, CONFIGS / "pool.yaml", out))
    # Assert
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "pool.json").read_text())
    assert report["format_version"] == 1 and report["run_id"] == "run-7"
    assert report["curves_sha256"] == hashlib.sha256((run / "curves.json").read_bytes()).hexdigest()
    pool = load_pool(CONFIGS / "pool.yaml")
    units = sum(g.units for g in pool.groups)
    assert report["units"] == units
    assert report["loss"]["expected_failures"] == pytest.approx(0.03 * units)
    assert report["premium"] == pytest.approx(sum(c["premium"] for c in report["cells"]))
    assert sum(s["premium"] for s in report["split"]) == pytest.approx(report["premium"])
    assert sum(s["expected_loss"] for s in report["split"]) == pytest.approx(report["loss"]["mean"])
    assert report["loss"]["mean"] < report["loss"]["var_995"] < report["loss"]["tvar_995"]
    assert 0 < report["layer"]["attach_probability"] < 1  # the shipped layer attaches
    assert 0 < report["fund"]["claim_probability"] < 1
    assert len(report["fund"]["balance_p50"]) == pool.fund.years + 1
    assert (out / "fund_fan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the product sheet shows the pool beside the rates it comes from
    page = (out / "product.html").read_text()
    titles = (
        "Rate table",
        "Co-insurance split",
        "Excess-of-loss reinsurance layer",
        "Risk compensation fund",
        "Provenance",
    )
    assert all(f"<h2>{t}" in page for t in titles), page[:2000]
    assert page.index("Risk compensation fund") < page.index("<h2>Provenance")
    printed = capsys.readouterr().out
    assert "Lead P&C" in printed and "fund used up within 10 years" in printed


def test_a_malformed_pool_yaml_exits_naming_the_key(tmp_path: Path, capsys) -> None:
    # Prepare: a typo in the layer's retention
    text = (CONFIGS / "pool.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "pool.yaml"
    bad.write_text(text.replace("retention: 1000000", "retension: 1000000"), encoding="utf-8")
    # Execute
    code = exit_code(main, _pool_args(_run_dir(tmp_path), bad, tmp_path / "out"))
    # Assert
    err = capsys.readouterr().err
    assert code == 10
    assert f"{bad}: pool.layer.retension: unknown key; did you mean 'retention'?" in err
    assert not (tmp_path / "out").exists()


def test_a_short_capacity_is_said(tmp_path: Path, capsys) -> None:
    text = (CONFIGS / "pool.yaml").read_text(encoding="utf-8")
    thin = tmp_path / "pool.yaml"
    thin.write_text(text.replace("capacity: 3000000", "capacity: 1000"), encoding="utf-8")
    code = exit_code(main, _pool_args(_run_dir(tmp_path), thin, tmp_path / "out"))
    printed = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert "Co-insurer C: capacity 1,000 is short of its VaR 99.5 %" in printed


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _csv_pool(tmp_path: Path, rows: list[dict]) -> Path:
    data = yaml.safe_load((CONFIGS / "pool.yaml").read_text(encoding="utf-8"))
    data["pool"]["portfolio"] = {"csv": "broker/portfolio.csv"}
    (tmp_path / "broker").mkdir()
    _write_csv(tmp_path / "broker" / "portfolio.csv", rows)
    path = tmp_path / "pool.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_a_broker_csv_gives_the_same_pool_as_inline_groups(tmp_path: Path) -> None:
    # Prepare: the shipped groups as a CSV beside a copy of pool.yaml
    inline = load_pool(CONFIGS / "pool.yaml")
    path = _csv_pool(tmp_path, [g.model_dump() for g in inline.groups])
    product, run = load_product(CONFIGS / "product.yaml"), _run_dir(tmp_path)
    # Execute
    from_csv = load_pool(path)
    # Assert
    assert from_csv.groups == inline.groups
    one, other = assess_pool(run, product, inline), assess_pool(run, product, from_csv)
    assert (one.premium, one.loss, one.layer) == (other.premium, other.loss, other.layer)


def test_every_bad_csv_row_is_reported(tmp_path: Path) -> None:
    good = {"enterprise": "e1", "segment": "nev_battery", "equipment_class": "coating",
            "units": "3", "age": "12", "sum_insured": "2000000"}  # fmt: skip
    rows = [good, {**good, "units": "2.5"}, good, {**good, "age": "-1", "sum_insured": "x"}]
    path = _csv_pool(tmp_path, rows)
    with pytest.raises(ConfigError) as caught:
        load_pool(path)
    message = str(caught.value)
    assert "portfolio.csv: line 3: units:" in message
    assert "portfolio.csv: line 5: age:" in message and "line 5: sum_insured:" in message
    assert "line 2" not in message and "line 4" not in message


def test_an_unknown_csv_column_is_named(tmp_path: Path) -> None:
    row = {c: "1" for c in COLUMNS if c != "age"} | {"age_months": "3"}
    with pytest.raises(ConfigError, match="unknown column 'age_months'") as caught:
        load_pool(_csv_pool(tmp_path, [row]))
    assert "missing column 'age'" in str(caught.value)


def test_a_group_outside_the_product_is_refused(tmp_path: Path, capsys) -> None:
    text = (CONFIGS / "pool.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "pool.yaml"
    bad.write_text(text.replace("equipment_class: coating", "equipment_class: robot_arm", 1))
    code = exit_code(main, _pool_args(_run_dir(tmp_path), bad, tmp_path / "out"))
    assert code == 10
    assert "(cell-works-02): equipment class 'robot_arm' is not covered" in capsys.readouterr().err


def test_the_pool_sections_render_for_the_product_sheet(tmp_path: Path) -> None:
    # Prepare
    report = assess_pool(_run_dir(tmp_path), load_product(CONFIGS / "product.yaml"),
                         load_pool(CONFIGS / "pool.yaml"))  # fmt: skip
    sheet = tmp_path / "sheet"
    # Execute
    _, fan = write_pool_report(report, sheet)
    sections = pool_sections(report, fan)
    document = Document("Product sheet", "toy", sections)
    markdown, page = render_markdown(document, sheet), render_html(document)
    # Assert
    titles = [s.title for s in sections]
    assert titles == ["Insurance pool: annual aggregate loss", "Co-insurance split",
                      "Excess-of-loss reinsurance layer", "Risk compensation fund"]  # fmt: skip
    assert (sheet / "fund_fan.png").is_file() and "](fund_fan.png)" in markdown
    assert "| Lead P&C | lead | 40.0% |" in markdown
    assert report.curves_sha256 in markdown
    assert "data:image/png;base64," in page
