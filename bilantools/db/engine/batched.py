"""Consecutive transactional units sent as one psycopg pipeline: each its own
transaction, the batch one round trip."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

from bilantools.db import failures, integrity
from bilantools.db.diagnostics import server_message
from bilantools.db.engine import lockwait, sending, translate
from bilantools.db.engine.executor import Stopped
from bilantools.db.engine.results import Action, Step
from bilantools.db.engine.session import Session, Unit
from bilantools.db.failures import LostConnection
from bilantools.errors import DatabaseError

if TYPE_CHECKING:
    import psycopg


class Batched:
    """Each unit of a batch as the commands of `sending.in_transaction`, all sent as one
    pipeline: one round trip for the batch.

    The server runs them in order and, after an error, skips everything up to the
    pipeline's end, so the units before the failing one are committed and none after it
    ran. The commands that returned no result tell which statement failed. Ctrl-C
    cancels the running statement and stops the sending (see `interrupts`).
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    def run(self, batch: list[Unit], action: Action, durable: bool, started: float) -> list[Step]:
        import psycopg

        session = self.session
        conn = session.conn
        sent = failures.Commands(lambda: session.interrupts.received)
        trackers: list[psycopg.Cursor[Any]] = []
        units: list[list[sending.Command]] = []
        try:
            with _quiet_pipeline_abort(), session.interrupts.cancellable(), conn.pipeline():
                for unit, (m, statements) in enumerate(batch):
                    limits = session.limits_for(m, action)
                    last = durable and unit == len(batch) - 1
                    commands = sending.in_transaction(
                        session.actor, session.the_guard(), m, statements, action, limits, last
                    )
                    units.append(commands)
                    for c in commands:
                        cursor = sent.add(unit, c.statement, c.what, partial(sending.send, conn, c))
                        if c.tracking:
                            trackers.append(cursor)
        except (psycopg.Error, failures.Halted) as exc:
            raise self._stopped(batch, action, sent, trackers, units, exc, started) from None
        return _steps(batch, trackers, action)

    def _stopped(
        self,
        batch: list[Unit],
        action: str,
        sent: failures.Commands,
        trackers: list[psycopg.Cursor[Any]],
        units: list[list[sending.Command]],
        exc: BaseException,
        started: float,
    ) -> Stopped:
        """Where a batch stopped, what of it committed, and the error to report."""
        import psycopg
        from psycopg.pq import TransactionStatus

        session, conn = self.session, self.session.conn
        unit, statement, what = sent.stopped(exc, len(batch))
        steps = _steps(batch[:unit], trackers, action)
        m, statements = batch[min(unit, len(batch) - 1)]
        during = f"migration {m.label}" if action == "apply" else f"the rollback of {m.label}"
        if session.lost():
            return Stopped(steps, LostConnection(exc, during, sent.committing()))
        try:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
        except psycopg.Error as second:  # lost now: the one that stopped did not commit
            return Stopped(steps, LostConnection(second, during, unit))
        if session.interrupts.received and (isinstance(exc, failures.Halted) or translate.cancelled(exc)):
            tail = "tracking" if what in integrity.STAGES else what
            return Stopped(steps, failures.interruption(m, action, statements, statement, tail, exc))
        if what == "end":  # every command had its result: the whole batch committed
            return Stopped(
                steps,
                DatabaseError(
                    f"the server failed the end of a batch after {m.label} committed: {server_message(exc)}; "
                    f"run 'bilantools status', then {action} again"
                ),
            )
        if what == "start":
            return Stopped(steps, translate.could_not_start(session, m, action, exc))
        if what in integrity.STAGES:  # the unit's statements ran: the reset, tracking write or proof failed
            writes = [c for c in units[unit] if c.what == "write"]

            def write() -> None:
                for c in writes:
                    sending.send(conn, c)

            blamed = integrity.blame(conn, m, action, exc, what, write)
            if blamed is not exc:
                return Stopped(steps, blamed)
            return Stopped(
                steps, translate.engine_failed(session, m, action, statements, "tracking", exc, started)
            )
        if statement is None:  # COMMIT failed (a deferred constraint...)
            return Stopped(steps, translate.engine_failed(session, m, action, statements, what, exc, started))
        if translate.lock_timeout(exc):  # tried again, or a retryable stop (see lockwait)
            return Stopped(
                steps, lockwait.timed_out(session, (m, statements), action, statement, exc, started)
            )
        return Stopped(
            steps, translate.statement_failed(session, m, action, statements, statement, exc, started)
        )


def _steps(batch: list[Unit], trackers: list[psycopg.Cursor[Any]], action: str) -> list[Step]:
    steps = []
    for (m, statements), tracker in zip(batch, trackers, strict=False):
        row = tracker.fetchone()
        duration = int(row[0]) if row else None
        if action == "apply":
            steps.append(Step(m.version, m.name, "apply", "applied", duration, len(statements)))
        else:
            steps.append(Step(m.version, m.name, "rollback", "rolled back", duration, len(statements)))
    return steps


@contextmanager
def _quiet_pipeline_abort() -> Iterator[None]:
    """psycopg logs "error ignored terminating <Pipeline ...>: pipeline aborted" (or "the
    connection is lost") when the pipeline failed; the failure itself is raised and
    reported in one line, the log lines are noise on stderr."""
    quiet = _DropMessage("error ignored terminating <psycopg.Pipeline")
    logger = logging.getLogger("psycopg")
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


class _DropMessage(logging.Filter):
    def __init__(self, *texts: str) -> None:
        super().__init__()
        self.texts = texts

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in self.texts)
