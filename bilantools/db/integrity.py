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
2. the tracking write (history.success_sql or history.forget_sql);
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
from bilantools.db.history import TRACKING_FUNCTIONS, Tracking
from bilantools.errors import MigrationFailed

if TYPE_CHECKING:
    from collections.abc import Callable

    import psycopg

    from bilantools.source.files import Migration

# What a migration may have changed in the session. RESET ALL keeps what the connection
# was opened with (application_name, options in the URL); DISCARD ALL is not used: it
# cannot run in a transaction and would release the migration lock (bilantools.db.lock).
RESET_SESSION = ("SET SESSION AUTHORIZATION DEFAULT", "RESET ALL", "DISCARD TEMP")
# The engine's own commands after a unit's statements, as the runner names them: the
# session reset, the tracking write (with the run's limits again), the proof.
STAGES = ("reset", "write", "check")

# The proof reports a problem by casting this marker and the problem to int: plain SQL
# has no RAISE, and the cast error carries the text to the client.
MARKER = "bilantools tracking check: "

_BASELINE = """
SELECT to_regclass(%(history)s)::oid, to_regclass(%(events)s)::oid,
       CASE WHEN to_regclass(%(events)s) IS NOT NULL
            THEN pg_get_serial_sequence(%(events)s, 'id')::regclass::oid END,
       pg_relation_filenode(to_regclass(%(history)s)),
       pg_relation_filenode(to_regclass(%(events)s)),
       (SELECT json_agg(json_build_array(version, checksum, success) ORDER BY id) FROM {history}),
       f.oids, f.xmins, f.definitions
FROM (SELECT array_agg(p.oid ORDER BY s.i) AS oids, array_agg(p.xmin::text ORDER BY s.i) AS xmins,
             array_agg(md5(pg_get_functiondef(p.oid)) ORDER BY s.i) AS definitions
      FROM unnest(%(functions)s::text[]) WITH ORDINALITY AS s(f, i)
      LEFT JOIN pg_proc p ON p.oid = to_regprocedure(s.f)) f
"""

