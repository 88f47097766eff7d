"""Status, plan, apply, rollback, baseline, repair and validate against one connection.

Each migration runs with its tracking row in one transaction, statement by statement
so that a failure names the exact statement and line (as psql would). Most migrations
commit with ``synchronous_commit = off``; a synchronous commit every DURABLE_EVERY
seconds (and the run's last) flushes the WAL of all earlier ones, and a migration is
reported done only once flushed: nothing reported is lost by a crash, without one disk
flush per migration.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from bilantools.db import failures, history, integrity
from bilantools.db.diagnostics import error_line, excerpt, server_message
from bilantools.db.failures import Interruption, LostConnection
from bilantools.db.interrupts import Interrupts
from bilantools.errors import (
    BilanToolsError,
    ConnectionLostError,
    DatabaseError,
    InputError,
    MigrationFailed,
    RefusedError,
)
from bilantools.source.files import Migration, MigrationSet, Script
from bilantools.source.findings import Finding
from bilantools.source.headers import DURATION_HINT, Limits, parse_duration
from bilantools.source.statements import Slices, Statement, check_runnable, split

if TYPE_CHECKING:
    import psycopg

    from bilantools.db.target import Target

State = Literal["applied", "pending", "failed", "changed", "missing-file"]

# A migration waits at most this long for a table lock, then fails instead of queueing
# every later query on that table behind it (production traffic stalls while a DDL
# statement waits for its lock). Per run: --lock-timeout; per script: '-- lock-timeout:'.
DEFAULT_LOCK_TIMEOUT = "5s"
DEFAULT_LIMITS = Limits(lock_timeout=DEFAULT_LOCK_TIMEOUT)
# At most this long between two commits that wait for the disk (see Runner._run_all).
DURABLE_EVERY = 0.2
# Consecutive transactional migrations sent in one round trip (see Runner._run_all): at
# most this many, and more only while a batch takes less than GROW_BELOW seconds.
MAX_BATCH = 64
GROW_BELOW = 0.05


def run_limits(lock_timeout: str | None, statement_timeout: str | None) -> Limits:
    """Validated run-level limits (None keeps the server's setting)."""
    checked: list[str | None] = []
    for flag, value in (("--lock-timeout", lock_timeout), ("--statement-timeout", statement_timeout)):
        duration = None if value is None else parse_duration(str(value))
        if value is not None and duration is None:
            raise InputError(f"{flag} {value} is not a duration; {DURATION_HINT}")
        checked.append(duration)
    return Limits(*checked)


@dataclass(frozen=True)
class Progress:
    """What a progress hook receives: 'start' when a migration is sent to the server (a
    batch sends several before the first finishes), 'done' with its step once durable."""

    event: Literal["start", "done"]
    migration: Migration
    index: int
    total: int
    step: Step | None = None


ProgressHook = Callable[[Progress], None]


@dataclass(frozen=True)
class MigrationStatus:
    version: str
    name: str
    state: State
    applied_at: datetime | None = None
    execution_time_ms: int | None = None
    applied_by: str | None = None
    error: str | None = None
    partial: bool = False
    file: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "name": self.name,
            "state": self.state,
            "applied_at": self.applied_at.isoformat() if self.applied_at else None,
            "execution_time_ms": self.execution_time_ms,
            "applied_by": self.applied_by,
            "error": self.error,
            "partial": self.partial,
            "file": self.file,
        }


@dataclass(frozen=True)
class Status:
    target: str
    migrations: list[MigrationStatus]
    tracking: bool

    def count(self, state: State) -> int:
        return sum(1 for m in self.migrations if m.state == state)

    def summary(self) -> str:
        parts = [
            f"{self.count(s)} {s}"
            for s in ("applied", "pending", "failed", "changed", "missing-file")
            if self.count(s)
        ]
        return f"{len(self.migrations)} migrations: " + ", ".join(parts or ["none"])

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "migrations": [m.as_dict() for m in self.migrations]}


@dataclass(frozen=True)
class Step:
    version: str
    name: str
    action: str  # apply | rollback | baseline | repair
    outcome: str  # applied | rolled back | baselined | would apply | would roll back | failed | skipped | ...
    duration_ms: int | None = None
    statements: int | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RunResult:
    target: str
    action: str
    dry_run: bool = False
    steps: list[Step] = field(default_factory=list)
    run_id: str | None = None
    backup: str | None = None  # the backup taken before the first change

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "action": self.action,
            "dry_run": self.dry_run,
            "run_id": self.run_id,
            "backup": self.backup,
            "steps": [s.as_dict() for s in self.steps],
        }


class _Stopped(Exception):
    """A batch stopped at a failure: `steps` are the migrations it committed before."""

    def __init__(self, steps: list[Step], error: BaseException) -> None:
        super().__init__(str(error))
        self.steps = steps
        self.error = error


class _DryRunDone(Exception):
    """Unwinds the dry run's outer transaction so that nothing is kept."""


