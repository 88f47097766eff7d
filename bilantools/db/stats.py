"""The guide's "Database Schema Overview" computed from the live catalog.

Everything comes from a constant number of catalog queries (totals, one row per table,
one row per index), never one query per table: `stats` must stay instant on a production
database with hundreds of tables and must not scan them. Row counts are therefore the
planner's estimates unless exact counts are asked for (one more query, which does scan).

`SchemaStats.as_dict()` is the `stats --json` contract: "target", "totals" (exactly the six
keys below) and "categories" (each with "name" and "tables") are never renamed; every
other key was added beside them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bilantools.source.categories import UNCATEGORIZED

if TYPE_CHECKING:
    import psycopg

_TOTALS = """
SELECT
  (SELECT count(*) FROM pg_class WHERE relnamespace = quote_ident(%(s)s)::regnamespace
     AND relkind IN ('r', 'p') AND NOT relispartition),
  (SELECT count(*) FROM pg_class i JOIN pg_index x ON x.indexrelid = i.oid
     WHERE i.relnamespace = quote_ident(%(s)s)::regnamespace),
  (SELECT count(*) FROM pg_class WHERE relnamespace = quote_ident(%(s)s)::regnamespace
     AND relkind IN ('r', 'p') AND relrowsecurity),
  (SELECT count(*) FROM pg_policies WHERE schemaname = %(s)s::text),
  (SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
     WHERE c.relnamespace = quote_ident(%(s)s)::regnamespace AND NOT t.tgisinternal),
  (SELECT count(*) FROM pg_proc WHERE pronamespace = quote_ident(%(s)s)::regnamespace
     AND prokind IN ('f', 'p', 'w'))
"""

# One row per table (partitions folded into their partitioned parent, which owns no
# storage itself). Rows: `reltuples` once VACUUM or ANALYZE has run; before that it is -1
# (PostgreSQL 14+) and the cumulative statistics' live-tuple count is the only estimate:
# a freshly migrated database has never been analysed, and its seed tables are too small
# (48 MBTI questions) ever to trigger autovacuum's analyse.
_TABLES = """
WITH t AS (
  SELECT c.oid, c.relname::text AS name, c.relkind
  FROM pg_class c
  WHERE c.relnamespace = quote_ident(%(s)s)::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
), storage AS (
  SELECT t.oid AS owner, t.oid AS rel FROM t WHERE t.relkind = 'r'
  UNION ALL
  SELECT t.oid, p.relid FROM t CROSS JOIN LATERAL pg_partition_tree(t.oid) p
  WHERE t.relkind = 'p' AND p.isleaf
)
SELECT t.name,
  coalesce(sum(CASE WHEN r.reltuples >= 0 THEN r.reltuples::bigint ELSE s.n_live_tup END), 0)::bigint,
  coalesce(sum(pg_table_size(st.rel)), 0)::bigint,
  coalesce(sum(pg_indexes_size(st.rel)), 0)::bigint
FROM t
LEFT JOIN storage st ON st.owner = t.oid
LEFT JOIN pg_class r ON r.oid = st.rel
LEFT JOIN pg_stat_all_tables s ON s.relid = st.rel
GROUP BY t.oid, t.name
"""

# Every index of the schema (the same set `totals["indexes"]` counts), attributed to the
# partitioned parent when its table is a partition, like the partition's bytes. All forks,
# as pg_indexes_size() counts them, so a table's index bytes are the sum of its indexes'.
_INDEXES = """
SELECT i.relname::text,
  coalesce(CASE WHEN c.relispartition THEN
    (SELECT r.relname FROM pg_class r WHERE r.oid = pg_partition_root(c.oid)) END, c.relname)::text,
  coalesce(pg_total_relation_size(i.oid), 0)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class c ON c.oid = x.indrelid
