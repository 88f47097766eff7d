"""A table's columns, indexes, policies and triggers, read from the live catalog."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from bilantools import commands
from bilantools.commands import TargetLike
from bilantools.errors import DatabaseError
from bilantools.notebook.panel import Panel
from bilantools.notebook.render import Cell, esc, table
from bilantools.render.text import short_bytes as size

if TYPE_CHECKING:
    import psycopg

SCHEMA = "public"  # where the migrations create their tables (and what `stats` counts)

# One set-wise catalog query per kind of object, for the chosen table.
COLUMNS = """
SELECT a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), col_description(c.oid, a.attnum)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = quote_ident(%(schema)s)::regnamespace AND c.relname = %(table)s
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
INDEXES = """
SELECT i.relname, pg_get_indexdef(x.indexrelid), x.indisprimary, x.indisunique, x.indisvalid,
       pg_relation_size(i.oid), s.idx_scan
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class c ON c.oid = x.indrelid
LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = x.indexrelid
WHERE c.relnamespace = quote_ident(%(schema)s)::regnamespace AND c.relname = %(table)s
ORDER BY i.relname
"""
POLICIES = """
SELECT c.relrowsecurity, c.relforcerowsecurity, p.policyname, p.permissive, p.roles::text, p.cmd,
       p.qual, p.with_check
FROM pg_class c
LEFT JOIN pg_policies p ON p.schemaname = %(schema)s AND p.tablename = c.relname
WHERE c.relnamespace = quote_ident(%(schema)s)::regnamespace AND c.relname = %(table)s
ORDER BY p.policyname
"""
TRIGGERS = """
SELECT t.tgname, pg_get_triggerdef(t.oid),
       CASE t.tgenabled WHEN 'D' THEN 'disabled' WHEN 'O' THEN 'enabled' WHEN 'R' THEN 'replica'
                        WHEN 'A' THEN 'always' END
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
WHERE c.relnamespace = quote_ident(%(schema)s)::regnamespace AND c.relname = %(table)s AND NOT t.tgisinternal
ORDER BY t.tgname
"""


def yes(flag: object) -> str:
    return "yes" if flag else ""


class TableExplorer(Panel):
    """A dropdown of the tables (by category, from `commands.stats`) and the chosen one's
    columns, indexes, row level security policies and triggers.

    Reads only: the connection is set read-only before any query.
    """

    def __init__(self, target: TargetLike = None, migrations: Path | str = "migrations") -> None:
        super().__init__(target, migrations)
        self.tables = widgets.Dropdown(description="Table", options=[], layout=widgets.Layout(width="50%"))
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.columns = widgets.HTML()
        self.indexes = widgets.HTML()
        self.policies = widgets.HTML()
        self.triggers = widgets.HTML()
        self.on_click(self.refresh_button, self.refresh)
        self.tables.observe(lambda _change: self.guard(self.show), names="value")
        self.widget = self.stack(
            [self.tables, self.refresh_button], self.columns, self.indexes, self.policies, self.triggers
        )
        self.guard(self.refresh)

    def refresh(self) -> None:
        """Reread the list of tables (after a migration added or dropped some) and redraw."""
        overview = commands.stats(target=self.target, project=self.migrations)
        options = [
            (f"{name} ({category})", name) for category, names in overview.categories for name in names
        ]
        previous = self.tables.value
        self.tables.options = options
        names = [v for _, v in options]
        self.tables.value = previous if previous in names else (names[0] if names else None)
        self.show()

    def show(self) -> None:
        """Render the chosen table's catalog entries (nothing chosen: clear)."""
        name = self.tables.value
        if not name:
            for html in (self.columns, self.indexes, self.policies, self.triggers):
                html.value = ""
            return
        params = {"schema": SCHEMA, "table": str(name)}
        with self._read_only() as conn:
            columns = conn.execute(COLUMNS, params).fetchall()
            indexes = conn.execute(INDEXES, params).fetchall()
            policies = conn.execute(POLICIES, params).fetchall()
            triggers = conn.execute(TRIGGERS, params).fetchall()
        if not columns:
            self.columns.value = f"<p>{esc(name)}: no such table any more; click Refresh</p>"
            return
        self.columns.value = self._section(
            f"Columns of {name}",
            ("#", "column", "type", "not null", "default", "comment"),
            [[r[0], r[1], r[2], yes(r[3]), r[4] or "", r[5] or ""] for r in columns],
        )
        self.indexes.value = self._section(
            "Indexes",
            ("index", "definition", "primary", "unique", "valid", "size", "scans"),
            [
                [
                    r[0],
                    r[1],
                    yes(r[2]),
                    yes(r[3]),
                    "yes" if r[4] else Cell("INVALID", "color:#c62828"),
                    size(int(r[5] or 0)),
                    "" if r[6] is None else r[6],
                ]
                for r in indexes
            ],
        )
        self.policies.value = self._policies(policies)
        self.triggers.value = self._section(
            "Triggers", ("trigger", "definition", "enabled"), [list(r) for r in triggers]
        )

    def _policies(self, rows: Sequence[Sequence[Any]]) -> str:
        enabled, forced = (bool(rows[0][0]), bool(rows[0][1])) if rows else (False, False)
        listed = [r for r in rows if r[2] is not None]
        state = "row level security " + ("on" + (", forced" if forced else "") if enabled else "off")
        warning = ""
        if enabled and not listed:
            warning = " · no policy: non-owners see no row"
        return self._section(
            f"Policies ({state}{warning})",
            ("policy", "permissive", "roles", "command", "using", "with check"),
            [[r[2], r[3], r[4], r[5], r[6] or "", r[7] or ""] for r in listed],
        )

    @staticmethod
    def _section(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
        return f"<h4 style='margin:8px 0 2px'>{esc(title)}</h4>" + table(headers, rows)

    def _read_only(self) -> _ReadOnly:
        return _ReadOnly(self.target.connect("bilantools notebook explorer"), self.target.masked)


class _ReadOnly:
    """A read-only session whose server errors become one-line `DatabaseError`s."""

    def __init__(self, conn: psycopg.Connection, masked: str) -> None:
        self.conn = conn
        self.masked = masked

    def __enter__(self) -> psycopg.Connection:
        self.conn.execute("SET default_transaction_read_only = on")
        return self.conn

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        import psycopg

        self.conn.close()
        if isinstance(exc, psycopg.Error):
            reason = exc.diag.message_primary or str(exc)
            raise DatabaseError(
                f"{self.masked} refused the catalog query: {reason}; check the user's privileges"
            ) from None
