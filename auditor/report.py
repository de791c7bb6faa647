"""The audit report as Markdown (``audit.md``) and HTML (``audit.html``), plus the plot.

Both formats render the same tables: verdict, ledgers, findings, lifetime epsilon per
node, epsilon per run, enterprise-level epsilon. The plot (``epsilon.png``) is written next
to the reports and embedded in the HTML as base64, so the HTML file stands alone.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

from auditor.plot import write_epsilon_plot
from auditor.verify import AuditResult
from common.exit_codes import EXIT_CODE_HELP
from common.html_report import html_png, html_table

__all__ = ["MARKDOWN_FILE", "HTML_FILE", "write_reports"]

MARKDOWN_FILE = "audit.md"
HTML_FILE = "audit.html"

_METHOD = (
    "Epsilon is recomputed with Google's dp-accounting (RDP accountant, the orders of "
    "privacy.accounting) from the mechanism parameters in the ledgers. A claim that "
    "understates the recomputed value by more than {tol:.0%} fails; an overstatement is "
    "reported only. Relative difference = (claimed - recomputed) / recomputed."
)


@dataclass(frozen=True)
class _Table:
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    empty: str


def _num(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.6g}"


def _rel(value: float) -> str:
    """A relative difference, e.g. "-7.49e-07" (-0.0000749 %)."""
    return f"{value:+.3g}" if math.isinf(value) else f"{value:+.2e}"


def _tables(result: AuditResult) -> list[_Table]:
    return [
        _Table(
            "Ledgers",
            ("ledger", "source", "trusted key", "entries", "signed", "tree heads", "errors"),
            tuple(
                (
                    s.name,
                    s.source,
                    s.key_id or "none",
                    str(s.entries),
                    str(s.signed_size),
                    str(s.tree_heads),
                    str(s.errors),
                )
                for s in result.ledgers
            ),
            "No ledgers.",
        ),
        _Table(
            "Findings",
            ("severity", "class", "kind", "where", "message"),
            tuple(
                (f.severity, f.cls.label, f.kind, f.where, f.message)
                for f in sorted(result.findings, key=lambda f: f.severity)
            ),
            "No findings.",
        ),
        _Table(
            "Record-level epsilon per node (lifetime)",
            (
                "node",
                "unit",
                "releases",
                "claimed",
                "recomputed",
                "largest rel. diff.",
                "cap",
                "delta",
            ),
            tuple(
                (
                    r.node,
                    r.unit,
                    str(r.releases),
                    _num(r.claimed),
                    _num(r.recomputed),
                    _rel(r.largest_relative_difference),
                    _num(r.cap),
                    f"{r.delta:g}",
                )
                for r in result.node_rows
            ),
            "No node releases.",
        ),
        _Table(
            "Record-level epsilon per run",
            ("run", "node", "releases", "recomputed", "plan's record epsilon", "delta"),
            tuple(
                (
                    r.run_id,
                    r.node,
                    str(r.releases),
                    _num(r.recomputed),
                    _num(r.record_epsilon),
                    f"{r.delta:g}",
                )
                for r in result.run_rows
            ),
            "No coordinator ledger or no record-level releases.",
        ),
        _Table(
            "Enterprise-level epsilon per run",
            ("run", "round", "claimed", "recomputed", "rel. diff.", "cap", "delta"),
            tuple(
                (
                    r.run_id,
                    str(r.round),
                    _num(r.claimed),
                    _num(r.recomputed),
                    _rel(r.relative_difference),
                    _num(r.cap),
                    f"{r.delta:g}",
                )
                for r in result.enterprise_rows
            ),
            "No enterprise-level releases recorded.",
        ),
    ]


def _summary(result: AuditResult) -> str:
    code = result.exit_code
    return (
        f"Verdict: {result.verdict} (exit code {int(code)}: {EXIT_CODE_HELP[code]}) - "
        f"{len(result.errors)} error(s), {len(result.warnings)} warning(s); largest relative "
        f"difference of a lifetime claim: {_rel(result.largest_relative_difference)}."
    )


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(result: AuditResult, plot: Path | None) -> str:
    lines = ["# fedrisk audit report", "", f"**{_summary(result)}**", ""]
    for table in _tables(result):
        lines += [f"## {table.title}", ""]
        if not table.rows:
            lines += [table.empty, ""]
            continue
        lines += ["| " + " | ".join(table.headers) + " |", "|" + "---|" * len(table.headers)]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
        lines.append("")
    if plot is not None:
        lines += ["## Epsilon over time", "", f"![epsilon over time]({plot.name})", ""]
    lines += ["## Method", "", _METHOD.format(tol=result.tolerance), ""]
    return "\n".join(lines)


def _html(result: AuditResult, plot: Path | None) -> str:
    esc = html.escape
    colour = "#1a7f37" if result.verdict == "PASS" else "#b42318"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>fedrisk audit</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left}"
        "th{background:#f4f4f4}</style></head><body>",
        "<h1>fedrisk audit report</h1>",
        f"<p style='color:{colour};font-weight:bold'>{esc(_summary(result))}</p>",
    ]
    for table in _tables(result):
        parts.append(f"<h2>{esc(table.title)}</h2>")
        parts.append(html_table(table.headers, table.rows, table.empty))
    if plot is not None:
        parts += ["<h2>Epsilon over time</h2>", html_png(plot, "epsilon over time")]
    parts += [
        "<h2>Method</h2>",
        f"<p>{esc(_METHOD.format(tol=result.tolerance))}</p>",
        "</body></html>",
    ]
    return "\n".join(parts)


def write_reports(result: AuditResult, out_dir: Path) -> list[Path]:
    """Write audit.md, audit.html and (with releases) epsilon.png; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot = write_epsilon_plot(result.node_rows, out)
    markdown, page = out / MARKDOWN_FILE, out / HTML_FILE
    markdown.write_text(_markdown(result, plot), encoding="utf-8")
    page.write_text(_html(result, plot), encoding="utf-8")
    return [markdown, page] + ([plot] if plot is not None else [])
