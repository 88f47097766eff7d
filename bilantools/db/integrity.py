"""The proof, before a migration commits, that it left the engine's tracking objects alone;
and the session reset that makes every migration start from the same state.

A migration runs any SQL as the engine's role: it can delete history rows, redefine
record_migration, drop or rewrite schema_migrations, or leave `SET search_path`, `SET
ROLE` or a temporary table behind for the next migration of the run. So each unit
(migration or rollback script) ends, inside its own transaction, with:

1. RESET_SESSION: back to the connection's state at start (settings, role, session user,
   temporary tables; the migration lock, a session advisory lock, is kept), then the
   run's settings again, so that the tracking write runs as the engine and the next
   migration starts as if it ran alone;
2. the tracking write (history.record_success or history.forget);
3. `Guard.proof`: one SELECT that fails on the server (so COMMIT never happens, which
   also holds inside a pipelined batch) unless the tracking tables are the ones read at
   the start of the run, not truncated or rewritten; the history has exactly the rows
   the engine expects (those read at the start plus what it wrote since), no other row
   written in this transaction; the unit's own row is there and right (or gone, after a
   rollback), its event row is there and no event row was deleted or updated; and the
   four tracking functions are the ones read at the start.

Its cost is a few statements per unit in the same round trip and one scan of
schema_migrations; whether another row was written is told by its xmin (written by this
transaction), not by hashing every row. Where the unit does not run in one transaction
of its own (`-- transaction: off`, whose statements commit one by one, and the dry run,
whose units share one transaction), the rows are compared by content instead.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bilantools.db.diagnostics import server_message
from bilantools.db.history import TRACKING_FUNCTIONS
from bilantools.errors import MigrationFailed

if TYPE_CHECKING:
    from collections.abc import Callable

    import psycopg

    from bilantools.source.files import Migration

# What a migration may have changed in the session. RESET ALL keeps what the connection
# was opened with (application_name, options in the URL); DISCARD ALL is not used: it
# cannot run in a transaction and would release the migration lock (bilantools.db.lock).
RESET_SESSION = ("SET SESSION AUTHORIZATION DEFAULT", "RESET ALL", "DISCARD TEMP")

# The proof reports a problem by casting this marker and the problem to int: plain SQL
# has no RAISE, and the cast error carries the text to the client.
MARKER = "bilantools tracking check: "

_BASELINE = """
SELECT to_regclass('schema_migrations')::oid, to_regclass('schema_migration_events')::oid,
       pg_relation_filenode(to_regclass('schema_migrations')),
       pg_relation_filenode(to_regclass('schema_migration_events')),
       (SELECT json_agg(json_build_array(version, checksum, success) ORDER BY id) FROM schema_migrations),
       ARRAY(SELECT to_regprocedure(f)::oid FROM unnest(%(functions)s::text[]) WITH ORDINALITY AS s(f, i)
             ORDER BY i),
       ARRAY(SELECT md5(pg_get_functiondef(to_regprocedure(f)))
             FROM unnest(%(functions)s::text[]) WITH ORDINALITY AS s(f, i) ORDER BY i)
