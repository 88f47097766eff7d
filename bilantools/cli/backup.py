"""`backup` (take one) and its subcommands list, prune, verify and diff; `restore`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from bilantools import commands
from bilantools.cli.flags import Context, json_option, pass_ctx
from bilantools.cli.output import ask, confirm, print_json, print_table
from bilantools.commands import RunOptions
from bilantools.render.text import short_bytes


@click.group(invoke_without_command=True)
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
@json_option
@click.pass_context
def backup(ctx: click.Context, schema_only: bool, fmt: str, out: str, as_json: bool) -> None:
    """Take a backup (pg_dump + sidecar); or list, prune, verify, diff them."""
    ctx.meta["backup_dir"] = out
    if ctx.invoked_subcommand is not None:
        return
    obj: Context = ctx.find_object(Context)  # type: ignore[assignment]
    target = obj.target()
    bar = BytesBar(enabled=not as_json)
    try:
        taken = commands.backup(
            target=target, out=out, schema_only=schema_only, fmt=fmt, pg_bin=obj.pg_bin, progress=bar
        )
    finally:
        bar.close()
    if as_json:
        print_json(taken.as_dict())
        return
    click.echo(
        f"{taken.file} ({short_bytes(taken.bytes)}, {taken.meta['kind']}, {taken.meta['format']}) "
        f"in {taken.meta['duration_ms'] / 1000:.1f} s"
    )
    click.echo(
        f"sidecar: {taken.sidecar} (sha256 {taken.sha256[:16]}..., migration "
        f"{taken.meta['migration_version'] or 'none'})"
    )


@backup.command("list")
@json_option
@click.pass_context
def backup_list(ctx: click.Context, as_json: bool) -> None:
    """The backups of the directory, newest first."""
    found = commands.backup_list(out=ctx.meta["backup_dir"])
    if as_json:
        print_json(
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
                short_bytes(b.bytes),
                str(b.meta.get("migration_version") or "-"),
                "no" if verified.get("ok") is None else "ok" if verified["ok"] else "FAILED",
                b.file.name,
            ]
        )
    print_table(["WHEN (UTC)", "DATABASE", "KIND", "ORIGIN", "SIZE", "VERSION", "VERIFIED", "FILE"], rows)
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
@json_option
@click.pass_context
def backup_prune(ctx: click.Context, keep: int, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Delete all but the newest N backups of each database, origin and kind; the newest
    verified one of each stays too. Asks first unless --yes or they are all the sandbox's."""
    out = ctx.meta["backup_dir"]
    plan = commands.backup_prune_plan(out=out, keep=keep)
    if dry_run:
        if as_json:
            print_json({"dry_run": True, **plan.as_dict()})
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
        ask(
            f"{what.capitalize()}?",
            f"refusing to {what} without confirmation: pass --yes (--dry-run lists them)",
            yes,
        )
    removed = set(commands.backup_prune(out=out, keep=keep, approved=plan))
    if as_json:
        print_json(
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
@json_option
@pass_ctx
def backup_verify(obj: Context, file: str, as_json: bool) -> None:
    """Restore FILE into a fresh sandbox database and compare it with its sidecar."""
    result = commands.backup_verify(file=file, pg_bin=obj.pg_bin)
    if as_json:
        print_json(result.as_dict())
    else:
        for missing in result.missing:
            click.echo(f"missing in the sandbox: {missing} (objects needing it were not restored as dumped)")
        for difference in result.differences:
            click.echo(f"DIFFERENT: {difference}")
        click.echo(f"{file}: {'OK' if result.ok else 'FAILED'}")
    sys.exit(0 if result.ok else 1)


@backup.command("diff")
@click.argument("file", type=click.Path())
@json_option
@pass_ctx
def backup_diff(obj: Context, file: str, as_json: bool) -> None:
    """Compare FILE's sidecar with the target database as it is now; exit 1 on differences."""
    differences = commands.backup_diff(file=file, target=obj.target())
    if as_json:
        print_json({"file": file, "differences": differences})
    else:
        for difference in differences:
            click.echo(difference)
        click.echo(f"{len(differences)} difference(s)" if differences else "no difference")
    sys.exit(1 if differences else 0)


@click.command()
@click.argument("file", type=click.Path())
@click.option(
    "--clean", is_flag=True, help="Drop and replace what the backup contains in a non-empty database."
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def restore(obj: Context, file: str, clean: bool, yes: bool) -> None:
    """Restore a backup FILE into the target database."""
    target = obj.target()
    confirm(target, f"restore {Path(file).name} into", RunOptions(yes=yes))
    missing = commands.restore(file=file, target=target, clean=clean, pg_bin=obj.pg_bin)
    for item in missing:
        click.echo(
            f"warning: the target lacks {item}; objects needing it were not restored as dumped", err=True
        )
    click.echo(f"restored {file} into {target.masked}")


class BytesBar:
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
