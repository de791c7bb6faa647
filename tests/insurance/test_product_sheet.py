"""The insurers' product sheet: every section in order, the discount, penalty and subsidy
tables exactly as configured, provenance traced to the run's signed release (and a
mismatch, a tampered ledger or a missing one said so), and product.html opened in
headless Chromium, which must decode its image and lay out every table row."""

from __future__ import annotations

import html
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from toy_run import toy_run_dir

from common.file_digest import file_sha256
from common.report_document import Document, Section, Table
from insurance.price_sheet import PriceSheet, price_run
from insurance.product import load_product
from insurance.product_sheet import (
    CURVES_IMAGE,
    pdf_problem,
    product_document,
    write_product_sheet,
)
from ledger.records import OutputsPublished, RunEnded
from ledger.signing import generate_key_pair, public_key_path
from ledger.writer import Ledger
from models.spec import ModelSpec, TimeGrid

PRODUCT = Path(__file__).parents[2] / "configs" / "product.yaml"
RUN_ID = "run-7"
TITLES = [
    "What the product covers",
    "Curves with their DP-aware bands",
    "Rate table",
    "Sharing discount",
    "False-data penalty and first-of-kind subsidy",
    "Provenance: the run and ledger the prices come from",
]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip
#: Appended to a copy of the page: after load, each image's decoded and laid-out width and
#: each table's rows, as JSON in <pre id="probe">, which --dump-dom then prints.
PROBE = """<script>window.addEventListener("load", () => {
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({
    images: [...document.images].map(i => [i.complete, i.naturalWidth,
                                           i.getBoundingClientRect().width]),
    tables: [...document.querySelectorAll("table")].map(t => t.rows.length),
    titles: [...document.querySelectorAll("h2")].map(h => h.textContent)});
  document.body.appendChild(out);
});</script>"""


def _run_dir(root: Path) -> Path:
    """A completed run's outputs: curves, summary, model and model spec (months)."""
    run = toy_run_dir(root / "runs" / RUN_ID, run_id=RUN_ID)
    (run / "global_model.npz").write_bytes(b"model bytes")
    grid = TimeGrid(unit="months", edges=(0.0, 60.0, 120.0))
    spec = ModelSpec(time_grid=grid, segments=("nev_battery",),
                     equipment_classes=("cell_former",), features=())  # fmt: skip
    (run / "model_spec.json").write_text(spec.model_dump_json())
    return run


def _sign_release(run: Path, *, curves_sha256: str | None = None) -> Path:
    """The coordinator's ledger beside the run (STATE/ledger, STATE/keys) recording its
    outputs, and the run request naming it, as the coordinator writes them."""
    state = run.parents[1]
    key_path = state / "keys" / "ledger_key.pem"
    key_path.parent.mkdir()
    key = generate_key_pair(key_path, public_key_path(key_path))
    ledger = Ledger.open(state / "ledger", key, "coordinator")
    digest = curves_sha256 or file_sha256(run / "curves.json")
    ledger.append(OutputsPublished(RUN_ID, file_sha256(run / "global_model.npz"), digest,
                                   ("nev_battery",), ()))  # fmt: skip
    ledger.append(RunEnded(RUN_ID, "completed", None))
    request = {"run_id": RUN_ID, "run_dir": str(run), "ledger_dir": str(state / "ledger"),
               "ledger_key": str(key_path)}  # fmt: skip
    (run / "run_request.json").write_text(json.dumps(request))
    return state / "ledger"


def _sheet(run: Path, **changes: object) -> PriceSheet:
    product = load_product(PRODUCT).model_copy(update=changes)
    return price_run(run, product)


def _section(document: Document, title: str) -> Section:
    return next(s for s in document.sections if s.title == title)


def _items(document: Document) -> dict[str, str]:
    table = _section(document, TITLES[-1]).tables[0]
    return {row[0]: row[1] for row in table.rows}


# -- content -----------------------------------------------------------------------------


