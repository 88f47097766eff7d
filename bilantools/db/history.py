"""The tracking table (the guide's schema_migrations), its functions, and the event log.

`schema_migrations` keeps one row per version, as the guide and migration 029 define
it; every change is also appended to `schema_migration_events`, so history can be
reconstructed after rollbacks, repairs and retries. Reading history never creates
anything: a read-only role can run `status`.
"""

from __future__ import annotations

import getpass
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bilantools.errors import RefusedError

if TYPE_CHECKING:
    import psycopg

    from bilantools.source.engine_rules import TrackingObjects

# Versions are numbers ('1' and '001' are one version, as the README says): a history row
# is found by its version without leading zeros, and keeps the text it was first written
# with. SAME_VERSION compares a row's `version` with a parameter; STORED_VERSION is the
# text to write for a parameter: the existing row's (the oldest, were there two), else
# the parameter itself. (The guide's functions compare text; they get STORED_VERSION.)
SAME_VERSION = "ltrim(version, '0') = ltrim(%s, '0')"
STORED_VERSION = (
    f"coalesce((SELECT version FROM schema_migrations WHERE {SAME_VERSION} ORDER BY id LIMIT 1), %s)"
)
_RECORD_FAILURE = f"SELECT record_migration_failure({STORED_VERSION}, %s, %s)"
_CLEAR_FAILED = f"DELETE FROM schema_migrations WHERE {SAME_VERSION} AND NOT success"
_REALIGN = f"UPDATE schema_migrations SET checksum = %s WHERE {SAME_VERSION}"

# A statement and its parameters, as sent.
Query = tuple[str, Sequence[object]]

TRACKING_FUNCTIONS = (
    "migration_applied(varchar)",
    "record_migration(varchar,text,varchar,text,integer)",
    "record_migration_failure(varchar,text,text)",
    "get_migration_status()",
)


def tracking_sql() -> str:
    return (files("bilantools.db") / "tracking.sql").read_text(encoding="utf-8")


@dataclass(frozen=True)
class HistoryRow:
    version: str
    description: str | None
    checksum: str | None
    applied_at: datetime | None
    applied_by: str | None
    execution_time_ms: int | None
    success: bool
    error_message: str | None
    partial: bool  # a `transaction: off` migration that failed after committing statements


def tracking_state(conn: psycopg.Connection) -> tuple[bool, bool]:
    """(schema_migrations exists with its functions, the event log exists in its current form)."""
    row = conn.execute(
        "SELECT to_regclass('schema_migrations') IS NOT NULL"
        " AND to_regprocedure(%s) IS NOT NULL AND to_regprocedure(%s) IS NOT NULL"
        " AND to_regprocedure(%s) IS NOT NULL AND to_regprocedure(%s) IS NOT NULL,"
        " EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass('schema_migration_events')"
        " AND conname = 'schema_migration_events_outcome_check'"
        " AND pg_get_constraintdef(oid) LIKE '%%started%%')",
        TRACKING_FUNCTIONS,
    ).fetchone()
    assert row is not None
    return bool(row[0]), bool(row[1])


def ensure_tracking(conn: psycopg.Connection) -> None:
    """Create the tracking table, functions and event log when any is missing."""
    import psycopg

    if all(tracking_state(conn)):
        return
    try:
        with conn.transaction():
            conn.execute(tracking_sql())
    except psycopg.errors.InsufficientPrivilege as exc:
        raise RefusedError(
            f"cannot create the tracking table: {exc.diag.message_primary}; run as the schema "
            "owner or GRANT CREATE ON SCHEMA public to this user"
        ) from None


def read_history(conn: psycopg.Connection) -> tuple[bool, list[HistoryRow]]:
    """(whether schema_migrations exists, its rows); reads only, creates nothing."""
    row = conn.execute(
        "SELECT to_regclass('schema_migrations') IS NOT NULL,"
        " to_regclass('schema_migration_events') IS NOT NULL"
    ).fetchone()
    assert row is not None
    has_table, has_events = bool(row[0]), bool(row[1])
    if not has_table:
        return False, []
    # Partial: the version's latest apply event says it stopped half-way (one pass over the log).
    latest = (
        " LEFT JOIN (SELECT DISTINCT ON (ltrim(version, '0')) ltrim(version, '0') AS number, outcome"
        " FROM schema_migration_events WHERE action = 'apply' ORDER BY ltrim(version, '0'), id DESC) e"
        " ON e.number = ltrim(m.version, '0')"
        if has_events
        else " LEFT JOIN (SELECT NULL::text AS outcome) e ON false"
    )
    rows = conn.execute(
        "SELECT m.version, m.description, m.checksum, m.applied_at, m.applied_by,"
        " m.execution_time_ms, m.success, m.error_message,"
        " coalesce(e.outcome IN ('partial', 'started'), false) FROM schema_migrations m"
        + latest
        + " ORDER BY m.id"
    ).fetchall()
    return True, [HistoryRow(*r) for r in rows]


@dataclass(frozen=True)
class Actor:
    """Who runs a change, for the event log."""

    os_user: str
    host: str
    run_id: uuid.UUID
    tool_version: str
    backup: str | None = None  # the backup taken before this run's changes

    @classmethod
    def current(cls) -> Actor:
        from bilantools import __version__

        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        return cls(user, socket.gethostname(), uuid.uuid4(), __version__)


