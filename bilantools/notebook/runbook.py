"""The set-up every curated runbook (notebooks/0*.ipynb) shares, as one call.

Which database a runbook acts on, the same however it is launched (JupyterLab, `make lab`,
`bilantools runbook run`, papermill, nbval):

* ``DATABASE_URL`` set: that database, read exactly as the command line reads it
  (`bilantools runbook run --db URL` sets it for the kernel);
* else a **scratch database** of this run in the local sandbox (``nb_<runbook>_<random>``),
  created empty, and dropped when the kernel ends (a kernel that was killed leaves its
  database behind: the next `setup` drops those whose kernel is gone).

`setup` shows the banner first (where, who, version, read-only or not, and which of the
two rules chose the database), sets pandas' display, and gives jupysql's ``%sql`` a
read-only session on that target. The returned `Runbook` holds what the later cells use
(``target``, ``own_database``, ``engine``, ``may_change``, ``backups()``); the table
helpers below turn the front door's results into the DataFrames the runbooks display.

Inside a kernel only: the runbooks print what they set up (the masked target, never a
password), which nbval compares with the stored output.
"""

from __future__ import annotations

import atexit
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bilantools import commands
from bilantools.notebook.banner import ORIGINS, TargetBanner
from bilantools.runbooks import SKIPPED

if TYPE_CHECKING:
    import sqlalchemy

# The project's sandbox (the one `make demo` starts), seen from notebooks/; BILANTOOLS_HOME
# names another.
PROJECT_SANDBOX = Path("..", ".bilantools")
# jupysql: a failing %sql raises (its short errors would print and let the cell succeed); no
# connection banner; every row shown; :name parameters.
SQL_SETTINGS = (
    "SqlMagic.short_errors = False",
    "SqlMagic.displaycon = False",
    "SqlMagic.displaylimit = 0",
    'SqlMagic.named_parameters = "enabled"',
)
SCRATCH = "scratch database, dropped at the end: no DATABASE_URL"
# The comment a scratch database carries: whose kernel made it, so that the next setup
# can drop the ones of kernels that are gone.
SCRATCH_MARK = "bilantools runbook scratch database of pid "


@dataclass(frozen=True)
class Runbook:
    """What `setup` resolved for the cells that follow it."""

    target: commands.Target
    own_database: bool  # a scratch database of this run, not DATABASE_URL
    engine: sqlalchemy.Engine  # read-only, the one %sql uses; no URL, so no password in it
    yes: bool = False  # the runbook's `yes` parameter, like --yes

    def may_change(self, what: str) -> bool:
        """As on the command line: the sandbox changes freely; any other database needs
        yes=True here, or the confirmation of a panel."""
        if self.target.is_sandbox or self.yes:
            return True
        print(f"{SKIPPED}{what} on {self.target.masked} needs the parameter yes=True, or a panel's Confirm")
        return False

    def backups(self, backup_dir: str | None) -> str:
        """The directory backups go to (printed): `backup_dir`, else ../backups for
        DATABASE_URL; the runbook's own database keeps its backups beside the sandbox."""
        if backup_dir is None:
            own = commands.sandbox().home / "backups" / self.target.dbname
            backup_dir = str(own) if self.own_database else "../backups"
        print("backups:", f"the sandbox's backups/{self.target.dbname}/" if self.own_database else backup_dir)
        return backup_dir


def setup(name: str, *, yes: bool = False, migrations: str = "../migrations") -> Runbook:
    """The target of runbook `name` (see the module for the rule; e.g. "00_quickstart":
    its scratch database is ``nb_00_quickstart_<random>``), its banner, pandas' display
    and a read-only jupysql session."""
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]  # pandas ships no types

    os.environ.setdefault("BILANTOOLS_HOME", str(PROJECT_SANDBOX.resolve()))
    own_database = os.environ.get("DATABASE_URL") is None
    if own_database:
        target = commands.resolve_target(target=_scratch(name))
        ORIGINS[target.conninfo] = SCRATCH
    else:  # None: DATABASE_URL, read exactly as the command line reads it
        target = commands.resolve_target(target=None)
    pd.set_option("display.max_rows", 500)
    pd.set_option("display.max_colwidth", 200)
    banner = TargetBanner(target, migrations)
    _show(banner)
    print(banner.text)
    runbook = Runbook(target, own_database, read_only_engine(target), yes)
    _connect_jupysql(runbook.engine)
    return runbook


