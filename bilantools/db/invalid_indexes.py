"""Indexes that a failed or interrupted CREATE INDEX CONCURRENTLY left behind.

A concurrent index build that fails (lock timeout, cancel, duplicate key) or whose
session dies leaves an INVALID index: the planner ignores it, every write still
maintains it, and a re-run with IF NOT EXISTS skips the build because the name exists.
Before a non-transactional migration is retried, and right after one of its concurrent
builds fails, the engine drops such an index so that the retry builds it for real.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

    from bilantools.source.statements import Statement


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
