"""The command line: each command is one call of `bilantools.commands`.

The target is printed first (masked) on stderr; stdout carries the result, and with
``--json`` exactly one JSON object. Exit codes: 0 success, 1 findings or a failed
migration, 2 bad usage, bad input, unreachable or refused database.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from bilantools import __version__, commands
from bilantools.db.lock import DEFAULT_WAIT
from bilantools.db.runner import DEFAULT_LOCK_TIMEOUT, Progress, ProgressHook, RunResult, Status, Step
from bilantools.db.scratch import Stopped, stop_on_signals
from bilantools.db.target import Target
from bilantools.errors import BilanToolsError, InputError, RefusedError, RunInterrupted
from bilantools.secrets import redact
from bilantools.source.files import Migration
from bilantools.source.headers import DURATION_HINT, parse_duration

STATE_COLOURS = {
    "applied": "green",
    "pending": "yellow",
    "failed": "red",
    "changed": "magenta",
    "missing-file": "red",
}


class Context:
    def __init__(self, db: str | None, migrations: str, pg_bin: str | None) -> None:
        self.db = db
        self.migrations = migrations
        self.pg_bin = pg_bin
        self._target: Target | None = None

    def resolved(self) -> Target | None:
        """The target if it was resolved already (None when resolving it failed)."""
        return self._target

    def target(self) -> Target:
        """Resolve once and announce it on stderr before anything else happens."""
        if self._target is None:
            self._target = commands.resolve_target(self.db, self.pg_bin)
            click.echo(
                f"target: {self._target.masked} ({self._target.kind}, from {self._target.source})", err=True
            )
        return self._target


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", metavar="URL", help="Database URL (default: $DATABASE_URL, else the sandbox).")
@click.option(
    "--migrations",
    "migrations",
    default=commands.DEFAULT_MIGRATIONS,
    show_default=True,
    metavar="DIR",
    help="Directory of NNN_slug.sql migrations.",
)
@click.option(
    "--pg-bin",
    metavar="DIR",
    envvar="BILANTOOLS_PG_BIN",
    help="PostgreSQL server binaries for the sandbox (default: the embedded ones).",
)
@click.version_option(__version__, prog_name="bilantools")
@click.pass_context
def cli(ctx: click.Context, db: str | None, migrations: str, pg_bin: str | None) -> None:
    """Migrate, verify and roll back the BilanCompetence.AI PostgreSQL schema."""
    ctx.obj = Context(db, migrations, pg_bin)


def _json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")(f)


def _range_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--step", type=click.IntRange(min=1), metavar="N", help="Only the next N migrations.")(f)
    return click.option("--to", metavar="VERSION", help="Stop at this version.")(f)


def _backup_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--backup-dir",
        default=commands.DEFAULT_BACKUP_DIR,
        show_default=True,
        metavar="DIR",
        help="Where the automatic backup goes.",
    )(f)
    return click.option(
        "--no-backup",
        is_flag=True,
        help="Skip the full backup taken before changing a database other than the sandbox.",
    )(f)


class Duration(click.ParamType):  # type: ignore[type-arg]
    """A PostgreSQL duration ('500ms', '10s', '5min', '0'), normalised."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        duration = parse_duration(str(value))
        if duration is None:
            self.fail(f"{value} is not a duration; {DURATION_HINT}", param, ctx)
        return duration


def _limit_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--statement-timeout",
        type=Duration(),
        default=None,
        metavar="DURATION",
        help="Cancel a statement that runs longer (default: the server's setting).",
    )(f)
    return click.option(
        "--lock-timeout",
        type=Duration(),
        default=DEFAULT_LOCK_TIMEOUT,
        show_default=True,
        metavar="DURATION",
        help="Fail a statement that waits longer for a lock (rather than stall the queries behind it).",
    )(f)


def _change_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--yes", is_flag=True, help="Do not ask for confirmation.")(f)
    return click.option(
        "--lock-wait",
        type=click.FloatRange(min=0),
        default=DEFAULT_WAIT,
        show_default=True,
        metavar="SECONDS",
        help="How long to wait for another run's migration lock.",
    )(f)


