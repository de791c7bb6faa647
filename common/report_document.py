"""A report as sections of paragraphs, tables and an image, rendered to Markdown and HTML.

Both renderings show the same content. HTML escapes every string it is given and embeds
the image as base64, so the page stands alone; Markdown links the image by a path
relative to the report and escapes table cells' pipes.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from common.html_report import html_png, html_table

__all__ = ["Table", "Section", "Document", "render_markdown", "render_html"]


@dataclass(frozen=True)
class Table:
    """Rows of cells under ``headers``; ``empty`` is shown instead when there are none."""

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    empty: str = "None."


@dataclass(frozen=True)
class Section:
    """A titled part: paragraphs, then tables, then (optionally) a PNG image."""

    title: str
    paragraphs: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()
    image: Path | None = None
    image_alt: str = ""


@dataclass(frozen=True)
class Document:
    title: str
    lead: str
    sections: tuple[Section, ...] = field(default_factory=tuple)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(document: Document, out_dir: Path) -> str:
    """Markdown; images are linked relative to ``out_dir`` (where the file is written)."""
    lines = [f"# {document.title}", "", f"**{document.lead}**", ""]
    for section in document.sections:
        lines += [f"## {section.title}", ""]
        for paragraph in section.paragraphs:
            lines += [paragraph, ""]
        for table in section.tables:
            if not table.rows:
                lines += [table.empty, ""]
                continue
            lines += ["| " + " | ".join(map(_md_cell, table.headers)) + " |"]
            lines += ["|" + "---|" * len(table.headers)]
            lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in table.rows]
            lines.append("")
        if section.image is not None:
            link = os.path.relpath(section.image, out_dir)
            lines += [f"![{section.image_alt}]({link})", ""]
    return "\n".join(lines)


def render_html(document: Document) -> str:
    """A standalone HTML page; every string is escaped, images are inline base64 PNG."""
    esc = html.escape
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(document.title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
        "margin-bottom:1em}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;"
        "text-align:left}th{background:#f4f4f4}</style></head><body>",
        f"<h1>{esc(document.title)}</h1>",
        f"<p><strong>{esc(document.lead)}</strong></p>",
    ]
    for section in document.sections:
        parts.append(f"<h2>{esc(section.title)}</h2>")
        parts += [f"<p>{esc(paragraph)}</p>" for paragraph in section.paragraphs]
        parts += [html_table(t.headers, t.rows, t.empty) for t in section.tables]
        if section.image is not None:
            parts.append(html_png(section.image, section.image_alt))
    parts.append("</body></html>")
    return "\n".join(parts)
