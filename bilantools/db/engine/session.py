"""What every executor of a run shares: the connection, who runs, the run's limits, the
Ctrl-C handling and the guard of the tracking objects."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bilantools.db import history
from bilantools.db.engine.limits import script_limits
from bilantools.db.engine.retries import LockRetries
from bilantools.db.interrupts import Interrupts
from bilantools.source.headers import Limits

if TYPE_CHECKING:
    import psycopg

    from bilantools.db import integrity
    from bilantools.db.interrupts import Interrupts
    from bilantools.source.files import Migration
    from bilantools.source.statements import Statement

# A migration (or rollback) with the statements of the script it runs.
Unit = tuple["Migration", list["Statement"]]


@dataclass
class Session:
    conn: psycopg.Connection
    target_label: str
    limits: Limits
    actor: history.Actor
    interrupts: Interrupts
    guard: integrity.Guard | None = None  # the tracking objects as this run must leave them
    retrying: set[str] = field(default_factory=set)  # failed migrations this run tries again
    retries: LockRetries = field(default_factory=LockRetries)  # after a lock timeout
    attempts: dict[str, int] = field(default_factory=dict)  # version -> its attempt, once retried

    def limits_for(self, m: Migration, action: str) -> Limits:
        """The script's limits, with the lock_timeout of its current attempt."""
        return self.retries.limits(script_limits(self.limits, m, action), self.attempt(m))

    def attempt(self, m: Migration) -> int:
        return self.attempts.get(m.version, 1)

    def lost(self) -> bool:
        return bool(self.conn.closed or self.conn.broken)

    def role(self) -> str:
        """The connected role, quoted as SQL needs it (not the one a migration switched to)."""
        row = self.conn.execute("SELECT quote_ident(%s)", (self.conn.info.user,)).fetchone()
        return str(row[0]) if row else self.conn.info.user

    def the_guard(self) -> integrity.Guard:
        assert self.guard is not None, "the guard is read before the first unit"
        return self.guard


def in_transaction(m: Migration, action: str) -> bool:
    """Whether the script `action` runs for `m` runs in a transaction ('-- transaction:')."""
    return m.transactional if action == "apply" else m.rollback_transactional


def ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
