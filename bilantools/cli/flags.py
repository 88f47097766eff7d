"""What the commands share: the invocation's `Context` and the flags of several commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import click

from bilantools import commands
from bilantools.commands import DEFAULT_LOCK_TIMEOUT, DEFAULT_WAIT, DURATION_HINT, Project, RunOptions, Target

# Front-door parameters whose flag is not their name with dashes (--force, --lock-wait...).
FLAG_NAMES = {"target": "--db", "project": "--migrations", "fmt": "--format", "source": "--from"}


def spell(name: str, value: str | None) -> str:
    """An error's option placeholder as this CLI's flag: ``--force`` (a switch, or the
    option itself), ``--lock-wait 60``."""
    flag = FLAG_NAMES.get(name, "--" + name.replace("_", "-"))
    return flag if value in (None, "True") else f"{flag} {value}"


# Commands that only read a database: without --db or DATABASE_URL they use the sandbox if
# it runs and never start it (a server they would leave running).
READ_ONLY = frozenset(
    {"status", "plan", "validate", "verify", "drift", "detect", "inspect", "stats", "fingerprint"}
    | {"history", "locks", "erd"}
)
# Commands that read the --migrations directory: a missing or unreadable one stops them
# before the target is resolved (before any server is started).
READS_MIGRATIONS = READ_ONLY - {"inspect", "stats", "fingerprint", "locks", "erd"} | {
    *("apply", "rollback", "baseline", "repair", "adopt")
}


class Context:
    """The global options of one invocation; the target and the project are read once."""

    def __init__(
        self, db: str | None, migrations: str, pg_bin: str | None, layout: str | None = None
    ) -> None:
        self.db = db
        self.migrations = migrations
        self.pg_bin = pg_bin
        self.layout = layout
        self._target: Target | None = None
        self._project: Project | None = None
        self._announced = False

    def resolved(self) -> Target | None:
        """The target if it was resolved already (None when resolving it failed)."""
        return self._target

    def target(self) -> Target:
        """Resolve once and announce it on stderr before anything else happens.

        The command's inputs are checked first (its migrations directory), and a read-only
        command does not start the sandbox: bad input leaves no server and no .bilantools/."""
        if self._target is None:
            command = _top_command()
            if command in READS_MIGRATIONS:
                self._loaded().migrations  # noqa: B018 -- read now: a missing directory stops here
            self._target = commands.resolve_target(
                target=self.db, pg_bin=self.pg_bin, start=command not in READ_ONLY
            )
            click.echo(
                f"target: {self._target.masked} ({self._target.kind}, from {self._target.source})", err=True
            )
        return self._target

    def _loaded(self) -> Project:
        if self._project is None:
            self._project = Project.load(self.migrations, self.layout)
        return self._project

    @property
    def project(self) -> Project:
        """The --migrations directory, read once (on first use) for the whole invocation.

        Its layout is announced on stderr, as the target is, unless it is our own and was
        detected (the output of a bilantools directory stays as it was)."""
        project = self._loaded()
        if not self._announced:
            self._announced = True
            source = {"given": "from --layout", "pyproject.toml": "from pyproject.toml"}
            if project.layout != "bilantools" or project.layout_source != "detected":
                how = source.get(project.layout_source, project.layout_source)
                click.echo(f"layout: {project.layout} ({how})", err=True)
        return project


def _top_command() -> str | None:
    """The name of the bilantools command being run (``status``; ``backup`` for ``backup list``)."""
    ctx = click.get_current_context(silent=True)
    while ctx is not None and ctx.parent is not None and ctx.parent.parent is not None:
        ctx = ctx.parent
    return ctx.info_name if ctx is not None and ctx.parent is not None else None


pass_ctx = click.make_pass_decorator(Context)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")(f)


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def option_group(*options: Decorator) -> Decorator:
    """One decorator for flags that go together, listed in the order --help shows them."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


range_options = option_group(
    click.option("--to", metavar="VERSION", help="Stop at this version."),
    click.option("--step", type=click.IntRange(min=1), metavar="N", help="Only the next N migrations."),
)

backup_options = option_group(
    click.option(
        "--no-backup",
        is_flag=True,
        help="Skip the full backup taken before changing a database other than the sandbox.",
    ),
    click.option(
        "--backup-dir",
        default=commands.DEFAULT_BACKUP_DIR,
        show_default=True,
        metavar="DIR",
        help="Where the automatic backup goes.",
    ),
)


class Duration(click.ParamType):  # type: ignore[type-arg]
    """A PostgreSQL duration ('500ms', '10s', '5min', '0'), normalised."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        duration = commands.parse_duration(str(value))
        if duration is None:
            self.fail(f"{value} is not a duration; {DURATION_HINT}", param, ctx)
        return duration


limit_options = option_group(
    click.option(
        "--lock-timeout",
        type=Duration(),
        default=DEFAULT_LOCK_TIMEOUT,
        show_default=True,
        metavar="DURATION",
        help="Give up on a lock after this long (rather than stall the queries behind it); the first "
        "attempt's wait: later ones grow per [tool.bilantools.lock-retries].",
    ),
    click.option(
        "--statement-timeout",
        type=Duration(),
        default=None,
        metavar="DURATION",
        help="Cancel a statement that runs longer (default: the server's setting).",
    ),
)

change_options = option_group(
    click.option(
        "--lock-wait",
        type=click.FloatRange(min=0),
        default=DEFAULT_WAIT,
        show_default=True,
        metavar="SECONDS",
        help="How long to wait for another run's migration lock.",
    ),
    click.option("--yes", is_flag=True, help="Do not ask for confirmation."),
)


def run_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Gather a command's run flags (--to, --dry-run, --no-backup, --lock-wait, --yes...)
    into the one `RunOptions` the command receives as `options`."""
    names = {field.name for field in fields(RunOptions)}

    @functools.wraps(f)
    def with_options(*args: Any, **flags: Any) -> Any:
        backup = False if flags.pop("no_backup", False) else None
        chosen = {name: flags.pop(name) for name in list(flags) if name in names}
        return f(*args, options=RunOptions(backup=backup, **chosen), **flags)

    return with_options


def run_flags(*, force: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The flags of apply and rollback (--force only with apply), in their help order,
    gathered into one `RunOptions`."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        f = backup_options(limit_options(change_flags(f)))
        if force:
            f = click.option(
                "--force", is_flag=True, help="Apply despite forward references (never syntax errors)."
            )(f)
        f = click.option("--dry-run", is_flag=True, help="Run in a transaction that is rolled back.")(f)
        return range_options(f)

    return decorate


def change_flags(f: Callable[..., Any]) -> Callable[..., Any]:
    """--lock-wait, --yes and --json of every changing command, gathered into one
    `RunOptions` with the command's other run flags."""
    return change_options(json_option(pass_ctx(run_options(f))))