@cli.command()
@_json_option
@pass_ctx
def status(obj: Context, as_json: bool) -> None:
    """Show each migration: applied, pending, failed, changed or missing-file."""
    result = commands.status(obj.target(), obj.migrations)
    if as_json:
        _print_json(result.as_dict())
        return
    _print_status(result)


@cli.command()
@_range_options
@click.option("--sql", "as_sql", is_flag=True, help="Print the exact SQL apply would run.")
@_json_option
@pass_ctx
def plan(obj: Context, to: str | None, step: int | None, as_sql: bool, as_json: bool) -> None:
    """List the migrations apply would run, in order (or their SQL with --sql)."""
    if as_sql:
        click.echo(commands.plan_sql(obj.target(), obj.migrations, to, step), nl=False)
        return
    todo = commands.plan(obj.target(), obj.migrations, to, step)
    if as_json:
        _print_json({"target": obj.target().masked, "migrations": [_plan_item(m) for m in todo]})
        return
    if not todo:
        click.echo("nothing to apply: the database is up to date")
        return
    rows = [
        [
            m.version,
            m.name,
            "yes" if m.transactional else "no (statement by statement)",
            ", ".join(m.depends) or "-",
        ]
        for m in todo
    ]
    _print_table(["VERSION", "NAME", "TRANSACTION", "DEPENDS"], rows)
    click.echo(f"{len(todo)} migration(s) to apply")


@cli.command()
@_range_options
@click.option("--dry-run", is_flag=True, help="Run in a transaction that is rolled back.")
@click.option("--force", is_flag=True, help="Apply despite forward references (never syntax errors).")
@_backup_options
@_limit_options
@_change_options
@_json_option
@pass_ctx
def apply(
    obj: Context,
    to: str | None,
    step: int | None,
    dry_run: bool,
    force: bool,
    no_backup: bool,
    backup_dir: str,
    lock_timeout: str,
    statement_timeout: str | None,
    lock_wait: float,
    yes: bool,
    as_json: bool,
) -> None:
    """Apply pending migrations, each with its tracking row in one transaction."""

    def call(hook: ProgressHook | None) -> RunResult:
        target = obj.target()
        if not dry_run:
            _confirm(target, "apply migrations to", yes)
        return commands.apply(
            target,
            obj.migrations,
            to,
            step,
            dry_run,
            lock_wait,
            hook,
            force,
            backup=False if no_backup else None,
            backup_dir=backup_dir,
            lock_timeout=lock_timeout,
            statement_timeout=statement_timeout,
        )

    _run(call, as_json, obj, "apply", dry_run)


@cli.command()
@_range_options
@click.option("--dry-run", is_flag=True, help="Run in a transaction that is rolled back.")
@_backup_options
@_limit_options
@_change_options
@_json_option
@pass_ctx
def rollback(
    obj: Context,
    to: str | None,
    step: int | None,
    dry_run: bool,
    no_backup: bool,
    backup_dir: str,
    lock_timeout: str,
    statement_timeout: str | None,
    lock_wait: float,
    yes: bool,
    as_json: bool,
) -> None:
    """Roll back the last migration, N of them (--step) or down to a version (--to; 0 = all)."""

    def call(hook: ProgressHook | None) -> RunResult:
        target = obj.target()
        if not dry_run:
            _confirm(target, "roll back migrations on", yes)
        return commands.rollback(
            target,
            obj.migrations,
            to,
            step,
            dry_run,
            lock_wait,
            hook,
            backup=False if no_backup else None,
            backup_dir=backup_dir,
            lock_timeout=lock_timeout,
            statement_timeout=statement_timeout,
        )

    _run(call, as_json, obj, "rollback", dry_run)


@cli.command()
@click.option("--to", required=True, metavar="VERSION", help="Last version to mark as applied.")
@_change_options
@_json_option
@pass_ctx
def baseline(obj: Context, to: str, lock_wait: float, yes: bool, as_json: bool) -> None:
    """Mark migrations up to a version as applied without running them."""

    def call(hook: ProgressHook | None) -> RunResult:
        target = obj.target()
        _confirm(target, "record migrations as applied on", yes)
        return commands.baseline(to, target, obj.migrations, lock_wait)

    _run(call, as_json, obj, "baseline")


