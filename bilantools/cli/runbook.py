"""`runbook run` and `runbook list`: the curated notebooks executed with papermill."""

from __future__ import annotations

import os

import click

from bilantools import commands
from bilantools.cli.flags import Context, json_option, pass_ctx
from bilantools.cli.output import print_json, print_table


@click.group()
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
    parameters = commands.runbook_parameters(pairs=list(pairs))
    named = obj.db is not None or os.environ.get("DATABASE_URL") is not None
    if not named:  # the runbooks' rule: no database named, a scratch one of the run
        click.echo(
            "target: a scratch database in the sandbox, dropped at the end (no --db, no DATABASE_URL)",
            err=True,
        )
    record = commands.runbook(
        name=name,
        target=obj.target() if named else None,
        parameters=parameters,
        notebooks=notebooks,
        runs=runs,
    )
    click.echo(
        f"{record.notebook}: {record.meta['outcome']} in {record.meta['duration_s']} s; "
        f"executed copy: {record.executed}" + (f" (and {record.html})" if record.html else "")
    )


@runbook.command("list")
@click.option("--runs", default="runs", show_default=True, metavar="DIR")
@json_option
def runbook_list(runs: str, as_json: bool) -> None:
    """Past runs, newest first."""
    found = commands.runbook_history(runs=runs)
    if as_json:
        print_json({"runs": found})
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
    print_table(["WHEN (UTC)", "RUNBOOK", "TARGET", "OUTCOME", "SECONDS", "EXECUTED COPY"], rows)
