"""The guide's "Database Schema Overview" computed from the live catalog."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bilantools.source.categories import UNCATEGORIZED

if TYPE_CHECKING:
    import psycopg

_TOTALS = """
SELECT
  (SELECT count(*) FROM pg_class WHERE relnamespace = %(s)s::regnamespace AND relkind IN ('r', 'p')
     AND NOT relispartition),
  (SELECT count(*) FROM pg_class i JOIN pg_index x ON x.indexrelid = i.oid
     WHERE i.relnamespace = %(s)s::regnamespace),
  (SELECT count(*) FROM pg_class WHERE relnamespace = %(s)s::regnamespace AND relkind IN ('r', 'p')
     AND relrowsecurity),
  (SELECT count(*) FROM pg_policies WHERE schemaname = %(s)s::text),
  (SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
     WHERE c.relnamespace = %(s)s::regnamespace AND NOT t.tgisinternal),
  (SELECT count(*) FROM pg_proc WHERE pronamespace = %(s)s::regnamespace AND prokind IN ('f', 'p', 'w')),
  (SELECT array_agg(relname::text ORDER BY relname) FROM pg_class
     WHERE relnamespace = %(s)s::regnamespace AND relkind IN ('r', 'p') AND NOT relispartition)
"""
TOTAL_KEYS = ("tables", "indexes", "rls_tables", "policies", "triggers", "functions")


@dataclass(frozen=True)
class SchemaStats:
    target: str
    totals: dict[str, int]
    categories: list[tuple[str, list[str]]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "totals": self.totals,
            "categories": [{"name": name, "tables": tables} for name, tables in self.categories],
        }


def schema_stats(
    conn: psycopg.Connection, target: str, categories: dict[str, list[str]], schema: str = "public"
) -> SchemaStats:
    """Totals (one catalog query) and the live tables grouped by `categories`."""
    row = conn.execute(_TOTALS, {"s": schema}).fetchone()
    assert row is not None
    totals = dict(zip(TOTAL_KEYS, (int(v) for v in row[:6]), strict=True))
    live = set(row[6] or [])
    grouped = [(name, [t for t in tables if t in live]) for name, tables in categories.items()]
    known = {t for _, tables in grouped for t in tables}
    rest = sorted(live - known)
    if rest:
        grouped.append((UNCATEGORIZED, rest))
    return SchemaStats(target, totals, [(n, t) for n, t in grouped if t])