@cli.command()
@_change_options
@_json_option
@pass_ctx
def repair(obj: Context, lock_wait: float, yes: bool, as_json: bool) -> None:
    """Clear failed rows and realign the checksums of edited migration files."""

    def call(hook: ProgressHook | None) -> RunResult:
        target = obj.target()
        _confirm(target, "repair the migration history of", yes)
        return commands.repair(target, obj.migrations, lock_wait)

    _run(call, as_json, obj, "repair")


@cli.command()
@_json_option
@pass_ctx
def validate(obj: Context, as_json: bool) -> None:
    """Exit 1 when files changed or vanished after apply, versions clash or rollbacks lack."""
    findings = commands.validate(obj.target(), obj.migrations)
    failing = [f for f in findings if f.severity in ("error", "warning")]
    if as_json:
        _print_json({"findings": [f.as_dict() for f in findings]})
    else:
        for f in findings:
            click.echo(f"{f.severity}: [{f.rule}] {f.one_line()}")
        click.echo(f"{len(failing)} problem(s) found" if failing else "valid: no problems found")
    sys.exit(1 if failing else 0)


@cli.command()
@click.option("--all", "show_all", is_flag=True, help="List every object, not only the problems.")
@_json_option
@pass_ctx
def verify(obj: Context, show_all: bool, as_json: bool) -> None:
    """Per applied migration, the objects it creates: ok, missing or changed; exit 1 if not all ok."""
    result = commands.verify(obj.target(), obj.migrations)
    if as_json:
        _print_json(result.as_dict())
    else:
        rows = [
            [r.migration, r.kind, r.name, r.status.upper() if r.status != "ok" else "ok", r.found]
            for r in result.rows
            if show_all or r.status != "ok"
        ]
        if rows:
            _print_table(["MIGRATION", "KIND", "NAME", "STATUS", "FOUND"], rows)
        _print_table(
            ["MIGRATION", "OBJECTS", "OK", "MISSING", "CHANGED"],
            [[str(v) for v in s.values()] for s in result.summary()],
        )
        problems = sum(1 for r in result.rows if r.status != "ok")
        click.echo(
            f"{len(result.rows)} objects verified: " + (f"{problems} problem(s)" if problems else "all ok")
        )
    sys.exit(0 if result.ok else 1)


@cli.command()
@_json_option
@pass_ctx
def drift(obj: Context, as_json: bool) -> None:
    """Objects no migration creates, and created ones that are absent or changed; exit 1 if any."""
    found = commands.drift(obj.target(), obj.migrations)
    if as_json:
        _print_json(found)
    else:
        labels = {
            "unexpected": "not created by any migration",
            "absent": "created by a migration, absent",
            "changed": "definition differs from the migrations",
        }
        for key, label in labels.items():
            for item in found[key]:
                click.echo(f"{item}: {label}")
        total = sum(len(v) for v in found.values())
        click.echo(f"{total} difference(s)" if total else "no drift")
    sys.exit(1 if any(found.values()) else 0)


@cli.command()
@_json_option
@pass_ctx
def detect(obj: Context, as_json: bool) -> None:
    """For a database migrated by hand: each migration's share of objects present, and the
    version to baseline. Writes nothing."""
    found = commands.detect(obj.target(), obj.migrations)
    if as_json:
        _print_json(found.as_dict())
        return
    rows = [
        [
            s["version"],
            s["name"],
            str(s["objects"]),
            str(s["present"]),
            "-" if s["share"] is None else f"{s['share']:.0%}",
        ]
        for s in found.shares
    ]
    _print_table(["VERSION", "NAME", "OBJECTS", "PRESENT", "SHARE"], rows)
    if found.suggested:
        click.echo(f"suggested: bilantools baseline --to {found.suggested}")
    else:
        click.echo("no migration is fully present: nothing to baseline; apply from the start")


@cli.command("inspect")
@click.argument("kind", type=click.Choice([k.replace("_", "-") for k in commands.INSPECTIONS]))
@_json_option
@pass_ctx
def inspect_command(obj: Context, kind: str, as_json: bool) -> None:
    """Inspect the live catalog: tables (sizes), indexes (unused, duplicate), RLS, functions..."""
    frame = commands.inspect(kind.replace("-", "_"), obj.target())
    if as_json:
        click.echo(
            json.dumps({"kind": kind, "rows": frame.to_dict("records")}, ensure_ascii=False, default=str)
        )
    elif frame.empty:
        click.echo(f"no {kind}")
    else:
        click.echo(frame.to_string(index=False))


