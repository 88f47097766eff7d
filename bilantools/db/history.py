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
# {history}, {events}, {failure}, {record}: the tracking objects, qualified (`Tracking.sql`).
SAME_VERSION = "ltrim(version, '0') = ltrim(%s, '0')"
STORED_VERSION = f"coalesce((SELECT version FROM {{history}} WHERE {SAME_VERSION} ORDER BY id LIMIT 1), %s)"
_RECORD_FAILURE = f"SELECT {{failure}}({STORED_VERSION}, %s, %s)"
_CLEAR_FAILED = f"DELETE FROM {{history}} WHERE {SAME_VERSION} AND NOT success"
_REALIGN = f"UPDATE {{history}} SET checksum = %s WHERE {SAME_VERSION}"

# A statement and its parameters, as sent.
Query = tuple[str, Sequence[object]]

TRACKING_FUNCTIONS = (
    "migration_applied(varchar)",
    "record_migration(varchar,text,varchar,text,integer)",
    "record_migration_failure(varchar,text,text)",
    "get_migration_status()",
)
# The columns of our schema_migrations that a peer tool's table of that name lacks.
_OURS = ("id", "version", "description", "checksum", "applied_at", "success", "error_message")


@dataclass(frozen=True)
class Tracking:
    """Where the tracking objects live: the schema the engine names them in, whatever the
    search_path (`[tool.bilantools] tracking-schema`, checked as a plain name in config).

    Our own layout without a configured schema keeps them where they always were: named
    unqualified, in the first schema of the search_path (public, unless the connection sets
    another), so that an existing history is found where it is and migration 029's copy of
    them is the same statements."""

    schema: str = "public"
    qualified: bool = True  # False: unqualified, the search_path's first schema (`SEARCH_PATH`)
    peer: str | None = None  # the tool whose history table is kept in step (keep-peer-history)
    peer_schema: str = "public"  # where that table is: the first schema of the search_path
    # Where an earlier bilantools kept this project's history: public, for another tool's
    # layout without a configured tracking-schema (the default moved to bilantools).
    earlier: str | None = None

    @classmethod
    def of(cls, directory: Path, layout: str) -> Tracking:
        """The configured place for the migrations of `directory` in `layout`."""
        from bilantools.source.config import load_config

        config = load_config(directory.absolute())
        qualified = config.tracking_schema is not None or layout != "bilantools"
        earlier = "public" if config.tracking_schema is None and layout != "bilantools" else None
        return cls(
            config.tracking_schema_for(layout), qualified, config.peer_history_for(layout), earlier=earlier
        )

    def name(self, obj: str) -> str:
        """`obj` as the engine's SQL names it ('"bilantools"."schema_migrations"')."""
        return _qualified(self.schema, obj) if self.qualified else obj

    @property
    def label(self) -> str:
        """The history table as users read it: bilantools.schema_migrations."""
        return f"{self.schema}.schema_migrations"

    def sql(self, template: str) -> str:
        """`template` with its {history}, {events}, {failure}, {record} placeholders filled."""
        return _render(template, self.schema if self.qualified else None)

    @property
    def functions(self) -> tuple[str, ...]:
        """The guide's functions' signatures, qualified, for to_regprocedure."""
        return tuple(self.name(f.split("(")[0]) + "(" + f.split("(", 1)[1] for f in TRACKING_FUNCTIONS)


@lru_cache(maxsize=512)
def _qualified(schema: str, obj: str) -> str:
    from psycopg import sql

    return sql.Identifier(schema, obj).as_string(None)


def _quoted(schema: str) -> str:
    from psycopg import sql

    return sql.Identifier(schema).as_string(None)


@lru_cache(maxsize=128)
def _render(template: str, schema: str | None) -> str:
    """`template` with the tracking objects named in `schema` (None: unqualified)."""
    names = {
        "history": "schema_migrations",
        "events": "schema_migration_events",
        "failure": "record_migration_failure",
        "record": "record_migration",
    }
    return template.format(
        **{key: obj if schema is None else _qualified(schema, obj) for key, obj in names.items()}
    )


# Our own layout's default place (see `Tracking`).
SEARCH_PATH = Tracking(qualified=False)


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


