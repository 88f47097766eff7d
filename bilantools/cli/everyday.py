"""The everyday commands every migration tool has: history (the event log), new (the next
migration's files), erd (the schema's diagram), and `inspect table NAME`."""

from __future__ import annotations

from pathlib import Path

import click

from bilantools import commands
from bilantools.cli.flags import Context, json_option, pass_ctx
from bilantools.cli.output import emit, print_json, print_table
from bilantools.errors import InputError
from bilantools.render.erd import to_dot
from bilantools.render.graphviz import IMAGE_FORMATS, render_dot
from bilantools.render.text import human_bytes


@click.command()
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Only the newest N events.")
@click.option("--version", "version", metavar="VERSION", help="Only the events of this migration.")
@json_option
@pass_ctx
def history(obj: Context, limit: int | None, version: str | None, as_json: bool) -> None:
    """The event log, newest first: when, who, what, outcome, duration, backup, run."""
    target = obj.target()
    events = commands.history(target=target, project=obj.project, limit=limit, version=version)
    if as_json:
        print_json({"target": target.masked, "events": [e.as_dict() for e in events]})
        return
    if not events:
        which = f" of version {version}" if version is not None else ""
        click.echo(f"no event{which}: nothing was applied, rolled back, baselined or repaired yet")
        return
    fleet = any(e.rollout_id for e in events)  # a ROLLOUT column once a fleet ran here
    rows = [
        [
            e.at.isoformat(sep=" ", timespec="seconds"),
            e.who,
            e.action,
            e.version or "-",
            e.outcome if e.outcome == "success" else e.outcome.upper(),
            "" if e.duration_ms is None else str(e.duration_ms),
            Path(e.backup).name if e.backup else "-",
            e.run_id[:8],
        ]
        + ([e.rollout_id[:8] if e.rollout_id else "-"] if fleet else [])
        for e in events
    ]
    headers = ["WHEN", "WHO", "ACTION", "VERSION", "OUTCOME", "MS", "BACKUP", "RUN"]
    print_table(headers + (["ROLLOUT"] if fleet else []), rows)
    for e in events:  # what went wrong, as the event recorded it
        if e.outcome != "success" and e.detail:
            click.echo(f"{e.version or '-'} {e.action} {e.outcome} ({e.run_id[:8]}): {e.detail}")
    click.echo(f"{len(events)} event(s), newest first")


@click.command()
@click.argument("name")
@click.option(
    "--layout",
    metavar="NAME",
    help="Make the files of this layout: " + ", ".join(commands.LAYOUTS) + " (default: the project's).",
)
@json_option
@pass_ctx
def new(obj: Context, name: str, layout: str | None, as_json: bool) -> None:
    """Create the next migration and its rollback (each layout's own files), numbered after
    the highest; never overwrites a file."""
    written = commands.new(name=name, project=obj.migrations if layout else obj.project, layout=layout)
    if as_json:
        print_json({"files": [str(p) for p in written]})
        return
    for path in written:
        click.echo(str(path))


@click.command()
@click.option(
    "--category", metavar="NAME", help="Only this category of categories.toml (default: all tables)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice([*IMAGE_FORMATS, "dot"]),
    default="svg",
    show_default=True,
    help="An image drawn by Graphviz, or its dot source.",
)
@click.option("--out", "-o", type=click.Path(dir_okay=False), metavar="FILE", help="Write to this file.")
@json_option
@pass_ctx
def erd(obj: Context, category: str | None, fmt: str, out: str | None, as_json: bool) -> None:
    """Draw the entity-relationship diagram of the live schema: tables, their primary and
    foreign key columns, and the foreign keys between them."""
    model = commands.erd(target=obj.target(), project=obj.project, category=category)
    if as_json:
        print_json(model.as_dict())
        return
    title = f"{category or 'all tables'}: {len(model.tables)} table(s)"
    source = to_dot(model, title)
    emit(source.encode() if fmt == "dot" else render_dot(source, fmt), fmt, out, "--out")


def show_table(obj: Context, kind: str, name: str | None, as_json: bool) -> None:
    """`inspect table NAME`: the table's facts, its CREATE script, the foreign keys into it."""
    if kind != "table":
        raise InputError(f"inspect {kind} takes no name; to see one table: bilantools inspect table {name}")
    if name is None:
        raise InputError("inspect table needs the table's name: bilantools inspect table NAME")
    found = commands.inspect_table(name=name, target=obj.target())
    if as_json:
        print_json({"kind": "table", **found.as_dict()})
        return
    rows = "never analysed" if found.estimated_rows is None else f"about {found.estimated_rows} rows"
    rls = ("on, forced" if found.force_rls else "on") if found.rls else "off"
    click.echo(
        f"table {found.name}: {human_bytes(found.total_bytes)} (table {human_bytes(found.table_bytes)}, "
        f"indexes {human_bytes(found.index_bytes)}), {rows}, row level security {rls}, "
        f"{len(found.policies)} policy(ies), {len(found.triggers)} trigger(s)"
    )
    click.echo("")
    click.echo(found.create_sql())
    if found.indexes:
        print_table(
            ["INDEX", "SIZE", "VALID"],
            [[i.name, human_bytes(i.bytes), "yes" if i.valid else "NO"] for i in found.indexes],
        )
    outgoing = [[k.name, k.definition] for k in found.foreign_keys]
    incoming = [[f"{r.table}.{r.name}", r.definition] for r in found.referenced_by]
    for title, listed in (("FOREIGN KEY OUT", outgoing), ("FOREIGN KEY IN", incoming)):
        click.echo("")
        if listed:
            print_table([title, "DEFINITION"], listed)
        else:
            click.echo(f"{title.lower()}: none")
