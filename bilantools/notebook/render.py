"""Small HTML tables for panels (escaped, styled inline so they survive any frontend).

Their plain-text twin (the log's text/plain form) is `bilantools.render.text.text_table`,
which shows a `Cell` by its text."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

TABLE_STYLE = "border-collapse:collapse;font-size:12px;font-family:monospace"
CELL_STYLE = "border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top"


@dataclass(frozen=True)
class Cell:
    """A table cell with its own style (a state colour) and optional hover text."""

    text: str
    style: str = ""
    title: str = ""

    def __str__(self) -> str:
        return self.text


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value))


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    row_attrs: Sequence[Mapping[str, str]] | None = None,
    empty: str = "(none)",
) -> str:
    """An HTML table; `row_attrs` adds data-* attributes per row (what tests select on)."""
    if not rows:
        return f'<p style="color:#757575;font-style:italic">{esc(empty)}</p>'
    head = "".join(f'<th style="{CELL_STYLE};background:#f5f5f5">{esc(h)}</th>' for h in headers)
    body = []
    for index, row in enumerate(rows):
        attrs = row_attrs[index] if row_attrs else {}
        attr_text = "".join(f' {esc(k)}="{esc(v)}"' for k, v in attrs.items())
        cells = []
        for value in row:
            if isinstance(value, Cell):
                title = f' title="{esc(value.title)}"' if value.title else ""
                cells.append(f'<td style="{CELL_STYLE};{value.style}"{title}>{esc(value.text)}</td>')
            else:
                cells.append(f'<td style="{CELL_STYLE}">{esc(value)}</td>')
        body.append(f"<tr{attr_text}>{''.join(cells)}</tr>")
    return f'<table style="{TABLE_STYLE}"><tr>{head}</tr>{"".join(body)}</table>'
