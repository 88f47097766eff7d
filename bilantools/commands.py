"""The front door: one function per user-level operation.

The CLI and the notebook widgets call these and nothing below them. Every parameter is
a keyword: the target (a `Target`, a URL, or None for DATABASE_URL / the sandbox), the
project (a `Project`, or its migrations directory) and, for the runs, one `RunOptions`.
They return plain results. Errors are `BilanToolsError`s whose message names the problem
and the fix; nothing here prompts or prints. The types a face needs are re-exported
here, so a face imports this module and `bilantools.errors` only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bilantools import session
from bilantools.db.engine.limits import DEFAULT_LOCK_TIMEOUT
from bilantools.db.engine.results import (
    MigrationStatus,
    Progress,
    ProgressHook,
    RunResult,
    State,
    Status,
    Step,
)
from bilantools.db.lock import DEFAULT_WAIT
from bilantools.db.sandbox import Sandbox
from bilantools.db.scratch import Stopped, stop_on_signals
from bilantools.db.target import Target, parse_target
from bilantools.errors import InputError, option
from bilantools.fleet.front import Preflight, fleet, fleet_health, fleet_select
from bilantools.fleet.results import RolloutResult, TargetRun
from bilantools.fleet.selection import Selection, Stage
from bilantools.options import DEFAULT_BACKUP_DIR, RunOptions
from bilantools.project import DEFAULT_MIGRATIONS, LAYOUTS, Project, ProjectLike, as_project
from bilantools.secrets import redact
from bilantools.session import TargetLike, resolve_target
from bilantools.source.files import Migration
from bilantools.source.findings import Finding
from bilantools.source.headers import DURATION_HINT, parse_duration

if TYPE_CHECKING:
    from bilantools.db.adopt import Adoption
    from bilantools.db.backup import Backup
    from bilantools.db.backup import Verification as BackupVerification
    from bilantools.db.erd import SchemaModel
    from bilantools.db.events import Event
    from bilantools.db.fingerprint import Fingerprint
    from bilantools.db.invalid_indexes import InvalidIndex
    from bilantools.db.locks import Locks
    from bilantools.db.provided import Presence
    from bilantools.db.retention import PrunePlan
    from bilantools.db.stats import SchemaStats
    from bilantools.db.table_detail import TableDetail
    from bilantools.db.verify import Detection, Drift, Verification
    from bilantools.db.verify_scripts import ScriptCheck
    from bilantools.runbooks import RunRecord
    from bilantools.source.check import CheckReport

__all__ = [
    "DEFAULT_BACKUP_DIR",
    "DEFAULT_LOCK_TIMEOUT",
    "DEFAULT_MIGRATIONS",
    "DEFAULT_WAIT",
    "DURATION_HINT",
    "INSPECTIONS",
    "LAYOUTS",
    "Finding",
    "Migration",
    "MigrationStatus",
    "Preflight",
    "Progress",
    "ProgressHook",
    "Project",
    "ProjectLike",
    "RolloutResult",
    "RunOptions",
    "RunResult",
    "Sandbox",
    "Selection",
    "Stage",
    "State",
    "Status",
    "Step",
    "Stopped",
    "Target",
    "TargetLike",
    "TargetRun",
    "adopt",
    "apply",
    "apply_check",
    "backup",
    "backup_diff",
    "backup_list",
    "backup_prune",
    "backup_prune_plan",
    "backup_verify",
    "baseline",
    "check",
    "detect",
    "drift",
    "erd",
    "fingerprint",
    "fleet",
    "fleet_health",
    "fleet_select",
    "history",
    "inspect",
    "inspect_table",
    "needs_confirmation",
    "new",
    "parse_duration",
    "plan",
    "plan_sql",
    "redact",
    "repair",
    "resolve_target",
    "restore",
    "rollback",
    "rollback_plan",
    "rollback_sql",
    "runbook",
    "runbook_history",
    "runbook_parameters",
    "sandbox",
    "stats",
    "status",
    "stop_on_signals",
    "validate",
    "verify",
]

DEFAULTS = RunOptions()


def sandbox(*, home: Path | str | None = None, pg_bin: Path | str | None = None) -> Sandbox:
    """The local sandbox server (started on demand by `resolve_target`)."""
    return Sandbox(home, pg_bin)


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


def backup(
    *,
    target: TargetLike = None,
    out: Path | str = DEFAULT_BACKUP_DIR,
    schema_only: bool = False,
    fmt: str = "custom",
    pg_bin: Path | str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Backup:
    """pg_dump `target` into `out` with a sidecar (versions, SHA-256, fingerprint, row counts)."""
    from bilantools.db import backup as backups

    return backups.take(resolve_target(target=target), out, schema_only, fmt, pg_bin, progress)  # type: ignore[arg-type]


def backup_list(*, out: Path | str = DEFAULT_BACKUP_DIR) -> list[Backup]:
    """The backups of `out`, newest first."""
    from bilantools.db import backup as backups

    return backups.listing(out)


def backup_prune_plan(*, out: Path | str = DEFAULT_BACKUP_DIR, keep: int = 5) -> PrunePlan:
    """What `backup_prune` would remove and keep in `out`, each with its reason."""
    from bilantools.db import backup as backups

    return backups.prune_plan(out, keep)


def backup_prune(
    *, out: Path | str = DEFAULT_BACKUP_DIR, keep: int = 5, approved: PrunePlan | None = None
) -> list[Path]:
    """Delete all but the newest `keep` backups of each database, origin (automatic or
    manual) and kind in `out`, never the newest verified one of each; with `approved`,
    nothing that plan did not list. Returns the files removed."""
    from bilantools.db import backup as backups

    return backups.prune(out, keep, approved)


def backup_verify(*, file: Path | str, pg_bin: Path | str | None = None) -> BackupVerification:
    """Restore `file` into a fresh sandbox database and compare it with its sidecar."""
    from bilantools.db import backup as backups

    return backups.verify(file, Sandbox(), pg_bin)


def backup_diff(*, file: Path | str, target: TargetLike = None) -> list[str]:
    """What differs between the backup's sidecar and the target as it is now."""
    from bilantools.db import backup as backups

    loaded = backups.load(file)
    with session.connection(target, "backup diff") as (_, conn):
        return backups.compare(loaded, conn)


