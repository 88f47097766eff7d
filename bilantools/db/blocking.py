"""Who a migration waited for when it gave up on a lock.

After `lock_timeout` cancels a statement the wait is over, so `pg_blocking_pids()` can
no longer say who blocked it. The sessions that still hold locks on the tables the
statement names are the ones to look at (a blocker is almost always a long transaction
that is still open); failing that, the oldest open transactions of the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

_SESSION = """
SELECT a.pid, a.application_name, a.usename, a.state,
       to_char(a.xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
       extract(epoch FROM clock_timestamp() - a.xact_start)::float8,
       left(regexp_replace(a.query, '\\s+', ' ', 'g'), 80)"""

_HOLDERS = f"""{_SESSION},
       string_agg(DISTINCT l.mode || ' on ' || c.relname, ', '), array_agg(DISTINCT c.relname::text)
FROM pg_locks l
JOIN pg_class c ON c.oid = l.relation
JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.granted AND l.pid <> pg_backend_pid()
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND c.relname = ANY(%s)
GROUP BY 1, 2, 3, 4, 5, 6, 7
ORDER BY 5 NULLS LAST
LIMIT 3
"""

_OLDEST = f"""{_SESSION}, NULL, NULL::text[]
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
  AND a.xact_start IS NOT NULL AND a.backend_type = 'client backend'
ORDER BY a.xact_start
LIMIT 3
"""


@dataclass(frozen=True)
class Blocker:
    """A session that holds (or may hold) the lock a statement waited for."""

    pid: int
    application: str
    user: str
    state: str | None
    since: str | None  # its transaction's start, UTC
    xact_age_s: float | None
    query: str
    locks: str | None  # "AccessShareLock on people": its locks on the statement's tables
    tables: tuple[str, ...] = ()  # the statement's tables it holds a lock on

    def short(self) -> str:
        """pid 42 (alice, psql, xact 40 s): the line of a wait."""
        age = f", xact {self.xact_age_s:.0f} s" if self.xact_age_s is not None else ""
        return f"pid {self.pid} ({self.user}, {self.application or '?'}{age})"

    def long(self) -> str:
        """Everything known, and how to end it: the line of a failure."""
        held = f" holding {self.locks}," if self.locks else ""
        started = f" in a transaction since {self.since} UTC," if self.since else ""
        return (
            f"pid {self.pid} (application '{self.application or '?'}', user {self.user}, "
            f"{self.state or 'unknown state'},{held}{started} last query: {self.query or '?'}; "
            f"end it with SELECT pg_terminate_backend({self.pid}))"
        )


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


def find_blockers(conn: psycopg.Connection, statement: str) -> tuple[list[Blocker], bool]:
    """(the sessions that most likely blocked `statement`, whether they hold locks on its
    tables: False when they are only the oldest open transactions); psycopg.Error when
    pg_stat_activity cannot be read."""
    names = relations(statement)
    rows = conn.execute(_HOLDERS, (names,)).fetchall() if names else []
    holding = bool(rows)
    if not rows:
        rows = conn.execute(_OLDEST).fetchall()
    return [_blocker(row) for row in rows], holding


def _blocker(row: tuple[Any, ...]) -> Blocker:
    pid, app, user, state, since, age, query, locks, tables = row
    return Blocker(pid, app or "", user, state, since, age, query, locks, tuple(sorted(tables or ())))


def held_by(blockers: list[Blocker] | tuple[Blocker, ...], holding: bool) -> str:
    """'held by pid 42 (alice, psql, xact 40 s)': the short clause of a wait."""
    who = "; ".join(b.short() for b in blockers)
    if not blockers:
        return "held by a session that has ended since"
    return f"held by {who}" if holding else f"(the oldest open transactions: {who})"


def describe_blockers(conn: psycopg.Connection, statement: str) -> str:
    """One clause naming the sessions that most likely blocked `statement`."""
    import psycopg

    try:
        blockers, holding = find_blockers(conn, statement)
    except psycopg.Error:
        return "the blocking session could not be read (pg_stat_activity)"
    if not blockers:
        return "the blocking session has ended since"
    lead = (
        "held by"
        if holding
        else "no session holds a lock on its tables now; the oldest open transactions are"
    )
    return f"{lead} " + "; ".join(b.long() for b in blockers)
