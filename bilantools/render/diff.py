"""Two definitions of one object as a short diff: what verify and drift show for a
changed object, so that a DBA sees what differs without comparing two long lines.

One-line definitions (columns, constraints, indexes, policies...) keep the differing
middle with a little context on each side; multi-line ones (function bodies) keep the
changed lines only. Lines start with "- " (what the migrations create) and "+ " (what
the database has).
"""

from __future__ import annotations

import difflib

CONTEXT = 24  # characters kept on each side of a one-line difference
MAX_LINES = 8  # changed lines shown for a multi-line definition


def short_diff(expected: str, found: str, width: int = 100, context: int = CONTEXT) -> list[str]:
    """The lines that show how `found` differs from `expected` (none when equal); a
    one-line difference keeps `context` characters on each side."""
    if expected == found:
        return []
    if "\n" in expected or "\n" in found:
        return _lines(expected, found, width)
    old, new = _middle(expected, found, context)
    return [f"- {clip(old, width)}", f"+ {clip(new, width)}"]


def cells(expected: str, found: str, width: int = 40) -> tuple[str, str]:
    """Two table cells that show where `expected` and `found` differ (their first changed
    line, cut to the difference), or both texts clipped when they are equal."""
    lines = short_diff(expected, found, width=10_000, context=12)
    old = next((line[2:] for line in lines if line.startswith("- ")), "")
    new = next((line[2:] for line in lines if line.startswith("+ ")), "")
    if not lines:
        return clip(expected, width), clip(found, width)
    return clip(old, width), clip(new, width)


def _middle(expected: str, found: str, context: int) -> tuple[str, str]:
    """Both texts cut to their differing middle and `context` characters around it."""
    head = _common(expected, found)
    tail = _common(expected[head:][::-1], found[head:][::-1])
    start = max(0, head - context)
    space = expected.find(" ", start, head)
    start = space + 1 if start and space >= 0 else start  # begin at a word

    def cut(text: str) -> str:
        end = min(len(text), len(text) - tail + context)
        return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")

    return cut(expected), cut(found)


def _lines(expected: str, found: str, width: int) -> list[str]:
    changed = [
        line
        for line in difflib.unified_diff(expected.splitlines(), found.splitlines(), n=0, lineterm="")
        if line[:1] in "-+" and not line.startswith(("---", "+++"))
    ]
    shown = [f"{line[0]} {clip(line[1:].strip(), width)}" for line in changed[:MAX_LINES]]
    if len(changed) > MAX_LINES:
        shown.append(f"  … {len(changed) - MAX_LINES} more changed line(s)")
    return shown


def _common(a: str, b: str) -> int:
    """The length of the longest common prefix of `a` and `b`."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def clip(text: str, width: int = 40) -> str:
    """`text` on one line, cut to `width` characters (a table cell)."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