def _scratch(name: str) -> str:
    """A new empty sandbox database for this run, dropped when this process ends; first,
    the scratch databases of kernels that are gone."""
    import psycopg
    from psycopg import sql

    box = commands.sandbox()
    url = box.new_db(f"nb_{name}_{secrets.token_hex(3)}")
    dbname = url.rsplit("/", 1)[1]
    mark = f"{SCRATCH_MARK}{os.getpid()} on {socket.gethostname()}"
    with psycopg.connect(box.url("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(dbname), sql.Literal(mark))
        )
        marked = conn.execute(
            "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database"
            " WHERE shobj_description(oid, 'pg_database') LIKE %s",
            (SCRATCH_MARK + "%",),
        ).fetchall()
    for other, comment in marked:
        pid, _, host = comment.removeprefix(SCRATCH_MARK).partition(" on ")
        if host == socket.gethostname() and not _alive(int(pid)):
            box.drop_db(other)
    atexit.register(_drop, dbname)
    return url


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _drop(dbname: str) -> None:
    """At the kernel's end: drop its scratch database (its connections are closed by force)."""
    try:
        commands.sandbox().drop_db(dbname)
    except Exception:  # the sandbox stopped first: the next setup drops it
        return


def _show(banner: TargetBanner) -> None:
    """Display the banner's widget when running in a kernel."""
    from IPython import get_ipython

    if get_ipython() is not None:
        from IPython.display import display

        display(banner.widget)  # type: ignore[no-untyped-call, unused-ignore]


def read_only_engine(target: commands.Target) -> sqlalchemy.Engine:
    """A SQLAlchemy engine whose sessions are read-only (default_transaction_read_only):
    %sql and pandas read the catalog; every change goes through bilantools.commands, which
    owns its transactions, takes the migration lock and records the history. It is built
    without a URL, so no connection string reaches jupysql's connection list."""
    import psycopg
    import sqlalchemy

    read_only = (target.params.get("options", "") + " -c default_transaction_read_only=on").strip()
    return sqlalchemy.create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(
            target.conninfo, application_name="bilantools notebook (read-only)", options=read_only
        ),
    )


def _connect_jupysql(engine: sqlalchemy.Engine) -> None:
    """%load_ext sql, its settings, then %sql engine (jupysql finds `engine` among the
    caller's locals: IPython passes them to a magic that needs the local scope)."""
    from IPython import get_ipython
    from IPython.utils.capture import capture_output

    shell = get_ipython()
    if shell is None:  # not in a kernel: no %sql to prepare
        return
    with capture_output():  # jupysql's notice about reading settings from ../pyproject.toml: not ours
        shell.run_line_magic("load_ext", "sql")
    for setting in SQL_SETTINGS:
        shell.run_line_magic("config", setting)
    shell.run_line_magic("sql", "engine")


def took(ms: int | None) -> str:
    """Durations as "12 ms" (the runbook's text always names the unit)."""
    return "" if ms is None else f"{ms} ms"


def status_frame(status: commands.Status) -> Any:
    """commands.status() as a table: one row per migration."""
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

    return pd.DataFrame(
        [
            {
                "version": m.version,
                "name": m.name,
                "state": m.state + (" (half-way)" if m.partial else ""),
                "applied at": f"{m.applied_at:%Y-%m-%d %H:%M:%S}" if m.applied_at else "",
                "took": took(m.execution_time_ms),
                "by": m.applied_by or "",
                "error": m.error or "",
            }
            for m in status.migrations
        ],
        columns=["version", "name", "state", "applied at", "took", "by", "error"],
    )


def steps_frame(result: commands.RunResult) -> Any:
    """The steps of an apply / rollback / repair / baseline run as a table."""
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

    return pd.DataFrame(
        [
            {
                "version": s.version,
                "name": s.name,
                "outcome": s.outcome,
                "took": took(s.duration_ms),
                "statements": "" if s.statements is None else s.statements,
                "detail": s.detail or "",
            }
            for s in result.steps
        ],
        columns=["version", "name", "outcome", "took", "statements", "detail"],
    )
