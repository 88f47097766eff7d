"""The schema overview as text: `bilantools stats` prints it, the notebooks show it.

The numbers are `db.stats.SchemaStats`; this module only lays them out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bilantools.render.text import human_bytes, text_table

if TYPE_CHECKING:
    from bilantools.db.stats import SchemaStats


def render_text(stats: SchemaStats) -> str:
    """The guide's "Database Schema Overview" (totals, then the "Table Categories" list),
    followed by what the guide cannot know: sizes and rows per category, the flags
    (uncategorized and missing tables), and the largest tables and indexes.

    The totals lines and the numbered category lines keep the format of the first
    `bilantools stats` ("RLS-enabled tables      15", "10. Tracking (2): ...") for
    scripts that grep them.
    """
    summary = stats.summary
    estimate = "exact" if stats.rows_exact else "estimated"
    labels = {
        "tables": "Total Tables",
        "indexes": "Total Indexes",
        "rls_tables": "RLS-enabled tables",
        "policies": "RLS policies",
        "triggers": "Triggers",
        "functions": "Functions",
    }
    notes = {
        "tables": f"{summary['application_tables']} application + {summary['tracking_tables']} tracking",
    }
    out = [f"Database Schema Overview (live catalog, schema {stats.schema})"]
    for key, label in labels.items():
        out.append(f"  {label:<20} {stats.totals[key]:>5}  {notes.get(key, '')}".rstrip())
    out.append(f"  {'Rows (' + estimate + ')':<20} {summary['rows']:>5}")
    out.append(
        f"  {'Size':<20} {human_bytes(summary['bytes'])}  (tables {human_bytes(summary['table_bytes'])}"
        f" + indexes {human_bytes(summary['index_bytes'])})"
    )

    out += ["", "Table Categories"]
    for number, category in enumerate(stats.category_stats, start=1):
        listed = ", ".join(category.table_names)
        out.append(f"  {number:>2}. {category.name} ({len(category.tables)}): {listed}".rstrip())

    out += ["", f"Size per category (rows {estimate})"]
    rows = [
        [
            c.name,
            str(len(c.tables)),
            str(c.index_count),
            str(c.rows),
            human_bytes(c.table_bytes),
            human_bytes(c.index_bytes),
            human_bytes(c.bytes),
        ]
        for c in stats.category_stats
    ]
    rows.append(
        [
            "all",
            str(len(stats.tables)),
            str(sum(c.index_count for c in stats.category_stats)),
            str(summary["rows"]),
            human_bytes(summary["table_bytes"]),
            human_bytes(summary["index_bytes"]),
            human_bytes(summary["bytes"]),
        ]
    )
    out.append(
        text_table(
            ["CATEGORY", "TABLES", "INDEXES", "ROWS", "TABLE SIZE", "INDEX SIZE", "TOTAL"],
            rows,
            left=1,
            indent="  ",
        )
    )

    out += ["", "Flags"]
    if stats.uncategorized:
        out.append(
            f"  uncategorized ({len(stats.uncategorized)}): {', '.join(stats.uncategorized)}"
            " (listed in no category of categories.toml)"
        )
    for name, tables in stats.missing.items():
        out.append(f"  missing from {name} ({len(tables)}): {', '.join(tables)} (not in the database)")
    if not stats.uncategorized and not stats.missing:
        out.append("  none: every table is in a category and every listed table exists")

    out += ["", f"Largest tables (table + TOAST + indexes; rows {estimate})"]
    out.append(
        text_table(
            ["TABLE", "CATEGORY", "ROWS", "SIZE"],
            [[t.name, t.category, str(t.rows), human_bytes(t.bytes)] for t in stats.largest_tables],
            left=2,
            indent="  ",
        )
    )
    out += ["", "Largest indexes"]
    out.append(
        text_table(
            ["INDEX", "TABLE", "SIZE"],
            [[i.name, i.table, human_bytes(i.bytes)] for i in stats.largest_indexes],
            left=2,
            indent="  ",
        )
    )
    return "\n".join(out) + "\n"