# {placeholders}: what the run read at its start, as literals (the text is the same for
# every unit of a run, so psycopg prepares it), {history_table} and {events_table} the
# tracking tables qualified, {history_name} and {events_name} their names as text;
# %(parameters)s: the unit's expectations.
# The unit's own row is found through the unique index on version; other rows written
# by this transaction are told by their xmin; a function is read again only when its
# catalog row is not the one read at the start (same xmin); every row's content is
# compared only where asked.
_PROOF = """
SELECT CASE WHEN problem = '' THEN 0 ELSE ({marker} || problem)::int END
FROM (
  SELECT concat_ws('; ',
    CASE WHEN to_regclass({history_name}) IS DISTINCT FROM {history}::regclass
         THEN 'schema_migrations was dropped or replaced' END,
    CASE WHEN to_regclass({events_name}) IS DISTINCT FROM {events}::regclass
         THEN 'schema_migration_events was dropped or replaced' END,
    CASE WHEN pg_relation_filenode({history}::regclass) IS DISTINCT FROM {history_node}
         THEN 'schema_migrations was truncated or rewritten' END,
    CASE WHEN pg_relation_filenode({events}::regclass) IS DISTINCT FROM {events_node}
         THEN 'schema_migration_events was truncated or rewritten' END,
    CASE WHEN h.total - o.present < %(others)s
         THEN (%(others)s - h.total + o.present) || ' history row(s) deleted'
         WHEN h.total - o.present > %(others)s AND h.written = 0
         THEN (h.total - o.present - %(others)s) || ' history row(s) added'
         WHEN %(content)s::text IS NOT NULL AND %(content)s <> (
              SELECT md5(convert_to(coalesce(string_agg(
                  concat_ws('|', version, checksum, success::text), ',' ORDER BY id), ''), 'UTF8'))
              FROM {history_table} WHERE version IS DISTINCT FROM %(own)s)
         THEN 'history rows of other migrations changed' END,
    CASE WHEN h.written > 0 THEN 'history row(s) ' || array_to_string(h.shown[1:5], ', ')
              || CASE WHEN h.written > 5 THEN ' (and ' || (h.written - 5) || ' more)' ELSE '' END
              || ' added or changed' END,
    CASE WHEN %(own)s::text IS NOT NULL AND NOT o.found THEN 'its history row is missing'
         WHEN %(own)s::text IS NOT NULL AND NOT o.ok THEN 'its history row was changed'
         WHEN %(own)s::text IS NULL AND o.present > 0 THEN 'its history row is still there' END,
    CASE WHEN NOT EXISTS (
           SELECT 1 FROM {events_table} e
           WHERE e.id = currval({sequence}::regclass) AND e.run_id = {run} AND e.action = %(action)s
             AND e.outcome = 'success' AND ltrim(e.version, '0') = ltrim(%(version)s, '0'))
         THEN 'its event log row is missing' END,
    CASE WHEN pg_stat_get_xact_tuples_deleted({events}::regclass)
              + pg_stat_get_xact_tuples_updated({events}::regclass) > 0
         THEN 'rows of schema_migration_events were deleted or changed' END,
    CASE WHEN (SELECT count(*) FROM unnest({oids}::oid[], {xmins}::xid[]) AS f(oid, x)
               JOIN pg_proc p ON p.oid = f.oid AND p.xmin = f.x) < {functions} THEN (
      SELECT string_agg('function ' || f.signature || ' was redefined or dropped', '; ' ORDER BY f.i)
      FROM unnest({signatures}::text[], {oids}::oid[], {definitions}::text[])
           WITH ORDINALITY AS f(signature, oid, definition, i)
      LEFT JOIN pg_proc p ON p.oid = f.oid
      WHERE p.oid IS NULL OR md5(pg_get_functiondef(p.oid)) IS DISTINCT FROM f.definition) END
  ) AS problem
  FROM (SELECT count(*) AS total, count(*) FILTER (WHERE mine) AS written,
               array_agg(version ORDER BY id) FILTER (WHERE mine) AS shown
        FROM (SELECT id, version, %(content)s::text IS NULL AND age(xmin) <= 0
                     AND version IS DISTINCT FROM %(own)s AS mine
              FROM {history_table}) m) h,
       (SELECT count(*) AS present, coalesce(bool_or(version = %(own)s), false) AS found,
               coalesce(bool_or(version = %(own)s AND checksum = %(checksum)s AND success), false) AS ok
        FROM {history_table} WHERE version = ANY(%(spellings)s::text[])) o
) checks
"""

# Errors of the tracking write that a change of the tracking objects explains (a missing
# or altered table, column, function or constraint, a trigger's exception), as opposed to
# a lost lock race, a timeout or a full disk.
_STRUCTURAL = ("22", "23", "2B", "42", "P0")


def _number(version: str) -> str:
    """A version as the SQL compares it: without its leading zeros."""
    return version.lstrip("0")


