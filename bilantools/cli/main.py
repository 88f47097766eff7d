"""The command line: each command is one call of `bilantools.commands`.

The target is printed first (masked) on stderr; stdout carries the result, and with
``--json`` exactly one JSON object. Exit codes: 0 success, 1 findings or a failed
migration, 2 bad usage, bad input, unreachable or refused database. This module holds
the group with the global options, the commands it is made of, and the one place
errors are printed (`main`), where an error's option placeholders become flags.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

import click

from bilantools import __version__, commands
from bilantools.cli.flags import Context, spell
from bilantools.cli.lazy import LazyCommands
from bilantools.errors import BilanToolsError

# Each command by name, as "module:attribute": a module is imported only when one of its
# commands runs (or --help lists them all), so `bilantools status` pays for no other's imports.
COMMANDS = {
    "status": "bilantools.cli.inspect:status",
    "plan": "bilantools.cli.inspect:plan",
    "validate": "bilantools.cli.inspect:validate",
    "verify": "bilantools.cli.inspect:verify",
    "drift": "bilantools.cli.inspect:drift",
    "detect": "bilantools.cli.inspect:detect",
    "inspect": "bilantools.cli.inspect:inspect_command",
    "fingerprint": "bilantools.cli.inspect:fingerprint",
    "check": "bilantools.cli.inspect:check",
    "graph": "bilantools.cli.inspect:graph",
    "stats": "bilantools.cli.inspect:stats",
    "apply": "bilantools.cli.run:apply",
    "rollback": "bilantools.cli.run:rollback",
    "baseline": "bilantools.cli.run:baseline",
    "repair": "bilantools.cli.run:repair",
    "adopt": "bilantools.cli.adopt:adopt",
    "backup": "bilantools.cli.backup:backup",
    "restore": "bilantools.cli.backup:restore",
    "runbook": "bilantools.cli.runbook:runbook",
    "sandbox": "bilantools.cli.sandbox:sandbox",
    "fleet": "bilantools.cli.fleet:fleet",
    "locks": "bilantools.cli.locks:locks",
    "history": "bilantools.cli.everyday:history",
    "new": "bilantools.cli.everyday:new",
    "erd": "bilantools.cli.everyday:erd",
}


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, commands=LazyCommands(COMMANDS))
@click.option("--db", metavar="URL", help="Database URL (default: $DATABASE_URL, else the sandbox).")
@click.option(
    "--migrations",
    "migrations",
    default=commands.DEFAULT_MIGRATIONS,
    show_default=True,
    metavar="DIR",
    help="Directory of migrations (ours, golang-migrate's, dbmate's, Flyway's, or a Sqitch project's).",
)
@click.option(
    "--layout",
    metavar="NAME",
    help="How the migrations are named: one of " + ", ".join(commands.LAYOUTS) + " (default: detected).",
)
@click.option(
    "--pg-bin",
    metavar="DIR",
    envvar="BILANTOOLS_PG_BIN",
    help="PostgreSQL server binaries for the sandbox (default: the embedded ones).",
)
@click.version_option(__version__, prog_name="bilantools")
@click.pass_context
def cli(ctx: click.Context, db: str | None, migrations: str, layout: str | None, pg_bin: str | None) -> None:
    """Migrate, verify and roll back the BilanCompetence.AI PostgreSQL schema."""
    ctx.obj = Context(db, migrations, pg_bin, layout)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: one line on stderr and the error's exit code for a BilanToolsError."""
    try:
        with commands.stop_on_signals():  # SIGTERM and SIGHUP unwind like Ctrl-C: every cleanup runs
            cli.main(
                args=list(argv) if argv is not None else None, prog_name="bilantools", standalone_mode=False
            )
    except commands.Stopped as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(commands.redact(f"error: {exc.format_message()}"), err=True)
        sys.exit(exc.exit_code)
    except BilanToolsError as exc:
        click.echo(f"error: {exc.render(spell)}", err=True)
        sys.exit(exc.exit_code)
    except Exception:  # a bug: show it, masked, and say so
        click.echo(commands.redact(traceback.format_exc()), err=True)
        click.echo(
            "error: internal error in bilantools (see the traceback above); please report it", err=True
        )
        sys.exit(2)
    sys.exit(0)