def test_the_sheet_has_every_section_in_order_with_extra_ones_before_the_provenance(
    tmp_path: Path,
) -> None:
    run = _run_dir(tmp_path)
    extra = Section("Pool", ("the pool's split",), (Table(("insurer", "share"), (("a", "1"),)),))
    paths = write_product_sheet(_sheet(run), run, tmp_path / "out", extra_sections=(extra,))
    markdown = (tmp_path / "out" / "product.md").read_text()
    headings = [line[3:] for line in markdown.splitlines() if line.startswith("## ")]
    assert headings == TITLES[:-1] + ["Pool"] + TITLES[-1:]
    assert file_sha256(run / "curves.json") in markdown
    assert f"]({CURVES_IMAGE})" in markdown  # linked beside the sheet
    page = (tmp_path / "out" / "product.html").read_text()
    assert "src='data:image/png;base64," in page and f"src='{CURVES_IMAGE}" not in page
    assert not list((tmp_path / "out").glob(".*.tmp"))  # atomic writes leave no temp files
    names = {p.name for p in paths}
    assert {"product.md", "product.html", CURVES_IMAGE} <= names


def test_the_pdf_is_written_when_weasyprint_runs(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    paths = write_product_sheet(_sheet(run), run, tmp_path / "out")
    pdf = tmp_path / "out" / "product.pdf"
    assert (pdf in paths) == (pdf_problem() is None) == pdf.exists()
    if pdf.exists():
        assert pdf.read_bytes().startswith(b"%PDF-")


def test_the_discount_penalty_and_subsidy_tables_are_exactly_as_configured(
    tmp_path: Path,
) -> None:
    run = _run_dir(tmp_path)
    sheet = _sheet(
        run,
        sharing_discount={"A": 0.275, "B": 0.2, "C": 0.1, "D": 0.0},
        false_data_penalty=0.125,
        first_of_kind_subsidy=[0.5, 0.125],
    )
    document = product_document(sheet, run, tmp_path / "out")
    discounts = _section(document, "Sharing discount")
    assert "as configured: A 27.5%, B 20%, C 10%, D 0%." in discounts.paragraphs[0]
    (table,) = discounts.tables
    assert table.headers == (
        "nev_battery, age (months)", "does not share (0% off)", "shares, grade A (27.5% off)",
        "shares, grade B (20% off)", "shares, grade C (10% off)", "shares, grade D (0% off)",
    )  # fmt: skip
    first = sheet.rows[0]
    assert table.rows[0] == (
        "0-12",
        *(f"{first.gross_premium * (1 - d):,.2f}" for d in (0.0, 0.275, 0.2, 0.1, 0.0)),
    )
    assert len(table.rows) == len(sheet.rows)
    penalty = _section(document, TITLES[4])
    assert "plus 12.5%, and no sharing discount" in penalty.paragraphs[0]
    assert penalty.tables[0].rows == (("year 1", "50%"), ("year 2", "12.5%"), ("year 3 on", "0%"))


def test_the_rate_table_and_cover_read_the_run_time_unit(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    sheet = _sheet(run)
    document = product_document(sheet, run, tmp_path / "out")
    rates = _section(document, "Rate table").tables[0]
    assert rates.headers[1] == "age (months)"
    # constant hazard 0.03 per 12 months: q = 0.03 in every band
    assert [row[2] for row in rates.rows] == ["0.0300"] * len(sheet.rows)
    cover = dict(_section(document, TITLES[0]).tables[0].rows)
    assert cover["term"] == "12 months" and cover["band quantile priced"] == "97.5%"


# -- provenance --------------------------------------------------------------------------


def test_the_provenance_traces_the_prices_to_the_signed_release(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    ledger = _sign_release(run)
    items = _items(product_document(_sheet(run), run, tmp_path / "out"))
    curves, model = file_sha256(run / "curves.json"), file_sha256(run / "global_model.npz")
    assert items["run id"] == RUN_ID
    assert items["curves.json SHA-256 (the bytes priced)"] == curves
    assert items["global_model.npz SHA-256"] == model
    assert items["coordinator ledger"] == str(ledger)
    assert items["ledger verification"].startswith("verified against the coordinator's own key")
    assert items["release entry"].startswith("seq 0, outputs_published")
    assert items["ledger's curves_sha256"] == f"{curves} (matches)"
    assert items["ledger's model_sha256"] == f"{model} (matches)"
    assert items["signed tree head covering it"].startswith("size 1, root ")


def test_a_ledger_recording_other_curves_is_flagged(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    _sign_release(run, curves_sha256="ab" * 32)
    items = _items(product_document(_sheet(run), run, tmp_path / "out"))
    assert "DIFFERS from the file here" in items["ledger's curves_sha256"]


def test_a_tampered_ledger_fails_verification(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    ledger = _sign_release(run)
    entries = ledger / "entries.jsonl"
    entries.write_text(entries.read_text().replace('"completed"', '"failed"'))
    items = _items(product_document(_sheet(run), run, tmp_path / "out"))
    assert items["ledger verification"].startswith("FAILED verification")


def test_a_run_moved_with_its_ledger_is_still_traced(tmp_path: Path) -> None:
    run = _run_dir(tmp_path / "was")
    _sign_release(run)
    shutil.move(tmp_path / "was", tmp_path / "now")
    moved = tmp_path / "now" / "runs" / RUN_ID
    items = _items(product_document(_sheet(moved), moved, tmp_path / "out"))
    assert items["coordinator ledger"] == str(tmp_path / "now" / "ledger")
    assert items["ledger verification"].startswith("verified")


def test_a_run_without_a_ledger_says_it_cannot_be_traced(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    document = product_document(_sheet(run), run, tmp_path / "out")
    note = _section(document, TITLES[-1]).paragraphs[0]
    assert note.startswith("No coordinator ledger to trace these prices to")
    assert "run_request.json is not there" in note


# -- the page in a browser ---------------------------------------------------------------


def _rendered(page: Path, tmp_path: Path) -> dict:
    """What headless Chromium laid out of ``page`` (the probe's JSON)."""
    probe = tmp_path / f"probe-{page.stem}.html"
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = _dump_dom(probe, tmp_path / "chromium-profile")
    start = dom.index('<pre id="probe">') + len('<pre id="probe">')
    return json.loads(html.unescape(dom[start : dom.index("</pre>", start)]))


def _dump_dom(page: Path, profile: Path, timeout_s: float = 60.0) -> str:
    """The DOM of ``page`` after load; Chromium and its children are killed on timeout."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: this test opens the product sheet in Debian's headless "
            "Chromium; run `make test`, whose `browser` target installs it"
        )
    command = [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom",
               page.as_uri()]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        out, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the group this test started, no other
        process.communicate()
        pytest.fail(f"chromium did not print the page within {timeout_s:g} s")
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


@pytest.mark.integration
def test_headless_chromium_renders_the_sheet_s_tables_and_image(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    _sign_release(run)
    sheet = _sheet(run)
    document = product_document(sheet, run, tmp_path / "out")
    write_product_sheet(sheet, run, tmp_path / "out")
    shown = _rendered(tmp_path / "out" / "product.html", tmp_path)
    assert shown["titles"] == TITLES
    ((complete, natural_width, laid_out_width),) = shown["images"]
    assert complete and natural_width > 600 and laid_out_width > 0
    expected = [len(t.rows) + 1 for s in document.sections for t in s.tables]  # + header
    assert shown["tables"] == expected


@pytest.mark.integration
def test_the_browser_probe_sees_a_broken_image(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        "<!doctype html><html><body><table><tr><th>a</th></tr></table>"
        "<img alt='x' src='data:image/png;base64,bm90IGEgcG5n'></body></html>"
    )
    shown = _rendered(page, tmp_path)
    assert shown["images"][0][1] == 0 and shown["tables"] == [1]
