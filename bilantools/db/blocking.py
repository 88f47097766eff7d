"""Who a migration waited for when it gave up on a lock.

After `lock_timeout` cancels a statement the wait is over, so `pg_blocking_pids()` can
no longer say who blocked it. The sessions that still hold locks on the tables the
statement names are the ones to look at (a blocker is almost always a long transaction
that is still open); failing that, the oldest open transactions of the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

_HOLDERS = """
SELECT a.pid, a.application_name, a.usename, a.state,
       to_char(a.xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
       left(regexp_replace(a.query, '\\s+', ' ', 'g'), 80),
       string_agg(DISTINCT l.mode || ' on ' || c.relname, ', ')
FROM pg_locks l
JOIN pg_class c ON c.oid = l.relation
JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.granted AND l.pid <> pg_backend_pid()
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND c.relname = ANY(%s)
GROUP BY 1, 2, 3, 4, 5, 6
ORDER BY 5 NULLS LAST
LIMIT 3
"""

_OLDEST = """
SELECT a.pid, a.application_name, a.usename, a.state,
       to_char(a.xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
       left(regexp_replace(a.query, '\\s+', ' ', 'g'), 80), NULL
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
  AND a.xact_start IS NOT NULL AND a.backend_type = 'client backend'
ORDER BY a.xact_start
LIMIT 3
"""


def relations(statement: str) -> list[str]:
    """The unqualified names of the tables, views and sequences `statement` refers to."""
    import json

    from pglast.parser import parse_sql_json

    try:
        tree = json.loads(parse_sql_json(statement))
    except Exception:  # an unparsable statement never reached the server this far
        return []
    return sorted({node["relname"] for node in _range_vars(tree)})


def _range_vars(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "relname" in node and "inh" in node:  # a RangeVar
            yield node
        for value in node.values():
            yield from _range_vars(value)
    elif isinstance(node, list):
        for item in node:
            yield from _range_vars(item)


def describe_blockers(conn: psycopg.Connection, statement: str) -> str:
    """One clause naming the sessions that most likely blocked `statement`."""
    import psycopg

    try:
        names = relations(statement)
        rows = conn.execute(_HOLDERS, (names,)).fetchall() if names else []
        lead = "held by"
        if not rows:
            rows = conn.execute(_OLDEST).fetchall()
            lead = "no session holds a lock on its tables now; the oldest open transactions are"
    except psycopg.Error:
        return "the blocking session could not be read (pg_stat_activity)"
    if not rows:
        return "the blocking session has ended since"
    return f"{lead} " + "; ".join(_session(row) for row in rows)


def _session(row: tuple[Any, ...]) -> str:
    pid, app, user, state, since, query, locks = row
    held = f" holding {locks}," if locks else ""
    started = f" in a transaction since {since} UTC," if since else ""
    return (
        f"pid {pid} (application '{app or '?'}', user {user}, {state or 'unknown state'},{held}{started}"
        f" last query: {query or '?'}; end it with SELECT pg_terminate_backend({pid}))"
    )
