"""Pieces of the self-contained HTML reports (the run report and the audit report).

Every string is escaped; a plot is embedded as a base64 PNG so the file stands alone.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

__all__ = ["html_table", "html_png"]


def html_table(headers: Sequence[object], rows: Sequence[Sequence[object]], empty: str) -> str:
    """An escaped HTML table, or a paragraph saying ``empty`` when there are no rows."""
    esc = html.escape
    if not rows:
        return f"<p>{esc(str(empty))}</p>"
    head = "".join(f"<th>{esc(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def html_png(path: Path, alt: str) -> str:
    """The PNG at ``path`` as an inline image."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"
