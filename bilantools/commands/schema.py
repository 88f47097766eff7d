"""Reading the live schema against the migrations: verify, drift, detect, the catalog
inspections, the ER model, the event log, locks and statistics.

Part of the front door: see `bilantools.commands`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bilantools import session
from bilantools.db.sandbox import Sandbox
from bilantools.db.target import parse_target
from bilantools.errors import InputError, option
from bilantools.options import RunOptions
from bilantools.project import DEFAULT_MIGRATIONS, Project, ProjectLike, as_project
from bilantools.session import TargetLike

if TYPE_CHECKING:
    from bilantools.db.erd import SchemaModel
    from bilantools.db.events import Event
    from bilantools.db.fingerprint import Fingerprint
    from bilantools.db.invalid_indexes import InvalidIndex
    from bilantools.db.locks import Locks
    from bilantools.db.provided import Presence
    from bilantools.db.stats import SchemaStats
    from bilantools.db.table_detail import TableDetail
    from bilantools.db.verify import Detection, Drift, Verification
    from bilantools.db.verify_scripts import ScriptCheck
from bilantools.commands.runs import _apply

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
    """The fingerprint of a scratch sandbox database migrated up to `upto` (a sandbox
    started for it is stopped again)."""
    from bilantools.db.fingerprint import Fingerprint
    from bilantools.db.fingerprint import fingerprint as take

    if upto is None:
        return Fingerprint("", {})
    box = Sandbox()
    started = box.running() is None  # then stopped again: verify and drift only read
    url = box.new_db("bt_reference_" + os.urandom(4).hex())
    try:
        # The scratch database has none of the provided objects: not asked for here.
        _apply(url, project, RunOptions(to=upto, backup=False), None, frozenset())
        with parse_target(url, "sandbox").connect("bilantools reference") as conn:
            return take(conn, rows=False, sources=True)
    finally:
        try:
            box.drop_db(url.rsplit("/", 1)[1])
        finally:
            if started:
                box.stop()


def stats(
    *, target: TargetLike = None, project: ProjectLike = DEFAULT_MIGRATIONS, exact_rows: bool = False
) -> SchemaStats:
    """The guide's schema overview from the live catalog: totals, categories with sizes,
    flags, the largest tables and indexes (row counts estimated unless `exact_rows`)."""
    from bilantools.db.stats import schema_stats

    categories = as_project(project).categories
    with session.connection(target, "stats") as (resolved, conn):
        return schema_stats(conn, resolved.masked, categories, exact_rows=exact_rows)
