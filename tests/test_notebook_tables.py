"""The runbooks' tables (bilantools.notebook.tables) on real frames from the 29 migrations:
no 0..9 index column, sizes in human units, missing values blank (never NaN, None, <NA>),
thousands separators, problems first and in red, and the same HTML from one run to the
next (nbval compares it exactly)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bilantools import commands
from bilantools.notebook.tables import facts, inspected, show

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
MISSING = ("NaN", "nan", "None", "&lt;NA&gt;", "<NA>")


@pytest.fixture
def migrated(db_url: str) -> Iterator[str]:
    commands.apply(target=db_url, project=MIGRATIONS)
    yield db_url


def cells(html: str) -> list[list[str]]:
    """The body rows of a Styler's HTML, as the text of their cells."""
    body = html.split("<tbody>", 1)[1]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in body.split("</tr>") if "<td" in row]


def test_sizes_in_human_units_without_an_index_column(migrated: str) -> None:
    largest = commands.stats(target=migrated, project=MIGRATIONS).frames()["largest_tables"]
    html = show(largest, sizes=("bytes", "table_bytes", "index_bytes"), numbers=("rows",)).to_html()
    assert "row_heading" not in html and "blank level0" not in html  # no 0..9 index column
    rows = cells(html)
    assert len(rows) == len(largest) and rows[0][0] == largest["name"].iloc[0]  # the frame's order
    bytes_shown = [r[list(largest.columns).index("bytes")] for r in rows]
    assert all(re.fullmatch(r"\d+(\.\d)? (bytes|kB|MB|GB)", s) for s in bytes_shown), bytes_shown
    assert str(int(largest["bytes"].iloc[0])) not in html  # never the raw byte count
    assert "text-align: right" in html and "text-align: left" in html
    assert not any(m in html for m in MISSING)


def test_problems_first_in_red_and_missing_values_blank(migrated: str) -> None:
    indexes = commands.inspect(kind="indexes", target=migrated).sort_values("bytes", ascending=False)
    indexes["problem"] = [
        "unused (0 scans)" if unused and not (primary or unique) else None
        for unused, primary, unique in zip(
            indexes["unused"], indexes["primary"], indexes["unique"], strict=True
        )
    ]
    assert indexes["duplicate_of"].isna().any()  # a column with missing values to blank
    flagged = int(indexes["problem"].notna().sum())
    assert 0 < flagged < len(indexes)
    html = show(indexes, sizes=("bytes",), numbers=("scans",), problems="problem").to_html()
    column = list(indexes.columns).index("problem")
    shown = [r[column] for r in cells(html)]
    assert all(shown[:flagged]) and not any(shown[flagged:])  # the problems first
    assert "color: #b00020" in html
    assert not any(m in html for m in MISSING)


def test_facts_replace_a_printed_dict(migrated: str) -> None:
    overview = commands.stats(target=migrated, project=MIGRATIONS)
    shown = {**overview.totals, "rows_estimated": 1234567, "analysed": True, "note": None}
    html = facts(shown, "totals").to_html()
    rows = cells(html)
    assert rows[0] == ["tables", str(overview.totals["tables"])]
    assert ["rls tables", str(overview.totals["rls_tables"])] in rows
    assert ["rows estimated", "1,234,567"] in rows and ["analysed", "yes"] in rows and ["note", ""] in rows
    assert "row_heading" not in html and "<caption>totals</caption>" in html
    assert not any(m in html for m in MISSING)


def test_the_same_html_from_one_run_to_the_next(migrated: str) -> None:
    frame = commands.stats(target=migrated, project=MIGRATIONS).frames()["categories"]
    assert show(frame, caption="categories").to_html() == show(frame, caption="categories").to_html()


def test_an_unknown_column_is_named(migrated: str) -> None:
    frame = commands.stats(target=migrated, project=MIGRATIONS).frames()["categories"]
    with pytest.raises(ValueError, match=r"show\(\): no column 'size' in \['name', "):
        show(frame, sizes=("size",))


def test_an_inspection_keeps_its_view_with_a_fixed_id_and_aligned_columns(migrated: str) -> None:
    indexes = commands.inspect(kind="indexes", target=migrated)
    html = inspected("indexes", indexes.assign(unused=False)).to_html()
    assert html == inspected("indexes", indexes.assign(unused=False)).to_html()
    rows = cells(html)
    assert rows and all(r[-1].startswith(("prefix of", "duplicate of", "invalid")) for r in rows)  # folded
    assert "row_heading" not in html and "<caption>indexes</caption>" in html
    assert re.search(r"th\.col0, td\.col0|th\.col0 \{\s*text-align: left", html)
    assert not any(m in html for m in MISSING)