@cli.command()
@click.option("--details", is_flag=True, help="Also list every object and its detail hash.")
@_json_option
@pass_ctx
def fingerprint(obj: Context, details: bool, as_json: bool) -> None:
    """A stable hash of the schema (the one round trips and backups compare)."""
    import hashlib

    found = commands.fingerprint(obj.target())
    objects = {
        f"{k}\t{n}": hashlib.md5(d.encode()).hexdigest() for (k, n), d in sorted(found.objects.items())
    }
    if as_json:
        _print_json({"fingerprint": found.digest, **({"objects": objects} if details else {})})
        return
    if details:
        for key, digest in objects.items():
            click.echo(f"{key.replace(chr(9), ' ')}  {digest}")
    click.echo(found.digest)


@cli.command()
@_json_option
@pass_ctx
def check(obj: Context, as_json: bool) -> None:
    """Find every problem of the migrations directory, without a database; exit 1 on errors."""
    report = commands.check(obj.migrations)
    if as_json:
        _print_json(report.as_dict())
    else:
        for f in report.findings:
            where = f"{f.file}:{f.line}" if f.line else f.file
            click.echo(f"{where}: {f.severity}: [{f.rule}] {f.message}")
            if f.hint:
                click.echo(f"    fix: {f.hint}")
        counts = {s: sum(1 for f in report.findings if f.severity == s) for s in ("error", "warning", "info")}
        click.echo(
            f"{len(report.migrations)} migration(s) checked: {counts['error']} error(s), "
            f"{counts['warning']} warning(s), {counts['info']} note(s)"
        )
    sys.exit(1 if report.errors else 0)


@cli.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "dot", "svg", "png"]),
    default="text",
    show_default=True,
    help="text, Graphviz dot source, or an image rendered by Graphviz.",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Write to this file.")
@pass_ctx
def graph(obj: Context, fmt: str, output: str | None) -> None:
    """Draw the dependency graph: inferred and declared edges, forward references in red."""
    analysis = commands.check(obj.migrations).analysis
    if fmt == "text":
        data: bytes = analysis.to_text().encode()
    elif fmt == "dot":
        data = analysis.to_dot().encode()
    else:
        data = _render(analysis.to_dot(), fmt)
    if output:
        try:
            Path(output).write_bytes(data)
        except OSError as exc:
            raise InputError(
                f"cannot write {output} ({exc.strerror}); pass --output FILE in a directory you can write to"
            ) from None
        click.echo(f"written: {output}", err=True)
    elif fmt in ("svg", "png") and sys.stdout.isatty():
        raise RefusedError(f"refusing to print a {fmt} image to the terminal: pass --output FILE")
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


def _render(dot_source: str, fmt: str) -> bytes:
    """Graphviz's `dot` turns the source into an image."""
    import shutil
    import subprocess

    dot = shutil.which("dot")
    if dot is None:
        raise RefusedError(
            f"--format {fmt} needs Graphviz's dot program: install graphviz (apt-get install graphviz), "
            "or use --format dot"
        )
    return subprocess.run(
        [dot, f"-T{fmt}"], input=dot_source.encode(), capture_output=True, check=True
    ).stdout


@cli.command()
@click.option(
    "--exact-rows",
    is_flag=True,
    help="Count every table's rows (scans them; needs the owner or BYPASSRLS) instead of estimates.",
)
@click.option(
    "--plots",
    "plots_dir",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Also write the charts as PNG files into DIR.",
)
@_json_option
@pass_ctx
def stats(obj: Context, exact_rows: bool, plots_dir: str | None, as_json: bool) -> None:
    """The schema overview: totals, categories with sizes, flags, largest tables and indexes."""
    from bilantools.db.stats import render_text

    result = commands.stats(obj.target(), obj.migrations, exact_rows=exact_rows)
    if plots_dir:
        try:
            from bilantools.db.plots import save_all
        except ImportError:
            raise RefusedError("--plots needs matplotlib: pip install 'bilantools[notebooks]'") from None
        for path in save_all(result, plots_dir):
            click.echo(f"written: {path}", err=True)
    if as_json:
        _print_json(result.as_dict())
        return
    click.echo(render_text(result), nl=False)