WHERE i.relnamespace = quote_ident(%(s)s)::regnamespace
"""

TOTAL_KEYS = ("tables", "indexes", "rls_tables", "policies", "triggers", "functions")
# The engine's own tables (bilantools/db/tracking.sql): the guide's "Total Tables: 43"
# counts the application's tables, without them.
TRACKING_TABLES = ("schema_migrations", "schema_migration_events")
TOP = 10

# Columns of `SchemaStats.frames()`, documented for notebooks.
CATEGORY_COLUMNS = (
    "name",
    "table_count",
    "index_count",
    "rows",
    "bytes",
    "table_bytes",
    "index_bytes",
    "missing",
)
TABLE_COLUMNS = ("name", "category", "rows", "bytes", "table_bytes", "index_bytes", "index_count")
INDEX_COLUMNS = ("name", "table", "bytes")


@dataclass(frozen=True)
class TableStats:
    """One live table. `bytes` is pg_total_relation_size: table_bytes (heap, TOAST, free
    space and visibility maps) + index_bytes."""

    name: str
    category: str
    rows: int
    table_bytes: int
    index_bytes: int
    index_count: int

    @property
    def bytes(self) -> int:
        return self.table_bytes + self.index_bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "category": self.category,
            "rows": self.rows,
            "bytes": self.bytes,
            "table_bytes": self.table_bytes,
            "index_bytes": self.index_bytes,
            "index_count": self.index_count,
        }


@dataclass(frozen=True)
class IndexStats:
    name: str
    table: str
    bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "table": self.table, "bytes": self.bytes}


@dataclass(frozen=True)
class CategoryStats:
    """A category of categories.toml (or the "Uncategorized" rest): its live tables in the
    file's order, the tables it lists that the database lacks, and their sums."""

    name: str
    tables: list[TableStats]
    missing: list[str]

    @property
    def table_names(self) -> list[str]:
        return [t.name for t in self.tables]

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def table_bytes(self) -> int:
        return sum(t.table_bytes for t in self.tables)

    @property
    def index_bytes(self) -> int:
        return sum(t.index_bytes for t in self.tables)

    @property
    def bytes(self) -> int:
        return self.table_bytes + self.index_bytes

    @property
    def index_count(self) -> int:
        return sum(t.index_count for t in self.tables)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tables": self.table_names,
            "table_count": len(self.tables),
            "index_count": self.index_count,
            "rows": self.rows,
            "bytes": self.bytes,
            "table_bytes": self.table_bytes,
            "index_bytes": self.index_bytes,
            "missing": self.missing,
        }


