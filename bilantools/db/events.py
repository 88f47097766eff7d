"""Reading the event log (`schema_migration_events`): who did what, when, and how it ended.

`history.py` writes the log; this module only reads it, newest first, for `bilantools
history`. A database that never had a run has no log: that is an empty history, not an
error, and nothing is created.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bilantools.db.history import SAME_VERSION, Tracking

if TYPE_CHECKING:
    import psycopg

# The columns shown, in this order; rollout_id last, NULL in a log made before it existed.
_COLUMNS = "at, actor, os_user, host, action, version, outcome, duration_ms, backup, run_id::text, detail"
_HAS_LOG = (
    "SELECT to_regclass(%s) IS NOT NULL, EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s)"
    " AND attname = 'rollout_id' AND NOT attisdropped)"
)


@dataclass(frozen=True)
class Event:
    """One row of the event log."""

    at: datetime
    actor: str  # the database role
    os_user: str | None
    host: str | None
    action: str  # apply, rollback, baseline, repair, dry-run
    version: str | None
    outcome: str  # success, failure, partial, started
    duration_ms: int | None
    backup: str | None  # the backup taken before the run's changes
    run_id: str
    detail: str | None
    rollout_id: str | None = None  # the fleet rollout the run belonged to

    @property
    def who(self) -> str:
        """The role, and the operating-system user and host that ran the command."""
        where = f"{self.os_user or '?'}@{self.host or '?'}"
        return f"{self.actor} ({where})"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


def read_events(
    conn: psycopg.Connection, tracking: Tracking, limit: int | None = None, version: str | None = None
) -> list[Event]:
    """The newest `limit` events (all without one), of `version` only when given."""
    events = tracking.name("schema_migration_events")
    row = conn.execute(_HAS_LOG, (events, events)).fetchone()
    if not row or not row[0]:
        return []
    rollout = "rollout_id::text" if row[1] else "NULL"
    where = f" WHERE {SAME_VERSION}" if version is not None else ""
    params: list[object] = [version] if version is not None else []
    query = tracking.sql(f"SELECT {_COLUMNS}, {rollout} FROM {{events}}{where} ORDER BY id DESC")
    if limit is not None:
        query += " LIMIT %s"
        params.append(limit)
    return [Event(*r) for r in conn.execute(query, params).fetchall()]