EVENT_COLUMNS = (
    "run_id, version, action, outcome, os_user, host, duration_ms, checksum, detail, tool_version, backup"
)
_EVENT = (
    f"INSERT INTO schema_migration_events ({EVENT_COLUMNS})"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_SUCCESS = (
    "WITH d AS (SELECT coalesce(%s::int,"
    " (extract(epoch FROM clock_timestamp() - now()) * 1000)::int) AS ms),"
    f" tracked AS (SELECT record_migration({STORED_VERSION}, %s, %s, current_user, d.ms) FROM d)"
    f" INSERT INTO schema_migration_events ({EVENT_COLUMNS})"
    " SELECT %s, %s, %s, 'success', %s, %s, d.ms, %s, NULL, %s, %s FROM tracked, d"
    " RETURNING duration_ms"
)
_FORGET = (
    f"WITH gone AS (DELETE FROM schema_migrations WHERE {SAME_VERSION} RETURNING 1)"
    f" INSERT INTO schema_migration_events ({EVENT_COLUMNS})"
    " VALUES (%s, %s, 'rollback', 'success', %s, %s,"
    " coalesce(%s::int, (extract(epoch FROM clock_timestamp() - now()) * 1000)::int), %s, NULL, %s, %s)"
    " RETURNING duration_ms"
)


def event_sql(
    actor: Actor,
    version: str | None,
    action: str,
    outcome: str,
    duration_ms: int | None = None,
    checksum: str | None = None,
    detail: str | None = None,
) -> Query:
    """The event log row of one change, as the statement that appends it."""
    return _EVENT, (
        actor.run_id,
        version,
        action,
        outcome,
        actor.os_user,
        actor.host,
        duration_ms,
        checksum,
        detail,
        actor.tool_version,
        actor.backup,
    )


def run(conn: psycopg.Connection, statement: Query) -> psycopg.Cursor[Any]:
    """Send one of the statements built here (its text from this module's constants, its
    values bound as parameters)."""
    return conn.execute(statement[0], statement[1])


def success_sql(
    actor: Actor,
    version: str,
    description: str,
    checksum: str,
    duration_ms: int | None = None,
    action: str = "apply",
) -> Query:
    """The guide's record_migration plus the event, in one statement (one round trip).

    Without `duration_ms`, the duration is measured by the server from the start of the
    current transaction, which is exact even when migrations were pipelined; the
    statement's one row is that duration.
    """
    return _SUCCESS, (
        duration_ms,
        version,
        version,
        description,
        checksum,
        actor.run_id,
        version,
        action,
        actor.os_user,
        actor.host,
        checksum,
        actor.tool_version,
        actor.backup,
    )


def record_failure(
    conn: psycopg.Connection,
    actor: Actor,
    version: str,
    description: str,
    checksum: str,
    duration_ms: int,
    error: str,
    partial: bool,
) -> None:
    """The guide's record_migration_failure plus the event, in their own transaction."""
    with conn.transaction():
        conn.execute(_RECORD_FAILURE, (version, version, description, error))
        outcome = "partial" if partial else "failure"
        run(conn, event_sql(actor, version, "apply", outcome, duration_ms, checksum, error))


def started_sql(
    actor: Actor, version: str, description: str, checksum: str, detail: str, when: str
) -> list[Query]:
    """Before a `transaction: off` migration: a failed row saying it started (at `when`,
    UTC) and did not finish, and a 'started' event. Its success (or real failure)
    overwrites the row; if the runner dies in between, the history says the migration
    stopped half-way."""
    note = (
        f"interrupted: started {when} UTC by {actor.os_user}@{actor.host} (run {actor.run_id}) and never "
        "finished (the runner was killed, crashed or lost its connection); it runs outside a transaction, "
        "so some of its statements may have committed: make sure it is safe to re-run, then apply again"
    )
    return [
        (_RECORD_FAILURE, (version, version, description, note)),
        event_sql(actor, version, "apply", "started", checksum=checksum, detail=detail),
    ]


def now() -> str:
    """The current UTC time as `started_sql` writes it."""
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def forget_sql(actor: Actor, version: str, checksum: str | None, duration_ms: int | None = None) -> Query:
    """Remove a version's row after its rollback script ran, and log the rollback; the
    statement's one row is the rollback's duration: `duration_ms`, else measured by the
    server from the start of the current transaction."""
    return _FORGET, (
        version,
        actor.run_id,
        version,
        actor.os_user,
        actor.host,
        duration_ms,
        checksum,
        actor.tool_version,
        actor.backup,
    )


def clear_failed(conn: psycopg.Connection, actor: Actor, version: str, error: str | None) -> None:
    """Repair: remove a version's failed row, and log it."""
    conn.execute(_CLEAR_FAILED, (version,))
    run(conn, event_sql(actor, version, "repair", "success", detail=f"cleared failed row: {error}"))


def realign(conn: psycopg.Connection, actor: Actor, version: str, checksum: str) -> None:
    """Repair: take an edited file's checksum as the applied one, and log it."""
    conn.execute(_REALIGN, (checksum, version))
    detail = "checksum realigned with the file"
    run(conn, event_sql(actor, version, "repair", "success", checksum=checksum, detail=detail))


def tracking_objects() -> frozenset[str]:
    """The objects the engine creates before migration 001, as "kind:name" strings.

    Static analysis treats them as provided: a migration may declare them (029 does) and
    its rollback must not drop them.
    """
    return tracking().provided


@lru_cache(maxsize=1)
def tracking() -> TrackingObjects:
    """The tracking tables and functions as `check` sees them: migrations may repeat the
    statements of tracking.sql verbatim, and nothing else that touches these objects."""
    from bilantools.source.engine_rules import TrackingObjects
    from bilantools.source.files import Script, checksum

    text = tracking_sql()
    return TrackingObjects.from_script(Script(Path("tracking.sql"), text, checksum(text)))