@cli.group(invoke_without_command=True)
@click.option("--schema-only", is_flag=True, help="Structure only, no rows.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["custom", "plain", "directory"]),
    default="custom",
    show_default=True,
    help="pg_dump's output format.",
)
@click.option(
    "--out",
    default=commands.DEFAULT_BACKUP_DIR,
    show_default=True,
    metavar="DIR",
    help="Directory of the backups.",
)
@_json_option
@click.pass_context
def backup(ctx: click.Context, schema_only: bool, fmt: str, out: str, as_json: bool) -> None:
    """Take a backup (pg_dump + sidecar); or list, prune, verify, diff them."""
    ctx.meta["backup_dir"] = out
    if ctx.invoked_subcommand is not None:
        return
    obj: Context = ctx.find_object(Context)  # type: ignore[assignment]
    target = obj.target()
    bar = _BytesBar(enabled=not as_json)
    try:
        taken = commands.backup(target, out, schema_only, fmt, obj.pg_bin, bar)
    finally:
        bar.close()
    if as_json:
        _print_json(taken.as_dict())
        return
    click.echo(
        f"{taken.file} ({_human(taken.bytes)}, {taken.meta['kind']}, {taken.meta['format']}) "
        f"in {taken.meta['duration_ms'] / 1000:.1f} s"
    )
    click.echo(
        f"sidecar: {taken.sidecar} (sha256 {taken.sha256[:16]}..., migration "
        f"{taken.meta['migration_version'] or 'none'})"
    )


@backup.command("list")
@_json_option
@click.pass_context
def backup_list(ctx: click.Context, as_json: bool) -> None:
    """The backups of the directory, newest first."""
    found = commands.backup_list(ctx.meta["backup_dir"])
    if as_json:
        _print_json(
            {
                "backups": [
                    b.as_dict()
                    | {
                        "created_at": b.meta.get("created_at"),
                        "database": b.meta.get("database"),
                        "verified": b.meta.get("verified"),
                    }
                    for b in found
                ]
            }
        )
        return
    rows = []
    for b in found:
        verified = b.meta.get("verified") or {}
        rows.append(
            [
                str(b.meta.get("created_at", "")),
                str(b.meta.get("database", "")),
                str(b.meta["kind"]),
                str(b.meta.get("origin") or "-"),
                _human(b.bytes),
                str(b.meta.get("migration_version") or "-"),
                "no" if verified.get("ok") is None else "ok" if verified["ok"] else "FAILED",
                b.file.name,
            ]
        )
    _print_table(["WHEN (UTC)", "DATABASE", "KIND", "ORIGIN", "SIZE", "VERSION", "VERIFIED", "FILE"], rows)
    click.echo(f"{len(found)} backup(s) in {ctx.meta['backup_dir']}")


