"""`bilantools adopt`: take over another tool's history (see `bilantools.db.adopt`)."""

from __future__ import annotations

import sys

import click

from bilantools import commands
from bilantools.cli.flags import Context, change_flags, spell
from bilantools.cli.output import confirm, print_json, print_table
from bilantools.commands import RunOptions
from bilantools.errors import BilanToolsError


@click.command()
@click.option(
    "--from",
    "source",
    metavar="TOOL",
    help="The tool whose history to read: golang-migrate, dbmate, flyway or sqitch (default: the layout's).",
)
@click.option("--dry-run", is_flag=True, help="Show what would be recorded; record nothing.")
@change_flags
def adopt(obj: Context, options: RunOptions, as_json: bool, source: str | None) -> None:
    """Record as applied what the tool that migrated the database says it applied, without
    running anything; then show what the catalog confirms. Exit 1 when it does not
    confirm every object of those migrations."""
    try:
        target = obj.target()
        if not options.dry_run:
            confirm(target, "record another tool's history as applied on", options)
        result = commands.adopt(target=target, project=obj.project, options=options, source=source)
    except BilanToolsError as exc:
        if as_json:
            print_json({"ok": False, "error": exc.render(spell), "failure": exc.kind})
        raise
    if as_json:
        print_json({"ok": True, "error": None, **result.as_dict()})
        sys.exit(result.exit_code)
    recorded, already = set(result.recorded), set(result.already)
    rows = [
        [
            c["version"],
            c["name"],
            "recorded" if c["version"] in recorded else "already" if c["version"] in already else "-",
            str(c["objects"]),
            str(c["present"]),
            "-" if c["share"] is None else f"{c['share']:.0%}",
        ]
        for c in result.confirmed
    ]
    click.echo(f"{result.tool}'s history {result.history} -> {result.tracking}")
    if rows:
        print_table(["VERSION", "NAME", "HISTORY", "OBJECTS", "PRESENT", "SHARE"], rows)
    if result.no_file:
        click.echo(f"{result.tool} applied, with no migration file here: {', '.join(result.no_file)}")
    if result.never:
        click.echo(f"never applied by {result.tool} (pending: 'bilantools apply'): {', '.join(result.never)}")
    if result.unconfirmed:
        click.echo(
            f"not confirmed by the catalog (objects missing: 'bilantools verify' names them): "
            f"{', '.join(result.unconfirmed)}"
        )
    if result.dry_run:
        click.echo(f"dry run: {len(result.recorded)} migration(s) would be recorded, nothing was changed")
    elif result.recorded:
        click.echo(f"{len(result.recorded)} migration(s) adopted")
    else:
        click.echo(
            f"nothing to adopt: the {len(result.already)} migration(s) {result.tool} applied are already "
            "in bilantools' history"
        )
    sys.exit(result.exit_code)
