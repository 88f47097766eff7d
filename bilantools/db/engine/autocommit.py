"""A `-- transaction: off` unit (CREATE INDEX CONCURRENTLY...): statement by statement,
each committing on its own, between a 'started' record and the tracking change."""

from __future__ import annotations

from bilantools.db import failures, history, integrity
from bilantools.db.diagnostics import error_line, excerpt, server_message
from bilantools.db.engine import sending, translate
from bilantools.db.engine.limits import limits_sql
from bilantools.db.engine.results import Action, Step
from bilantools.db.engine.session import Session, Unit, ms
from bilantools.db.failures import Interruption, LostConnection
from bilantools.errors import MigrationFailed, RefusedError
from bilantools.source.files import Migration
from bilantools.source.headers import Limits
from bilantools.source.statements import Statement


def session_limits(limits: Limits) -> sending.Command | None:
    """The session's limits, not local: each statement is its own transaction."""
    settings = limits_sql(limits, local=False, synchronous_commit=True)
    return None if settings is None else sending.Command("start", *settings)


def started_record(
    actor: history.Actor, m: Migration, action: str, detail: str, when: str
) -> list[sending.Command]:
    """In one transaction, the record that the unit started: for a migration a failed row
    and a 'started' event (so a runner killed half-way leaves a history that says so),
    for a rollback a 'started' event."""
    if action == "apply":
        record = history.started_sql(actor, m.version, m.name, m.checksum, detail, when)
    else:
        record = [history.event_sql(actor, m.version, "rollback", "started", checksum=m.checksum)]
    return [sending.Command("start", query, params) for query, params in record]


def after(
    actor: history.Actor, guard: integrity.Guard, m: Migration, action: str, elapsed: int | None
) -> list[sending.Command]:
    """After the last statement (and the session reset), in one transaction: the unit's
    tracking change and the proof, comparing the other rows by content."""
    write = sending.tracking_write(actor, m, action, elapsed)
    proof = sending.Command("check", *guard.proof(m.version, m.checksum, action, by_content=True))
    return [write, *sending.peer_writes(actor, m, action), proof]