# The tracking objects as they are: our table's columns (name and type; null when there is
# no table of that name), whether the event log exists, whether the table and the four
# functions exist, whether the event log is in its current form (its outcome check, its
# rollout_id column). One round trip.
_SHAPE = (
    "SELECT (SELECT array_agg(a.attname::text || ' ' || format_type(a.atttypid, a.atttypmod)"
    " ORDER BY a.attnum) FROM pg_attribute a"
    " WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped),"
    " to_regclass(%s) IS NOT NULL,"
    " to_regclass(%s) IS NOT NULL"
    " AND to_regprocedure(%s) IS NOT NULL AND to_regprocedure(%s) IS NOT NULL"
    " AND to_regprocedure(%s) IS NOT NULL AND to_regprocedure(%s) IS NOT NULL,"
    " EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(%s)"
    " AND conname = 'schema_migration_events_outcome_check'"
    " AND pg_get_constraintdef(oid) LIKE '%%lock-timeout%%'),"
    " EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = 'rollout_id'"
    " AND NOT attisdropped),"
    " EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = 'error_message')"
)


def _shape(conn: psycopg.Connection, tracking: Tracking) -> tuple[bool, bool, bool, bool]:
    """(our schema_migrations exists, the event log exists, the table and the functions
    exist, the event log is in its current form); RefusedError when a table of our name in
    our place is another tool's (golang-migrate's, dbmate's): never read or write it as ours."""
    history, events = tracking.name("schema_migrations"), tracking.name("schema_migration_events")
    earlier = _qualified(tracking.earlier, "schema_migrations") if tracking.earlier else None
    row = conn.execute(
        _SHAPE, (history, events, history, *tracking.functions, events, events, earlier)
    ).fetchone()
    assert row is not None
    described, has_events, ready, checked, with_rollout, left_behind = row
    if described is None and left_behind:
        keep = f'tracking-schema = "{tracking.earlier}"'
        other = f'tracking-schema = "{tracking.schema}"'
        raise RefusedError(
            f"bilantools' history is in {tracking.earlier}.schema_migrations (where bilantools kept it "
            f"before tracking-schema), and this project's default place is {tracking.label}; nothing was "
            f"changed: set {keep} under [tool.bilantools] in pyproject.toml to go on with that history, "
            f"or {other} if it is another project's"
        )
    if described is not None and not set(_OURS) <= {column.split(" ", 1)[0] for column in described}:
        from bilantools.source.config import PEER_TRACKING_SCHEMA

        other = "another schema" if tracking.schema == PEER_TRACKING_SCHEMA else f'"{PEER_TRACKING_SCHEMA}"'
        raise RefusedError(
            f"{tracking.label} exists with columns ({', '.join(described)}), which are not bilantools' "
            "(another tool's history, e.g. golang-migrate's or dbmate's): bilantools will not read or write "
            f"it; nothing was changed: set tracking-schema = {other} under [tool.bilantools] in "
            "pyproject.toml so that bilantools keeps its history there"
        )
    return described is not None, bool(has_events), bool(ready), bool(checked and with_rollout)


def tracking_state(conn: psycopg.Connection, tracking: Tracking) -> tuple[bool, bool]:
    """(schema_migrations exists with its functions, the event log exists in its current
    form); RefusedError when the table there is another tool's (see `_shape`)."""
    _, _, ready, current = _shape(conn, tracking)
    return ready, current


def ensure_tracking(conn: psycopg.Connection, tracking: Tracking = SEARCH_PATH) -> None:
    """Create the tracking table, functions and event log when any is missing, in the
    tracking schema (see `creation_sql`); upgrade an event log of an earlier release."""
    import psycopg

    ready, current = tracking_state(conn, tracking)
    if ready and current:
        return
    try:
        with conn.transaction():
            # The search_path is set back before the transaction goes on (it may be the
            # dry run's, whose migrations follow).
            previous = conn.execute("SELECT current_setting('search_path')").fetchone()
            for statement in creation_sql(tracking):
                conn.execute(statement)
            conn.execute("SELECT set_config('search_path', %s, true)", (previous[0] if previous else "",))
    except psycopg.errors.InsufficientPrivilege as exc:
        if ready:  # they exist: only their owner may alter them
            raise RefusedError(
                f"cannot upgrade the tracking objects in schema {tracking.schema} to this bilantools "
                f"release's shape ({exc.diag.message_primary}); nothing was changed: run the same command "
                "once as their owner (it upgrades them first), then go on as this user"
            ) from None
        raise RefusedError(
            f"cannot create the tracking table: {exc.diag.message_primary}; run as the schema "
            f"owner or GRANT CREATE ON SCHEMA {tracking.schema} to this user"
        ) from None


