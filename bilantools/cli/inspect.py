"""The commands that read: status, plan, check, graph, validate, verify, drift, detect,
inspect, fingerprint and stats. None of them changes a database."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from bilantools import commands
from bilantools.cli.everyday import show_table
from bilantools.cli.flags import Context, json_option, pass_ctx, range_options
from bilantools.cli.output import emit, print_json, print_status, print_table
from bilantools.commands import Finding, Migration, RunOptions
from bilantools.errors import RefusedError
from bilantools.render.diff import cells, short_diff
from bilantools.render.graphviz import render_dot
from bilantools.render.plots import save_all
from bilantools.render.stats import render_text


@click.command()
@json_option
@pass_ctx
def status(obj: Context, as_json: bool) -> None:
    """Show each migration: applied, pending, failed, changed, outdated (a repeatable one) or
    missing-file."""
    result = commands.status(target=obj.target(), project=obj.project)
    name_unread([f for f in obj.project.migrations.findings if f.leaves_file_out])
    if as_json:
        print_json(result.as_dict())
        return
    print_status(result)


@click.command()
@range_options
@click.option("--sql", "as_sql", is_flag=True, help="Print the exact SQL apply would run.")
@json_option
@pass_ctx
def plan(obj: Context, to: str | None, step: int | None, as_sql: bool, as_json: bool) -> None:
    """List the migrations apply would run, in order (or their SQL with --sql)."""
    if as_sql:
        click.echo(
            commands.plan_sql(target=obj.target(), project=obj.project, options=RunOptions(to=to, step=step)),
            nl=False,
        )
        return
    todo = commands.plan(target=obj.target(), project=obj.project, options=RunOptions(to=to, step=step))
    if as_json:
        print_json({"target": obj.target().masked, "migrations": [_plan_item(m) for m in todo]})
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
    print_table(["VERSION", "NAME", "TRANSACTION", "DEPENDS"], rows)
    click.echo(f"{len(todo)} migration(s) to apply")


@click.command()
@json_option
@pass_ctx
def validate(obj: Context, as_json: bool) -> None:
    """Exit 1 when files changed or vanished after apply, versions clash or rollbacks lack."""
    findings = commands.validate(target=obj.target(), project=obj.project)
    failing = [f for f in findings if f.severity in ("error", "warning")]
    if as_json:
        print_json({"findings": [f.as_dict() for f in findings]})
    else:
        for f in findings:
            click.echo(f"{f.severity}: [{f.rule}] {f.one_line()}")
        click.echo(f"{len(failing)} problem(s) found" if failing else "valid: no problems found")
    sys.exit(1 if failing else 0)


@click.command()
@click.option("--all", "show_all", is_flag=True, help="List every object, not only the problems.")
@json_option
@pass_ctx
def verify(obj: Context, show_all: bool, as_json: bool) -> None:
    """Per applied migration, the objects it creates: ok, missing or changed; exit 1 if not all ok."""
    result = commands.verify(target=obj.target(), project=obj.project)
    if as_json:
        print_json(result.as_dict())
    else:
        rows = [
            [
                r.migration,
                r.kind,
                r.name,
                r.status.upper() if r.status != "ok" else "ok",
                *cells(r.expected, r.found),
            ]
            for r in result.rows
            if show_all or r.status != "ok"
        ]
        if rows:
            print_table(["MIGRATION", "KIND", "NAME", "STATUS", "EXPECTED", "FOUND"], rows)
        for r in result.rows:
            lines = short_diff(r.expected, r.found) if r.status == "changed" else []
            if len(lines) > 2:  # more than the table's cells show
                click.echo(f"{r.kind} {r.name} ({r.migration}): - expected, + found")
                click.echo("\n".join(f"  {line}" for line in lines))
        print_table(
            ["MIGRATION", "OBJECTS", "OK", "MISSING", "CHANGED"],
            [[str(v) for v in s.values()] for s in result.summary()],
        )
        problems = sum(1 for r in result.rows if r.status != "ok")
        click.echo(
            f"{len(result.rows)} objects verified: " + (f"{problems} problem(s)" if problems else "all ok")
        )
        if result.scripts is not None:  # a Sqitch project's verify scripts
            failed = [s for s in result.scripts if not s.ok]
            shown = result.scripts if show_all else failed
            if shown:
                print_table(
                    ["CHANGE", "VERIFY", "SCRIPT", "ERROR"],
                    [
                        [
                            s.change,
                            "ok" if s.ok else "FAILED",
                            f"{s.file}:{s.line}" if s.line else s.file,
                            s.error or "",
                        ]
                        for s in shown
                    ],
                )
            outcome = f"{len(failed)} failed" if failed else "all ok"
            click.echo(f"{len(result.scripts)} verify script(s) run: {outcome}")
        for index in result.invalid_indexes:
            click.echo(index.one_line())
    sys.exit(0 if result.ok else 1)


@click.command()
@json_option
@pass_ctx
def drift(obj: Context, as_json: bool) -> None:
    """Objects no migration creates, and created ones that are absent or changed; exit 1 if any."""
    found = commands.drift(target=obj.target(), project=obj.project)
    if as_json:
        print_json(found.as_dict())
    else:
        labels = {
            "unexpected": "not created by any migration",
            "absent": "created by a migration, absent",
            "changed": "definition differs from the migrations",
        }
        for key, label in labels.items():
            for item in found.lists()[key]:
                click.echo(f"{item}: {label}")
                if item in found.definitions:
                    for line in short_diff(*found.definitions[item]):
                        click.echo(f"  {line}")
        click.echo(f"{found.total} difference(s)" if found.total else "no drift")
    sys.exit(1 if found.total else 0)


@click.command()
@json_option
@pass_ctx
def detect(obj: Context, as_json: bool) -> None:
    """For a database migrated by hand: each migration's share of objects present, and the
    version to baseline. Writes nothing."""
    found = commands.detect(target=obj.target(), project=obj.project)
    if as_json:
        print_json(found.as_dict())
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
    print_table(["VERSION", "NAME", "OBJECTS", "PRESENT", "SHARE"], rows)
    if found.tracked is not None and found.tracked[1]:
        table, applied = found.tracked
        click.echo(
            f"tracked: {table} records {len(applied)} applied migration(s), the last {applied[-1]}: "
            "no baseline needed; see 'bilantools status' (and 'verify' for what differs)"
        )
    elif found.suggested:
        click.echo(f"suggested: bilantools baseline --to {found.suggested}")
    else:
        click.echo("no migration is fully present: nothing to baseline; apply from the start")


@click.command("inspect")
@click.argument("kind", type=click.Choice([*(k.replace("_", "-") for k in commands.INSPECTIONS), "table"]))
@click.argument("name", required=False)
@click.option("--all", "show_all", is_flag=True, help="Also list the rows without a problem.")
@json_option
@pass_ctx
def inspect_command(obj: Context, kind: str, name: str | None, show_all: bool, as_json: bool) -> None:
    """Inspect the live catalog: tables (sizes), indexes (unused, duplicate), RLS, functions...
    or one table in full (inspect table NAME)."""
    from bilantools.render import inspection

    if kind == "table" or name is not None:
        show_table(obj, kind, name, as_json)
        return
    frame = commands.inspect(kind=kind.replace("-", "_"), target=obj.target())
    if as_json:
        rows = inspection.records(frame)
        click.echo(json.dumps({"kind": kind, "rows": rows}, ensure_ascii=False, default=str, allow_nan=False))
    elif frame.empty:
        click.echo(f"no {kind}")
    else:
        click.echo(inspection.text(kind.replace("-", "_"), frame, show_all))


@click.command()
@click.option("--details", is_flag=True, help="Also list every object and its detail hash.")
@json_option
@pass_ctx
def fingerprint(obj: Context, details: bool, as_json: bool) -> None:
    """A stable hash of the schema (the one round trips and backups compare)."""
    import hashlib

    found = commands.fingerprint(target=obj.target())
    objects = {
        f"{k}\t{n}": hashlib.md5(d.encode()).hexdigest() for (k, n), d in sorted(found.objects.items())
    }
    if as_json:
        print_json({"fingerprint": found.digest, **({"objects": objects} if details else {})})
        return
    if details:
        for key, digest in objects.items():
            click.echo(f"{key.replace(chr(9), ' ')}  {digest}")
    click.echo(found.digest)


@click.command()
@click.option(
    "--severity",
    type=click.Choice(["error", "warning", "info"]),
    default="info",
    show_default=True,
    help="Show only findings of this severity or worse (the exit code still comes from errors).",
)
@click.option(
    "--rule",
    "rules",
    multiple=True,
    metavar="RULE",
    help="Only this rule (repeatable; 'squawk': all of squawk's).",
)
@click.option("--ignore", "ignored", multiple=True, metavar="RULE", help="Leave this rule out (repeatable).")
@json_option
@pass_ctx
def check(
    obj: Context, severity: str, rules: tuple[str, ...], ignored: tuple[str, ...], as_json: bool
) -> None:
    """Find every problem of the migrations directory, without a database; exit 1 on errors.

    Errors come first, then warnings, then notes, grouped by rule with a count per rule."""
    selected = commands.check(project=obj.project).only(rules=frozenset(rules), ignore=frozenset(ignored))
    shown = selected.only(severity)
    if as_json:
        print_json({**shown.as_dict(), "layout": obj.project.layout})
    else:
        for level, rule, findings in shown.by_rule():
            click.echo(f"{level} [{rule}] ×{len(findings)}")
            print_findings(findings)
        counts = selected.counts()
        hidden = len(selected.findings) - len(shown.findings)
        tail = f" ({hidden} below --severity {severity} not shown)" if hidden else ""
        click.echo(
            f"{len(selected.migrations)} migration(s) checked: {counts['error']} error(s), "
            f"{counts['warning']} warning(s), {counts['info']} note(s){tail}"
        )
    sys.exit(1 if selected.errors else 0)


def print_findings(findings: list[Finding]) -> None:
    """Each finding on a line that starts with file:line (editors jump to it), and its fix."""
    for f in findings:
        where = f"{f.file}:{f.line}" if f.line else f.file
        click.echo(f"{where}: {f.severity}: [{f.rule}] {f.message}")
        if f.hint:
            click.echo(f"    fix: {f.hint}")


@click.command()
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
    """Draw the dependency graph: inferred and declared edges, forward references in red.

    Files left out or read only in part are named on stderr; a migration the parser rejects
    (drawn with what its other statements create) makes the exit code 1."""
    report = commands.check(project=obj.project)
    analysis = report.analysis
    if fmt == "text":
        data: bytes = analysis.to_text().encode()
    elif fmt == "dot":
        data = analysis.to_dot().encode()
    else:
        data = render_dot(analysis.to_dot(), fmt)
    emit(data, fmt, output, "--output")
    unread = report.unread()
    name_unread(unread)
    sys.exit(1 if any(not f.leaves_file_out for f in unread) else 0)


def name_unread(findings: list[Finding]) -> None:
    """One line on stderr per file a command could not read, or read only in part (the
    statements around a syntax error)."""
    for f in findings:
        where = "" if f.line else f"{f.file}: "  # one_line names the file with its line only
        click.echo(f"{'not read' if f.leaves_file_out else 'read in part'}: {where}{f.one_line()}", err=True)


@click.command()
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
@json_option
@pass_ctx
def stats(obj: Context, exact_rows: bool, plots_dir: str | None, as_json: bool) -> None:
    """The schema overview: totals, categories with sizes, flags, largest tables and indexes."""
    result = commands.stats(target=obj.target(), project=obj.project, exact_rows=exact_rows)
    if plots_dir:
        try:
            written = save_all(result, plots_dir)
        except ImportError:
            raise RefusedError("--plots needs matplotlib: pip install 'bilantools[notebooks]'") from None
        for path in written:
            click.echo(f"written: {path}", err=True)
    if as_json:
        print_json(result.as_dict())
        return
    click.echo(render_text(result), nl=False)


def _plan_item(m: Migration) -> dict[str, Any]:
    return {
        "version": m.version,
        "name": m.name,
        "file": str(m.path),
        "transaction": m.transactional,
        "depends": list(m.depends),
    }