def restore(
    *, file: Path | str, target: TargetLike = None, clean: bool = False, pg_bin: Path | str | None = None
) -> list[str]:
    """Restore `file` into the target (empty unless `clean`); returns the roles and extensions
    the target lacked."""
    from bilantools.db import backup as backups

    return backups.restore(file, resolve_target(target=target), clean, pg_bin)


INSPECTIONS = (
    "tables",
    "columns",
    "indexes",
    "constraints",
    "foreign_keys_without_index",
    "rls",
    "policies",
    "triggers",
    "functions",
    "sequences",
    "extensions",
)


def inspect(*, kind: str, target: TargetLike = None) -> Any:
    """One catalog inspection (see bilantools.db.catalog) as a pandas DataFrame."""
    from bilantools.db import catalog

    if kind not in INSPECTIONS:
        raise InputError(f"cannot inspect '{kind}': choose one of {', '.join(INSPECTIONS)}")
    with session.connection(target, "inspect") as (_, conn):
        return getattr(catalog, kind)(conn)


def inspect_table(*, name: str, target: TargetLike = None) -> TableDetail:
    """One table: its CREATE script, constraints, foreign keys out and in, indexes, size,
    estimated rows, row level security, policies and triggers."""
    from bilantools.db.table_detail import table_detail

    with session.connection(target, "inspect") as (_, conn):
        found = table_detail(conn, name)
    if found is None:
        raise InputError(f"no table {name}: see `bilantools inspect tables`")
    return found


def erd(
    *, target: TargetLike = None, project: ProjectLike = DEFAULT_MIGRATIONS, category: str | None = None
) -> SchemaModel:
    """The entity-relationship model of the live schema: every table, or those of one
    category of the project's categories.toml (and the tables their foreign keys reach)."""
    from bilantools.db.erd import of_category, read_model, require_category

    known = as_project(project).categories if category is not None else {}
    if category is not None:
        require_category(known, category)  # before connecting
    with session.connection(target, "erd") as (_, conn):
        model = read_model(conn)
    return model if category is None else of_category(model, known, category)


