"""Rendering: sections of HTML and Markdown, tables, embedded figures, the page itself.

``index.html`` is one self-contained file (figures as base64 PNG data URIs, inline CSS, no
scripts, no external requests) so it can be mailed or archived as is.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from rnnbench.report.tables import DASH, NOTATION

DPI = 110


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1200px;
padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.6rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;font-size:.82rem;margin:.6rem 0 1.2rem;display:block;
overflow-x:auto}
th,td{border:1px solid #ddd;padding:.2rem .45rem;text-align:right;white-space:nowrap}
th{background:#f4f4f4;white-space:normal;min-width:3.2rem;vertical-align:bottom}
td.text,th.text,table.text td{text-align:left;white-space:normal}
tbody tr:nth-child(even){background:#fafafa}
figure{margin:1rem 0}figure img{max-width:100%;height:auto}figcaption{font-size:.85rem;color:#555}
nav ol{columns:2}details pre{background:#f6f6f6;padding:.6rem;overflow-x:auto;font-size:.8rem}
.note{color:#555;font-size:.9rem}
.note.axes{color:#222;background:#fff8e1;border-left:3px solid #e0a800;padding:.4rem .6rem}
"""


def html_table(view: pd.DataFrame, text: bool = False) -> str:
    """``view`` as an HTML table; the index levels as its first columns, their names in the
    one header row (``to_html`` would add a second header row holding only the index names).
    ``text``: a table of text values, aligned left (the run metadata)."""
    named = any(name is not None for name in view.index.names)
    flat = view.reset_index() if named and not isinstance(view.columns, pd.MultiIndex) else view
    if flat is not view:
        flat.columns.name = None  # else drawn as a header cell of its own over the rows' index
    # to_html escapes cell text by default (escape=True): error messages may contain <, &
    return flat.to_html(
        escape=True,
        na_rep=DASH,
        border=0,
        index=flat is view,
        classes="text" if text else None,
    )


def _md_cell(value: Any) -> str:
    text = DASH if value is None or (isinstance(value, float) and math.isnan(value)) else value
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(view: pd.DataFrame) -> str:
    flat = view.reset_index()
    headers = [
        " / ".join(str(p) for p in c if str(p)) if isinstance(c, tuple) else str(c)
        for c in flat.columns
    ]
    lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += [
        "| " + " | ".join(_md_cell(v) for v in row) + " |" for row in flat.itertuples(index=False)
    ]
    return "\n".join(lines)


@dataclass
class Section:
    anchor: str
    title: str
    html: list[str] = field(default_factory=list)
    md: list[str] = field(default_factory=list)

    def para(self, text: str) -> None:
        self.html.append(f"<p class='note'>{html.escape(text)}</p>")
        self.md.append(text)

    def table(self, caption: str, view: pd.DataFrame, text: bool = False) -> None:
        if caption:
            self.html.append(f"<h3>{html.escape(caption)}</h3>")
            self.md.append(f"### {caption}")
        self.html.append(html_table(view, text))
        self.md.append(md_table(view))


def _tight_box(fig: Figure) -> Any:
    """The figure's tight bounding box, measured on an Agg canvas attached to this figure only:
    the report renders the same whatever backend the caller's process uses, and never switches
    it (``matplotlib.use`` would change plotting for the whole process)."""
    canvas = FigureCanvasAgg(fig)
    box = fig.get_tightbbox(canvas.get_renderer())
    return Bbox.from_extents(box.x0 - 0.1, box.y0 - 0.1, box.x1 + 0.1, box.y1 + 0.1)


#: the salt of the SVG's element ids, drawn anew per process otherwise: a rebuilt report's
#: figures are then byte-identical. Set while a figure is saved and only then
#: (:func:`matplotlib.rc_context`): the caller's settings stay as they were
_SVG_SALT = "rnnbench"
#: the metadata each format writes: no dates and no versions, so the bytes depend on the data
_METADATA: dict[str, dict[str, str | None]] = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": "rnnbench"},
    "pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": "rnnbench"},
}
#: the formats written beside the PNG: SVG for the web, PDF for LaTeX
FILE_FORMATS = ("svg", "pdf")


def figure_files(fig: Figure, name: str, figdir: Path) -> bytes:
    """Write ``figdir/name.png`` and one file per :data:`FILE_FORMATS`, reproducibly (the same
    figure gives the same bytes in any process); returns the PNG's bytes."""
    box = _tight_box(fig)  # computed once, used for every format
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": _SVG_SALT}):
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches=box, metadata=_METADATA["png"])
        # bbox_inches="tight" would redo the (slow) tight-bbox pass for every format
        for fmt in FILE_FORMATS:
            path = figdir / f"{name}.{fmt}"
            fig.savefig(path, format=fmt, bbox_inches=box, metadata=_METADATA[fmt])
    png = buffer.getvalue()
    (figdir / f"{name}.png").write_bytes(png)
    return png


def save_figure(name: str, fig: Figure, caption: str, figdir: Path, section: Section) -> None:
    png = figure_files(fig, name, figdir)
    plt.close(fig)
    data = base64.b64encode(png).decode("ascii")
    alt = html.escape(caption, quote=True)
    section.html.append(
        f"<figure><img src='data:image/png;base64,{data}' alt='{alt}'>"
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )
    links = ", ".join(f"[{fmt.upper()}](figures/{name}.{fmt})" for fmt in FILE_FORMATS)
    section.md.append(f"![{caption}](figures/{name}.png)\n\n*{caption}* ({links})")


def render_html(title: str, sections: list[Section], generated: str, note: str = "") -> str:
    """The page. ``note``: a paragraph under the header (the swept fields: what the tables
    keep apart, what is fixed, what the figures draw)."""
    toc = "".join(f"<li><a href='#{s.anchor}'>{html.escape(s.title)}</a></li>" for s in sections)
    body = "".join(
        f"<section id='{s.anchor}'><h2>{html.escape(s.title)}</h2>{''.join(s.html)}</section>\n"
        for s in sections
    )
    # the time stamp on a line of its own: two builds of one store differ in that line alone
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n<p class='note'>Generated {html.escape(generated)}. "
        f"{html.escape(NOTATION)}</p>\n"
        + (f"<p class='note axes'>{html.escape(note)}</p>\n" if note else "")
        + f"<nav><h2>Contents</h2><ol>{toc}</ol></nav>\n{body}</body></html>\n"
    )
