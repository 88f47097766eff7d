"""Writing to a panel's log, an `ipywidgets.Output`.

Callbacks run outside any cell, so ``with out:`` would leak into whatever cell runs next
(and is not captured without a frontend): every line goes through `append_stdout` or
`append_display_data`. Coloured lines are display objects carrying both an HTML and a
plain-text form, so the log also reads well where HTML is not rendered.
"""

from __future__ import annotations

import html
from typing import Any

from bilantools.commands import redact

ERROR = "#c62828"
WARNING = "#e65100"
SUCCESS = "#2e7d32"


class Line:
    """One coloured log line: HTML for a browser, plain text for everything else."""

    def __init__(self, text: str, colour: str | None = None, bold: bool = False) -> None:
        self.text = text
        self.colour = colour
        self.bold = bold

    def _repr_html_(self) -> str:
        style = f"color:{self.colour};" if self.colour else ""
        style += "font-weight:bold;" if self.bold else ""
        return (
            f'<div style="{style}font-family:monospace;white-space:pre-wrap">{html.escape(self.text)}</div>'
        )

    def __repr__(self) -> str:
        return self.text


class Fragment:
    """A block of HTML (a table, a script) with its plain-text equivalent."""

    def __init__(self, markup: str, text: str) -> None:
        self.markup = markup
        self.text = text

    def _repr_html_(self) -> str:
        return self.markup

    def __repr__(self) -> str:
        return self.text


def one_line(text: str) -> str:
    """Collapse whitespace and mask passwords: log lines are single lines and never secret."""
    return redact(" ".join(text.split()))


def info(out: Any, text: str) -> None:
    """A plain line."""
    out.append_stdout(one_line(text) + "\n")


def success(out: Any, text: str) -> None:
    """A green line: the operation did what was asked."""
    out.append_display_data(Line(one_line(text), SUCCESS))


def warning(out: Any, text: str) -> None:
    """An orange line: a finding that needs attention, not a failure of the panel."""
    out.append_display_data(Line(one_line(text), WARNING))


def error(out: Any, text: str) -> None:
    """The one red line an error gets."""
    out.append_display_data(Line("error: " + one_line(text), ERROR, bold=True))


def block(out: Any, markup: str, text: str) -> None:
    """A multi-line block (a table, SQL): `markup` is HTML that the caller escaped."""
    out.append_display_data(Fragment(markup, redact(text)))


def log_text(out: Any) -> str:
    """Everything a log shows, as plain text (for tests and for copying into a ticket)."""
    parts: list[str] = []
    for item in out.outputs:
        if item.get("output_type") == "stream":
            parts.append(str(item.get("text", "")))
        else:
            data = item.get("data", {})
            parts.append(str(data.get("text/plain", "")) + "\n")
    return "".join(parts)
