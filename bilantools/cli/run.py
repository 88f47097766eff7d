"""The commands that change the migration history: apply, rollback, baseline, repair.

Each builds one `RunOptions` from its flags, asks for confirmation where the front door's
policy says so, and prints one line per migration as it completes, then a summary (or,
with --json, one object, a failure object when the run stops).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from bilantools import commands
from bilantools.cli.flags import (
    Context,
    change_flags,
    run_flags,
    spell,
)
from bilantools.cli.output import StepPrinter, confirm, print_json, step_line
from bilantools.commands import Migration, RunOptions, RunResult, Target
from bilantools.errors import BilanToolsError, RunInterrupted
from bilantools.render.text import count, short_bytes, text_table, version_span

# What each command asks before it changes a database other than the sandbox.
QUESTIONS = {
    "apply": "apply migrations to",
    "rollback": "roll back migrations on",
    "baseline": "record migrations as applied on",
    "repair": "repair the migration history of",
}
# What apply and rollback would run: the plan printed before their prompt.
PLANS: dict[str, Callable[..., list[Migration]]] = {
    "apply": commands.plan,
    "rollback": commands.rollback_plan,
}


@click.command()
@click.option(
    "--check-only",
    is_flag=True,
    help="List every problem that makes apply refuse to run, and stop; touches no database.",
)
@run_flags(force=True)
def apply(obj: Context, options: RunOptions, as_json: bool, check_only: bool) -> None:
    """Apply pending migrations, each with its tracking row in one transaction."""
    if check_only:
        _check_only(obj, options, as_json)
    if options.force:  # name every problem --force lets through, before anything runs
        blocking = set(commands.apply_check(project=obj.project, options=options))
        for f in commands.apply_check(project=obj.project, options=options.but(force=False)):
            if f not in blocking:
                click.echo(f"forced: {f.one_line()}", err=True)
    _run(obj, "apply", options, as_json, commands.apply)


def _check_only(obj: Context, options: RunOptions, as_json: bool) -> NoReturn:
    """Every blocking problem at once, as `check` prints a finding; exit 1 if any."""
    from bilantools.cli.inspect import print_findings  # check's printer; apply itself runs without it

    blocking = commands.apply_check(project=obj.project, options=options)
    if as_json:
        print_json({"findings": [f.as_dict() for f in blocking], "layout": obj.project.layout})
    else:
        print_findings(blocking)
        click.echo(
            f"{len(blocking)} blocking problem(s): apply refuses to run until they are fixed"
            if blocking
            else "no blocking problem: apply would run"
        )
    sys.exit(1 if blocking else 0)


@click.command()
@click.option("--sql", "as_sql", is_flag=True, help="Print the exact SQL rollback would run, and stop.")
@run_flags(force=False)
def rollback(obj: Context, options: RunOptions, as_json: bool, as_sql: bool) -> None:
    """Roll back the last migration, N of them (--step) or down to a version (--to; 0 = all)."""
    if as_sql:
        sql = commands.rollback_sql(target=obj.target(), project=obj.project, options=options)
        click.echo(sql, nl=False)
        return
    _run(obj, "rollback", options, as_json, commands.rollback)


@click.command()
@click.option("--to", required=True, metavar="VERSION", help="Last version to mark as applied.")
@change_flags
def baseline(obj: Context, options: RunOptions, as_json: bool) -> None:
    """Mark migrations up to a version as applied without running them."""
    _run(obj, "baseline", options, as_json, commands.baseline)


@click.command()
@change_flags
def repair(obj: Context, options: RunOptions, as_json: bool) -> None:
    """Clear failed rows and realign the checksums of edited migration files."""
    _run(obj, "repair", options, as_json, commands.repair)


def _run(
    obj: Context, action: str, options: RunOptions, as_json: bool, command: Callable[..., RunResult]
) -> None:
    """Run a changing command once confirmed (see `confirm`): one line per migration as it
    completes, then a summary. With --json, a run that does not succeed prints its failure
    object too (see `_failure`); Ctrl-C before the runner handles it means nothing was
    changed."""
    printer = StepPrinter(quiet=as_json)
    try:
        try:
            target = obj.target()
            confirm(target, QUESTIONS[action], options, _announce(obj, target, action, options, as_json))
            printer.width = max((len(m.version) for m in obj.project.migrations), default=0)
            hooks = {"progress": printer} if action in ("apply", "rollback") else {}
            result = command(target=target, project=obj.project, options=options, **hooks)
        except KeyboardInterrupt:
            raise RunInterrupted(
                f"interrupted (Ctrl-C) before any change: nothing was changed; run {action} again"
            ) from None
    except BilanToolsError as exc:
        printer.close()
        if as_json:
            print_json(_failure(exc, obj, action, options.dry_run))
        else:
            _backup_line((exc.run or {}).get("backup"))
        raise
    printer.close()
    if not as_json:
        _backup_line(result.backup)
    if as_json:
        print_json({"ok": True, "error": None, **result.as_dict()})
        return
    if result.action in ("baseline", "repair"):
        for step in result.steps:
            click.echo(step_line(step, printer.width))
    verb = {"apply": "applied", "rollback": "rolled back", "baseline": "baselined", "repair": "repaired"}
    if result.dry_run:
        click.echo(f"dry run: {len(result.steps)} migration(s) checked, nothing was changed")
    elif not result.steps:
        click.echo(f"nothing to do: no migration {verb[result.action]}")
    else:
        click.echo(f"{len(result.steps)} migration(s) {verb[result.action]}")


def _announce(obj: Context, target: Target, action: str, options: RunOptions, as_json: bool) -> str | None:
    """Before apply or rollback changes a database other than the sandbox: its plan on
    standard error (version, name, transaction mode, the strongest lock expected on an
    existing table), and the prompt's question naming the count, the versions and the
    target. None (the generic question) for the other commands, the sandbox and --json."""
    if action not in PLANS or target.is_sandbox or as_json:
        return None
    rollback = action == "rollback"
    planned = PLANS[action](target=target, project=obj.project, options=options)
    rows = [
        [
            m.version,
            m.name,
            "one transaction"
            if (m.rollback_transactional if rollback else m.transactional)
            else "no transaction",
            str(commands.lock_estimate(migration=m, rollback=rollback)),
        ]
        for m in planned
    ]
    verb, where = ("Roll back", "on") if rollback else ("Apply", "to")
    click.echo(f"plan: {verb.lower()} {count(len(planned), 'migration')}", err=True)
    if rows:
        click.echo(
            text_table(["VERSION", "NAME", "TRANSACTION", "LOCK (ESTIMATED)"], rows, indent="  "), err=True
        )
    versions = version_span([m.version for m in planned]) or "nothing pending"
    return f"{verb} {count(len(planned), 'migration')} ({versions}) {where} {target.masked}?"


def _backup_line(path: str | None) -> None:
    """Where the automatic backup went, with its size (standard error, like "target:")."""
    if path is None:
        return
    size = Path(path).stat().st_size if Path(path).exists() else None
    click.echo(f"backup: {path}" + (f" ({short_bytes(size)})" if size is not None else ""), err=True)


def _failure(exc: BilanToolsError, obj: Context, action: str, dry_run: bool) -> dict[str, Any]:
    """The --json object of a run that stopped: the README's fields of a failed migration
    (null when no migration is to blame), what kind of stop, and the run's fields with
    the steps that had committed."""
    target = obj.resolved()
    return {
        "ok": False,
        "error": exc.render(spell),
        "failure": exc.kind,
        "version": getattr(exc, "version", None),
        "file": getattr(exc, "file", None),
        "line": getattr(exc, "line", None),
        "partial": getattr(exc, "partial", False),
        "retryable": getattr(exc, "retryable", False),
        "target": target.masked if target else None,
        "action": action,
        "dry_run": dry_run,
        "run_id": None,
        "backup": None,
        "steps": [],
        **(exc.run or {}),
    }