@backup.command("prune")
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    required=True,
    metavar="N",
    help="Backups to keep per database, origin (automatic or manual) and kind (full or schema).",
)
@click.option("--dry-run", is_flag=True, help="List what would be removed and what is kept, and why.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_json_option
@click.pass_context
def backup_prune(ctx: click.Context, keep: int, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Delete all but the newest N backups of each database, origin and kind; the newest
    verified one of each stays too. Asks first unless --yes or they are all the sandbox's."""
    out = ctx.meta["backup_dir"]
    plan = commands.backup_prune_plan(out, keep)
    if dry_run:
        if as_json:
            _print_json({"dry_run": True, **plan.as_dict()})
            return
        for d in plan.decisions:
            click.echo(f"{'would remove' if d.remove else 'keep'} {d.backup.file}: {d.reason}")
        click.echo(f"{len(plan.removed)} backup(s) would be removed, {len(plan.kept)} kept")
        return
    if plan.needs_confirmation and not yes:
        for d in plan.removed:
            click.echo(f"to remove: {d.backup.file}: {d.reason}", err=True)
        databases = ", ".join(sorted({d.group[0] for d in plan.removed}))
        what = f"delete {len(plan.removed)} backup(s) of {databases} from {out}"
        _ask(
            f"{what.capitalize()}?",
            f"refusing to {what} without confirmation: pass --yes (--dry-run lists them)",
            yes,
        )
    removed = set(commands.backup_prune(out, keep, approved=plan))
    if as_json:
        _print_json(
            {
                "dry_run": False,
                "keep": keep,
                "removed": [d.as_dict() for d in plan.decisions if d.backup.file in removed],
                "kept": [d.as_dict() for d in plan.decisions if d.backup.file not in removed],
            }
        )
        return
    for d in plan.decisions:
        if d.backup.file in removed:
            click.echo(f"removed {d.backup.file}")
    click.echo(f"{len(removed)} backup(s) removed, {len(plan.decisions) - len(removed)} kept")


@backup.command("verify")
@click.argument("file", type=click.Path())
@_json_option
@pass_ctx
def backup_verify(obj: Context, file: str, as_json: bool) -> None:
    """Restore FILE into a fresh sandbox database and compare it with its sidecar."""
    result = commands.backup_verify(file, obj.pg_bin)
    if as_json:
        _print_json(result.as_dict())
    else:
        for missing in result.missing:
            click.echo(f"missing in the sandbox: {missing} (objects needing it were not restored as dumped)")
        for difference in result.differences:
            click.echo(f"DIFFERENT: {difference}")
        click.echo(f"{file}: {'OK' if result.ok else 'FAILED'}")
    sys.exit(0 if result.ok else 1)


@backup.command("diff")
@click.argument("file", type=click.Path())
@_json_option
@pass_ctx
def backup_diff(obj: Context, file: str, as_json: bool) -> None:
    """Compare FILE's sidecar with the target database as it is now; exit 1 on differences."""
    differences = commands.backup_diff(file, obj.target())
    if as_json:
        _print_json({"file": file, "differences": differences})
    else:
        for difference in differences:
            click.echo(difference)
        click.echo(f"{len(differences)} difference(s)" if differences else "no difference")
    sys.exit(1 if differences else 0)


@cli.command()
@click.argument("file", type=click.Path())
@click.option(
    "--clean", is_flag=True, help="Drop and replace what the backup contains in a non-empty database."
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def restore(obj: Context, file: str, clean: bool, yes: bool) -> None:
    """Restore a backup FILE into the target database."""
    target = obj.target()
    _confirm(target, f"restore {Path(file).name} into", yes)
    missing = commands.restore(file, target, clean, obj.pg_bin)
    for item in missing:
        click.echo(
            f"warning: the target lacks {item}; objects needing it were not restored as dumped", err=True
        )
    click.echo(f"restored {file} into {target.masked}")


class _BytesBar:
    """Bytes written by pg_dump, on stderr when it is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.bar: Any = None

    def __call__(self, written: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(unit="B", unit_scale=True, desc="pg_dump", file=sys.stderr, leave=False)
        self.bar.update(written - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


@cli.group()
def runbook() -> None:
    """Execute the curated notebooks with papermill; each run is kept under runs/."""


@runbook.command("run")
@click.argument("name")
@click.option(
    "-p",
    "--parameter",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A notebook parameter (repeatable); never a connection or password.",
)
@click.option("--notebooks", default="notebooks", show_default=True, metavar="DIR")
@click.option("--runs", default="runs", show_default=True, metavar="DIR", help="Where executed copies go.")
@pass_ctx
def runbook_run(obj: Context, name: str, pairs: tuple[str, ...], notebooks: str, runs: str) -> None:
    """Execute runbook NAME (e.g. 02 or 02_apply_stepwise) against the target."""
    from bilantools import runbooks

    parameters = runbooks.parse_parameters(list(pairs))
    record = runbooks.run(name, obj.target(), parameters, notebooks, runs)
    click.echo(
        f"{record.notebook}: {record.meta['outcome']} in {record.meta['duration_s']} s; "
        f"executed copy: {record.executed}" + (f" (and {record.html})" if record.html else "")
    )


@runbook.command("list")
@click.option("--runs", default="runs", show_default=True, metavar="DIR")
@_json_option
def runbook_list(runs: str, as_json: bool) -> None:
    """Past runs, newest first."""
    from bilantools import runbooks

    found = runbooks.history(runs)
    if as_json:
        _print_json({"runs": found})
        return
    rows = [
        [
            r.get("started_at", ""),
            r.get("notebook", ""),
            r.get("target", ""),
            r.get("outcome", ""),
            str(r.get("duration_s", "")),
            r["executed"],
        ]
        for r in found
    ]
    _print_table(["WHEN (UTC)", "RUNBOOK", "TARGET", "OUTCOME", "SECONDS", "EXECUTED COPY"], rows)


# -- sandbox ------------------------------------------------------------------------------
@cli.group()
def sandbox() -> None:
    """The local embedded PostgreSQL server (state in $BILANTOOLS_HOME or ./.bilantools)."""


def _box(obj: Context) -> Any:
    box = commands.sandbox(pg_bin=obj.pg_bin)
    click.echo(f"sandbox: {box.home}", err=True)
    return box


@sandbox.command("start")
@pass_ctx
def sandbox_start(obj: Context) -> None:
    """Start the sandbox (initialising it on first use) and print its URL."""
    click.echo(_box(obj).start())


@sandbox.command("stop")
@pass_ctx
def sandbox_stop(obj: Context) -> None:
    """Stop the sandbox server."""
    click.echo("stopped" if _box(obj).stop() else "the sandbox was not running")


@sandbox.command("status")
@_json_option
@pass_ctx
def sandbox_status(obj: Context, as_json: bool) -> None:
    """Is the sandbox running, on which port, which PostgreSQL version."""
    info = _box(obj).status()
    if as_json:
        _print_json(info)
    elif info["running"]:
        click.echo(f"running: PostgreSQL {info['major']}, pid {info['pid']}, {info['url']}")
    else:
        click.echo("not running (start it with 'bilantools sandbox start')")


@sandbox.command("url")
@click.argument("dbname", required=False, default="bilancompetence")
@pass_ctx
def sandbox_url(obj: Context, dbname: str) -> None:
    """Print the URL of a sandbox database (default: bilancompetence)."""
    click.echo(_box(obj).url(dbname))


@sandbox.command("reset")
@pass_ctx
def sandbox_reset(obj: Context) -> None:
    """Delete every sandbox database and start afresh."""
    click.echo(_box(obj).reset())


@sandbox.command("new-db")
@click.argument("name", required=False)
@pass_ctx
def sandbox_new_db(obj: Context, name: str | None) -> None:
    """Create a fresh empty database and print only its URL."""
    click.echo(_box(obj).new_db(name))


# -- output helpers ----------------------------------------------------------------------
def _confirm(target: Target, what: str, yes: bool) -> None:
    """Ask before changing anything but the sandbox; refuse without a terminal."""
    if target.is_sandbox:
        return
    refusal = f"refusing to {what} {target.masked} without confirmation: pass --yes"
    _ask(f"{what.capitalize()} {target.masked}?", refusal, yes)


def _ask(question: str, refusal: str, yes: bool) -> None:
    """`question` on a terminal unless `yes`; without a terminal, refuse with `refusal`."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise RefusedError(refusal)
    if not click.confirm(question, default=False, err=True):
        raise RefusedError("cancelled: nothing was changed")


def _run(
    call: Callable[[ProgressHook | None], RunResult],
    as_json: bool,
    obj: Context,
    action: str,
    dry_run: bool = False,
) -> None:
    """Run a changing command: one line per migration as it completes, then a summary.
    With --json, a run that does not succeed prints its failure object too (see
    `_failure`); Ctrl-C before the runner handles it means nothing was changed."""
    printer = _StepPrinter(quiet=as_json)
    try:
        try:
            result = call(printer)
        except KeyboardInterrupt:
            raise RunInterrupted(
                f"interrupted (Ctrl-C) before any change: nothing was changed; run {action} again"
            ) from None
    except BilanToolsError as exc:
        printer.close()
        if as_json:
            _print_json(_failure(exc, obj, action, dry_run))
        raise
    printer.close()
    if as_json:
        _print_json({"ok": True, "error": None, **result.as_dict()})
        return
    if result.action in ("baseline", "repair"):
        for step in result.steps:
            click.echo(_step_line(step))
    verb = {"apply": "applied", "rollback": "rolled back", "baseline": "baselined", "repair": "repaired"}
    if result.dry_run:
        click.echo(f"dry run: {len(result.steps)} migration(s) checked, nothing was changed")
    elif not result.steps:
        click.echo(f"nothing to do: no migration {verb[result.action]}")
    else:
        click.echo(f"{len(result.steps)} migration(s) {verb[result.action]}")


def _failure(exc: BilanToolsError, obj: Context, action: str, dry_run: bool) -> dict[str, Any]:
    """The --json object of a run that stopped: the README's fields of a failed migration
    (null when no migration is to blame), what kind of stop, and the run's fields with
    the steps that had committed."""
    target = obj.resolved()
    return {
        "ok": False,
        "error": str(exc),
        "failure": exc.kind,
        "version": getattr(exc, "version", None),
        "file": getattr(exc, "file", None),
        "line": getattr(exc, "line", None),
        "partial": getattr(exc, "partial", False),
        "target": target.masked if target else None,
        "action": action,
        "dry_run": dry_run,
        "run_id": None,
        "backup": None,
        "steps": [],
        **(exc.run or {}),
    }


def _step_line(s: Step) -> str:
    ms = f"{s.duration_ms} ms" if s.duration_ms is not None else ""
    detail = f"  {s.detail}" if s.detail else ""
    return f"{s.version}  {s.name:<40} {s.outcome:<16} {ms}{detail}".rstrip()


class _StepPrinter:
    """Prints each migration's line as it completes; a tqdm bar on stderr when it is a terminal."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.use_bar = not quiet and sys.stderr.isatty()
        self.bar: Any = None

    def __call__(self, progress: Progress) -> None:
        if self.quiet:
            return
        if self.use_bar and self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=progress.total, unit="migration", file=sys.stderr, leave=False)
        if progress.event == "start":
            if self.bar is not None:
                self.bar.set_description(progress.migration.label[:40])
            return
        assert progress.step is not None
        line = _step_line(progress.step)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.write(line, file=sys.stdout)
        else:
            click.echo(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _print_status(result: Status) -> None:
    rows = []
    for m in result.migrations:
        when = m.applied_at.strftime("%Y-%m-%d %H:%M:%S") if m.applied_at else ""
        state = m.state + (" (half-way)" if m.partial else "")
        rows.append(
            [
                m.version,
                m.name,
                click.style(state, fg=STATE_COLOURS[m.state]),
                when,
                "" if m.execution_time_ms is None else str(m.execution_time_ms),
                m.applied_by or "",
            ]
        )
    _print_table(["VERSION", "NAME", "STATE", "APPLIED AT", "MS", "BY"], rows)
    for m in result.migrations:
        if m.state == "failed" and m.error:
            click.echo(f"{m.version} failed: {m.error}")
    click.echo(result.summary())


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max([len(h)] + [len(click.unstyle(r[i])) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = [c + " " * (w - len(click.unstyle(c))) for c, w in zip(cells, widths, strict=True)]
        return "  ".join(padded).rstrip()

    click.echo(line(headers))
    for r in rows:
        click.echo(line(r))


def _plan_item(m: Migration) -> dict[str, Any]:
    return {
        "version": m.version,
        "name": m.name,
        "file": str(m.path),
        "transaction": m.transactional,
        "depends": list(m.depends),
    }


def _print_json(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, default=str))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: one line on stderr and the error's exit code for a BilanToolsError."""
    try:
        with stop_on_signals():  # SIGTERM and SIGHUP unwind like Ctrl-C: every cleanup runs
            cli.main(
                args=list(argv) if argv is not None else None, prog_name="bilantools", standalone_mode=False
            )
    except Stopped as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(redact(f"error: {exc.format_message()}"), err=True)
        sys.exit(exc.exit_code)
    except BilanToolsError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception:  # a bug: show it, masked, and say so
        click.echo(redact(traceback.format_exc()), err=True)
        click.echo(
            "error: internal error in bilantools (see the traceback above); please report it", err=True
        )
        sys.exit(2)
    sys.exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
