"""What the engine returns: a migration's state, a run's steps and its progress events,
and the literals (`State`, `Action`, `Outcome`) they are spelled with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from bilantools.db.blocking import Blocker, held_by
from bilantools.db.invalid_indexes import InvalidIndex
from bilantools.source.files import Migration

# "outdated": a repeatable migration whose file changed since it last ran (it runs again).
State = Literal["applied", "pending", "failed", "changed", "outdated", "missing-file"]
Action = Literal["apply", "rollback", "baseline", "repair"]
Outcome = Literal[
    "applied",
    "rolled back",
    "baselined",
    "would apply",
    "would roll back",
    "failed",
    "skipped",
    "cleared failed row",
    "checksum realigned",
]


@dataclass(frozen=True)
class Wait:
    """A migration that gave up waiting for a lock, rolled back, and tried again after a
    pause (see `engine.retries`): the tables it waited for, who held them, what comes next."""

    tables: tuple[str, ...]
    blockers: tuple[Blocker, ...]
    holding: bool  # the blockers hold locks on its tables (else: the oldest open transactions)
    attempt: int  # the attempt that comes next (2 or more)
    attempts: int
    pause_s: float
    lock_timeout: str | None  # how long the next attempt waits

    def line(self) -> str:
        """waiting for a lock on people: held by pid 42 (alice, psql, xact 40 s): attempt 2/5 in 3 s"""
        on = ", ".join(self.tables) or "its tables"
        held = held_by(self.blockers, self.holding)
        limit = f" (waiting up to {self.lock_timeout})" if self.lock_timeout else ""
        return (
            f"waiting for a lock on {on}: {held}: attempt {self.attempt}/{self.attempts} "
            f"in {self.pause_s:g} s{limit}"
        )


@dataclass(frozen=True)
class Progress:
    """What a progress hook receives: 'start' when a migration is sent to the server (a
    batch sends several before the first finishes), 'done' with its step once durable,
    'wait' when it gave up waiting for a lock and will be tried again (`wait` says why)."""

    event: Literal["start", "done", "wait"]
    migration: Migration
    index: int
    total: int
    step: Step | None = None
    wait: Wait | None = None


ProgressHook = Callable[[Progress], None]


@dataclass(frozen=True)
class AboutMigration:
    """What a status row and a run step share: the migration they are about first, and a
    JSON shape that is their fields in order."""

    version: str
    name: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MigrationStatus(AboutMigration):
    state: State
    applied_at: datetime | None = None
    execution_time_ms: int | None = None
    applied_by: str | None = None
    error: str | None = None
    partial: bool = False
    file: str | None = None
    repeatable: bool = False  # run again when its file changes (Flyway's R__), never rolled back

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "applied_at": self.applied_at.isoformat() if self.applied_at else None}


@dataclass(frozen=True)
class Status:
    target: str
    migrations: list[MigrationStatus]
    tracking: bool
    layout: str = "bilantools"  # how the directory names its migrations
    history_table: str = "public.schema_migrations"  # where our history is (tracking-schema)
    invalid_indexes: list[InvalidIndex] = field(default_factory=list)  # the database's, filled by `status`

    def count(self, state: State) -> int:
        return sum(1 for m in self.migrations if m.state == state)

    def summary(self) -> str:
        parts = [
            f"{self.count(s)} {s}"
            for s in ("applied", "pending", "failed", "changed", "outdated", "missing-file")
            if self.count(s)
        ]
        return f"{len(self.migrations)} migrations: " + ", ".join(parts or ["none"])

    def as_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "target": self.target,
            "layout": self.layout,
            "tracking": self.history_table,
            "migrations": [m.as_dict() for m in self.migrations],
        }
        if self.invalid_indexes:  # only then, as verify's
            shown["invalid_indexes"] = [i.as_dict() for i in self.invalid_indexes]
        return shown


@dataclass(frozen=True)
class Step(AboutMigration):
    action: Action
    outcome: Outcome
    duration_ms: int | None = None
    statements: int | None = None
    detail: str | None = None


@dataclass
class RunResult:
    target: str
    action: Action
    dry_run: bool = False
    steps: list[Step] = field(default_factory=list)
    run_id: str | None = None
    backup: str | None = None  # the backup taken before the first change

    def as_dict(self) -> dict[str, Any]:
        shown = {name: getattr(self, name) for name in ("target", "action", "dry_run", "run_id", "backup")}
        return {**shown, "steps": [s.as_dict() for s in self.steps]}