"""

_PROOF = """
SELECT CASE WHEN problem = '' THEN 0 ELSE (%(marker)s || problem)::int END
FROM (
  SELECT concat_ws('; ',
    CASE WHEN to_regclass('schema_migrations') IS DISTINCT FROM %(history)s::oid::regclass
         THEN 'schema_migrations was dropped or replaced' END,
    CASE WHEN to_regclass('schema_migration_events') IS DISTINCT FROM %(events)s::oid::regclass
         THEN 'schema_migration_events was dropped or replaced' END,
    CASE WHEN pg_relation_filenode(%(history)s::oid::regclass) IS DISTINCT FROM %(history_node)s
         THEN 'schema_migrations was truncated or rewritten' END,
    CASE WHEN pg_relation_filenode(%(events)s::oid::regclass) IS DISTINCT FROM %(events_node)s
         THEN 'schema_migration_events was truncated or rewritten' END,
    CASE WHEN h.total < %(count)s THEN (%(count)s - h.total) || ' history row(s) deleted'
         WHEN h.total > %(count)s AND h.written = ''
         THEN (h.total - %(count)s) || ' history row(s) added'
         WHEN h.others IS DISTINCT FROM %(others)s THEN 'history rows of other migrations changed' END,
    CASE WHEN h.written <> '' THEN 'history row(s) ' || h.written || ' added or changed' END,
    CASE WHEN %(applied)s AND h.own = 0 THEN 'its history row is missing'
         WHEN %(applied)s AND NOT h.own_ok THEN 'its history row was changed'
         WHEN NOT %(applied)s AND h.own > 0 THEN 'its history row is still there' END,
    CASE WHEN NOT EXISTS (
           SELECT 1 FROM schema_migration_events e
           WHERE e.id = currval(pg_get_serial_sequence('schema_migration_events', 'id'))
             AND e.run_id = %(run)s AND e.action = %(action)s AND e.outcome = 'success'
             AND ltrim(e.version, '0') = ltrim(%(version)s, '0'))
         THEN 'its event log row is missing' END,
    CASE WHEN pg_stat_get_xact_tuples_deleted(%(events)s::oid::regclass)
              + pg_stat_get_xact_tuples_updated(%(events)s::oid::regclass) > 0
         THEN 'rows of schema_migration_events were deleted or changed' END,
    (SELECT string_agg('function ' || f.signature || ' was redefined or dropped', '; ' ORDER BY f.i)
     FROM unnest(%(signatures)s::text[], %(oids)s::oid[], %(definitions)s::text[])
          WITH ORDINALITY AS f(signature, oid, definition, i)
     LEFT JOIN pg_proc p ON p.oid = f.oid
     WHERE p.oid IS NULL OR (age(p.xmin) <= 0 AND md5(pg_get_functiondef(p.oid)) <> f.definition))
  ) AS problem
  FROM (
    SELECT count(*) FILTER (WHERE NOT same) AS total,
           count(*) FILTER (WHERE same) AS own,
           coalesce(bool_or(checksum = %(checksum)s AND success) FILTER (WHERE same), false) AS own_ok,
           coalesce(string_agg(version, ', ' ORDER BY id)
                    FILTER (WHERE NOT same AND NOT %(by_content)s AND age(xmin) <= 0), '') AS written,
           CASE WHEN %(by_content)s THEN md5(convert_to(coalesce(string_agg(
                    concat_ws('|', version, checksum, success::text), ',' ORDER BY id)
                    FILTER (WHERE NOT same AND %(by_content)s), ''), 'UTF8')) END AS others
    FROM (SELECT id, version, checksum, success, xmin, ltrim(version, '0') = ltrim(%(version)s, '0') AS same
          FROM schema_migrations) m
  ) h
) checks
"""

# Errors of the tracking write that a change of the tracking objects explains (a missing
# or altered table, column, function or constraint, a trigger's exception), as opposed to
# a lost lock race, a timeout or a full disk.
_STRUCTURAL = ("22", "23", "2B", "42", "P0")


def _number(version: str) -> str:
    """A version as the SQL above compares it: without its leading zeros."""
    return version.lstrip("0")


@dataclass
class Guard:
    """What the tracking objects must look like, as read at the start of a run and as
    advanced by every tracking write the run sends."""

    run_id: uuid.UUID
    history: int | None
    events: int | None
    history_node: int | None
    events_node: int | None
    functions: list[tuple[str, int | None, str | None]]  # signature, oid, md5 of definition
    rows: dict[str, tuple[str | None, bool]] = field(default_factory=dict)  # version -> (checksum, success)

    @classmethod
    def read(cls, conn: psycopg.Connection, run_id: uuid.UUID) -> Guard:
        """One query: the tables' oids and files, the history rows in id order, the functions."""
        row = conn.execute(_BASELINE, {"functions": list(TRACKING_FUNCTIONS)}).fetchone()
        assert row is not None
        history, events, history_node, events_node, rows, oids, definitions = row
        return cls(
            run_id,
            history,
            events,
            history_node,
            events_node,
            list(zip(TRACKING_FUNCTIONS, oids, definitions, strict=True)),
            {version: (checksum, success) for version, checksum, success in rows or []},
        )

    def proof(
        self, version: str, checksum: str, action: str, by_content: bool = False
    ) -> tuple[str, dict[str, Any]]:
        """The proof statement for the unit that just wrote `version`'s tracking change (a
        success, or its removal after a rollback), and the expectations advanced past it:
        a batch sends every unit before the first one runs, and stops at a failure."""
        number = _number(version)
        same = [v for v in self.rows if _number(v) == number]
        if action == "rollback":
            for v in same:
                del self.rows[v]
        else:
            self.rows[same[0] if same else version] = (checksum, True)
        others = [(v, c, "true" if s else "false") for v, (c, s) in self.rows.items() if _number(v) != number]
        content = ",".join("|".join(part for part in row if part is not None) for row in others)
        return _PROOF, {
            "marker": MARKER,
            "history": self.history,
            "events": self.events,
            "history_node": self.history_node,
            "events_node": self.events_node,
            "count": len(others),
            "others": hashlib.md5(content.encode()).hexdigest() if by_content else None,
            "by_content": by_content,
            "applied": action != "rollback",
            "checksum": checksum,
            "version": version,
            "run": self.run_id,
            "action": action,
            "signatures": [signature for signature, _, _ in self.functions],
            "oids": [oid for _, oid, _ in self.functions],
            "definitions": [definition for _, _, definition in self.functions],
        }