def creation_sql(tracking: Tracking) -> list[str]:
    """The statements that create the tracking objects in `tracking`'s schema, in one
    transaction. tracking.sql names them unqualified: it runs with that schema first in
    the search_path (unqualified, where the search_path puts it). Outside public, each
    function gets that schema as its own search_path, so its body finds the tables whatever
    the caller's; in public they stay the guide's functions, which migration 029 declares
    verbatim."""
    if not tracking.qualified:
        return [tracking_sql()]
    schema = _quoted(tracking.schema)
    pinned = [f"ALTER FUNCTION {f} SET search_path = {schema}, pg_temp" for f in tracking.functions]
    return [
        f"CREATE SCHEMA IF NOT EXISTS {schema}",
        f"SET LOCAL search_path TO {schema}, pg_temp",
        tracking_sql(),
        *(pinned if tracking.schema != "public" else []),
    ]


def read_history(
    conn: psycopg.Connection, tracking: Tracking
) -> tuple[bool, list[HistoryRow], dict[str, str]]:
    """(whether schema_migrations exists, its rows, the versions whose last apply timed out
    waiting for a lock -> what that event says); reads only, creates nothing."""
    has_table, has_events, _, _ = _shape(conn, tracking)
    if not has_table:
        return False, [], {}
    # Partial: the version's latest apply event says it stopped half-way (one pass over the log).
    latest = (
        " LEFT JOIN (SELECT DISTINCT ON (ltrim(version, '0')) ltrim(version, '0') AS number, outcome"
        " FROM {events} WHERE action = 'apply' ORDER BY ltrim(version, '0'), id DESC) e"
        " ON e.number = ltrim(m.version, '0')"
        if has_events
        else " LEFT JOIN (SELECT NULL::text AS outcome) e ON false"
    )
    rows = conn.execute(
        tracking.sql(
            "SELECT m.version, m.description, m.checksum, m.applied_at, m.applied_by,"
            " m.execution_time_ms, m.success, m.error_message,"
            " coalesce(e.outcome IN ('partial', 'started'), false) FROM {history} m"
            + latest
            + " ORDER BY m.id"
        )
    ).fetchall()
    return True, [HistoryRow(*r) for r in rows], _lock_timeouts(conn, tracking) if has_events else {}


def _lock_timeouts(conn: psycopg.Connection, tracking: Tracking) -> dict[str, str]:
    """Version -> the detail of its last apply event, when that is a 'lock-timeout' (a
    retryable stop, with no failure row)."""
    rows = conn.execute(
        tracking.sql(
            "SELECT version, detail FROM (SELECT DISTINCT ON (ltrim(version, '0')) version, outcome, detail"
            " FROM {events} WHERE action = 'apply' ORDER BY ltrim(version, '0'), id DESC) e"
            " WHERE outcome = 'lock-timeout'"
        )
    ).fetchall()
    return {str(version): str(detail) for version, detail in rows}


@dataclass(frozen=True)
class Actor:
    """Who runs a change, for the event log, and where the change is recorded."""

    os_user: str
    host: str
    run_id: uuid.UUID
    tool_version: str
    backup: str | None = None  # the backup taken before this run's changes
    tracking: Tracking = SEARCH_PATH
    rollout_id: uuid.UUID | None = None  # the fleet rollout this run is part of

    @classmethod
    def current(cls, tracking: Tracking, rollout_id: str | None = None) -> Actor:
        from bilantools import __version__

        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        rollout = uuid.UUID(rollout_id) if rollout_id is not None else None
        return cls(
            user, socket.gethostname(), uuid.uuid4(), __version__, tracking=tracking, rollout_id=rollout
        )