class Runner:
    """The migration engine for one connection and one migrations directory."""

    def __init__(
        self,
        conn: psycopg.Connection,
        migrations: MigrationSet,
        target: Target,
        progress: ProgressHook | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.conn = conn
        self.migrations = migrations
        self.target = target
        self.target_label = target.masked
        self.progress = progress
        self.limits = limits
        self.actor = history.Actor.current()
        self._retrying: set[str] = set()  # failed migrations this run tries again
        self.interrupts = Interrupts(conn)  # Ctrl-C while migrations run
        self._guard: integrity.Guard | None = None  # the tracking objects as this run must leave them

    # -- reading ----------------------------------------------------------------------
    def status(self) -> Status:
        tracked, rows = history.read_history(self.conn)
        by_number = {r.number if r.number is not None else r.version: r for r in rows}
        result: list[MigrationStatus] = []
        for m in self.migrations:
            row = by_number.pop(m.number, None)
            file = str(m.path)
            if row is None:
                result.append(MigrationStatus(m.version, m.name, "pending", file=file))
                continue
            if not row.success:
                state: State = "failed"
            elif row.checksum and row.checksum != m.checksum:
                state = "changed"
            else:
                state = "applied"
            result.append(
                MigrationStatus(
                    m.version,
                    m.name,
                    state,
                    row.applied_at,
                    row.execution_time_ms,
                    row.applied_by,
                    row.error_message,
                    row.partial,
                    file,
                )
            )
        for row in by_number.values():
            result.append(
                MigrationStatus(
                    row.version,
                    row.description or "",
                    "missing-file",
                    row.applied_at,
                    row.execution_time_ms,
                    row.applied_by,
                    row.error_message,
                    row.partial,
                )
            )
        result.sort(key=lambda s: _version_order(s.version))
        return Status(self.target_label, result, tracked)

    def plan(self, to: str | None = None, step: int | None = None) -> list[Migration]:
        """The migrations `apply` would run, in order; refuses when an applied file changed."""
        self.migrations.require_valid()
        status = {s.version: s for s in self.status().migrations}
        changed = [v for v, s in status.items() if s.state == "changed"]
        if changed:
            raise RefusedError(
                f"migration(s) {', '.join(changed)} changed since they were applied (checksum "
                "differs): restore the file(s), or run 'bilantools repair' if the edit is intentional"
            )
        todo = [m for m in self.migrations if status[m.version].state in ("pending", "failed")]
        self._retrying = {v for v, s in status.items() if s.state == "failed"}
        return _limit(todo, self.migrations, to, step, forward=True)

    def refuse_errors(self, force: bool = False) -> dict[str, Slices]:
        """Refuse a directory with errors before anything runs. `force` lets ordering errors
        (forward references) through, never what the server or the engine cannot run.

        A pass is remembered by content under $BILANTOOLS_HOME/cache/checks (see
        `source.passed`): applying unchanged files again skips the parse. Returns the
        statement slices of each forward script by checksum, when they were remembered."""
        from bilantools.db.sandbox import default_home
        from bilantools.source import passed
        from bilantools.source.config import load_config

        config = load_config(self.migrations.directory.absolute())
        store = default_home() / "cache" / "checks"
        digest = passed.key(self.migrations, config)
        known = passed.recall(store, digest, self.migrations)
        if known is not None:
            return known
        from bilantools.source.check import check  # the analysis' modules: 20 ms of imports

        report = check(
            self.migrations.directory,
            config=config,
            lint_rules=False,
            rollbacks=False,
            found=self.migrations,
            tracking=history.tracking(),
        )
        errors = [f for f in report.errors if not (force and f.rule == "forward-reference")]
        if not report.errors:
            passed.remember(store, digest, self.migrations)
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            bypass = " or pass --force" if all(f.rule == "forward-reference" for f in errors) else ""
            raise InputError(
                f"refusing to apply: {errors[0].one_line()}{more}; run 'bilantools check' to list every "
                f"problem, fix them{bypass}"
            )
        return {}

    def _refuse_rollback_errors(self, todo: list[Migration]) -> None:
        """Refuse rollback scripts that would write to the tracking objects or wait for a
        client data stream (`check` reports them as errors), before anything runs."""
        from bilantools.source.check import rollback_errors
        from bilantools.source.config import load_config

        config = load_config(self.migrations.directory.absolute())
        errors = rollback_errors(self.migrations, todo, history.tracking(), config)
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise InputError(
                f"refusing to roll back: {errors[0].one_line()}{more}; run 'bilantools check' to list every "
                "problem, fix them"
            )

    def plan_sql(self, to: str | None = None, step: int | None = None) -> str:
        """The SQL `apply` would send, in order, with its transaction boundaries."""
        todo = self.plan(to, step)
        lines = [f"-- bilantools apply on {self.target_label}: {len(todo)} migration(s)"]
        for index, m in enumerate(todo):
            statements = self._prepare(m.script, m.transactional)
            lines.append(f"\n-- {m.path.name} (checksum {m.checksum[:12]})")
            limits = self._limits(m.limits)
            settings = [
                f"SET{' LOCAL' if m.transactional else ''} {name} = '{value}';"
                for name, value in (
                    ("lock_timeout", limits.lock_timeout),
                    ("statement_timeout", limits.statement_timeout),
                )
                if value is not None
            ]
            if m.transactional:
                if index < len(todo) - 1:
                    settings.append(
                        "SET LOCAL synchronous_commit = off;  -- except one commit every "
                        f"{DURABLE_EVERY:g} s, which flushes the earlier ones"
                    )
                lines.append("BEGIN;")
                lines.extend(settings)
            else:
                lines.append("-- transaction: off: each statement commits on its own")
                lines.append(
                    f"SELECT record_migration_failure('{m.version}', '{m.name}', 'interrupted: started "
                    "...');  -- until it finishes, with a 'started' event"
                )
                lines.extend(settings)
            lines.extend(f"{s.text};" for s in statements)
            lines.extend(f"{query};  -- the session as the run started" for query in integrity.RESET_SESSION)
            if m.transactional:
                lines.extend(settings)
            lines.append(
                f"SELECT record_migration('{m.version}', '{m.name}', '{m.checksum}', current_user, "
                "<elapsed ms>);  -- with one schema_migration_events row"
            )
            lines.append(
                "SELECT <proof>;  -- fails, so nothing commits, if the tracking objects are not as expected"
            )
            if m.transactional:
                lines.append("COMMIT;")
        return "\n".join(lines) + "\n"

    def rollback_plan(self, to: str | None = None, step: int | None = None) -> list[Migration]:
        """Applied migrations to roll back, newest first; refuses a range with no script."""
        self.migrations.require_valid()
        states = {s.version: s for s in self.status().migrations}
        done = [
            m
            for m in reversed(self.migrations.migrations)
            if states[m.version].state in ("applied", "changed")
        ]
        if to is not None and step is not None:
            raise InputError("--to and --step cannot be used together; pass one of them")
        if to is not None and _number(to) == 0:
            chosen = done
        else:
            chosen = _limit(
                done, self.migrations, to, 1 if to is None and step is None else step, forward=False
            )
        lowest = min((m.number for m in chosen), default=None)
        stranded = [
            s.version
            for s in states.values()
            if s.state == "missing-file" and lowest is not None and (_number(s.version) or 0) > lowest
        ]
        if stranded:
            raise RefusedError(
                f"migration(s) {', '.join(stranded)} are applied but their files are missing: "
                "restore them before rolling back past them"
            )
        without = [m.label for m in chosen if m.rollback is None]
        if without:
            raise RefusedError(
                f"no rollback script for {', '.join(without)}: add "
                f"{without[0]}_rollback.sql (nothing was rolled back)"
            )
        return chosen

    # -- changing -----------------------------------------------------------------------
    def apply(
        self,
        to: str | None = None,
        step: int | None = None,
        dry_run: bool = False,
        force: bool = False,
        before_changes: Callable[[], str] | None = None,
    ) -> RunResult:
        """Apply pending migrations. `before_changes` runs once everything is checked and
        before the first change (the automatic backup); what it returns (the backup file)
        is recorded with every event of the run."""
        todo = self.plan(to, step)
        known = self.refuse_errors(force) if todo else {}
        prepared = [(m, self._prepare(m.script, m.transactional, known.get(m.checksum))) for m in todo]
        result = RunResult(self.target_label, "apply", dry_run, run_id=str(self.actor.run_id))
        if dry_run:
            return self._dry_run(result, prepared)
        if prepared:
            self._before_changes(before_changes, result)
            history.ensure_tracking(self.conn)
        return self._run_all(result, prepared)

    def rollback(
        self,
        to: str | None = None,
        step: int | None = None,
        dry_run: bool = False,
        before_changes: Callable[[], str] | None = None,
    ) -> RunResult:
        todo = self.rollback_plan(to, step)
        prepared = []
        for m in todo:
            assert m.rollback is not None
            prepared.append((m, self._prepare(m.rollback, m.rollback_transactional)))
        self._refuse_rollback_errors(todo)
        result = RunResult(self.target_label, "rollback", dry_run, run_id=str(self.actor.run_id))
        if dry_run:
            return self._dry_run(result, prepared)
        if prepared:
            self._before_changes(before_changes, result)
        return self._run_all(result, prepared)

    def _before_changes(self, hook: Callable[[], str] | None, result: RunResult) -> None:
        if hook is not None:
            result.backup = hook()
            self.actor = replace(self.actor, backup=result.backup)

    def baseline(self, to: str) -> RunResult:
        """Mark migrations up to `to` applied without running them (hand-migrated databases)."""
        todo = self.plan(to=to)
        history.ensure_tracking(self.conn)
        result = RunResult(self.target_label, "baseline", run_id=str(self.actor.run_id))
        with self.conn.transaction():
            for m in todo:
                history.record_success(
                    self.conn, self.actor, m.version, m.name, m.checksum, 0, action="baseline"
                )
                result.steps.append(Step(m.version, m.name, "baseline", "baselined"))
        return result

    def repair(self) -> RunResult:
        """Clear failed rows and realign checksums of edited files; both are logged."""
        self.migrations.require_valid()
        status = self.status()
        result = RunResult(self.target_label, "repair", run_id=str(self.actor.run_id))
        if not status.tracking:
            return result
        history.ensure_tracking(self.conn)
        files = {m.version: m for m in self.migrations}
        with self.conn.transaction():
            for s in status.migrations:
                if s.state == "failed" or (s.state == "missing-file" and s.error is not None):
                    history.clear_failed(self.conn, self.actor, s.version, s.error)
                    result.steps.append(
                        Step(s.version, s.name, "repair", "cleared failed row", detail=s.error)
                    )
                elif s.state == "changed":
                    history.realign(self.conn, self.actor, s.version, files[s.version].checksum)
                    result.steps.append(Step(s.version, s.name, "repair", "checksum realigned"))
        return result

    def validate(self) -> list[Finding]:
        """Directory problems plus history problems: edited, vanished and failed migrations."""
        findings = list(self.migrations.findings)
        for s in self.status().migrations:
            file = s.file or str(self.migrations.directory)
            if s.state == "changed":
                findings.append(
                    Finding(
                        "checksum-mismatch",
                        "error",
                        file,
                        None,
                        f"migration {s.version} was edited after it was applied (checksum differs)",
                        "restore the file, or run 'bilantools repair' if the edit is intentional",
                    )
                )
            elif s.state == "missing-file":
                findings.append(
                    Finding(
                        "missing-file",
                        "error",
                        file,
                        None,
                        f"migration {s.version} ({s.name}) is recorded in the database but has no file",
                        "restore the file from version control",
                    )
                )
            elif s.state == "failed":
                findings.append(
                    Finding(
                        "failed-migration",
                        "error",
                        file,
                        None,
                        f"migration {s.version} failed{' half-way' if s.partial else ''}: {s.error}",
                        "fix the file and run 'bilantools apply', or 'bilantools repair' to clear it",
                    )
                )
        return findings

    # -- internals ---------------------------------------------------------------------------
    def _run_all(self, result: RunResult, prepared: list[tuple[Migration, list[Statement]]]) -> RunResult:
        """Run each prepared script, reporting each as done only once it is on disk.

        A fast migration commits without waiting for the WAL flush; the next commit that
        waits (the run's last, a non-transactional migration, or the first one DURABLE_EVERY
        seconds after the previous flush) makes it and every earlier one durable, and only
        then are they reported. So a server crash never loses a migration that was reported
        applied, at the cost of at most a few disk flushes per second.

        Consecutive transactional migrations go in batches, one round trip each, so the
        server runs one while the client sends the next. A batch starts at one migration
        and doubles while batches take under GROW_BELOW seconds (a slow migration goes
        alone, and its progress is not held back); each migration is still its own
        transaction, and the server skips the rest of a batch after a failure.
        """
        import psycopg

        unreported: list[Progress] = []
        last_flush = time.monotonic()
        size, index, total = 1, 0, len(prepared)
        if prepared:
            self._guard = integrity.Guard.read(self.conn, self.actor.run_id)
        with self.interrupts:
            self.interrupts.defer()
            while index < total:
                if self.interrupts.received:
                    raise self._stopped(Interruption(), result, unreported, prepared)
                alone = not _in_transaction(prepared[index][0], result.action)
                end = index + 1
                while (
                    not alone
                    and end < min(total, index + size)
                    and _in_transaction(prepared[end][0], result.action)
                ):
                    end += 1
                batch = prepared[index:end]
                durable = end == total or alone or time.monotonic() - last_flush >= DURABLE_EVERY
                for offset, (m, _) in enumerate(batch):
                    self._report(Progress("start", m, index + offset, total))
                started = time.perf_counter()
                error: BaseException | None = None
                try:
                    m, statements = batch[0]
                    if not alone:
                        steps = self._in_transactions(batch, result.action, durable, started)
                    elif result.action == "apply":
                        steps = [self._apply_autocommit(m, statements, started)]
                    else:
                        steps = [self._rollback_autocommit(m, statements, started)]
                except (_Stopped, BilanToolsError, Interruption, LostConnection) as stop:  # earlier stand
                    steps, error = (stop.steps, stop.error) if isinstance(stop, _Stopped) else ([], stop)
                except psycopg.Error as exc:  # a query of the failure's own handling failed
                    steps, error = [], self._unexplained(exc, batch, result.action)
                if isinstance(error, LostConnection):
                    error = self._lost(error, result.action, unreported, prepared, index)
                for offset, step in enumerate(steps):
                    result.steps.append(step)
                    unreported.append(Progress("done", batch[offset][0], index + offset, total, step))
                if error is not None:
                    raise self._stopped(error, result, unreported, prepared)
                if durable:
                    self._report_all(unreported)
                    last_flush = time.monotonic()
                elapsed = time.perf_counter() - started
                if elapsed < GROW_BELOW:
                    size = min(size * 2, MAX_BATCH)
                elif elapsed >= DURABLE_EVERY:
                    size = 1
                index = end
        return result

    def _unexplained(
        self, exc: BaseException, batch: list[tuple[Migration, list[Statement]]], action: str
    ) -> BaseException:
        """An error while handling a batch's failure: any of the batch may have committed."""
        labels = [m.label for m, _ in batch]
        if _is_lost(self.conn):
            return LostConnection(exc, f"the {action} of {failures.span(labels)}", len(batch))
        return DatabaseError(
            f"the server failed a query while bilantools handled a failure in {failures.span(labels)}: "
            f"{server_message(exc)}; run 'bilantools status' to see which of them committed, then {action} "
            "again"
        )

    def _lost(
        self,
        stop: LostConnection,
        action: str,
        unreported: list[Progress],
        prepared: list[tuple[Migration, list[Statement]]],
        index: int,
    ) -> ConnectionLostError:
        """What is known after the connection was lost in the batch starting at `index`: the
        migrations committed but not yet flushed before it, and those of the batch whose
        COMMIT was sent, may or may not have committed; the rest did not."""
        earlier = [] if stop.flushed else [p.migration.label for p in unreported]
        unknown = earlier + [m.label for m, _ in prepared[index : index + stop.sent]]
        after = [m.label for m, _ in prepared[index + max(stop.sent, 1 if stop.outside else 0) :]]
        return failures.lost(self.target_label, action, stop, unknown, after)

    def _stopped(
        self,
        error: BaseException,
        result: RunResult,
        unreported: list[Progress],
        prepared: list[tuple[Migration, list[Statement]]],
    ) -> BaseException:
        """The error that ends a run, with what the run did: the migrations committed before
        the stop are flushed and reported (unless the connection is gone, when only those
        already reported are known to stand)."""
        import psycopg

        if isinstance(error, ConnectionLostError):
            del result.steps[len(result.steps) - len(unreported) :]
        elif unreported:
            try:
                self._flush_wal()
            except psycopg.Error as exc:  # the server went away after the stop
                labels = [p.migration.label for p in unreported]
                del result.steps[len(result.steps) - len(unreported) :]
                after = [m.label for m, _ in prepared[len(result.steps) + len(labels) :]]
                error = failures.lost(
                    self.target_label,
                    result.action,
                    LostConnection(exc, f"the commit that makes the earlier migrations durable ({error})", 0),
                    labels,
                    after,
                )
            else:
                self._report_all(unreported)
        if isinstance(error, Interruption):
            committed = [f"{s.version}_{s.name}" for s in result.steps]
            left = [m.label for m, _ in prepared[len(result.steps) + (1 if error.recorded else 0) :]]
            error = failures.interrupted(error, result.action, committed, left)
        if isinstance(error, BilanToolsError):
            error.run = result.as_dict()
        return error

    def _flush_wal(self) -> None:
        """A committed transaction with an xid waits for the WAL flush of every earlier commit."""
        with self.conn.transaction():
            self.conn.execute("SELECT txid_current()")

    def _report_all(self, unreported: list[Progress]) -> None:
        for progress in unreported:
            self._report(progress)
        unreported.clear()

    def _report(self, progress: Progress) -> None:
        if self.progress is not None:
            self.progress(progress)

    @staticmethod
    def _prepare(script: Script, transactional: bool, known: Slices | None = None) -> list[Statement]:
        statements = split(script, known)
        if not statements:
            raise InputError(f"{script.path} contains no SQL statement; write its SQL or remove it")
        check_runnable(script, statements, transactional)
        return statements

    def _apply_autocommit(self, m: Migration, statements: list[Statement], started: float) -> Step:
        """Statement by statement, each committing on its own. The migration is first
        recorded as started and unfinished (a committed failed row and a 'started' event),
        so a runner killed half-way leaves a history that says so; success overwrites it.
        That record commits synchronously, which makes every earlier commit durable."""
        import psycopg

        from bilantools.db.invalid_indexes import drop_invalid

        limits = self._limits(m.limits)
        during, total = f"migration {m.label}", len(statements)
        try:
            _set_limits(self.conn, limits, local=False)
            detail = "started"
            if m.version in self._retrying:
                detail += self._drop_left_over(m, statements)
            with self.conn.transaction():
                history.record_started(self.conn, self.actor, m.version, m.name, m.checksum, detail)
        except psycopg.Error as exc:
            if _is_lost(self.conn):
                raise LostConnection(exc, during, 0, failures.outside(m.label, total)) from None
            raise self._could_not_start(m, "apply", exc) from None
        for done, stmt in enumerate(statements):
            if self.interrupts.received:
                raise self._interrupted_outside(m, statements, done, started) from None
            try:
                with self.interrupts.cancellable():
                    self.conn.execute(stmt.text)
            except psycopg.Error as exc:
                if _is_lost(self.conn):
                    outside = failures.outside(m.label, total, done, failures.at(m.path, stmt))
                    raise LostConnection(exc, during, 0, outside, flushed=True) from None
                left = ""
                for index, why in drop_invalid(self.conn, [stmt]):
                    left = f" (the invalid index {index} the failed build left was dropped)"
                    if why:
                        left = f" (the invalid index {index} it left could not be dropped yet: {why})"
                integrity.reset_session(self.conn)
                if self.interrupts.received and _sqlstate(exc) == "57014":
                    raise self._interrupted_outside(
                        m, statements, done, started, ran=True, note=left
                    ) from None
                raise self._failed(
                    m, m.script, statements, done, exc, started, partial=done > 0, limits=limits, note=left
                ) from None
        elapsed = _ms(started)
        self._record_autocommit(m, "apply", statements, started, elapsed)
        return Step(m.version, m.name, "apply", "applied", elapsed, len(statements))

    def _rollback_autocommit(self, m: Migration, statements: list[Statement], started: float) -> Step:
        """A '-- transaction: off' rollback (DROP INDEX CONCURRENTLY...): statement by
        statement, each committing on its own, then the history change in its own
        transaction. A 'started' event comes first, so that a rollback stopped half-way is on
        record; the migration stays applied until its last statement has run."""
        import psycopg

        assert m.rollback is not None
        during, total = f"the rollback of {m.label}", len(statements)
        try:
            _set_limits(self.conn, self._limits(m.rollback_limits), local=False)
            with self.conn.transaction():
                history.record_event(
                    self.conn, self.actor, m.version, "rollback", "started", checksum=m.checksum
                )
        except psycopg.Error as exc:
            if _is_lost(self.conn):
                raise LostConnection(exc, during, 0, failures.outside_rollback(m.label, total)) from None
            raise self._could_not_start(m, "rollback", exc) from None
        for done, stmt in enumerate(statements):
            if self.interrupts.received:
                raise self._rollback_interrupted(m, statements, done, started, ran=False) from None
            try:
                with self.interrupts.cancellable():
                    self.conn.execute(stmt.text)
            except psycopg.Error as exc:
                if _is_lost(self.conn):
                    running = failures.at(m.rollback.path, stmt)
                    outside = failures.outside_rollback(m.label, total, done, running)
                    raise LostConnection(exc, during, 0, outside, flushed=True) from None
                integrity.reset_session(self.conn)
                if self.interrupts.received and _sqlstate(exc) == "57014":
                    raise self._rollback_interrupted(m, statements, done, started, ran=True) from None
                raise self._rollback_failed(m, statements, done, exc, started) from None
        elapsed = _ms(started)
        self._record_autocommit(m, "rollback", statements, started, elapsed)
        return Step(m.version, m.name, "rollback", "rolled back", elapsed, len(statements))

    def _record_autocommit(
        self, m: Migration, action: str, statements: list[Statement], started: float, elapsed: int
    ) -> None:
        """After the last statement of a `-- transaction: off` script: the session reset,
        then its success (or, after a rollback, its row removed) with the proof, in one
        transaction. Its statements had committed, so a failure here says so."""
        import psycopg

        assert self._guard is not None
        apply, total = action == "apply", len(statements)
        during = f"migration {m.label}" if apply else f"the rollback of {m.label}"
        stage = "write"
        try:
            integrity.reset_session(self.conn)
            with self.conn.transaction():
                if apply:
                    history.record_success(self.conn, self.actor, m.version, m.name, m.checksum, elapsed)
                else:
                    history.forget(self.conn, self.actor, m.version, m.checksum, elapsed)
                stage = "check"
                query, params = self._guard.proof(m.version, m.checksum, action, by_content=True)
                self.conn.execute(query, params)
        except psycopg.Error as exc:
            if _is_lost(self.conn):
                outside = (failures.outside if apply else failures.outside_rollback)(m.label, total, total)
                raise LostConnection(exc, during, 0, outside, flushed=True) from None
            if integrity.changed(exc) is not None or integrity.structural(exc):
                raise integrity.tampered(m, action, exc, stage, committed=True) from None
            what = "success" if apply else "forget"
            raise self._engine_failed(m, action, statements, what, exc, started) from None

    def _rollback_interrupted(
        self, m: Migration, statements: list[Statement], done: int, started: float, ran: bool
    ) -> Interruption:
        """Ctrl-C in a '-- transaction: off' rollback: `done` statements committed, which a
        'partial' (or 'failure') event says; the migration stays applied."""
        assert m.rollback is not None
        stmt = statements[done]
        where = f"{m.rollback.path.name}:{stmt.line}"
        self._record_rollback_event(m, done, len(statements), f"interrupted (Ctrl-C) at {where}", started)
        place = failures.Place(m.label, m.version, m.rollback.path, stmt, "at" if ran else "before")
        stop = Interruption(place, failures.cancelled_rollback_outside(m.label, done, len(statements), ran))
        stop.partial = done > 0
        return stop

    def _record_rollback_event(self, m: Migration, done: int, total: int, why: str, started: float) -> str:
        """A 'partial' (or 'failure') rollback event in its own transaction; a note when that
        failed too."""
        import psycopg

        try:
            with self.conn.transaction():
                history.record_event(
                    self.conn,
                    self.actor,
                    m.version,
                    "rollback",
                    "partial" if done else "failure",
                    _ms(started),
                    m.checksum,
                    f"{done} of {total} statements committed: {why}",
                )
        except psycopg.Error as second:
            return f" (the failure could not be recorded: {server_message(second)})"
        return ""

    def _rollback_failed(
        self, m: Migration, statements: list[Statement], done: int, exc: BaseException, started: float
    ) -> MigrationFailed:
        """A '-- transaction: off' rollback stopped at statement `done`: the ones before it
        committed, which the message and a 'partial' (or 'failure') event say."""
        script = m.rollback
        assert script is not None
        stmt = statements[done]
        line = error_line(stmt, exc)
        reason = self._explain(exc, stmt, self._limits(m.rollback_limits))
        where = f"{script.path.name}:{line}"
        note = self._record_rollback_event(m, done, len(statements), f"{reason} at {where}", started)
        fix = _fix(exc, "make the rollback script safe to re-run (IF EXISTS) and run rollback again")
        return MigrationFailed(
            f"rollback of {m.label} failed at {where}: {reason} (statement: {excerpt(stmt.text)}); the "
            f"rollback script runs outside a transaction and {done} of {len(statements)} statements had "
            f"committed, and {m.label} stays applied: {fix}{note}",
            version=m.version,
            file=str(script.path),
            line=line,
            statement=stmt.text,
            server_message=reason,
            partial=done > 0,
        )

    def _interrupted_outside(
        self,
        m: Migration,
        statements: list[Statement],
        done: int,
        started: float,
        ran: bool = False,
        note: str = "",
    ) -> Interruption:
        """Ctrl-C in a `-- transaction: off` migration: `done` statements committed; it is
        recorded as failed (half-way when some committed), like a failure at that statement."""
        stmt = statements[done]
        where = f"{m.path.name}:{stmt.line}"
        head = f"interrupted (Ctrl-C) {'at' if ran else 'before'} {where}"
        recorded = _recorded(head, statements, done, done > 0, note)
        self._record_failure(m, started, recorded, done > 0)
        place = failures.Place(m.label, m.version, m.path, stmt, "at" if ran else "before")
        stop = Interruption(place, failures.cancelled_outside(m.label, done, len(statements), ran), True)
        stop.partial = done > 0
        return stop

    def _not_allowed(
        self, m: Migration, script: Script, stmt: Statement, exc: BaseException, action: str
    ) -> RefusedError:
        """A privilege the connected role lacks: not a fault of the file, so nothing is
        recorded (the transaction rolled back) and the fix is a grant or another role."""
        reason = server_message(exc)
        schema = re.search(r"permission denied for schema (\S+)", reason)
        if schema:
            fix = f"GRANT CREATE ON SCHEMA {schema[1]} TO {self._role()}, or connect as the schema owner"
        else:
            fix = f"connect as the owner of the objects it changes, or GRANT {self._role()} the privilege"
        what = "rollback of " if action == "rollback" else "migration "
        return RefusedError(
            f"{what}{m.label} is not allowed at {script.path.name}:{error_line(stmt, exc)}: {reason} "
            f"(statement: {excerpt(stmt.text)}); nothing was changed or recorded: {fix}, then run "
            f"{action} again"
        )

    def _role(self) -> str:
        """The connected role, quoted as SQL needs it (not the one a migration switched to)."""
        row = self.conn.execute("SELECT quote_ident(%s)", (self.conn.info.user,)).fetchone()
        return str(row[0]) if row else self.conn.info.user

    def _drop_left_over(self, m: Migration, statements: list[Statement]) -> str:
        """Before retrying `m`: drop the invalid indexes its earlier attempt left, or refuse."""
        from bilantools.db.invalid_indexes import drop_invalid

        results = drop_invalid(self.conn, statements)
        stuck = [(index, why) for index, why in results if why]
        if stuck:
            integrity.reset_session(self.conn)
            index, why = stuck[0]
            raise RefusedError(
                f"migration {m.label} left the invalid index {index} when it failed, and it cannot be "
                f"dropped now ({why}); end the transactions that block it, or run DROP INDEX "
                f"CONCURRENTLY {index} by hand, then apply again"
            )
        if not results:
            return ""
        return f"; dropped the invalid index(es) {', '.join(i for i, _ in results)} an earlier attempt left"

    def _limits(self, script: Limits) -> Limits:
        """The script's own header limits, else the run's."""
        return Limits(
            script.lock_timeout if script.lock_timeout is not None else self.limits.lock_timeout,
            script.statement_timeout
            if script.statement_timeout is not None
            else self.limits.statement_timeout,
        )

    def _in_transactions(
        self, batch: list[tuple[Migration, list[Statement]]], action: str, durable: bool, started: float
    ) -> list[Step]:
        """Each migration (or rollback) of `batch` as BEGIN, its limits, its statements, the
        session reset and the limits again, its tracking change, the proof that the tracking
        objects are as expected (see integrity) and COMMIT, all sent as one pipeline: one
        round trip for the batch.

        The server runs them in order and, after an error, skips everything up to the
        pipeline's end, so the migrations before the failing one are committed and none
        after it ran. The commands that returned no result tell which statement failed.
        `durable` makes the batch's last commit wait for the disk (the others do not).
        Ctrl-C cancels the running statement and stops the sending (see `interrupts`).
        """
        import psycopg

        sent = failures.Commands(lambda: self.interrupts.received)
        trackers: list[psycopg.Cursor[Any]] = []
        unit_settings: list[tuple[str, list[object]] | None] = []
        guard = self._guard
        assert guard is not None

        def send(
            unit: int,
            statement: int | None,
            what: str,
            query: str,
            params: Sequence[object] | Mapping[str, Any] = (),
        ) -> psycopg.Cursor[Any]:
            return sent.add(unit, statement, what, partial(self.conn.execute, query, params or None))

        try:
            with _quiet_pipeline_abort(), self.interrupts.cancellable(), self.conn.pipeline():
                for unit, (m, statements) in enumerate(batch):
                    send(unit, None, "start", "BEGIN")
                    limits = self._script_limits(m, action)
                    settings = _limits_sql(limits, True, durable and unit == len(batch) - 1)
                    unit_settings.append(settings)
                    if settings is not None:
                        send(unit, None, "start", *settings)
                    for number, stmt in enumerate(statements):
                        send(unit, number, "statement", stmt.text)
                    # the same session for the tracking write and the next unit, then the proof
                    for query in integrity.RESET_SESSION:
                        send(unit, None, "reset", query)
                    if settings is not None:
                        send(unit, None, "write", *settings)
                    trackers.append(sent.add(unit, None, "write", partial(self._track, m, action)))
                    send(unit, None, "check", *guard.proof(m.version, m.checksum, action))
                    send(unit, None, "commit", "COMMIT")
        except (psycopg.Error, failures.Halted) as exc:
            raise self._batch_stopped(batch, action, sent, trackers, unit_settings, exc, started) from None
        return self._batch_steps(batch, trackers, action)

    def _batch_stopped(
        self,
        batch: list[tuple[Migration, list[Statement]]],
        action: str,
        sent: failures.Commands,
        trackers: list[psycopg.Cursor[Any]],
        unit_settings: list[tuple[str, list[object]] | None],
        exc: BaseException,
        started: float,
    ) -> _Stopped:
        """Where a batch stopped, what of it committed, and the error to report."""
        import psycopg
        from psycopg.pq import TransactionStatus

        unit, statement, what = sent.stopped(exc, len(batch))
        steps = self._batch_steps(batch[:unit], trackers, action)
        m, statements = batch[min(unit, len(batch) - 1)]
        during = f"migration {m.label}" if action == "apply" else f"the rollback of {m.label}"
        if _is_lost(self.conn):
            return _Stopped(steps, LostConnection(exc, during, sent.committing()))
        try:
            if self.conn.info.transaction_status != TransactionStatus.IDLE:
                self.conn.execute("ROLLBACK")
        except psycopg.Error as second:  # lost now: the one that stopped did not commit
            return _Stopped(steps, LostConnection(second, during, unit))
        if self.interrupts.received and (isinstance(exc, failures.Halted) or _sqlstate(exc) == "57014"):
            tail = "tracking" if what in integrity.STAGES else what
            return _Stopped(steps, failures.interruption(m, action, statements, statement, tail, exc))
        if what == "end":  # every command had its result: the whole batch committed
            return _Stopped(
                steps,
                DatabaseError(
                    f"the server failed the end of a batch after {m.label} committed: {server_message(exc)}; "
                    f"run 'bilantools status', then {action} again"
                ),
            )
        if what == "start":
            return _Stopped(steps, self._could_not_start(m, action, exc))
        if what in integrity.STAGES:  # the unit's statements ran: the reset, tracking write or proof failed
            settings = unit_settings[unit]

            def write() -> None:
                if settings is not None:
                    query, params = settings
                    self.conn.execute(query, params)
                self._track(m, action)

            blamed = integrity.blame(self.conn, m, action, exc, what, write)
            if blamed is not exc:
                return _Stopped(steps, blamed)
            return _Stopped(steps, self._engine_failed(m, action, statements, "tracking", exc, started))
        if statement is None:  # COMMIT failed (a deferred constraint...)
            return _Stopped(steps, self._engine_failed(m, action, statements, what, exc, started))
        return _Stopped(steps, self._statement_failed(m, action, statements, statement, exc, started))

    def _track(self, m: Migration, action: str) -> psycopg.Cursor[Any]:
        """The unit's tracking change: its success recorded, or its row removed after a rollback."""
        if action == "apply":
            return history.record_success(self.conn, self.actor, m.version, m.name, m.checksum)
        return history.forget(self.conn, self.actor, m.version, m.checksum)

    @staticmethod
    def _batch_steps(
        batch: list[tuple[Migration, list[Statement]]], trackers: list[psycopg.Cursor[Any]], action: str
    ) -> list[Step]:
        outcome = "applied" if action == "apply" else "rolled back"
        steps = []
        for (m, statements), tracker in zip(batch, trackers, strict=False):
            row = tracker.fetchone()
            steps.append(
                Step(m.version, m.name, action, outcome, int(row[0]) if row else None, len(statements))
            )
        return steps

    def _script_limits(self, m: Migration, action: str) -> Limits:
        return self._limits(m.limits if action == "apply" else m.rollback_limits)

    def _statement_failed(
        self,
        m: Migration,
        action: str,
        statements: list[Statement],
        index: int,
        exc: BaseException,
        started: float,
    ) -> BilanToolsError:
        """The error for statement `index` of `m`'s script (rolled back with its transaction).
        A 42501 is a refusal (a grant to make) only when the connected role ran it."""
        script = m.script if action == "apply" else m.rollback
        assert script is not None
        stmt = statements[index]
        note = ""
        if _sqlstate(exc) == "42501":
            note = self._other_role(script, statements, index)
            if not note:
                return self._not_allowed(m, script, stmt, exc, action)
        limits = self._script_limits(m, action)
        if action == "apply":
            return self._failed(
                m, script, statements, index, exc, started, partial=False, limits=limits, note=note
            )
        line = error_line(stmt, exc)
        reason = self._explain(exc, stmt, limits)
        return MigrationFailed(
            f"rollback of {m.label} failed at {script.path.name}:{line}: {reason} "
            f"(statement: {excerpt(stmt.text)}); its changes were rolled back and the migration "
            f"stays applied: {_fix(exc, 'fix the rollback script and run rollback again')}{note}",
            version=m.version,
            file=str(script.path),
            line=line,
            statement=stmt.text,
            server_message=reason,
        )

    def _other_role(self, script: Script, statements: list[Statement], index: int) -> str:
        """When the migration switched role before the refused statement, the note that
        says so (the connected role is not to blame), else ''."""
        switch = failures.role_switch(statements, index)
        if switch is None:
            return ""
        return f" (it ran as the role set at {failures.at(script.path, switch)}, not as {self._role()})"

    def _failed(
        self,
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
        stmt = statements[index]
        line = error_line(stmt, exc)
        reason = self._explain(exc, stmt, limits)
        where = f"{script.path.name}:{line}"
        recorded = _recorded(f"{reason} at {where}", statements, index, partial, note)
        note += self._record_failure(m, started, recorded, partial)
        if partial:
            consequence = (
                f"it runs outside a transaction and {index} of {len(statements)} statements "
                "had committed: make the file safe to re-run (IF NOT EXISTS) or finish by hand, "
                "then run apply again"
            )
            if _fix(exc, ""):
                consequence += f"; {_fix(exc, '')}"
        else:
            consequence = "its changes were rolled back and the failure recorded: " + _fix(
                exc, "fix the file and run apply again"
            )
        return MigrationFailed(
            f"migration {m.label} failed at {where}: {reason} (statement: {excerpt(stmt.text)}); "
            f"{consequence}{note}",
            version=m.version,
            file=str(script.path),
            line=line,
            statement=stmt.text,
            server_message=reason,
            partial=partial,
        )

    def _record_failure(self, m: Migration, started: float, recorded: str, partial: bool) -> str:
        """Record `m` as failed in its own transaction; a note when that failed too."""
        import psycopg

        try:
            history.ensure_tracking(self.conn)
            history.record_failure(
                self.conn, self.actor, m.version, m.name, m.checksum, _ms(started), recorded, partial
            )
        except (psycopg.Error, RefusedError) as second:
            return f" (the failure could not be recorded: {server_message(second)})"
        return ""

    def _engine_failed(
        self,
        m: Migration,
        action: str,
        statements: list[Statement],
        what: str,
        exc: BaseException,
        started: float,
    ) -> BilanToolsError:
        """The engine's statement after the migration's last failed (see failures.after_last);
        privileges are blamed only when the connected role lacks them."""
        if _sqlstate(exc) == "42501" and not failures.connected_role_may_write_history(self.conn):
            return failures.history_refused(m.label, action, self._role(), server_message(exc), True)

        def record(recorded: str) -> str:
            return self._record_failure(m, started, recorded, False)

        return failures.after_last(m, action, statements, what, server_message(exc), record)

    def _could_not_start(self, m: Migration, action: str, exc: BaseException) -> BilanToolsError:
        """The engine's statements before the migration's first (BEGIN, the limits, the
        'started' record of a `transaction: off` one) failed: none of its statements ran."""
        reason = server_message(exc)
        if _sqlstate(exc) == "42501" and not failures.connected_role_may_write_history(self.conn):
            return failures.history_refused(m.label, action, self._role(), reason, False)
        which = "migration " if action == "apply" else "the rollback of "
        return DatabaseError(
            f"{which}{m.label} ({m.path.name}) could not start: the engine's statement before its first "
            f"failed: {reason}; none of its statements ran: run 'bilantools status', then {action} again"
        )

    def _explain(self, exc: BaseException, stmt: Statement, limits: Limits) -> str:
        """The server's message; for a lock or statement timeout, the limit and who blocked."""
        reason = server_message(exc)
        sqlstate = _sqlstate(exc)
        if sqlstate == "55P03" and "lock timeout" in reason:
            from bilantools.db.blocking import describe_blockers

            return (
                f"{reason} (waited lock_timeout {limits.lock_timeout} for a lock, "
                f"{describe_blockers(self.conn, stmt.text)})"
            )
        if sqlstate == "57014" and "statement timeout" in reason:
            return f"{reason} (ran longer than statement_timeout {limits.statement_timeout})"
        return reason

    def _dry_run(self, result: RunResult, prepared: list[tuple[Migration, list[Statement]]]) -> RunResult:
        """Run everything inside one transaction and roll it back."""
        try:
            with self.conn.transaction():
                history.ensure_tracking(self.conn)
                self._guard = integrity.Guard.read(self.conn, self.actor.run_id)
                for index, (m, statements) in enumerate(prepared):
                    if not _in_transaction(m, result.action):
                        result.steps.append(
                            Step(
                                m.version,
                                m.name,
                                result.action,
                                "skipped",
                                detail=(
                                    "runs outside a transaction ('-- transaction: off'): cannot be dry-run; "
                                    "the dry run stops here"
                                ),
                            )
                        )
                        break
                    self._report(Progress("start", m, index, len(prepared)))
                    step = self._dry_step(m, statements, result.action)
                    result.steps.append(step)
                    self._report(Progress("done", m, index, len(prepared), step))
                    if step.outcome == "failed":
                        break
                raise _DryRunDone
        except _DryRunDone:
            pass
        return result

    def _dry_step(self, m: Migration, statements: list[Statement], action: str) -> Step:
        """One migration (or rollback) inside a savepoint of the dry run's transaction."""
        import psycopg

        script = m.script if action == "apply" else m.rollback
        assert script is not None
        started = time.perf_counter()
        done = 0
        stage = ""
        assert self._guard is not None
        try:
            with self.conn.transaction():
                _set_limits(self.conn, self._limits(m.limits if action == "apply" else m.rollback_limits))
                for done, stmt in enumerate(statements):  # noqa: B007
                    self.conn.execute(stmt.text)
                stage = "reset"
                integrity.reset_session(self.conn)
                stage = "write"
                if action == "apply":
                    history.record_success(self.conn, self.actor, m.version, m.name, m.checksum, _ms(started))
                else:
                    history.forget(self.conn, self.actor, m.version, m.checksum)
                stage = "check"
                query, params = self._guard.proof(m.version, m.checksum, action, by_content=True)
                self.conn.execute(query, params)
        except psycopg.Error as exc:
            stmt = statements[done]
            detail = f"{script.path.name}:{error_line(stmt, exc)}: {server_message(exc)}"
            if (
                stage
            ):  # its statements ran: did they break the reset or the tracking write, or change the history?
                blamed = integrity.blame(self.conn, m, action, exc, stage, lambda: self._track(m, action))
                what = f"{script.path.name}: its tracking {stage} failed: {server_message(exc)}"
                detail = blamed.message if isinstance(blamed, MigrationFailed) else what
            return Step(m.version, m.name, action, "failed", _ms(started), done, detail=detail)
        verb = "would apply" if action == "apply" else "would roll back"
        return Step(m.version, m.name, action, verb, _ms(started), len(statements))


def _in_transaction(m: Migration, action: str) -> bool:
    """Whether the script `action` runs for `m` runs in a transaction ('-- transaction:')."""
    return m.transactional if action == "apply" else m.rollback_transactional


def _recorded(head: str, statements: list[Statement], index: int, partial: bool, note: str = "") -> str:
    """The error message recorded for a failure at statement `index`."""
    stmt = statements[index]
    recorded = f"{head} (statement {index + 1} of {len(statements)}: {excerpt(stmt.text, 200)})"
    if partial:
        recorded = f"failed half-way, {index} of {len(statements)} statements committed: {recorded}"
    return recorded + note


def _number(version: str) -> int | None:
    """A version's number, or None for one that is not ASCII digits ('²'.isdigit() is true)."""
    return int(version) if version.isascii() and version.isdigit() else None


def _version_order(version: str) -> tuple[int, str]:
    number = _number(version)
    return (number if number is not None else 1 << 62, version)


def _is_lost(conn: psycopg.Connection) -> bool:
    return bool(conn.closed or conn.broken)


def _set_limits(
    conn: psycopg.Connection, limits: Limits, local: bool = True, synchronous_commit: bool = True
) -> None:
    settings = _limits_sql(limits, local, synchronous_commit)
    if settings is not None:
        conn.execute(*settings)


def _limits_sql(limits: Limits, local: bool, synchronous_commit: bool) -> tuple[str, list[object]] | None:
    """One statement setting lock_timeout, statement_timeout and (unless the commit must
    wait for the disk) synchronous_commit; `local` limits them to the current transaction."""
    settings = [("lock_timeout", limits.lock_timeout), ("statement_timeout", limits.statement_timeout)]
    if not synchronous_commit:
        settings.append(("synchronous_commit", "off"))
    chosen = [(name, value) for name, value in settings if value is not None]
    if not chosen:
        return None
    calls = ", ".join("set_config(%s, %s, %s)" for _ in chosen)
    params: list[object] = []
    for name, value in chosen:
        params.extend((name, value, local))
    return f"SELECT {calls}", params


def _sqlstate(exc: BaseException) -> str | None:
    return getattr(getattr(exc, "diag", None), "sqlstate", None)


def _fix(exc: BaseException, usual: str) -> str:
    """What to do next: for a timeout, the limit to raise or the session to end."""
    sqlstate = _sqlstate(exc)
    text = str(exc)
    if sqlstate == "55P03" and "lock timeout" in text:
        return (
            "retry when the blocking session has finished (or end it), or raise the limit with "
            "--lock-timeout or a '-- lock-timeout:' header"
        )
    if sqlstate == "57014" and "statement timeout" in text:
        return "raise the limit with --statement-timeout or a '-- statement-timeout:' header, then retry"
    return usual


def _limit(
    candidates: list[Migration], migrations: MigrationSet, to: str | None, step: int | None, forward: bool
) -> list[Migration]:
    if to is not None and step is not None:
        raise InputError("--to and --step cannot be used together; pass one of them")
    if step is not None:
        if step < 1:
            raise InputError(f"--step {step}: pass a number of migrations of 1 or more")
        return candidates[:step]
    if to is None:
        return candidates
    position = {m.version: i for i, m in enumerate(migrations.migrations)}
    limit = position[migrations.resolve(to).version]
    if forward:
        return [m for m in candidates if position[m.version] <= limit]
    return [m for m in candidates if position[m.version] > limit]


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


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