@dataclass
class Guard:
    """What the tracking objects must look like: as read at the start of a run, then as
    advanced by every tracking write the run sends."""

    run_id: uuid.UUID
    query: str  # the proof, with what the run read at its start
    rows: dict[str, tuple[str | None, bool]]  # version as stored -> (checksum, success), in id order
    spellings: dict[str, list[str]] = field(default_factory=dict)  # number -> versions as stored

    @classmethod
    def read(cls, conn: psycopg.Connection, run_id: uuid.UUID, tracking: Tracking) -> Guard:
        """One query: the tables' oids, sequence and files, the history rows, the functions."""
        from psycopg import sql

        names = {
            "history": tracking.name("schema_migrations"),
            "events": tracking.name("schema_migration_events"),
        }
        row = conn.execute(
            sql.SQL(_BASELINE).format(history=sql.SQL(names["history"])),
            {**names, "functions": list(tracking.functions)},
        ).fetchone()
        assert row is not None
        history, events, sequence, history_node, events_node, rows, oids, xmins, definitions = row
        literals = {
            "marker": MARKER,
            "history": history,
            "events": events,
            "sequence": sequence,
            "history_node": history_node,
            "events_node": events_node,
            "run": run_id,
            "functions": len(TRACKING_FUNCTIONS),
            "signatures": list(TRACKING_FUNCTIONS),
            "history_name": names["history"],
            "events_name": names["events"],
            "oids": oids,
            "xmins": xmins,
            "definitions": definitions,
        }
        # Rendered once: psycopg would render the literals again at every execution. None
        # of them can hold a '%' (oids, a uuid, hex digests, the engine's own names).
        tables = {"history_table": sql.SQL(names["history"]), "events_table": sql.SQL(names["events"])}
        query = (
            sql.SQL(_PROOF)
            .format(**{k: sql.Literal(v) for k, v in literals.items()}, **tables)
            .as_string(conn)
        )
        history_rows = {version: (checksum, success) for version, checksum, success in rows or []}
        guard = cls(run_id, query, history_rows)
        for version in guard.rows:
            guard.spellings.setdefault(_number(version), []).append(version)
        return guard

    def proof(
        self, version: str, checksum: str, action: str, by_content: bool = False
    ) -> tuple[str, dict[str, Any]]:
        """The proof for the unit that has just sent `version`'s tracking change (its
        success, or its removal after a rollback), with the expectations advanced past it:
        a batch sends every unit before the first one runs, and stops at a failure.
        `by_content` also compares every other row with what the run expects."""
        number = _number(version)
        spellings = self.spellings.pop(number, [])
        own = None
        if action == "rollback":
            for gone in spellings:
                del self.rows[gone]
        else:
            own = spellings[0] if spellings else version
            self.rows[own] = (checksum, True)
            self.spellings[number] = spellings or [version]
        content = None
        if by_content:
            others = (
                "|".join(part for part in (v, c, "true" if ok else "false") if part is not None)
                for v, (c, ok) in self.rows.items()
                if v != own
            )
            content = hashlib.md5(",".join(others).encode()).hexdigest()
        return self.query, {
            "others": len(self.rows) - len(self.spellings.get(number, [])),
            "content": content,
            "own": own,
            "spellings": self.spellings.get(number, spellings),
            "checksum": checksum,
            "action": action,
            "version": version,
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
            f"remove that statement from the file, then run {action} again"
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


def _left_session(m: Migration, action: str, exc: BaseException) -> MigrationFailed:
    script = m.script if action == "apply" else m.rollback
    assert script is not None
    who = f"migration {m.version}" if action == "apply" else f"rollback of {m.version}"
    return MigrationFailed(
        f"{who} ({script.path.name}) left its session in a state the engine cannot reset "
        f"({server_message(exc)}); it was rolled back: close what the file opens (a cursor WITH HOLD) "
        "before its end",
        version=m.version,
        file=str(script.path),
        line=None,
        statement=None,
        server_message=server_message(exc),
    )


def blame(
    conn: psycopg.Connection,
    m: Migration,
    action: str,
    exc: BaseException,
    stage: str,
    write: Callable[[], object],
) -> BaseException:
    """After a unit's session reset (`stage` 'reset'), tracking write ('write') or proof
    ('check') failed and its transaction was rolled back: the one line that blames the
    unit when the proof says so, when the reset failed (it cannot on a session the unit
    did not change), or when the same tracking write (`write`: the settings and the
    tracking change) succeeds without the unit's statements; else `exc` itself (not the
    unit's doing: privileges, a timeout...)."""
    import psycopg

    if stage == "reset":
        return _left_session(m, action, exc)
    if changed(exc) is not None:
        return tampered(m, action, exc, stage)
    try:
        with conn.transaction(force_rollback=True):
            write()
    except psycopg.Error:
        return exc
    return tampered(m, action, exc, stage)
