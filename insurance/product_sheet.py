"""The insurers' product sheet: one priced product as a document, written as ``product.md``,
a standalone ``product.html`` (the curves' picture inline) and ``product.pdf``.

What it shows, in order: what the product covers; the curves it was priced on with their
DP-aware 95 % bands (one panel per segment, the rate table's age bands marked); the rate
table; the sharing discount as the published rate difference between sharers and
non-sharers; the false-data penalty and first-of-kind subsidy exactly as configured; the
sections another part appends (the pool's split, layer and fund: ``extra_sections``); and
last the provenance, so that an auditor can trace a price to a signed run: the run id,
the SHA-256 of the curves.json bytes priced and of global_model.npz, and the coordinator
ledger's ``outputs_published`` entry of the run with the first signed tree head covering it.

The ledger trace is :mod:`insurance.release_trace`'s; the sheet names the key it was
verified against, the coordinator's own, so an auditor repeats the check with a key
they trust.

The PDF is WeasyPrint's rendering of the same HTML. WeasyPrint needs the Pango library at
run time; where it cannot run, no PDF is written and :func:`pdf_problem` says why (the
``price`` command prints it), never a PDF pretended.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from common.atomic import atomic_write_bytes, atomic_write_text
from common.errors import FedriskError
from common.file_digest import file_sha256
from common.report_document import Document, Section, Table, render_html, render_markdown
from insurance.discounts import sharing_table
from insurance.price_sheet import PriceSheet
from insurance.product import Product
from insurance.rating import quantile_curve
from insurance.release_trace import Untraced, trace_release
from ledger.log import TreeHead
from models.curves import RiskCurve
from models.model_file import MODEL_FILE
from protocols.plan import model_spec_in

__all__ = ["CURVES_IMAGE", "product_document", "write_product_sheet", "pdf_problem"]

#: The curves' picture, written beside the sheet (Markdown links it, HTML inlines it).
CURVES_IMAGE = "product_curves.png"
#: The PDF's page: A4, smaller type, the picture no wider than the page, digests broken.
_PRINT_CSS = (
    "@page { size: A4; margin: 12mm } body { margin: 0; font-size: 10pt }"
    " img { max-width: 100% } td, th { font-size: 8pt; padding: 2px 5px }"
    " p, td { overflow-wrap: break-word }"
)


def product_document(
    sheet: PriceSheet, run_dir: Path, out_dir: Path, extra_sections: Sequence[Section] = ()
) -> Document:
    """The sheet of ``sheet`` priced on run ``run_dir``; writes the curves' picture into
    ``out_dir``. ``extra_sections`` come after the product's own, before the provenance."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    product = sheet.product
    unit = _time_unit(run_dir)
    image = out_dir / CURVES_IMAGE
    _plot_curves(image, sheet, unit)
    lead = (
        f"Priced on run {sheet.run_id}, curves.json SHA-256 {sheet.curves_sha256}; failure "
        f"is priced at the {_pct(product.uncertainty.band_quantile)} quantile of each "
        "curve's DP-aware band, so a noisier curve costs more."
    )
    sections = (
        _cover(product, unit),
        _curves(sheet, image, unit),
        _rates(sheet, unit),
        _discounts(sheet, unit),
        _penalty_and_subsidy(product),
        *extra_sections,
        _provenance(sheet, run_dir),
    )
    return Document(f"{product.name}: product sheet", lead, sections)


def write_product_sheet(
    sheet: PriceSheet, run_dir: Path, out_dir: Path, extra_sections: Sequence[Section] = ()
) -> list[Path]:
    """product.md, product.html (standalone) and, when WeasyPrint can run, product.pdf in
    ``out_dir``, each written atomically; their paths (the picture's too)."""
    out_dir = Path(out_dir)
    document = product_document(sheet, run_dir, out_dir, extra_sections)
    md_path, html_path = out_dir / "product.md", out_dir / "product.html"
    atomic_write_text(md_path, render_markdown(document, out_dir))
    page = render_html(document)
    atomic_write_text(html_path, page)
    paths = [md_path, html_path, out_dir / CURVES_IMAGE]
    if pdf_problem() is None:
        pdf_path = out_dir / "product.pdf"
        atomic_write_bytes(pdf_path, _pdf(page, out_dir))
        paths.append(pdf_path)
    return paths


