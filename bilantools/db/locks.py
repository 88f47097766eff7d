"""Who waits for whom in a database, read in one query: the sessions waiting for a lock
and the sessions they wait for (pg_locks, pg_blocking_pids), the transactions open longer
than a threshold (the usual blockers of a migration), and the session that holds the
migration lock (`bilantools.db.lock`): what a DBA looks at before and while a migration
waits. Reads only; visible to any role, though without pg_read_all_stats the queries of
other roles' sessions read '<insufficient privilege>'."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from bilantools.db.lock import LOCK_KEYS

if TYPE_CHECKING:
    import psycopg

_QUERY = """
WITH waiting AS (
  SELECT l.pid, l.locktype, l.mode,
         CASE WHEN l.relation IS NOT NULL THEN l.relation::regclass::text END AS relation,
         extract(epoch FROM clock_timestamp() - l.waitstart)::float8 AS waited_s,
         pg_blocking_pids(l.pid) AS blocked_by
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
  WHERE NOT l.granted AND a.datname = current_database() AND l.pid <> pg_backend_pid()
), session AS (
  SELECT a.pid, a.usename AS user, a.application_name AS application, a.state,
         host(a.client_addr) AS client,
         extract(epoch FROM clock_timestamp() - a.xact_start)::float8 AS xact_age_s,
         left(regexp_replace(a.query, '\\s+', ' ', 'g'), 120) AS query
  FROM pg_stat_activity a
)
SELECT
  (SELECT coalesce(json_agg(json_build_object(
      'pid', w.pid, 'user', s.user, 'application', s.application, 'lock', w.locktype, 'mode', w.mode,
      'relation', w.relation, 'waited_s', w.waited_s, 'blocked_by', to_json(w.blocked_by), 'query', s.query)
    ORDER BY w.waited_s DESC NULLS LAST, w.pid), '[]')
   FROM waiting w JOIN session s ON s.pid = w.pid),
  (SELECT coalesce(json_agg(json_build_object(
      'pid', s.pid, 'user', s.user, 'application', s.application, 'state', s.state, 'client', s.client,
      'xact_age_s', s.xact_age_s, 'query', s.query,
      'holds', (SELECT coalesce(json_agg(DISTINCT l.mode || ' on ' || c.oid::regclass::text), '[]')
                FROM pg_locks l JOIN pg_class c ON c.oid = l.relation AND c.relkind NOT IN ('i', 'I')
                WHERE l.pid = s.pid AND l.granted
                  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())),
      'blocking', (SELECT coalesce(json_agg(DISTINCT w.pid), '[]')
                   FROM waiting w WHERE s.pid = ANY(w.blocked_by)))
    ORDER BY s.xact_age_s DESC NULLS LAST, s.pid), '[]')
   FROM session s WHERE s.pid IN (SELECT unnest(blocked_by) FROM waiting)),
  (SELECT coalesce(json_agg(json_build_object(
      'pid', a.pid, 'user', a.usename, 'application', a.application_name, 'state', a.state,
      'xact_age_s', extract(epoch FROM clock_timestamp() - a.xact_start)::float8,
      'query', left(regexp_replace(a.query, '\\s+', ' ', 'g'), 120))
    ORDER BY a.xact_start), '[]')
   FROM pg_stat_activity a
   WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
     AND a.backend_type = 'client backend'
     AND a.xact_start < clock_timestamp() - make_interval(secs => %(older_than)s)),
  (SELECT json_build_object(
      'pid', a.pid, 'user', a.usename, 'application', a.application_name, 'client', host(a.client_addr),
      'host', a.client_hostname, 'connected_at', a.backend_start, 'state', a.state,
      'query', left(regexp_replace(a.query, '\\s+', ' ', 'g'), 120))
   FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
   WHERE l.locktype = 'advisory' AND l.classid = %(class)s::oid AND l.objid = %(obj)s::oid
     AND l.objsubid = 2 AND l.granted
     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   LIMIT 1)
"""


@dataclass(frozen=True)
class Locks:
    """A reading of the locks of one database (JSON-ready: every value a plain type).

    waiters: sessions waiting for a lock, longest wait first: pid, user, application,
    lock (its type), mode, relation (or null), waited_s, blocked_by (pids), query.
    blockers: the sessions they wait for: pid, user, application, state, client,
    xact_age_s, query, holds (its locks on tables, views and sequences of this database,
    "AccessShareLock on people"), blocking (pids).
    long_transactions: open longer than `older_than_s`, oldest first: pid, user,
    application, state, xact_age_s, query.
    migration_lock: the session holding bilantools' migration lock (pid, user,
    application, client, host, connected_at, state, query), or None.
    """

    target: str
    older_than_s: float
    waiters: list[dict[str, Any]]
    blockers: list[dict[str, Any]]
    long_transactions: list[dict[str, Any]]
    migration_lock: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_locks(conn: psycopg.Connection, target: str, older_than_s: float) -> Locks:
    """One read-only query of pg_locks and pg_stat_activity (see `Locks`)."""
    row = conn.execute(
        _QUERY, {"older_than": older_than_s, "class": LOCK_KEYS[0], "obj": LOCK_KEYS[1]}
    ).fetchone()
    assert row is not None
    waiters, blockers, long_transactions, holder = row
    return Locks(target, older_than_s, waiters, blockers, long_transactions, holder)
