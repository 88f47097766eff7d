"""A migration's statement that timed out waiting for a lock (SQLSTATE 55P03): its
transaction is rolled back, and it is tried again after a pause (`LockWait`), or, after
its last attempt, the run stops with a retryable error: nothing was wrong with the file,
so it is recorded as a 'lock-timeout' event and no failure row (it stays pending)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bilantools.db import history
from bilantools.db.blocking import find_blockers, held_by, relations
from bilantools.db.diagnostics import error_line, excerpt
from bilantools.db.engine import translate
from bilantools.db.engine.limits import script_limits
from bilantools.db.engine.results import Wait
from bilantools.db.engine.session import Session, Unit, ms

if TYPE_CHECKING:
    from bilantools.source.files import Migration


class LockWait(Exception):
    """Migration `m` gave up waiting for a lock and is to run again, as `wait` says."""

    def __init__(self, m: Migration, wait: Wait) -> None:
        super().__init__(wait.line())
        self.migration = m
        self.wait = wait


def timed_out(
    session: Session, unit: Unit, action: str, index: int, exc: BaseException, started: float
) -> BaseException:
    """After statement `index` of the unit's transactional script timed out on a lock (its
    transaction rolled back): a LockWait while attempts are left, else the error that
    stops the run."""
    import psycopg

    m, statements = unit
    stmt, attempt, retries = statements[index], session.attempt(m), session.retries
    try:
        blockers, holding = find_blockers(session.conn, stmt.text)
    except psycopg.Error:
        blockers, holding = [], False
    tables = tuple(sorted({t for b in blockers for t in b.tables})) or tuple(relations(stmt.text))
    if attempt < retries.attempts:
        limits = retries.limits(script_limits(session.limits, m, action), attempt + 1)
        wait = Wait(
            tables,
            tuple(blockers),
            holding,
            attempt + 1,
            retries.attempts,
            retries.pause_s,
            limits.lock_timeout,
        )
        return LockWait(m, wait)
    if action != "apply":  # the rollback's own message; a rollback records no failure
        return translate.statement_failed(session, m, action, statements, index, exc, started)
    script = m.script
    first = script_limits(session.limits, m, action).lock_timeout
    tried = [retries.lock_timeout(first, k) or "" for k in range(1, attempt + 1)]
    over = f" over {attempt} attempts (lock_timeout {', '.join(tried)})" if attempt > 1 else ""
    where = f"{script.path.name}:{error_line(stmt, exc)}"
    on = ", ".join(tables) or "its tables"
    detail = f"timed out waiting for a lock on {on} {held_by(blockers, holding)}{over} at {where}"

    def write() -> None:
        with session.conn.transaction():
            event = history.event_sql(
                session.actor, m.version, "apply", "lock-timeout", ms(started), m.checksum, detail
            )
            history.run(session.conn, event)

    note = translate.record(session, "lock timeout", write)
    reason = translate.explain(session, exc, stmt, session.limits_for(m, action))
    message = (
        f"migration {m.label} timed out waiting for a lock at {where}: {reason} (statement: "
        f"{excerpt(stmt.text)}){over}; it was rolled back and stays pending (a lock timeout is not "
        f"a fault of the file: recorded as a 'lock-timeout' event, not as a failure): "
        f"{translate.fix(exc, '')}{note}"
    )
    return translate.at_statement(message, m, script, stmt, error_line(stmt, exc), reason, retryable=True)