def pdf_problem() -> str | None:
    """Why product.pdf cannot be written here, with what to install; None when it can."""
    try:
        import weasyprint  # noqa: F401  (it loads Pango when imported)
    except (ImportError, OSError) as err:
        return (
            f"WeasyPrint cannot run here ({err}); it needs Pango: on Debian "
            "`apt-get install libpango-1.0-0 libpangoft2-1.0-0`, then `make setup`"
        )
    return None


def _pdf(page: str, out_dir: Path) -> bytes:
    import weasyprint

    document = weasyprint.HTML(string=page, base_url=str(out_dir))
    data: bytes = document.write_pdf(stylesheets=[weasyprint.CSS(string=_PRINT_CSS)])
    return data


# -- the product's sections ----------------------------------------------------------------


def _cover(product: Product, unit: str) -> Section:
    severity, loadings = product.severity, product.loadings
    ratio = severity.damage_ratio
    bands = ", ".join(f"{a:g}-{b:g}" for a, b in _bands(product))
    rows = (
        ("segments", ", ".join(product.segments)),
        ("equipment classes", ", ".join(product.equipment_classes or ["all of the segments"])),
        ("term", f"{product.term:g} {unit}"),
        ("age bands at inception", f"{bands} {unit}"),
        ("sum insured per unit", _money(product.sum_insured)),
        ("damage ratio", f"{ratio.distribution}, mean {ratio.mean:g}, sd {ratio.sd:g}"),
        ("deductible / limit per failure", f"{_money(severity.deductible)} / "
         f"{_money(severity.limit)}"),
        ("expenses / profit / platform fee", f"{_pct(loadings.expenses)} / "
         f"{_pct(loadings.profit)} / {_pct(loadings.platform_fee)} of the gross premium"),
        ("band quantile priced", _pct(product.uncertainty.band_quantile)),
    )  # fmt: skip
    note = (
        "Money in currency units; ages and the term in the curves' time unit. The product's "
        "equipment classes price alike, on their segment's curve."
    )
    return Section("What the product covers", (note,), (Table(("item", "value"), rows),))


def _curves(sheet: PriceSheet, image: Path, unit: str) -> Section:
    quantile = _pct(sheet.product.uncertainty.band_quantile)
    note = (
        f"F, the probability that a unit has failed by an age, with its pointwise 95 % band: "
        "the band holds the sampling error and the differential-privacy noise of the curve. "
        f"The dashed line is F at the {quantile} quantile of the band, at which the premium "
        f"is priced. Dotted lines mark the rate table's age bands ({unit}); the grey area "
        "lies past the curves' horizon, where the last interval's hazard is carried on."
    )
    alt = "Failure probability by equipment age with its 95 % band, per segment"
    return Section("Curves with their DP-aware bands", (note,), image=image, image_alt=alt)


def _rates(sheet: PriceSheet, unit: str) -> Section:
    product = sheet.product
    headers = ("segment", f"age ({unit})", "q", "q priced", "pure premium",
               "uncertainty loading", "gross premium")  # fmt: skip
    rows = tuple(
        (r.segment, f"{r.age_from:g}-{r.age_to:g}" + (" (extrapolated)" if r.extrapolated else ""),
         f"{r.q:.4f}", f"{r.q_priced:.4f}", _money(r.pure_premium),
         _money(r.uncertainty_loading), _money(r.gross_premium))
        for r in sheet.rows
    )  # fmt: skip
    payout = sheet.rows[0].expected_payout
    notes = (
        f"Per unit per term of {product.term:g} {unit}, for a unit whose age at inception lies "
        "in the band (priced at its middle age). q = (F(a + T) - F(a)) / (1 - F(a)) is the "
        f"probability of a failure within the term; pure premium = q x {_money(payout)}, the "
        "expected payout of a failure; the uncertainty loading prices q at the band quantile "
        "instead; gross premium = (pure premium + uncertainty loading) / (1 - expenses - "
        "profit - platform fee).",
        "Rows marked (extrapolated) reach past the curves' horizon: their q carries the last "
        "interval's hazard on.",
    )
    return Section("Rate table", notes, (Table(headers, rows),))