EVENT_COLUMNS = (
    "run_id, version, action, outcome, os_user, host, duration_ms, checksum, detail, tool_version, backup,"
    " rollout_id"
)
_EVENT = f"INSERT INTO {{events}} ({EVENT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
_SUCCESS = (
    "WITH d AS (SELECT coalesce(%s::int,"
    " (extract(epoch FROM clock_timestamp() - now()) * 1000)::int) AS ms),"
    f" tracked AS (SELECT {{record}}({STORED_VERSION}, %s, %s, current_user, d.ms) FROM d)"
    f" INSERT INTO {{events}} ({EVENT_COLUMNS})"
    " SELECT %s, %s, %s, 'success', %s, %s, d.ms, %s, %s, %s, %s, %s FROM tracked, d"
    " RETURNING duration_ms"
)
_FORGET = (
    f"WITH gone AS (DELETE FROM {{history}} WHERE {SAME_VERSION} RETURNING 1)"
    f" INSERT INTO {{events}} ({EVENT_COLUMNS})"
    " VALUES (%s, %s, 'rollback', 'success', %s, %s,"
    " coalesce(%s::int, (extract(epoch FROM clock_timestamp() - now()) * 1000)::int), %s, NULL, %s, %s, %s)"
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
    return actor.tracking.sql(_EVENT), (
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
        actor.rollout_id,
    )


def run(conn: psycopg.Connection, statement: Query) -> psycopg.Cursor[Any]:
    """Send one of the statements built here (its text from this module's constants, the
    tracking objects named by `Tracking.sql`, its values bound as parameters)."""
    return conn.execute(statement[0], statement[1])


def success_sql(
    actor: Actor,
    version: str,
    description: str,
    checksum: str,
    duration_ms: int | None = None,
    action: str = "apply",
    detail: str | None = None,
) -> Query:
    """The guide's record_migration plus the event (with `detail`), in one statement (one
    round trip).

    Without `duration_ms`, the duration is measured by the server from the start of the
    current transaction, which is exact even when migrations were pipelined; the
    statement's one row is that duration.
    """
    return actor.tracking.sql(_SUCCESS), (
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
        detail,
        actor.tool_version,
        actor.backup,
        actor.rollout_id,
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
        run(conn, (actor.tracking.sql(_RECORD_FAILURE), (version, version, description, error)))
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
        (actor.tracking.sql(_RECORD_FAILURE), (version, version, description, note)),
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
    return actor.tracking.sql(_FORGET), (
        version,
        actor.run_id,
        version,
        actor.os_user,
        actor.host,
        duration_ms,
        checksum,
        actor.tool_version,
        actor.backup,
        actor.rollout_id,
    )


def clear_failed(conn: psycopg.Connection, actor: Actor, version: str, error: str | None) -> None:
    """Repair: remove a version's failed row, and log it."""
    run(conn, (actor.tracking.sql(_CLEAR_FAILED), (version,)))
    run(conn, event_sql(actor, version, "repair", "success", detail=f"cleared failed row: {error}"))


def realign(conn: psycopg.Connection, actor: Actor, version: str, checksum: str) -> None:
    """Repair: take an edited file's checksum as the applied one, and log it."""
    run(conn, (actor.tracking.sql(_REALIGN), (checksum, version)))
    detail = "checksum realigned with the file"
    run(conn, event_sql(actor, version, "repair", "success", checksum=checksum, detail=detail))


def tracking_objects() -> frozenset[str]:
    """The objects the engine creates before migration 001, as "kind:name" strings.

    Static analysis treats them as provided: a migration may declare them (029 does) and
    its rollback must not drop them.
    """
    return tracking().provided


@lru_cache(maxsize=8)
def tracking(schema: str = "public") -> TrackingObjects:
    """The tracking tables and functions as `check` sees them in `schema`: migrations may
    repeat the statements of tracking.sql verbatim, and nothing else that touches these
    objects."""
    from bilantools.source.engine_rules import TrackingObjects
    from bilantools.source.files import Script, checksum

    text = tracking_sql()
    return TrackingObjects.from_script(Script(Path("tracking.sql"), text, checksum(text)), schema)
