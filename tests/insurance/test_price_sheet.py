"""`fedrisk-coordinator price`: a product priced on a run's published curves, with the
run and the curves' digest it came from, and its product sheet; a product naming a
withheld segment is refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cli_runs import exit_code
from toy_run import toy_run_dir

from insurance.cli import main
from insurance.product import load_product
from insurance.product_sheet import pdf_problem

CONFIGS = Path(__file__).parents[2] / "configs"


def _run_dir(tmp_path: Path, *, published: bool = True) -> Path:
    return toy_run_dir(tmp_path / "run", published=published)


def test_the_shipped_product_is_priced_with_its_provenance(tmp_path: Path, capsys) -> None:
    run = _run_dir(tmp_path)
    code = exit_code(main, ["price", str(run), "--product", str(CONFIGS / "product.yaml"),
                 "--out", str(tmp_path / "sheet")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    rates = json.loads((tmp_path / "sheet" / "rates.json").read_text())
    assert rates["run_id"] == "run-7"
    digest = hashlib.sha256((run / "curves.json").read_bytes()).hexdigest()
    assert rates["curves_sha256"] == digest
    product = load_product(CONFIGS / "product.yaml")
    assert len(rates["rates"]) == len(product.age_bands) - 1
    # a constant hazard of 0.03 a year: every band's q over 12 months is 0.03
    assert [r["q"] for r in rates["rates"]] == pytest.approx([0.03] * 7)
    assert all(r["uncertainty_loading"] > 0 for r in rates["rates"])
    sheet = (tmp_path / "sheet" / "product.md").read_text()
    assert digest in sheet and "shares, grade A (30% off)" in sheet
    assert (tmp_path / "sheet" / "product.html").exists()
    assert (tmp_path / "sheet" / "product.pdf").exists() == (pdf_problem() is None)
    if pdf_problem() is not None:
        assert "product.pdf NOT written" in capsys.readouterr().out


def test_a_withheld_segment_cannot_be_priced(tmp_path: Path, capsys) -> None:
    run = _run_dir(tmp_path, published=False)
    code = exit_code(main, ["price", str(run), "--product", str(CONFIGS / "product.yaml")])
    assert code == 10 and "withheld" in capsys.readouterr().err


def test_a_run_without_curves_is_a_state_error(tmp_path: Path, capsys) -> None:
    code = exit_code(main, ["price", str(tmp_path), "--product", str(CONFIGS / "product.yaml")])
    assert code != 0 and "curves.json: not found" in capsys.readouterr().err