def _discounts(sheet: PriceSheet, unit: str) -> Section:
    product = sheet.product
    configured = ", ".join(f"{g} {_pct(s)}" for g, s in product.sharing_discount.items())
    notes = (
        f"Sharing discount by the node's data-quality grade, as configured: {configured}.",
        "What an enterprise pays per unit per term, by the unit's age at inception: a "
        "non-sharer the gross premium, a sharer less the discount of its grade. The "
        "difference is the published rate difference between sharers and non-sharers.",
    )
    tables = tuple(_discount_table(sheet, segment, unit) for segment in product.segments)
    return Section("Sharing discount", notes, tables)


def _discount_table(sheet: PriceSheet, segment: str, unit: str) -> Table:
    """A row per age band of ``segment``, a column per grade (the width stays bounded)."""
    rows = [r for r in sheet.rows if r.segment == segment]
    tiers = [sharing_table(r.gross_premium, sheet.product) for r in rows]
    headers = (f"{segment}, age ({unit})",) + tuple(
        f"{who} ({_pct(share)} off)" for who, share, _ in tiers[0]
    )
    body = tuple(
        (f"{r.age_from:g}-{r.age_to:g}", *(_money(premium) for _, _, premium in tier))
        for r, tier in zip(rows, tiers, strict=True)
    )
    return Table(headers, body)


def _penalty_and_subsidy(product: Product) -> Section:
    schedule = product.first_of_kind_subsidy
    rows = tuple((f"year {year}", _pct(s)) for year, s in enumerate(schedule, start=1))
    rows += ((f"year {len(schedule) + 1} on", _pct(0.0)),)
    notes = (
        f"False-data penalty: an enterprise whose shared data were found false pays the gross "
        f"premium plus {_pct(product.false_data_penalty)}, and no sharing discount.",
        "First-of-kind subsidy: a unit of equipment first of its kind is subsidised by this "
        "share of its premium in each policy year.",
    )
    return Section(
        "False-data penalty and first-of-kind subsidy",
        notes,
        (Table(("policy year", "subsidy"), rows),),
    )


# -- the curves' picture -------------------------------------------------------------------


def _plot_curves(path: Path, sheet: PriceSheet, unit: str) -> None:
    """One panel per priced segment (see :func:`_panel`), as a PNG written atomically."""
    curves = sheet.curves
    figure = Figure(figsize=(7.0, 0.4 + 3.3 * len(curves)), layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(f"{sheet.product.name}, run {sheet.run_id}", fontsize=10)
    axes = figure.subplots(len(curves), 1, squeeze=False)[:, 0]
    for ax, curve in zip(axes, curves, strict=True):
        _panel(ax, curve, sheet.product, unit)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(path, buffer.getvalue())


def _panel(ax: Any, curve: RiskCurve, product: Product, unit: str) -> None:
    """F with its 95 % band and at the priced quantile, the age bands as dotted lines, the
    ages past the horizon grey. F is drawn linearly between the grid edges."""
    quantile = product.uncertainty.band_quantile
    horizon = float(curve.edges[-1])
    right = max(horizon, product.age_bands[-1] + product.term)
    ax.fill_between(curve.edges, curve.failure_lower, curve.failure_upper, color="C0",
                    alpha=0.25, label="95 % DP-aware band")  # fmt: skip
    ax.plot(curve.edges, curve.failure, "o-", markersize=3, color="C0", label="F, the curve")
    ax.plot(curve.edges, 1.0 - quantile_curve(curve, quantile), "--", color="C3",
            linewidth=1.0, label=f"F at the {_pct(quantile)} quantile (priced)")  # fmt: skip
    for edge in product.age_bands:
        ax.axvline(edge, color="0.4", linestyle=":", linewidth=0.8)
    if right > horizon:
        ax.axvspan(horizon, right, color="0.85", label="past the horizon")
    ax.set_xticks(product.age_bands)
    ax.set_xlim(0.0, right)
    ax.set_ylim(0.0, 1.0)
    ax.set_title(f"{curve.segment}: failure probability by age (about {curve.n_units:,.0f} "
                 f"units, {curve.n_failures:,.0f} failures)", fontsize=9)  # fmt: skip
    ax.set_xlabel(f"equipment age ({unit}); ticks: the rate table's age bands")
    ax.set_ylabel("F: probability failed by that age")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="upper left", fontsize=7)