@dataclass(frozen=True)
class SchemaStats:
    """The overview of one schema. `category_stats` follows categories.toml's order (every
    category, even one whose tables are all missing, so the flag has a place), then
    "Uncategorized" when some live table is listed nowhere."""

    target: str
    totals: dict[str, int]
    category_stats: list[CategoryStats]
    tables: list[TableStats]
    indexes: list[IndexStats]
    schema: str = "public"
    rows_exact: bool = False

    @property
    def categories(self) -> list[tuple[str, list[str]]]:
        """(category, live tables) pairs: the shape of the first version, kept for callers."""
        return [(c.name, c.table_names) for c in self.category_stats]

    @property
    def uncategorized(self) -> list[str]:
        return sorted(t.name for t in self.tables if t.category == UNCATEGORIZED)

    @property
    def missing(self) -> dict[str, list[str]]:
        """{category: tables it lists that the database lacks}, only categories with some."""
        return {c.name: c.missing for c in self.category_stats if c.missing}

    @property
    def largest_tables(self) -> list[TableStats]:
        return sorted(self.tables, key=lambda t: (-t.bytes, t.name))[:TOP]

    @property
    def largest_indexes(self) -> list[IndexStats]:
        return sorted(self.indexes, key=lambda i: (-i.bytes, i.name))[:TOP]

    @property
    def summary(self) -> dict[str, int]:
        """Figures beside `totals` (whose six keys are a closed contract)."""
        tracking = sum(1 for t in self.tables if t.name in TRACKING_TABLES)
        return {
            "application_tables": len(self.tables) - tracking,
            "tracking_tables": tracking,
            "rows": sum(t.rows for t in self.tables),
            "bytes": sum(t.bytes for t in self.tables),
            "table_bytes": sum(t.table_bytes for t in self.tables),
            "index_bytes": sum(t.index_bytes for t in self.tables),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "totals": self.totals,
            "categories": [c.as_dict() for c in self.category_stats],
            "schema": self.schema,
            "rows_source": "exact" if self.rows_exact else "estimate",
            "summary": self.summary,
            "uncategorized": self.uncategorized,
            "missing": self.missing,
            "largest_tables": [t.as_dict() for t in self.largest_tables],
            "largest_indexes": [i.as_dict() for i in self.largest_indexes],
        }

    def frames(self) -> dict[str, Any]:
        """pandas DataFrames for notebooks: "categories", "largest_tables", "largest_indexes",
        and every row behind them in "tables" and "indexes" (columns: CATEGORY_COLUMNS,
        TABLE_COLUMNS, INDEX_COLUMNS). pandas is imported here so that the CLI never pays
        for it."""
        import pandas as pd  # type: ignore[import-untyped, unused-ignore]  # pandas ships no types

        def frame(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> Any:
            return pd.DataFrame([{k: r[k] for k in columns} for r in rows], columns=list(columns))

        categories = [{**c.as_dict(), "missing": ", ".join(c.missing)} for c in self.category_stats]
        return {
            "categories": frame(categories, CATEGORY_COLUMNS),
            "largest_tables": frame([t.as_dict() for t in self.largest_tables], TABLE_COLUMNS),
            "largest_indexes": frame([i.as_dict() for i in self.largest_indexes], INDEX_COLUMNS),
            "tables": frame([t.as_dict() for t in self.tables], TABLE_COLUMNS),
            "indexes": frame([i.as_dict() for i in self.indexes], INDEX_COLUMNS),
        }


def schema_stats(
    conn: psycopg.Connection,
    target: str,
    categories: dict[str, list[str]],
    schema: str = "public",
    exact_rows: bool = False,
) -> SchemaStats:
    """Totals, tables, indexes and their grouping by `categories`, in three catalog queries
    whatever the number of tables; `exact_rows` adds one query that counts every table.

    A table listed by several categories belongs to the first one.
    """
    params = {"s": schema}
    row = conn.execute(_TOTALS, params).fetchone()
    assert row is not None
    totals = dict(zip(TOTAL_KEYS, (int(v) for v in row), strict=True))
    live = {
        str(name): (int(rows), int(table_bytes), int(index_bytes))
        for name, rows, table_bytes, index_bytes in conn.execute(_TABLES, params).fetchall()
    }
    indexes = sorted(
        (IndexStats(str(n), str(t), int(b)) for n, t, b in conn.execute(_INDEXES, params).fetchall()),
        key=lambda i: (i.table, i.name),
    )
    if exact_rows:
        counted = _exact_counts(conn, schema, sorted(live))
        live = {name: (counted[name], *figures[1:]) for name, figures in live.items()}
    index_counts = Counter(i.table for i in indexes)

    home: dict[str, str] = {}
    for category, names in categories.items():
        for name in names:
            home.setdefault(name, category)

    def table(name: str) -> TableStats:
        rows, table_bytes, index_bytes = live[name]
        category = home.get(name, UNCATEGORIZED)
        return TableStats(name, category, rows, table_bytes, index_bytes, index_counts[name])

    grouped = [
        CategoryStats(
            category,
            [table(n) for n in _unique(names) if n in live and home[n] == category],
            [n for n in _unique(names) if n not in live and home[n] == category],
        )
        for category, names in categories.items()
    ]
    rest = [table(n) for n in sorted(live) if n not in home]
    if rest:
        grouped.append(CategoryStats(UNCATEGORIZED, rest, []))
    tables = [t for c in grouped for t in c.tables]
    return SchemaStats(target, totals, grouped, tables, indexes, schema, exact_rows)


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _exact_counts(conn: psycopg.Connection, schema: str, names: list[str]) -> dict[str, int]:
    """count(*) of every table in one UNION ALL statement.

    Row level security would silently count only the rows the role may see (nothing, for
    the application's role with no user set), so the count runs with row_security off:
    PostgreSQL then refuses instead of filtering, and we say which role is needed.
    """
    import psycopg
    from psycopg import sql

    from bilantools.db.diagnostics import server_message
    from bilantools.errors import DatabaseError

    if not names:
        return {}
    query = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {}::text, count(*) FROM {}").format(sql.Literal(n), sql.Identifier(schema, n))
        for n in names
    )
    try:
        with conn.transaction():
            conn.execute("SET LOCAL row_security = off")
            return {str(n): int(c) for n, c in conn.execute(query).fetchall()}
    except psycopg.errors.InsufficientPrivilege as exc:
        raise DatabaseError(
            f"exact row counts need to read every table unfiltered: {server_message(exc)}; connect "
            "as the tables' owner or a role with BYPASSRLS, or use the estimates (without exact rows)"
        ) from None
