"""bilantools.render.text: the one byte formatter and the one text table, spelled exactly
as the outputs they replaced (the stats report, the CLI's listings, the panels' log)."""

from __future__ import annotations

import click

from bilantools.notebook.render import Cell
from bilantools.render.text import human_bytes, short_bytes, text_table


def test_human_bytes_as_pg_size_pretty() -> None:
    sizes = (0, 1, 1023, 1024, 8192, 10 * 1024 - 1, 10 * 1024, 16384, 500_000, 3 * 1024**3, 5 * 1024**5)
    assert [human_bytes(n) for n in sizes] == [
        "0 bytes",
        "1 bytes",
        "1023 bytes",
        "1.0 kB",
        "8.0 kB",
        "10.0 kB",
        "10 kB",
        "16 kB",
        "488 kB",
        "3.0 GB",
        "5120 TB",
    ]


def test_short_bytes_keeps_one_decimal_and_stops_at_gb() -> None:
    sizes = (0, 512, 1023, 1024, 16384, 500_000, 3 * 1024**3, 2 * 1024**4)
    assert [short_bytes(n) for n in sizes] == [
        "0 B",
        "512 B",
        "1023 B",
        "1.0 kB",
        "16.0 kB",
        "488.3 kB",
        "3.0 GB",
        "2048.0 GB",
    ]


def test_text_table_left_aligned_by_default_without_trailing_blanks() -> None:
    rows: list[list[object]] = [
        ["001", "create_schema", None],
        ["010", "x", Cell("applied", style="color:green")],
    ]
    assert text_table(["VERSION", "NAME", "STATE"], rows) == (
        "VERSION  NAME           STATE\n001      create_schema\n010      x              applied"
    )


def test_text_table_numbers_to_the_right_with_an_indent() -> None:
    rows = [["core", "12", "8.0 kB"], ["tracking", "2", "488 kB"]]
    assert text_table(["CATEGORY", "TABLES", "SIZE"], rows, left=1, indent="  ") == (
        "  CATEGORY  TABLES    SIZE\n  core          12  8.0 kB\n  tracking       2  488 kB"
    )


def test_text_table_measures_coloured_cells_by_what_they_show() -> None:
    red = click.style("failed", fg="red")
    table = text_table(
        ["STATE", "BY"], [[red, "me"], ["applied", "you"]], width=lambda c: len(click.unstyle(c))
    )
    assert click.unstyle(table) == "STATE    BY\nfailed   me\napplied  you"
    assert red + "   me" in table