# -- provenance ----------------------------------------------------------------------------


def _provenance(sheet: PriceSheet, run_dir: Path) -> Section:
    model = run_dir / MODEL_FILE
    digests = {
        "curves_sha256": sheet.curves_sha256,
        "model_sha256": file_sha256(model) if model.exists() else None,
    }
    rows = [
        ("run id", sheet.run_id),
        ("curves.json SHA-256 (the bytes priced)", sheet.curves_sha256),
        (f"{MODEL_FILE} SHA-256", digests["model_sha256"] or "not in the run directory"),
    ]
    note, ledger_rows = _ledger_trace(run_dir, sheet.run_id, digests)
    return Section(
        "Provenance: the run and ledger the prices come from",
        (note,),
        (Table(("item", "value"), tuple(rows + ledger_rows)),),
    )


def _ledger_trace(
    run_dir: Path, run_id: str, digests: dict[str, str | None]
) -> tuple[str, list[tuple[str, str]]]:
    """(what the ledger says, its rows): the run's outputs_published entry, whether its
    digests are the ones here, the first signed head covering it and the verification."""
    trace = trace_release(run_dir, run_id)
    if isinstance(trace, Untraced):
        return f"No coordinator ledger to trace these prices to: {trace.reason}.", []
    if trace.entry is None:
        return (
            f"The coordinator ledger {trace.directory} ({trace.verdict}) records no outputs "
            f"of run {run_id}: these prices cannot be traced to a signed release.",
            [],
        )
    entry = trace.entry
    rows = [
        ("coordinator ledger", str(trace.directory)),
        ("ledger verification", trace.verdict),
        ("release entry", f"seq {entry.seq}, {entry.kind}, {_when(entry.time)}"),
        *((f"ledger's {name}", _compare(entry.body.get(name), got))
          for name, got in digests.items()),
        ("signed tree head covering it", _head(trace.head)),
    ]  # fmt: skip
    note = (
        "The coordinator's signed ledger records the run's published outputs by their "
        "SHA-256. To trace a price to the signed run, verify the ledger with a coordinator "
        f"key you trust: fedrisk-audit verify {trace.directory} --coordinator-key PEM "
        "--partial; then the release entry below is in the tree head named, and its "
        "digests are those of the files priced."
    )
    return note, rows


def _compare(recorded: Any, here: str | None) -> str:
    if here is None:
        return f"{recorded} (no file here to compare)"
    if recorded == here:
        return f"{recorded} (matches)"
    return f"{recorded} (DIFFERS from the file here, {here}: do not trust these prices)"


def _head(head: TreeHead | None) -> str:
    if head is None:
        return "none: the entry is not yet covered by a signed tree head"
    return (
        f"size {head.tree_size}, root {head.root_hash}, {_when(head.timestamp)}, "
        f"key id {head.key_id}"
    )


# -- small formats -------------------------------------------------------------------------


def _time_unit(run_dir: Path) -> str:
    """The time unit of the run's model_spec.json; said plainly when there is none."""
    path = run_dir / "model_spec.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return model_spec_in(data, str(path)).time_grid.unit
    except (OSError, ValueError, TypeError, AttributeError, FedriskError):
        return "curves' time units"


def _bands(product: Product) -> list[tuple[float, float]]:
    return list(zip(product.age_bands, product.age_bands[1:], strict=False))


def _pct(share: float) -> str:
    """A share as a percentage, exactly as configured (0.3 -> "30%", 0.275 -> "27.5%")."""
    return f"{round(share * 100, 9):.10g}%"


def _money(amount: float) -> str:
    return f"{amount:,.2f}"


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="seconds")
