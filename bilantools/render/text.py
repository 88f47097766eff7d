"""Plain text for both faces: byte sizes and aligned tables.

One formatter for sizes, in the two spellings the outputs already use: `human_bytes` as
PostgreSQL's pg_size_pretty writes them (the schema overview, its charts, the notebooks'
tables) and `short_bytes` with one decimal throughout (backup listings, panels). One
aligned table for the CLI's listings, the schema overview and the panels' log.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence


def _bytes(n: int, units: tuple[str, ...], whole_from: float) -> str:
    """`n` in the first unit of `units` (powers of 1024) that keeps it below 1024 (the last
    unit otherwise): the first unit as an exact count, the others with one decimal below
    `whole_from` and none from there."""
    value = float(n)
    for unit in units:
        if abs(value) < 1024 or unit == units[-1]:
            if unit == units[0]:
                return f"{n} {unit}"
            return f"{value:.1f} {unit}" if abs(value) < whole_from else f"{value:.0f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_bytes(n: int) -> str:
    """Sizes as PostgreSQL's pg_size_pretty writes them (powers of 1024), one decimal
    below 10 so that 8 kB pages stay distinguishable."""
    return _bytes(n, ("bytes", "kB", "MB", "GB", "TB"), 10)


def short_bytes(n: int) -> str:
    """Sizes with one decimal from kB up ("512 B", "8.0 kB", "1536.0 GB"): the backup
    listings and the panels."""
    return _bytes(n, ("B", "kB", "MB", "GB"), float("inf"))


def text_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    left: int | None = None,
    right: Collection[int] = (),
    indent: str = "",
    width: Callable[[str], int] = len,
) -> str:
    """Aligned columns, two spaces apart, trailing blanks stripped, lines joined by "\\n".

    The first `left` columns (all by default: names) are aligned to the left, the others
    (numbers, sizes) to the right; or, with `right`, those columns to the right and the
    others to the left. A cell is shown as `str()` (None as nothing); `width` measures
    what a cell shows (the CLI's coloured cells: their length without escapes).
    """
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(width(r[i]) for r in cells) for i in range(len(headers))]
    lefts = len(headers) if left is None else left

    def line(row: list[str]) -> str:
        padded = [
            c + " " * (w - width(c)) if i < lefts and i not in right else " " * (w - width(c)) + c
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return (indent + "  ".join(padded)).rstrip()

    return "\n".join(line(r) for r in cells)


def version_span(versions: Sequence[str]) -> str:
    """The versions a run takes, short enough for a prompt: all of them up to three, else
    the first and the last ("004…029"); they are in run order, so the range reads right."""
    if len(versions) <= 3:
        return ", ".join(versions)
    return f"{versions[0]}…{versions[-1]}"


def count(n: int, noun: str) -> str:
    """ "1 migration", "3 migrations"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
