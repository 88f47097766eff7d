"""Indexes that a failed or interrupted CREATE INDEX CONCURRENTLY left behind.

A concurrent index build that fails (lock timeout, cancel, duplicate key) or whose
session dies leaves an INVALID index: the planner ignores it, every write still
maintains it, and a re-run with IF NOT EXISTS skips the build because the name exists.
Before a non-transactional migration runs, and right after one of its concurrent builds
fails, the engine drops such an index of a name the migration builds, whoever left it,
so that the build happens for real. `status` and `verify` list every invalid index of
the database (`find`), also those another tool left or a build running right now has.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

    from bilantools.source.statements import Statement


# Every index the planner ignores; a concurrent build still running is one too, until it ends.
_INVALID = (
    "SELECT n.nspname, t.relname, c.relname, pg_get_indexdef(i.indexrelid)"
    " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE NOT i.indisvalid ORDER BY 1, 2, 3"
)


@dataclass(frozen=True)
class InvalidIndex:
    """An index with pg_index.indisvalid false, and the statement that would build it."""

    schema: str
    table: str
    index: str
    definition: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def one_line(self) -> str:
        """What the CLI prints, with the fix."""
        return (
            f"invalid index {self.schema}.{self.index} on {self.schema}.{self.table} (ignored by queries, "
            f"still updated by every write): DROP INDEX CONCURRENTLY {self.schema}.{self.index}, then "
            f"build it again ({self.definition}), or apply the migration that builds it"
        )


def find(conn: psycopg.Connection) -> list[InvalidIndex]:
    """Every invalid index of the database, by schema, table and name."""
    return [InvalidIndex(*row) for row in conn.execute(_INVALID).fetchall()]


def concurrent_index(statement: str) -> tuple[str | None, str] | None:
    """(schema or None, index name) of a named CREATE INDEX CONCURRENTLY, else None."""
    from pglast.parser import parse_sql_json

    if "concurrently" not in statement.lower():
        return None
    try:
        stmts = json.loads(parse_sql_json(statement)).get("stmts", [])
    except Exception:
        return None
    for raw in stmts:
        node = raw.get("stmt", {}).get("IndexStmt")
        if node and node.get("concurrent") and node.get("idxname"):
            return node.get("relation", {}).get("schemaname"), node["idxname"]
    return None


def drop_invalid(conn: psycopg.Connection, statements: list[Statement]) -> list[tuple[str, str | None]]:
    """Drop the INVALID indexes named by the concurrent builds among `statements`
    (autocommit connection, under the session's lock_timeout: the drop waits for the same
    transactions the build waited for); returns (index, None when dropped, else why not)."""
    import psycopg
    from psycopg import sql

    from bilantools.db.diagnostics import server_message

    dropped: list[tuple[str, str | None]] = []
    for stmt in statements:
        found = concurrent_index(stmt.text)
        if found is None:
            continue
        schema, name = found
        row = conn.execute(
            "SELECT n.nspname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE NOT i.indisvalid AND c.relname = %s"
            " AND (n.nspname = %s OR (%s::text IS NULL AND n.nspname = ANY(current_schemas(false))))"
            " ORDER BY array_position(current_schemas(false), n.nspname) LIMIT 1",
            (name, schema, schema),
        ).fetchone()
        if row is None:
            continue
        try:
            conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(row[0], name)))
        except psycopg.Error as exc:
            dropped.append((f"{row[0]}.{name}", server_message(exc)))
        else:
            dropped.append((f"{row[0]}.{name}", None))
    return dropped
