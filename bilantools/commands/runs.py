"""Runs that change a database or say what they would do: status, plan, apply,
rollback, baseline, adopt, repair, validate, check, new.

Part of the front door: see `bilantools.commands`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from bilantools import session
from bilantools.db.engine.results import (
    ProgressHook,
    RunResult,
    Status,
)
from bilantools.db.target import Target
from bilantools.errors import InputError, option
from bilantools.options import RunOptions
from bilantools.project import DEFAULT_MIGRATIONS, Project, ProjectLike, as_project
from bilantools.session import TargetLike
from bilantools.source.files import Migration
from bilantools.source.findings import Finding

if TYPE_CHECKING:
    from bilantools.db.adopt import Adoption
    from bilantools.source.check import CheckReport
    from bilantools.source.lock_levels import LockEstimate


DEFAULTS = RunOptions()


def needs_confirmation(*, target: Target, options: RunOptions = DEFAULTS) -> bool:
    """Whether a face must ask before this change: not for the sandbox, a dry run, or
    options already confirmed (``yes``). The front door itself never asks."""
    return not (target.is_sandbox or options.dry_run or options.yes)


def status(*, target: TargetLike = None, project: ProjectLike = DEFAULT_MIGRATIONS) -> Status:
    """Each migration's state: applied, pending, failed, changed or missing-file."""
    from bilantools.db import invalid_indexes

    with session.runner(target, project, "status") as runner:
        return replace(runner.status(), invalid_indexes=invalid_indexes.find(runner.conn))


def plan(
    *, target: TargetLike = None, project: ProjectLike = DEFAULT_MIGRATIONS, options: RunOptions = DEFAULTS
) -> list[Migration]:
    """The migrations `apply` would run with the same options (`to`, `step`), in order."""
    with session.runner(target, project, "plan") as runner:
        return runner.plan(options.to, options.step)


def apply(
    *,
    target: TargetLike = None,
    project: ProjectLike = DEFAULT_MIGRATIONS,
    options: RunOptions = DEFAULTS,
    progress: ProgressHook | None = None,
) -> RunResult:
    """Apply pending migrations (up to `to`, or the next `step`), each in its own transaction.

    A directory with errors (see `check`) is refused before anything runs; `force` lets
    forward references through. So is a run that needs an object declared `provided` in
    ``[tool.bilantools]`` which the target lacks. With `dry_run` everything runs in one
    transaction that is rolled back. Any target but the sandbox gets a full backup in
    `backup_dir` before the first change (`backup=False` skips it, `True` forces it); the
    events name it.
    A statement waits at most `lock_timeout` for a lock and runs at most
    `statement_timeout` (PostgreSQL durations such as "5s"; None keeps the server's
    setting); a migration's `-- lock-timeout:` / `-- statement-timeout:` headers win.
    A transactional migration that times out on a lock is rolled back and run again with
    a longer lock_timeout after a pause (``[tool.bilantools.lock-retries]``, see
    `bilantools.db.engine.retries`); after the last attempt it stays pending (a retryable
    MigrationFailed). `progress` is called as each migration starts and ends, and at
    each lock wait ('wait', with who holds the lock).
    """
    project = as_project(project)
    return _apply(target, project, options, progress, project.settings.provided)


def _apply(
    target: TargetLike,
    project: Project,
    options: RunOptions,
    progress: ProgressHook | None,
    needs: frozenset[str],
) -> RunResult:
    """`apply`, refused before any change when an object of `needs` is absent."""
    with session.changing(target, project, "apply", options, progress) as runner:
        hook = session.backup_hook(runner, options)
        return runner.apply(
            options.to, options.step, options.dry_run, options.force, before_changes=hook, needs=needs
        )


def plan_sql(
    *, target: TargetLike = None, project: ProjectLike = DEFAULT_MIGRATIONS, options: RunOptions = DEFAULTS
) -> str:
    """The exact SQL `apply` would run, in order, with its transaction boundaries."""
    with session.runner(target, project, "plan") as runner:
        return runner.plan_sql(options.to, options.step)


def lock_estimate(*, migration: Migration, rollback: bool = False) -> LockEstimate:
    """The strongest lock `migration` (its rollback script with `rollback`) is expected to
    take on a table that already exists: an estimate from the parse trees."""
    from bilantools.source.lock_levels import LockEstimate, estimate

    script = migration.rollback if rollback else migration.script
    return LockEstimate(None) if script is None else estimate(script)


def check(*, project: ProjectLike = DEFAULT_MIGRATIONS) -> CheckReport:
    """Every problem of the migrations directory, found without a database."""
    return as_project(project).report


