"""The commands that change the migration history: apply, rollback, baseline, repair.

Each builds one `RunOptions` from its flags, asks for confirmation where the front door's
policy says so, and prints one line per migration as it completes, then a summary (or,
with --json, one object, a failure object when the run stops).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from bilantools import commands
from bilantools.cli.flags import (
    Context,
    backup_options,
    change_options,
    json_option,
    limit_options,
    pass_ctx,
    range_options,
    spell,
)
from bilantools.cli.output import StepPrinter, confirm, print_json, step_line
from bilantools.commands import ProgressHook, RunOptions, RunResult
from bilantools.errors import BilanToolsError, RunInterrupted


@click.command()
@range_options
@click.option("--dry-run", is_flag=True, help="Run in a transaction that is rolled back.")
@click.option("--force", is_flag=True, help="Apply despite forward references (never syntax errors).")
@backup_options
@limit_options
@change_options
@json_option
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

    options = RunOptions(
        to=to,
        step=step,
        dry_run=dry_run,
        force=force,
        lock_timeout=lock_timeout,
        statement_timeout=statement_timeout,
        lock_wait=lock_wait,
        backup=False if no_backup else None,
        backup_dir=backup_dir,
        yes=yes,
    )

    def call(hook: ProgressHook | None) -> RunResult:
        target = obj.target()
        confirm(target, "apply migrations to", options)
        return commands.apply(target=target, project=obj.project, options=options, progress=hook)

    _run(call, as_json, obj, "apply", dry_run)


@click.command()
@range_options
@click.option("--dry-run", is_flag=True, help="Run in a transaction that is rolled back.")
@backup_options
@limit_options
@change_options
@json_option
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

    options = RunOptions(
        to=to,
        step=step,
        dry_run=dry_run,
        lock_timeout=lock_timeout,
        statement_timeout=statement_timeout,
        lock_wait=lock_wait,
        backup=False if no_backup else None,
        backup_dir=backup_dir,
        yes=yes,
    )

    def call(hook: ProgressHook | None) -> RunResult:
        target = obj.target()
        confirm(target, "roll back migrations on", options)
        return commands.rollback(target=target, project=obj.project, options=options, progress=hook)

    _run(call, as_json, obj, "rollback", dry_run)


@click.command()
@click.option("--to", required=True, metavar="VERSION", help="Last version to mark as applied.")
@change_options
@json_option
@pass_ctx
def baseline(obj: Context, to: str, lock_wait: float, yes: bool, as_json: bool) -> None:
    """Mark migrations up to a version as applied without running them."""

    options = RunOptions(to=to, lock_wait=lock_wait, yes=yes)

    def call(hook: ProgressHook | None) -> RunResult:
        target = obj.target()
        confirm(target, "record migrations as applied on", options)
        return commands.baseline(target=target, project=obj.project, options=options)

    _run(call, as_json, obj, "baseline")


@click.command()
@change_options
@json_option
@pass_ctx
def repair(obj: Context, lock_wait: float, yes: bool, as_json: bool) -> None:
    """Clear failed rows and realign the checksums of edited migration files."""

    options = RunOptions(lock_wait=lock_wait, yes=yes)

    def call(hook: ProgressHook | None) -> RunResult:
        target = obj.target()
        confirm(target, "repair the migration history of", options)
        return commands.repair(target=target, project=obj.project, options=options)

    _run(call, as_json, obj, "repair")


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
    printer = StepPrinter(quiet=as_json)
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
            print_json(_failure(exc, obj, action, dry_run))
        raise
    printer.close()
    if as_json:
        print_json({"ok": True, "error": None, **result.as_dict()})
        return
    if result.action in ("baseline", "repair"):
        for step in result.steps:
            click.echo(step_line(step))
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
        "error": exc.render(spell),
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