def history(
    *,
    target: TargetLike = None,
    project: ProjectLike = DEFAULT_MIGRATIONS,
    limit: int | None = None,
    version: str | None = None,
) -> list[Event]:
    """The event log, newest first: every apply, rollback, baseline and repair with who ran
    it, when, its outcome, duration and the backup taken before it (`version`: that one's)."""
    from bilantools.db.events import read_events

    with session.runner(target, project, "history") as runner:
        return read_events(runner.conn, runner.tracking, limit, version)


def new(*, name: str, project: ProjectLike = DEFAULT_MIGRATIONS, layout: str | None = None) -> list[Path]:
    """Create the next migration (and its rollback) named after `name` in the project's
    layout (or `layout`), as that layout's tool makes it; returns the paths written."""
    from datetime import UTC, datetime

    from bilantools.source.scaffold import new_migration

    directory = project.directory if isinstance(project, Project) else project
    found = as_project(project) if layout is None else Project.load(directory, layout)
    return new_migration(found.directory, found.layout, name, datetime.now(UTC))


def locks(
    *, target: TargetLike = None, project: ProjectLike = DEFAULT_MIGRATIONS, older_than: float | None = None
) -> Locks:
    """Lock waiters and their blockers, transactions open longer than `older_than` seconds
    (default: the gates' max-transaction-age-s of the project's pyproject.toml), and the
    holder of the migration lock. Reads only; the migrations are not read."""
    from bilantools.db.health import load_gate_settings
    from bilantools.db.locks import read_locks

    directory = project.directory if isinstance(project, Project) else Path(project)
    if older_than is None:
        older_than = load_gate_settings(directory.absolute()).max_transaction_age_s
    elif older_than < 0:
        raise InputError(f"{option('older_than', older_than)}: pass a number of seconds, 0 or more")
    with session.connection(target, "locks") as (resolved, conn):
        return read_locks(conn, resolved.masked, older_than)


def fingerprint(*, target: TargetLike = None) -> Fingerprint:
    """The schema fingerprint (and its per-object details) of the target."""
    from bilantools.db.fingerprint import fingerprint as take

    with session.connection(target, "fingerprint") as (_, conn):
        return take(conn, rows=False)


def verify(*, target: TargetLike = None, project: ProjectLike = DEFAULT_MIGRATIONS) -> Verification:
    """Per applied migration, each object it creates: ok, missing or changed; then each
    object declared provided in ``[tool.bilantools]`` (migration and kind "provided"): ok
    when the target has it, else missing.

    The expected schema is built by applying the same migrations to a scratch sandbox
    database, so implicit objects and exact definitions are known.
    """
    from bilantools.db import verify as checks

    project = as_project(project)
    label, live, applied, present, invalid = _live(target, project, "verify", project.settings.provided)
    reference = _reference(project, applied[-1] if applied else None)
    result = checks.verify_tables(label, live, reference, checks.owners(project.analysis, reference))
    result.rows.extend(checks.provided_rows(present))
    result.invalid_indexes = invalid
    if project.layout == "sqitch":
        result.scripts = _verify_scripts(target, project, applied)
    return result


def _verify_scripts(target: TargetLike, project: Project, applied: list[str]) -> list[ScriptCheck]:
    """The verify scripts of a Sqitch project's `applied` changes, run in plan order
    (changes without one are not listed)."""
    from bilantools.db import verify_scripts
    from bilantools.source.layouts.sqitch import verify_paths

    keys = [m.key for m in (project.migrations.find(version) for version in applied) if m is not None]
    with session.connection(target, "verify") as (_, conn):
        return verify_scripts.run(conn, verify_paths(project.directory, keys))


