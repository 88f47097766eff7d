"""A failed statement turned into the error a user reads: which migration, file:line and
statement, what was rolled back or recorded, and the fix. Causes are told by psycopg's
error classes (LockNotAvailable, QueryCanceled, InsufficientPrivilege), the wording of
a run that stopped (interrupted, connection lost) is in `bilantools.db.failures`."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from bilantools.db import failures, history
from bilantools.db.diagnostics import error_line, excerpt, server_message
from bilantools.db.engine.limits import DEFAULT_LIMITS
from bilantools.db.engine.session import Session, Unit, ms
from bilantools.db.failures import LostConnection
from bilantools.errors import BilanToolsError, DatabaseError, MigrationFailed, RefusedError, option
from bilantools.source.headers import Limits
from bilantools.source.statements import Statement

if TYPE_CHECKING:
    from bilantools.source.files import Migration, Script


def lock_timeout(exc: BaseException) -> bool:
    """The statement waited longer than lock_timeout (not a NOWAIT lock's refusal)."""
    import psycopg

    return isinstance(exc, psycopg.errors.LockNotAvailable) and "lock timeout" in str(exc)


def statement_timeout(exc: BaseException) -> bool:
    """The statement ran longer than statement_timeout (not a cancel)."""
    import psycopg

    return isinstance(exc, psycopg.errors.QueryCanceled) and "statement timeout" in str(exc)


def cancelled(exc: BaseException) -> bool:
    """The server cancelled the statement (Ctrl-C's cancel, or a timeout)."""
    import psycopg

    return isinstance(exc, psycopg.errors.QueryCanceled)


def refused(exc: BaseException) -> bool:
    """The server refused a privilege."""
    import psycopg

    return isinstance(exc, psycopg.errors.InsufficientPrivilege)


def fix(exc: BaseException, usual: str) -> str:
    """What to do next: for a timeout, the limit to raise or the session to end."""
    if lock_timeout(exc):
        return (
            "retry when the blocking session has finished (or end it), or raise the limit with "
            f"{option('lock_timeout')} or a '-- lock-timeout:' header"
        )
    if statement_timeout(exc):
        limit = option("statement_timeout")
        return f"raise the limit with {limit} or a '-- statement-timeout:' header, then retry"
    return usual


def explain(session: Session, exc: BaseException, stmt: Statement, limits: Limits) -> str:
    """The server's message; for a lock or statement timeout, the limit and who blocked."""
    reason = server_message(exc)
    if lock_timeout(exc):
        from bilantools.db.blocking import describe_blockers

        return (
            f"{reason} (waited lock_timeout {limits.lock_timeout} for a lock, "
            f"{describe_blockers(session.conn, stmt.text)})"
        )
    if statement_timeout(exc):
        return f"{reason} (ran longer than statement_timeout {limits.statement_timeout})"
    return reason


def recorded(head: str, statements: list[Statement], index: int, partial: bool, note: str = "") -> str:
    """The error message recorded for a failure at statement `index`."""
    stmt = statements[index]
    text = f"{head} (statement {index + 1} of {len(statements)}: {excerpt(stmt.text, 200)})"
    if partial:
        text = f"failed half-way, {index} of {len(statements)} statements committed: {text}"
    return text + note


def record_failure(session: Session, m: Migration, started: float, text: str, partial: bool) -> str:
    """Record `m` as failed in its own transaction; a note when that failed too."""

    def write() -> None:
        history.record_failure(
            session.conn, session.actor, m.version, m.name, m.checksum, ms(started), text, partial
        )

    return record(session, "failure", write)


def record(session: Session, what: str, write: Callable[[], None]) -> str:
    """Run `write` (which records `what` in its own transaction) once the tracking objects
    exist; a note when that failed, '' otherwise."""
    import psycopg

    try:
        history.ensure_tracking(session.conn, session.actor.tracking)
        write()
    except (psycopg.Error, RefusedError) as second:
        return f" (the {what} could not be recorded: {server_message(second)})"
    return ""


def statement_failed(
    session: Session,
    m: Migration,
    action: str,
    statements: list[Statement],
    index: int,
    exc: BaseException,
    started: float,
) -> BilanToolsError:
    """The error for statement `index` of `m`'s script (rolled back with its transaction).
    A refused privilege is a refusal (a grant to make) only when the connected role ran it."""
    script = m.script if action == "apply" else m.rollback
    assert script is not None
    stmt = statements[index]
    note = ""
    if refused(exc):
        note = _other_role(session, script, statements, index)
        if not note:
            return not_allowed(session, m, script, stmt, exc, action)
    limits = session.limits_for(m, action)
    if action == "apply":
        return failed(
            session, m, script, statements, index, exc, started, partial=False, limits=limits, note=note
        )
    line = error_line(stmt, exc)
    reason = explain(session, exc, stmt, limits)
    return at_statement(
        f"rollback of {m.label} failed at {script.path.name}:{line}: {reason} "
        f"(statement: {excerpt(stmt.text)}); its changes were rolled back and the migration "
        f"stays applied: {fix(exc, 'fix the rollback script and run rollback again')}{note}",
        m,
        script,
        stmt,
        line,
        reason,
    )


def _other_role(session: Session, script: Script, statements: list[Statement], index: int) -> str:
    """When the migration switched role before the refused statement, the note that
    says so (the connected role is not to blame), else ''."""
    switch = failures.role_switch(statements, index)
    if switch is None:
        return ""
    return f" (it ran as the role set at {failures.at(script.path, switch)}, not as {session.role()})"


def failed(
    session: Session,
    m: Migration,
    script: Script,
    statements: list[Statement],
    index: int,
    exc: BaseException,
    started: float,
    partial: bool,
    limits: Limits = DEFAULT_LIMITS,
    note: str = "",
) -> MigrationFailed:
    """A migration's statement failed: recorded as failed (half-way when `partial`)."""
    stmt = statements[index]
    line = error_line(stmt, exc)
    reason = explain(session, exc, stmt, limits)
    where = f"{script.path.name}:{line}"
    text = recorded(f"{reason} at {where}", statements, index, partial, note)
    note += record_failure(session, m, started, text, partial)
    if partial:
        consequence = (
            f"it runs outside a transaction and {index} of {len(statements)} statements "
            "had committed: make the file safe to re-run (IF NOT EXISTS) or finish by hand, "
            "then run apply again"
        )
        if fix(exc, ""):
            consequence += f"; {fix(exc, '')}"
    else:
        consequence = "its changes were rolled back and the failure recorded: " + fix(
            exc, "fix the file and run apply again"
        )
    message = f"migration {m.label} failed at {where}: {reason} (statement: {excerpt(stmt.text)}); "
    return at_statement(message + consequence + note, m, script, stmt, line, reason, partial)


def at_statement(
    message: str,
    m: Migration,
    script: Script,
    stmt: Statement,
    line: int,
    reason: str,
    partial: bool = False,
    retryable: bool = False,
) -> MigrationFailed:
    """The failure of `stmt`, at `line` of `script` of migration `m`."""
    return MigrationFailed(
        message,
        version=m.version,
        file=str(script.path),
        line=line,
        statement=stmt.text,
        server_message=reason,
        partial=partial,
        retryable=retryable,
    )


def engine_failed(
    session: Session,
    m: Migration,
    action: str,
    statements: list[Statement],
    what: str,
    exc: BaseException,
    started: float,
) -> BilanToolsError:
    """The engine's statement after the migration's last failed (see failures.after_last);
    privileges are blamed only when the connected role lacks them."""
    if refused(exc) and not failures.connected_role_may_write_history(session.conn, session.actor.tracking):
        return failures.history_refused(
            m.label, action, session.role(), server_message(exc), True, session.actor.tracking
        )

    def record(text: str) -> str:
        return record_failure(session, m, started, text, False)

    return failures.after_last(m, action, statements, what, server_message(exc), record)


def could_not_start(session: Session, m: Migration, action: str, exc: BaseException) -> BilanToolsError:
    """The engine's statements before the migration's first (BEGIN, the limits, the
    'started' record of a `transaction: off` one) failed: none of its statements ran."""
    reason = server_message(exc)
    if refused(exc) and not failures.connected_role_may_write_history(session.conn, session.actor.tracking):
        return failures.history_refused(
            m.label, action, session.role(), reason, False, session.actor.tracking
        )
    which = "migration " if action == "apply" else "the rollback of "
    return DatabaseError(
        f"{which}{m.label} ({m.path.name}) could not start: the engine's statement before its first "
        f"failed: {reason}; none of its statements ran: run 'bilantools status', then {action} again"
    )


def not_allowed(
    session: Session, m: Migration, script: Script, stmt: Statement, exc: BaseException, action: str
) -> RefusedError:
    """A privilege the connected role lacks: not a fault of the file, so nothing is
    recorded (the transaction rolled back) and the fix is a grant or another role."""
    reason = server_message(exc)
    schema = re.search(r"permission denied for schema (\S+)", reason)
    if schema:
        grant = f"GRANT CREATE ON SCHEMA {schema[1]} TO {session.role()}, or connect as the schema owner"
    else:
        grant = f"connect as the owner of the objects it changes, or GRANT {session.role()} the privilege"
    what = "rollback of " if action == "rollback" else "migration "
    return RefusedError(
        f"{what}{m.label} is not allowed at {script.path.name}:{error_line(stmt, exc)}: {reason} "
        f"(statement: {excerpt(stmt.text)}); nothing was changed or recorded: {grant}, then run "
        f"{action} again"
    )


def unexplained(session: Session, exc: BaseException, batch: list[Unit], action: str) -> BaseException:
    """An error while handling a batch's failure: any of the batch may have committed."""
    labels = [m.label for m, _ in batch]
    if session.lost():
        return LostConnection(exc, f"the {action} of {failures.span(labels)}", len(batch))
    return DatabaseError(
        f"the server failed a query while bilantools handled a failure in {failures.span(labels)}: "
        f"{server_message(exc)}; run 'bilantools status' to see which of them committed, then {action} "
        "again"
    )