class Autocommit:
    """Runs one unit outside a transaction. The 'started' record commits synchronously,
    which makes every earlier commit durable."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def run(self, batch: list[Unit], action: Action, durable: bool, started: float) -> list[Step]:
        ((m, statements),) = batch
        return [self._run(m, statements, action, started)]

    def _run(self, m: Migration, statements: list[Statement], action: Action, started: float) -> Step:
        import psycopg

        session, conn = self.session, self.session.conn
        apply = action == "apply"
        script = m.script if apply else m.rollback
        assert script is not None
        limits = session.limits_for(m, action)
        during, total = (f"migration {m.label}" if apply else f"the rollback of {m.label}"), len(statements)
        outside = failures.outside if apply else failures.outside_rollback
        try:
            settings = session_limits(limits)
            if settings is not None:
                sending.send(conn, settings)
            detail, dropped = "started", ""
            if apply:
                dropped = self._drop_left_over(m, statements, m.version in session.retrying)
                detail += f"; {dropped}" if dropped else ""
            with conn.transaction():
                for c in started_record(session.actor, m, action, detail, history.now()):
                    sending.send(conn, c)
        except psycopg.Error as exc:
            if session.lost():
                raise LostConnection(exc, during, 0, outside(m.label, total)) from None
            raise translate.could_not_start(session, m, action, exc) from None
        for done, stmt in enumerate(statements):
            if session.interrupts.received:
                raise self._interrupted(m, action, statements, done, started) from None
            try:
                with session.interrupts.cancellable():
                    conn.execute(stmt.text)
            except psycopg.Error as exc:
                if session.lost():
                    running = outside(m.label, total, done, failures.at(script.path, stmt))
                    raise LostConnection(exc, during, 0, running, flushed=True) from None
                left = self._invalid_index_left(stmt) if apply else ""
                integrity.reset_session(conn)
                if session.interrupts.received and translate.cancelled(exc):
                    raise self._interrupted(
                        m, action, statements, done, started, ran=True, note=left
                    ) from None
                if not apply:
                    raise self._rollback_failed(m, statements, done, exc, started) from None
                raise translate.failed(
                    session,
                    m,
                    script,
                    statements,
                    done,
                    exc,
                    started,
                    partial=done > 0,
                    limits=limits,
                    note=left,
                ) from None
        elapsed = ms(started)
        self._record(m, action, statements, started, elapsed)
        if apply:
            return Step(m.version, m.name, "apply", "applied", elapsed, total, dropped or None)
        return Step(m.version, m.name, "rollback", "rolled back", elapsed, total)

    def _invalid_index_left(self, stmt: Statement) -> str:
        """A failed CREATE INDEX CONCURRENTLY leaves an invalid index: dropped, or said why not."""
        from bilantools.db.invalid_indexes import drop_invalid

        left = ""
        for index, why in drop_invalid(self.session.conn, [stmt]):
            left = f" (the invalid index {index} the failed build left was dropped)"
            if why:
                left = f" (the invalid index {index} it left could not be dropped yet: {why})"
        return left

    def _record(
        self, m: Migration, action: str, statements: list[Statement], started: float, elapsed: int
    ) -> None:
        """After the last statement: the session reset, then the unit's tracking change
        with the proof, in one transaction. Its statements had committed, so a failure
        here says so."""
        import psycopg

        session, conn = self.session, self.session.conn
        apply, total = action == "apply", len(statements)
        during = f"migration {m.label}" if apply else f"the rollback of {m.label}"
        stage = "write"
        try:
            integrity.reset_session(conn)
            with conn.transaction():
                for c in after(session.actor, session.the_guard(), m, action, elapsed):
                    stage = c.what
                    sending.send(conn, c)
        except psycopg.Error as exc:
            if session.lost():
                outside = (failures.outside if apply else failures.outside_rollback)(m.label, total, total)
                raise LostConnection(exc, during, 0, outside, flushed=True) from None
            if integrity.changed(exc) is not None or integrity.structural(exc):
                raise integrity.tampered(m, action, exc, stage, committed=True) from None
            what = "success" if apply else "forget"
            raise translate.engine_failed(session, m, action, statements, what, exc, started) from None

    def _interrupted(
        self,
        m: Migration,
        action: str,
        statements: list[Statement],
        done: int,
        started: float,
        ran: bool = False,
        note: str = "",
    ) -> Interruption:
        """Ctrl-C: `done` statements committed. A migration is recorded as failed (half-way
        when some committed), like a failure at that statement; a rollback's 'partial' (or
        'failure') event says how far it got, and the migration stays applied."""
        script = m.script if action == "apply" else m.rollback
        assert script is not None
        stmt = statements[done]
        where = f"{script.path.name}:{stmt.line}"
        head = f"interrupted (Ctrl-C) {'at' if ran else 'before'} {where}"
        place = failures.Place(m.label, m.version, script.path, stmt, "at" if ran else "before")
        total = len(statements)
        if action == "apply":
            text = translate.recorded(head, statements, done, done > 0, note)
            translate.record_failure(self.session, m, started, text, done > 0)
            stop = Interruption(place, failures.cancelled_outside(m.label, done, total, ran), True)
        else:
            self._record_rollback_event(m, done, total, f"interrupted (Ctrl-C) at {where}", started)
            stop = Interruption(place, failures.cancelled_rollback_outside(m.label, done, total, ran))
        stop.partial = done > 0
        return stop

    def _record_rollback_event(self, m: Migration, done: int, total: int, why: str, started: float) -> str:
        """A 'partial' (or 'failure') rollback event in its own transaction; a note when that
        failed too."""
        import psycopg

        conn = self.session.conn
        try:
            with conn.transaction():
                outcome = "partial" if done else "failure"
                detail = f"{done} of {total} statements committed: {why}"
                event = history.event_sql(
                    self.session.actor, m.version, "rollback", outcome, ms(started), m.checksum, detail
                )
                history.run(conn, event)
        except psycopg.Error as second:
            return f" (the failure could not be recorded: {server_message(second)})"
        return ""

    def _rollback_failed(
        self, m: Migration, statements: list[Statement], done: int, exc: BaseException, started: float
    ) -> MigrationFailed:
        """A rollback stopped at statement `done`: the ones before it committed, which the
        message and a 'partial' (or 'failure') event say."""
        script = m.rollback
        assert script is not None
        stmt = statements[done]
        line = error_line(stmt, exc)
        reason = translate.explain(self.session, exc, stmt, self.session.limits_for(m, "rollback"))
        where = f"{script.path.name}:{line}"
        note = self._record_rollback_event(m, done, len(statements), f"{reason} at {where}", started)
        fix = translate.fix(exc, "make the rollback script safe to re-run (IF EXISTS) and run rollback again")
        message = (
            f"rollback of {m.label} failed at {where}: {reason} (statement: {excerpt(stmt.text)}); the "
            f"rollback script runs outside a transaction and {done} of {len(statements)} statements had "
            f"committed, and {m.label} stays applied: {fix}{note}"
        )
        return translate.at_statement(message, m, script, stmt, line, reason, partial=done > 0)

    def _drop_left_over(self, m: Migration, statements: list[Statement], retrying: bool) -> str:
        """Before `m` builds its indexes concurrently: drop the invalid indexes of the names it
        builds (its own earlier attempt's, or anyone's failed build), or refuse."""
        from bilantools.db.invalid_indexes import drop_invalid

        results = drop_invalid(self.session.conn, statements)
        stuck = [(index, why) for index, why in results if why]
        if stuck:
            integrity.reset_session(self.session.conn)
            index, why = stuck[0]
            left = (
                f"migration {m.label} left the invalid index {index} when it failed"
                if retrying
                else f"a failed build left the invalid index {index}, which migration {m.label} builds"
            )
            raise RefusedError(
                f"{left}, and it cannot be dropped now ({why}); end the transactions that block it, "
                f"or run DROP INDEX CONCURRENTLY {index} by hand, then apply again"
            )
        if not results:
            return ""
        who = "an earlier attempt left" if retrying else "a failed build had left (built again now)"
        return f"dropped the invalid index(es) {', '.join(i for i, _ in results)} {who}"
