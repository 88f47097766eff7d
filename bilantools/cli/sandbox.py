"""`sandbox`: the local embedded PostgreSQL server, its databases and URLs."""

from __future__ import annotations

from typing import Any

import click

from bilantools import commands
from bilantools.cli.flags import Context, json_option, pass_ctx
from bilantools.cli.output import print_json


@click.group()
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
@json_option
@pass_ctx
def sandbox_status(obj: Context, as_json: bool) -> None:
    """Is the sandbox running, on which port, which PostgreSQL version."""
    info = _box(obj).status()
    if as_json:
        print_json(info)
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


@sandbox.command("new-dbs")
@click.argument("count", type=click.IntRange(min=1))
@click.option("--prefix", default="db", show_default=True, help="Names are PREFIX_001, PREFIX_002, ...")
@pass_ctx
def sandbox_new_dbs(obj: Context, count: int, prefix: str) -> None:
    """Create COUNT empty databases and print their URLs, one a line (a local fleet)."""
    for url in _box(obj).new_dbs(count, prefix):
        click.echo(url)


@sandbox.command("replica")
@click.argument("action", type=click.Choice(["start", "stop", "status"]))
@click.option("--name", default="replica", show_default=True, help="Which replica of the sandbox.")
@json_option
@pass_ctx
def sandbox_replica(obj: Context, action: str, name: str, as_json: bool) -> None:
    """Start, stop or show a streaming replica of the sandbox (a standby on its own port);
    start prints its URL."""
    box = _box(obj)
    if action == "start":
        click.echo(box.start_replica(name))
        return
    if action == "stop":
        click.echo("stopped" if box.stop_replica(name) else f"the replica {name} was not running")
        return
    info = box.replica_status(name)
    if as_json:
        print_json(info)
    elif info["running"]:
        click.echo(f"running: replica {name}, pid {info['pid']}, {info['url']}")
    else:
        click.echo(f"not running (start it with 'bilantools sandbox replica start --name {name}')")
