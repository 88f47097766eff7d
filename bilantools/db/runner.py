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
from typing import TYPE_CHECKING, Any, Literal

from bilantools.db import history, integrity
from bilantools.db.diagnostics import error_line, excerpt, server_message
from bilantools.errors import BilanToolsError, ConnectionLostError, InputError, MigrationFailed, RefusedError
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
        self._unflushed: list[str] = []  # committed, not yet known to be on disk
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
            history.tracking_objects(),
            config,
            lint_rules=False,
            rollbacks=False,
            found=self.migrations,
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
            prepared.append((m, self._prepare(m.rollback, True)))
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
        unreported: list[Progress] = []
        last_flush = time.monotonic()
        size, index, total = 1, 0, len(prepared)
        if prepared:
            self._guard = integrity.Guard.read(self.conn, self.actor.run_id)
        while index < total:
            alone = result.action == "apply" and not prepared[index][0].transactional
            end = index + 1
            while not alone and end < min(total, index + size) and prepared[end][0].transactional:
                end += 1
            batch = prepared[index:end]
            durable = end == total or alone or time.monotonic() - last_flush >= DURABLE_EVERY
            for offset, (m, _) in enumerate(batch):
                self._report(Progress("start", m, index + offset, total))
            self._unflushed = [p.migration.label for p in unreported]
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                m, statements = batch[0]
                steps = (
                    [self._apply_autocommit(m, statements, started)]
                    if alone
                    else self._in_transactions(batch, result.action, durable, started)
                )
            except (_Stopped, BilanToolsError) as stop:  # the earlier ones stand
                steps, error = (stop.steps, stop.error) if isinstance(stop, _Stopped) else ([], stop)
            for offset, step in enumerate(steps):
                result.steps.append(step)
                unreported.append(Progress("done", batch[offset][0], index + offset, total, step))
            if error is not None:
                if unreported and not isinstance(error, ConnectionLostError):
                    self._flush_wal()
                    self._report_all(unreported)
                raise error
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
        so a runner killed half-way leaves a history that says so; success overwrites it."""
        import psycopg

        from bilantools.db.invalid_indexes import drop_invalid

        limits = self._limits(m.limits)
        try:
            _set_limits(self.conn, limits, local=False)
            detail = "started"
            if m.version in self._retrying:
                detail += self._drop_left_over(m, statements)
            with self.conn.transaction():
                history.record_started(self.conn, self.actor, m.version, m.name, m.checksum, detail)
        except psycopg.Error as exc:
            if _is_lost(self.conn):
                raise self._lost(m, "apply", exc) from None
            raise
        for done, stmt in enumerate(statements):
            try:
                self.conn.execute(stmt.text)
            except psycopg.Error as exc:
                if _is_lost(self.conn):
                    raise self._lost(m, "apply", exc, committed=done) from None
                left = ""
                for index, why in drop_invalid(self.conn, [stmt]):
                    left = f" (the invalid index {index} the failed build left was dropped)"
                    if why:
                        left = f" (the invalid index {index} it left could not be dropped yet: {why})"
                integrity.reset_session(self.conn)
                raise self._failed(
                    m, m.script, statements, done, exc, started, partial=done > 0, limits=limits, note=left
                ) from None
        elapsed = _ms(started)
        assert self._guard is not None
        stage = "write"
        try:
            integrity.reset_session(self.conn)
            with self.conn.transaction():
                history.record_success(self.conn, self.actor, m.version, m.name, m.checksum, elapsed)
                stage = "check"
                query, params = self._guard.proof(m.version, m.checksum, "apply", by_content=True)
                self.conn.execute(query, params)
        except psycopg.Error as exc:
            if _is_lost(self.conn):
                raise self._lost(m, "apply", exc, committed=len(statements)) from None
            if integrity.changed(exc) is not None or integrity.structural(exc):
                raise integrity.tampered(m, "apply", exc, stage, committed=True) from None
            raise
        return Step(m.version, m.name, "apply", "applied", elapsed, len(statements))

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
        row = self.conn.execute("SELECT quote_ident(current_user::text)").fetchone()
        return str(row[0]) if row else "this user"

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

    def _lost(
        self, m: Migration, action: str, exc: BaseException, committed: int | None = None
    ) -> ConnectionLostError:
        """The server went away mid-run: say what is known, and nothing that is not."""
        reason = " ".join(str(exc).split()).split(" This probably means")[0] or type(exc).__name__
        during = f"the rollback of {m.label}" if action == "rollback" else f"migration {m.label}"
        if m.transactional or action == "rollback":
            known = "each migration commits together with its tracking row, so none is half-done"
            if self._unflushed:
                known += (
                    f", but whether {m.label} and the {len(self._unflushed)} before it that were not "
                    f"reported yet ({', '.join(self._unflushed)}) committed is unknown"
                )
            else:
                known += f", but whether {m.label} committed is unknown"
        else:
            known = (
                f"{m.label} runs outside a transaction and {committed or 0} of its statements had "
                "committed; it is recorded as started and not finished"
            )
        return ConnectionLostError(
            f"lost the connection to {self.target_label} during {during} ({reason}); {known}: once the "
            f"server is back, 'bilantools status' shows what is applied; then run {action} again"
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
        """
        import psycopg
        from psycopg.pq import TransactionStatus

        sent: list[tuple[int, int | None, psycopg.Cursor[Any]]] = []  # (unit, statement, cursor)
        trackers: list[psycopg.Cursor[Any]] = []
        tracking: dict[int, str] = {}  # sent index -> 'reset', 'write' or 'check': the engine's own part
        unit_settings: list[tuple[str, list[object]] | None] = []
        guard = self._guard
        assert guard is not None

        def send(
            unit: int,
            statement: int | None,
            query: str,
            params: Sequence[object] | Mapping[str, Any] = (),
        ) -> None:
            sent.append((unit, statement, self.conn.execute(query, params or None)))

        try:
            with _quiet_pipeline_abort(), self.conn.pipeline():
                for unit, (m, statements) in enumerate(batch):
                    send(unit, None, "BEGIN")
                    limits = self._script_limits(m, action)
                    settings = _limits_sql(limits, True, durable and unit == len(batch) - 1)
                    unit_settings.append(settings)
                    if settings is not None:
                        send(unit, None, *settings)
                    for number, stmt in enumerate(statements):
                        send(unit, number, stmt.text)
                    # the same session for the tracking write and the next unit, then the proof
                    for query in integrity.RESET_SESSION:
                        tracking[len(sent)] = "reset"
                        send(unit, None, query)
                    if settings is not None:
                        tracking[len(sent)] = "write"
                        send(unit, None, *settings)
                    tracker = self._track(m, action)
                    trackers.append(tracker)
                    tracking[len(sent)] = "write"
                    sent.append((unit, None, tracker))
                    tracking[len(sent)] = "check"
                    send(unit, None, *guard.proof(m.version, m.checksum, action))
                    send(unit, None, "COMMIT")
        except psycopg.Error as exc:
            stopped = next(
                (k for k, (_, _, cursor) in enumerate(sent) if cursor.pgresult is None), len(sent) - 1
            )
            unit, statement, _ = sent[stopped]
            steps = self._batch_steps(batch[:unit], trackers, action)
            m, statements = batch[unit]
            if _is_lost(self.conn):
                self._unflushed += [m.label for m, _ in batch[:unit]]
                raise _Stopped(steps, self._lost(m, action, exc)) from None
            if self.conn.info.transaction_status != TransactionStatus.IDLE:
                self.conn.execute("ROLLBACK")
            if stopped in tracking:  # the unit's statements ran: its tracking write or proof failed
                settings = unit_settings[unit]

                def write() -> None:
                    if settings is not None:
                        query, params = settings
                        self.conn.execute(query, params)
                    self._track(m, action)

                blamed = integrity.blame(self.conn, m, action, exc, tracking[stopped], write)
                raise _Stopped(steps, blamed) from None
            if statement is None:  # every statement ran: the tracking change or COMMIT failed
                raise _Stopped(steps, exc) from None
            raise _Stopped(
                steps, self._statement_failed(m, action, statements, statement, exc, started)
            ) from None
        return self._batch_steps(batch, trackers, action)

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
        """The error for statement `index` of `m`'s script (rolled back with its transaction)."""
        script = m.script if action == "apply" else m.rollback
        assert script is not None
        stmt = statements[index]
        if _sqlstate(exc) == "42501":
            return self._not_allowed(m, script, stmt, exc, action)
        limits = self._script_limits(m, action)
        if action == "apply":
            return self._failed(m, script, statements, index, exc, started, partial=False, limits=limits)
        line = error_line(stmt, exc)
        reason = self._explain(exc, stmt, limits)
        return MigrationFailed(
            f"rollback of {m.label} failed at {script.path.name}:{line}: {reason} "
            f"(statement: {excerpt(stmt.text)}); its changes were rolled back and the migration "
            f"stays applied: {_fix(exc, 'fix the rollback script and run rollback again')}",
            version=m.version,
            file=str(script.path),
            line=line,
            statement=stmt.text,
            server_message=reason,
        )

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
        import psycopg

        stmt = statements[index]
        line = error_line(stmt, exc)
        reason = self._explain(exc, stmt, limits)
        where = f"{script.path.name}:{line}"
        recorded = (
            f"{reason} at {where} (statement {index + 1} of {len(statements)}: {excerpt(stmt.text, 200)})"
        )
        if partial:
            recorded = f"failed half-way, {index} of {len(statements)} statements committed: {recorded}"
        recorded += note
        try:
            history.ensure_tracking(self.conn)
            history.record_failure(
                self.conn, self.actor, m.version, m.name, m.checksum, _ms(started), recorded, partial
            )
        except (psycopg.Error, RefusedError) as second:
            note += f" (the failure could not be recorded: {server_message(second)})"
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
                    if result.action == "apply" and not m.transactional:
                        result.steps.append(
                            Step(
                                m.version,
                                m.name,
                                "apply",
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
