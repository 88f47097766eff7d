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
    from bilantools.db.fingerprint import Fingerprint
    from bilantools.db.provided import Presence
    from bilantools.db.retention import PrunePlan
    from bilantools.db.stats import SchemaStats
    from bilantools.db.verify import Detection, Verification
    from bilantools.db.verify_scripts import ScriptCheck
    from bilantools.fleet.rollout import RolloutResult, Watcher
    from bilantools.fleet.selection import Selection, Stage
    from bilantools.runbooks import RunRecord
    from bilantools.source.check import CheckReport
    from bilantools.source.lock_levels import LockEstimate

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
    "Progress",
    "ProgressHook",
    "Project",
    "ProjectLike",
    "RunOptions",
    "RunResult",
    "Sandbox",
    "State",
    "Status",
    "Step",
    "Stopped",
    "Target",
    "TargetLike",
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
    "fingerprint",
    "fleet",
    "fleet_select",
    "inspect",
    "needs_confirmation",
    "parse_duration",
    "plan",
    "plan_sql",
    "redact",
    "repair",
    "resolve_target",
    "restore",
    "rollback",
    "rollback_plan",
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
    with session.runner(target, project, "status") as runner:
        return runner.status()


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
    `progress` is called as each migration starts and ends.
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
    label, live, applied, present = _live(target, project, "verify", project.settings.provided)
    reference = _reference(project, applied[-1] if applied else None)
    result = checks.verify_tables(label, live, reference, checks.owners(project.analysis, reference))
    result.rows.extend(checks.provided_rows(present))
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


def drift(*, target: TargetLike = None, project: ProjectLike = DEFAULT_MIGRATIONS) -> dict[str, list[str]]:
    """Objects no applied migration creates, and created ones that are absent or changed."""
    from bilantools.db import verify as checks

    project = as_project(project)
    _, live, applied, _ = _live(target, project, "drift")
    return checks.drift(live, _reference(project, applied[-1] if applied else None))


def detect(*, target: TargetLike = None, project: ProjectLike = DEFAULT_MIGRATIONS) -> Detection:
    """For a database migrated by hand: the share of each migration's objects present, and
    the version to pass to `baseline --to`. Reads only."""
    from bilantools.db import verify as checks
    from bilantools.db.fingerprint import fingerprint as take

    with session.connection(target, "detect") as (_, conn):
        live = take(conn, rows=False)
    return checks.detect(as_project(project).analysis, live)


def _live(
    target: TargetLike, project: Project, action: str, needs: frozenset[str] = frozenset()
) -> tuple[str, Fingerprint, list[str], list[Presence]]:
    """(target label, live fingerprint, the applied versions in order, whether each of
    `needs` is there) for verify and drift."""
    from bilantools.db.fingerprint import fingerprint as take
    from bilantools.db.provided import presence

    with session.runner(target, project, action) as runner:
        applied = [s.version for s in runner.status().migrations if s.state in ("applied", "changed")]
        live = take(runner.conn, rows=False)
        present = presence(runner.conn, needs)
    return runner.target_label, live, applied, present


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
            return take(conn, rows=False)
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


def fleet_select(*, project: ProjectLike = DEFAULT_MIGRATIONS, selection: Selection) -> list[Stage]:
    """The waves of a fleet command and their targets (see `Selection`); the default fleet
    file is fleet.toml beside the project's pyproject.toml."""
    return selection.stages(as_project(project).directory)


def fleet(
    *,
    action: str,
    stages: list[Stage],
    project: ProjectLike = DEFAULT_MIGRATIONS,
    options: RunOptions = DEFAULTS,
    watch: Watcher | None = None,
    rollout_id: str | None = None,
) -> RolloutResult:
    """`action` (apply, rollback, status, plan, verify, drift, validate, backup) over the
    targets of `stages`, wave by wave: see `bilantools.fleet.rollout`. `rollout_id`: the
    caller's (a face that reports a stopped rollout), else a new one."""
    from bilantools.fleet.rollout import Rollout

    found = as_project(project)
    return Rollout(
        project=found, stages=stages, action=action, options=options, watch=watch, rollout_id=rollout_id
    ).run()