def reset_session(conn: psycopg.Connection) -> None:
    """RESET_SESSION, one statement at a time (outside a pipeline)."""
    for query in RESET_SESSION:
        conn.execute(query)


def changed(exc: BaseException) -> str | None:
    """What the proof found, when `exc` is the proof's own error."""
    primary = getattr(getattr(exc, "diag", None), "message_primary", None) or ""
    found = re.search(re.escape(MARKER) + r'(.*)"$', primary, re.S)
    return found[1] if found else None


def structural(exc: BaseException) -> bool:
    """An error of the tracking write that a change of the tracking objects explains."""
    sqlstate = getattr(getattr(exc, "diag", None), "sqlstate", None) or ""
    return sqlstate.startswith(_STRUCTURAL) and sqlstate != "42501"


def tampered(
    m: Migration, action: str, exc: BaseException, stage: str, committed: bool = False
) -> MigrationFailed:
    """The one line for a unit that changed the tracking objects: `exc` is the proof's
    error, or the error of its tracking write (`stage`: 'write') or check ('check')."""
    script = m.script if action == "apply" else m.rollback
    assert script is not None
    what = changed(exc) or f"its tracking {stage} failed: {server_message(exc)}"
    who = f"migration {m.version}" if action == "apply" else f"rollback of {m.version}"
    if committed:
        consequence = (
            "it runs outside a transaction, so that change had committed and the history is no "
            "longer right: restore the tracking objects (the backup taken before the run has them), "
            "remove that statement from the file, then run apply again"
        )
    else:
        consequence = "it was rolled back: remove that statement from the file"
    return MigrationFailed(
        f"{who} ({script.path.name}) changed the engine's tracking objects ({what}); {consequence}",
        version=m.version,
        file=str(script.path),
        line=None,
        statement=None,
        server_message=what,
        partial=committed,
    )


def blame(
    conn: psycopg.Connection,
    m: Migration,
    action: str,
    exc: BaseException,
    stage: str,
    write: Callable[[], object],
) -> BaseException:
    """After a unit's tracking write or proof failed and its transaction was rolled back:
    the one line that blames the unit when the proof says so, or when the same tracking
    write (`write`, the settings and the tracking change) succeeds without the unit's
    statements; else `exc` itself (not the unit's doing: privileges, a timeout...)."""
    import psycopg

    if changed(exc) is not None:
        return tampered(m, action, exc, stage)
    try:
        with conn.transaction(force_rollback=True):
            write()
    except psycopg.Error:
        return exc
    return tampered(m, action, exc, stage)