def drift(*, target: TargetLike = None, project: ProjectLike = DEFAULT_MIGRATIONS) -> Drift:
    """Objects no applied migration creates, and created ones that are absent or changed
    (with both definitions of each changed one)."""
    from bilantools.db import verify as checks

    project = as_project(project)
    _, live, applied, _, _ = _live(target, project, "drift")
    return checks.drift(live, _reference(project, applied[-1] if applied else None))


def detect(*, target: TargetLike = None, project: ProjectLike = DEFAULT_MIGRATIONS) -> Detection:
    """For a database migrated by hand: the share of each migration's objects present, and
    the version to pass to `baseline --to` (none when its history already records applied
    migrations: it is tracked). Reads only."""
    from bilantools.db import verify as checks
    from bilantools.db.fingerprint import fingerprint as take

    found = as_project(project)
    with session.runner(target, found, "detect") as runner:
        status = runner.status()
        live = take(runner.conn, rows=False)
    applied = [m.version for m in status.migrations if m.state in ("applied", "changed")]
    tracked = (status.history_table, applied) if status.tracking else None
    return checks.detect(found.analysis, live, tracked)


def _live(
    target: TargetLike, project: Project, action: str, needs: frozenset[str] = frozenset()
) -> tuple[str, Fingerprint, list[str], list[Presence], list[InvalidIndex]]:
    """(target label, live fingerprint, the applied versions in order, whether each of
    `needs` is there, the invalid indexes) for verify and drift."""
    from bilantools.db import invalid_indexes
    from bilantools.db.fingerprint import fingerprint as take
    from bilantools.db.provided import presence

    with session.runner(target, project, action) as runner:
        applied = [s.version for s in runner.status().migrations if s.state in ("applied", "changed")]
        live = take(runner.conn, rows=False, sources=True)
        present = presence(runner.conn, needs)
        invalid = invalid_indexes.find(runner.conn)
    return runner.target_label, live, applied, present, invalid


def _reference(project: Project, upto: str | None) -> Fingerprint:
    """The fingerprint of a scratch sandbox database migrated up to `upto`."""
    from bilantools.db.fingerprint import Fingerprint
    from bilantools.db.fingerprint import fingerprint as take

    if upto is None:
        return Fingerprint("", {})
    box = Sandbox()
    url = box.new_db("bt_reference_" + os.urandom(4).hex())
    try:
        # The scratch database has none of the provided objects: not asked for here.
        _apply(url, project, RunOptions(to=upto, backup=False), None, frozenset())
        with parse_target(url, "sandbox").connect("bilantools reference") as conn:
            return take(conn, rows=False, sources=True)
    finally:
        box.drop_db(url.rsplit("/", 1)[1])


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


def stats(
    *, target: TargetLike = None, project: ProjectLike = DEFAULT_MIGRATIONS, exact_rows: bool = False
) -> SchemaStats:
    """The guide's schema overview from the live catalog: totals, categories with sizes,
    flags, the largest tables and indexes (row counts estimated unless `exact_rows`)."""
    from bilantools.db.stats import schema_stats

    categories = as_project(project).categories
    with session.connection(target, "stats") as (resolved, conn):
        return schema_stats(conn, resolved.masked, categories, exact_rows=exact_rows)


def runbook(
    *,
    name: str,
    target: TargetLike = None,
    parameters: dict[str, Any] | None = None,
    notebooks: Path | str = "notebooks",
    runs: Path | str = "runs",
) -> RunRecord:
    """Execute runbook `name` (e.g. "02") against the target with papermill; the executed
    copy is kept under `runs` even when a cell fails."""
    from bilantools import runbooks

    return runbooks.run(name, resolve_target(target=target), parameters, notebooks, runs)


def runbook_history(*, runs: Path | str = "runs") -> list[dict[str, Any]]:
    """The runs kept under `runs`, newest first."""
    from bilantools import runbooks

    return runbooks.history(runs)


def runbook_parameters(*, pairs: list[str]) -> dict[str, Any]:
    """Runbook parameters from KEY=VALUE texts (values read as JSON when they can be)."""
    from bilantools import runbooks

    return runbooks.parse_parameters(pairs)


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
