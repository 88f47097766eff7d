"""Status, plan, apply, rollback, baseline, repair and validate against one connection:
the coordinator of the engine's rooms (`bilantools.db.engine`).

Each migration runs with its tracking row in one transaction, statement by statement
so that a failure names the exact statement and line (as psql would). Most migrations
commit with ``synchronous_commit = off``; a synchronous commit every DURABLE_EVERY
seconds (and the run's last) flushes the WAL of all earlier ones, and a migration is
reported done only once flushed: nothing reported is lost by a crash, without one disk
flush per migration.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from bilantools.db import history
from bilantools.db.engine import planning
from bilantools.db.engine.limits import DEFAULT_LIMITS
from bilantools.db.engine.lockwait import LockWait
from bilantools.db.engine.results import Action, Progress, ProgressHook, RunResult, Status, Step
from bilantools.db.engine.retries import load_lock_retries
from bilantools.db.engine.session import Session, Unit, in_transaction
from bilantools.db.interrupts import Interrupts
from bilantools.errors import BilanToolsError, ConnectionLostError, InputError, option
from bilantools.source.files import Migration, MigrationSet, Script
from bilantools.source.findings import Finding
from bilantools.source.headers import Limits

# What only a run that changes something needs (the executors, failure handling, the
# tracking guard, peer histories, statement splitting) is imported where it runs, so
# that status and plan start without it.
if TYPE_CHECKING:
    import psycopg

    from bilantools.db.engine.executor import Executor
    from bilantools.db.engine.recording import Recording
    from bilantools.db.failures import LostConnection
    from bilantools.db.target import Target
    from bilantools.source.statements import Slices, Statement

__all__ = ["Runner"]

# At most this long between two commits that wait for the disk (see Runner._run_all).
DURABLE_EVERY = 0.2
# Consecutive transactional migrations sent in one round trip (see Runner._run_all): at
# most this many, and more only while a batch takes less than GROW_BELOW seconds.
MAX_BATCH = 64
GROW_BELOW = 0.05


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
        rollout_id: str | None = None,  # the fleet rollout this run is part of, for its events
    ) -> None:
        self.conn = conn
        self.migrations = migrations
        self.target = target
        self.target_label = target.masked
        self.progress = progress
        self.limits = limits
        self.tracking = history.Tracking.of(migrations.directory, migrations.layout)
        if (
            self.tracking.peer is not None
        ):  # its table is where the tool looks: the search_path's first schema
            row = conn.execute("SELECT current_schema()").fetchone()
            self.tracking = replace(self.tracking, peer_schema=str(row[0]) if row and row[0] else "public")
        self.interrupts = Interrupts(conn)  # Ctrl-C while migrations run
        actor = history.Actor.current(self.tracking, rollout_id)
        self.session = Session(conn, self.target_label, limits, actor, self.interrupts)

    @property
    def actor(self) -> history.Actor:
        return self.session.actor

    # -- reading ----------------------------------------------------------------------
    def status(self) -> Status:
        tracked, rows, waits = history.read_history(self.conn, self.tracking)
        status = planning.status(self.target_label, self.migrations, tracked, rows, waits)
        label = self.tracking.label
        if not self.tracking.qualified:  # where the search_path puts it
            row = self.conn.execute("SELECT current_schema()").fetchone()
            label = f"{row[0] if row and row[0] else 'public'}.schema_migrations"
        return replace(status, history_table=label)

    def plan(self, to: str | None = None, step: int | None = None) -> list[Migration]:
        """The migrations `apply` would run, in order; refuses when an applied file changed."""
        self.migrations.require_valid()
        todo, self.session.retrying = planning.plan(self.status(), self.migrations, to, step)
        return todo

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
        from bilantools.source.check import FORCIBLE, apply_errors  # the analysis: 20 ms of imports

        found = apply_errors(self.migrations, config, history.tracking(self.tracking.schema))
        if not found:
            passed.remember(store, digest, self.migrations)
        errors = [f for f in found if not (force and f.rule in FORCIBLE)]
        if errors:
            bypass = f" or pass {option('force', True)}" if all(f.rule in FORCIBLE for f in errors) else ""
            listed = (
                f" (and {len(errors) - 1} more: run 'bilantools apply --check-only' to list them); fix them"
                if len(errors) > 1
                else "; run 'bilantools check' to list every problem, fix them"
            )
            raise InputError(f"refusing to apply: {errors[0].one_line()}{listed}{bypass}")
        return {}

    def _refuse_rollback_errors(self, todo: list[Migration]) -> None:
        """Refuse rollback scripts that would write to the tracking objects or wait for a
        client data stream (`check` reports them as errors), before anything runs."""
        from bilantools.source.check import rollback_errors
        from bilantools.source.config import load_config

        config = load_config(self.migrations.directory.absolute())
        errors = rollback_errors(self.migrations, todo, history.tracking(self.tracking.schema), config)
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise InputError(
                f"refusing to roll back: {errors[0].one_line()}{more}; run 'bilantools check' to list every "
                "problem, fix them"
            )

    def plan_sql(self, to: str | None = None, step: int | None = None) -> str:
        """The SQL `apply` would send, in order, with its transaction boundaries: recorded
        by the executor that runs nothing (see `engine.recording`)."""
        recorded = self.recorded(to, step)
        header = f"-- bilantools apply on {self.target_label}: {len(recorded.units)} migration(s)"
        return recorded.sql(self.conn, header, DURABLE_EVERY)

    def recorded(self, to: str | None = None, step: int | None = None) -> Recording:
        """The commands `apply` would send for each migration, recorded without sending
        any: with the proof of the tracking objects as they are now (or, when there are
        none yet, the script that creates them first)."""
        todo = self.plan(to, step)
        return self._record([(m, self._prepare(m.script, m.transactional)) for m in todo], "apply")

    def rollback_sql(self, to: str | None = None, step: int | None = None) -> str:
        """The SQL `rollback` would send, newest first, with its transaction boundaries
        (recorded as `plan_sql` is); refused as `rollback` refuses its scripts."""
        todo = self.rollback_plan(to, step)
        self._refuse_rollback_errors(todo)
        prepared = [(m, self._prepare(m.rollback, m.rollback_transactional)) for m in todo if m.rollback]
        recorded = self._record(prepared, "rollback")
        header = f"-- bilantools rollback on {self.target_label}: {len(recorded.units)} migration(s)"
        return recorded.sql(self.conn, header, DURABLE_EVERY)

    def _record(self, prepared: list[Unit], action: Action) -> Recording:
        """`prepared` recorded as `action` would send it, sending nothing."""
        from bilantools.db import integrity
        from bilantools.db.engine.recording import Recording

        guard, create = None, False
        if prepared and all(history.tracking_state(self.conn, self.tracking)):
            guard = integrity.Guard.read(self.conn, self.actor.run_id, self.tracking)
        elif prepared:
            create = True
        recorder = Recording(replace(self.session, guard=guard), create)
        recorder.run(prepared, action, True, time.perf_counter())
        return recorder

    def rollback_plan(self, to: str | None = None, step: int | None = None) -> list[Migration]:
        """Applied migrations to roll back, newest first; refuses a range with no script."""
        self.migrations.require_valid()
        return planning.rollback_plan(self.status(), self.migrations, to, step)

    # -- changing -----------------------------------------------------------------------
    def apply(
        self,
        to: str | None = None,
        step: int | None = None,
        dry_run: bool = False,
        force: bool = False,
        before_changes: Callable[[], str] | None = None,
        needs: frozenset[str] = frozenset(),
    ) -> RunResult:
        """Apply pending migrations. `before_changes` runs once everything is checked and
        before the first change (the automatic backup); what it returns (the backup file)
        is recorded with every event of the run. `needs`: the project's provided objects
        ("schema:auth"), refused when absent before anything changes (dry run too)."""
        from bilantools.db import provided
        from bilantools.db.peers import keeping

        todo = self.plan(to, step)
        known = self.refuse_errors(force) if todo else {}
        if todo:
            provided.require(self.conn, self.target_label, needs)
        prepared = [(m, self._prepare(m.script, m.transactional, known.get(m.checksum))) for m in todo]
        self.session.retries = load_lock_retries(self.migrations.directory.absolute())
        result = RunResult(self.target_label, "apply", dry_run, run_id=str(self.actor.run_id))
        if dry_run:
            return self._dry_run(result, prepared)
        if prepared:
            self._before_changes(before_changes, result)
            history.ensure_tracking(self.conn, self.tracking)
            keeping.prepare(self.conn, self.tracking)
        return self._run_all(result, prepared)

    def rollback(
        self,
        to: str | None = None,
        step: int | None = None,
        dry_run: bool = False,
        before_changes: Callable[[], str] | None = None,
    ) -> RunResult:
        from bilantools.db.peers import keeping

        todo = self.rollback_plan(to, step)
        prepared = []
        for m in todo:
            assert m.rollback is not None
            prepared.append((m, self._prepare(m.rollback, m.rollback_transactional)))
        self._refuse_rollback_errors(todo)
        self.session.retries = load_lock_retries(self.migrations.directory.absolute())
        result = RunResult(self.target_label, "rollback", dry_run, run_id=str(self.actor.run_id))
        if dry_run:
            return self._dry_run(result, prepared)
        if prepared:
            self._before_changes(before_changes, result)
            keeping.prepare(self.conn, self.tracking)
        return self._run_all(result, prepared)

    def _before_changes(self, hook: Callable[[], str] | None, result: RunResult) -> None:
        if hook is not None:
            result.backup = hook()
            self.session.actor = replace(self.actor, backup=result.backup)

    def baseline(self, to: str) -> RunResult:
        """Mark migrations up to `to` applied without running them (hand-migrated databases)."""
        return self.mark(self.plan(to=to))

    def mark(self, todo: list[Migration], detail: str | None = None) -> RunResult:
        """Record `todo` as applied without running them, in one transaction, each with a
        'baseline' event (`detail`: where the word that they are applied came from)."""
        history.ensure_tracking(self.conn, self.tracking)
        result = RunResult(self.target_label, "baseline", run_id=str(self.actor.run_id))
        with self.conn.transaction():
            for m in todo:
                record = history.success_sql(
                    self.actor, m.version, m.name, m.checksum, 0, action="baseline", detail=detail
                )
                history.run(self.conn, record)
                result.steps.append(Step(m.version, m.name, "baseline", "baselined"))
        return result

    def repair(self) -> RunResult:
        """Clear failed rows and realign checksums of edited files; both are logged."""
        self.migrations.require_valid()
        status = self.status()
        result = RunResult(self.target_label, "repair", run_id=str(self.actor.run_id))
        if not status.tracking:
            return result
        history.ensure_tracking(self.conn, self.tracking)
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
        return planning.history_findings(self.status(), self.migrations)

    # -- internals ---------------------------------------------------------------------------
    def _run_all(self, result: RunResult, prepared: list[Unit]) -> RunResult:
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

        from bilantools.db import integrity
        from bilantools.db.engine import translate
        from bilantools.db.engine.autocommit import Autocommit
        from bilantools.db.engine.batched import Batched
        from bilantools.db.engine.executor import Stopped
        from bilantools.db.failures import Interruption, LostConnection

        batched, autocommit = Batched(self.session), Autocommit(self.session)
        unreported: list[Progress] = []
        last_flush = time.monotonic()
        size, index, total, announced = 1, 0, len(prepared), 0
        if prepared:
            self.session.guard = integrity.Guard.read(self.conn, self.actor.run_id, self.tracking)
        with self.interrupts:
            self.interrupts.defer()
            while index < total:
                if self.interrupts.received:
                    raise self._stopped(Interruption(), result, unreported, prepared)
                alone = not in_transaction(prepared[index][0], result.action)
                end = index + 1
                while (
                    not alone
                    and end < min(total, index + size)
                    and in_transaction(prepared[end][0], result.action)
                ):
                    end += 1
                batch = prepared[index:end]
                durable = end == total or alone or time.monotonic() - last_flush >= DURABLE_EVERY
                for offset, (m, _) in enumerate(batch):
                    if index + offset >= announced:  # once, even when it runs again after a lock wait
                        self._report(Progress("start", m, index + offset, total))
                announced = max(announced, end)
                started = time.perf_counter()
                executor: Executor = autocommit if alone else batched
                error: BaseException | None = None
                try:
                    steps = executor.run(batch, result.action, durable, started)
                except (Stopped, BilanToolsError, Interruption, LostConnection) as stop:  # earlier stand
                    steps, error = (stop.steps, stop.error) if isinstance(stop, Stopped) else ([], stop)
                except psycopg.Error as exc:  # a query of the failure's own handling failed
                    steps, error = [], translate.unexplained(self.session, exc, batch, result.action)
                if isinstance(error, LostConnection):
                    error = self._lost(error, result.action, unreported, prepared, index)
                for offset, step in enumerate(steps):
                    result.steps.append(step)
                    unreported.append(Progress("done", batch[offset][0], index + offset, total, step))
                if isinstance(error, LockWait):  # the rest of the batch runs again after a pause
                    index += len(steps)
                    self._wait(
                        error, Progress("wait", error.migration, index, total, wait=error.wait), unreported
                    )
                    size = 1
                    continue
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

    def _wait(self, stop: LockWait, progress: Progress, unreported: list[Progress]) -> None:
        """Before a migration that timed out on a lock runs again: what committed before it
        made durable and reported, the wait reported, the pause (cut short by Ctrl-C), and
        the tracking objects read again (the batch's proofs had counted on the units that
        did not commit)."""
        if unreported:
            self._flush_wal()
            self._report_all(unreported)
        self._report(progress)
        self.session.attempts[stop.migration.version] = stop.wait.attempt
        deadline = time.monotonic() + stop.wait.pause_s
        while not self.interrupts.received and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))
        from bilantools.db import integrity

        self.session.guard = integrity.Guard.read(self.conn, self.actor.run_id, self.tracking)

    def _lost(
        self, stop: LostConnection, action: str, unreported: list[Progress], prepared: list[Unit], index: int
    ) -> ConnectionLostError:
        """What is known after the connection was lost in the batch starting at `index`: the
        migrations committed but not yet flushed before it, and those of the batch whose
        COMMIT was sent, may or may not have committed; the rest did not."""
        from bilantools.db import failures

        earlier = [] if stop.flushed else [p.migration.label for p in unreported]
        unknown = earlier + [m.label for m, _ in prepared[index : index + stop.sent]]
        after = [m.label for m, _ in prepared[index + max(stop.sent, 1 if stop.outside else 0) :]]
        return failures.lost(self.target_label, action, stop, unknown, after)

    def _stopped(
        self, error: BaseException, result: RunResult, unreported: list[Progress], prepared: list[Unit]
    ) -> BaseException:
        """The error that ends a run, with what the run did: the migrations committed before
        the stop are flushed and reported (unless the connection is gone, when only those
        already reported are known to stand)."""
        import psycopg

        from bilantools.db import failures
        from bilantools.db.failures import Interruption, LostConnection

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
        from bilantools.source.statements import check_runnable, split

        statements = split(script, known)
        if not statements:
            raise InputError(f"{script.path} contains no SQL statement; write its SQL or remove it")
        check_runnable(script, statements, transactional)
        return statements

    def _dry_run(self, result: RunResult, prepared: list[Unit]) -> RunResult:
        """Run everything inside one transaction and roll it back."""
        from bilantools.db import integrity
        from bilantools.db.engine.dryrun import DryRun
        from bilantools.db.peers import keeping

        dry = DryRun(self.session)
        try:
            with self.conn.transaction():
                history.ensure_tracking(self.conn, self.tracking)
                keeping.prepare(self.conn, self.tracking)
                self.session.guard = integrity.Guard.read(self.conn, self.actor.run_id, self.tracking)
                for index, (m, statements) in enumerate(prepared):
                    if not in_transaction(m, result.action):
                        result.steps.append(_cannot_dry_run(m, result.action))
                        break
                    self._report(Progress("start", m, index, len(prepared)))
                    [step] = dry.run([(m, statements)], result.action, False, time.perf_counter())
                    result.steps.append(step)
                    self._report(Progress("done", m, index, len(prepared), step))
                    if step.outcome == "failed":
                        break
                raise _DryRunDone
        except _DryRunDone:
            pass
        return result


def _cannot_dry_run(m: Migration, action: Action) -> Step:
    detail = "runs outside a transaction ('-- transaction: off'): cannot be dry-run; the dry run stops here"
    return Step(m.version, m.name, action, "skipped", detail=detail)
