"""One runner at a time per database: a session-level advisory lock.

We poll `pg_try_advisory_lock` with backoff instead of blocking in `pg_advisory_lock`:
a blocked waiter holds a snapshot, and `CREATE INDEX CONCURRENTLY` run by the lock
holder waits for every such snapshot, so a blocking waiter could deadlock the run it
waits for. On timeout the message names the session that holds the lock.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING

from bilantools.errors import LockTimeoutError, option

if TYPE_CHECKING:
    import psycopg

# Two int4 keys, "bila" and "ntoo" in ASCII: the lock is per database.
LOCK_KEYS = (0x62696C61, 0x6E746F6F)
DEFAULT_WAIT = 30.0


def holder(conn: psycopg.Connection) -> str:
    """Describe the session that holds the lock in this database, or 'unknown'."""
    row = conn.execute(
        "SELECT a.pid, a.application_name, a.usename, a.client_addr::text,"
        " to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
        " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.classid = %s::oid AND l.objid = %s::oid"
        " AND l.objsubid = 2 AND l.granted"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        LOCK_KEYS,
    ).fetchone()
    if row is None:
        return "a session that has since ended"
    pid, app, user, addr, since = row
    return (
        f"pid {pid}, application '{app or '?'}', user {user}, from {addr or 'local socket'}, "
        f"connected since {since} UTC"
    )


class MigrationLock:
    """Context manager: acquire on enter (waiting up to `wait` seconds), release on exit."""

    def __init__(self, conn: psycopg.Connection, target_label: str, wait: float = DEFAULT_WAIT) -> None:
        self.conn = conn
        self.target_label = target_label
        self.wait = wait

    def __enter__(self) -> MigrationLock:
        deadline = time.monotonic() + self.wait
        delay = 0.02
        while True:
            row = self.conn.execute("SELECT pg_try_advisory_lock(%s, %s)", LOCK_KEYS).fetchone()
            if row and row[0]:
                return self
            if time.monotonic() + delay > deadline:
                who = holder(self.conn)
                pid = who.split(",")[0].removeprefix("pid ") if who.startswith("pid ") else None
                end = f", or end it with SELECT pg_terminate_backend({pid})" if pid else ""
                longer = option("lock_wait", "SECONDS")
                raise LockTimeoutError(
                    f"another run holds the migration lock on {self.target_label} ({who}); "
                    f"waited {self.wait:g}s: retry when it has finished (or pass {longer} "
                    f"to wait longer){end} if it is stuck"
                )
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)

    def __exit__(self, *exc: object) -> None:
        """Release the lock. A session that is gone took its lock with it; and an unlock
        that fails while an error ends the run must not replace that error (the caller
        closes the connection, which releases the lock)."""
        import psycopg

        if self.conn.closed or self.conn.broken:
            return
        try:
            self.conn.execute("SELECT pg_advisory_unlock(%s, %s)", LOCK_KEYS)
        except psycopg.Error:
            if not (self.conn.closed or self.conn.broken or exc[0] is not None):
                raise