def rollback_plan(
    *, target: TargetLike = None, project: ProjectLike = DEFAULT_MIGRATIONS, options: RunOptions = DEFAULTS
) -> list[Migration]:
    """The migrations `rollback` would roll back, newest first, without running anything."""
    with session.runner(target, project, "plan") as runner:
        return runner.rollback_plan(options.to, options.step)


def rollback_sql(
    *, target: TargetLike = None, project: ProjectLike = DEFAULT_MIGRATIONS, options: RunOptions = DEFAULTS
) -> str:
    """The exact SQL `rollback` would run (`to`, `step`), newest first, with its transaction
    boundaries."""
    with session.runner(target, project, "plan") as runner:
        return runner.rollback_sql(options.to, options.step)


def rollback(
    *,
    target: TargetLike = None,
    project: ProjectLike = DEFAULT_MIGRATIONS,
    options: RunOptions = DEFAULTS,
    progress: ProgressHook | None = None,
) -> RunResult:
    """Run rollback scripts newest first: the last migration, `step` of them, or down to `to`
    (which stays applied; ``to="0"`` rolls back everything). Backs up first and limits lock
    waits and statements like `apply`."""
    with session.changing(target, project, "rollback", options, progress) as runner:
        hook = session.backup_hook(runner, options)
        return runner.rollback(options.to, options.step, options.dry_run, before_changes=hook)


def baseline(
    *, target: TargetLike = None, project: ProjectLike = DEFAULT_MIGRATIONS, options: RunOptions = DEFAULTS
) -> RunResult:
    """Record migrations up to `options.to` as applied without running them."""
    if options.to is None:
        raise InputError(f"baseline needs the last version to record: pass {option('to', 'VERSION')}")
    with session.runner(target, project, "baseline", options.lock_wait) as runner:
        return runner.baseline(options.to)


def adopt(
    *,
    target: TargetLike = None,
    project: ProjectLike = DEFAULT_MIGRATIONS,
    options: RunOptions = DEFAULTS,
    source: str | None = None,
) -> Adoption:
    """Record in our history every migration that the tool which migrated the database so
    far (`source`, else the project's layout) says is applied, without running any; then
    what the catalog confirms of each (see `detect`). `options.dry_run`: record nothing."""
    from bilantools.db import adopt as adoption
    from bilantools.db import verify as checks
    from bilantools.db.fingerprint import fingerprint as take

    found = as_project(project)
    tool = adoption.tool_of(found.directory, found.layout, source)
    with session.runner(target, found, "adopt", options.lock_wait) as runner:
        result, adopted = adoption.adopt(runner, tool, options.dry_run)
        live = take(runner.conn, rows=False)
    return adoption.confirm(result, adopted, checks.detect(found.analysis, live))


def repair(
    *, target: TargetLike = None, project: ProjectLike = DEFAULT_MIGRATIONS, options: RunOptions = DEFAULTS
) -> RunResult:
    """Clear failed rows and realign the checksums of edited files (logged as events)."""
    with session.runner(target, project, "repair", options.lock_wait) as runner:
        return runner.repair()


def validate(*, target: TargetLike = None, project: ProjectLike = DEFAULT_MIGRATIONS) -> list[Finding]:
    """Problems in the directory and in the history; empty when all is well."""
    with session.runner(target, project, "validate") as runner:
        return runner.validate()


def apply_check(
    *, project: ProjectLike = DEFAULT_MIGRATIONS, options: RunOptions = DEFAULTS
) -> list[Finding]:
    """Every problem for which `apply` would refuse to run, all at once (apply names the
    first): found without a database. With `options.force`, forward references, which
    force lets through, are left out."""
    from bilantools.db.history import tracking
    from bilantools.source.check import apply_errors

    found = as_project(project)
    schema = found.settings.tracking_schema_for(found.layout)
    return apply_errors(found.migrations, found.settings, tracking(schema), options.force)


def new(*, name: str, project: ProjectLike = DEFAULT_MIGRATIONS, layout: str | None = None) -> list[Path]:
    """Create the next migration (and its rollback) named after `name` in the project's
    layout (or `layout`), as that layout's tool makes it; returns the paths written."""
    from datetime import UTC, datetime

    from bilantools.source.scaffold import new_migration

    directory = project.directory if isinstance(project, Project) else project
    found = as_project(project) if layout is None else Project.load(directory, layout)
    return new_migration(found.directory, found.layout, name, datetime.now(UTC))
