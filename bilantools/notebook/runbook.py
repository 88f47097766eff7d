"""The set-up every curated runbook (notebooks/0*.ipynb) shares, as one call.

`setup` resolves the target (``DATABASE_URL``, exactly as the command line reads it, else a
fresh database of the runbook's own in the sandbox, so that every run starts from the same
empty state and two runs never collide), sets pandas' display, and gives jupysql's ``%sql``
a read-only session on that target. The returned `Runbook` holds what the later cells use
(``target``, ``own_database``, ``engine``, ``may_change``, ``backups()``); the table helpers
below turn the front door's results into the DataFrames the runbooks display.

Inside a kernel only: the runbooks print what they set up (the masked target, never a
password), which nbval compares with the stored output.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bilantools import commands

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


@dataclass(frozen=True)
class Runbook:
    """What `setup` resolved for the cells that follow it."""

    target: commands.Target
    own_database: bool  # a fresh sandbox database of this run, not DATABASE_URL
    engine: sqlalchemy.Engine  # read-only, the one %sql uses; no URL, so no password in it
    yes: bool = False  # the runbook's `yes` parameter, like --yes

    def may_change(self, what: str) -> bool:
        """As on the command line: the sandbox changes freely; any other database needs
        yes=True here, or the confirmation of a panel."""
        if self.target.is_sandbox or self.yes:
            return True
        print(f"not run: {what} on {self.target.masked} needs the parameter yes=True, or a panel's Confirm")
        return False

    def backups(self, backup_dir: str | None) -> str:
        """The directory backups go to (printed): `backup_dir`, else ../backups for
        DATABASE_URL; the runbook's own database keeps its backups beside the sandbox."""
        if backup_dir is None:
            own = commands.sandbox().home / "backups" / self.target.dbname
            backup_dir = str(own) if self.own_database else "../backups"
        print("backups:", f"the sandbox's backups/{self.target.dbname}/" if self.own_database else backup_dir)
        return backup_dir


def setup(name: str, *, yes: bool = False) -> Runbook:
    """The target of runbook `name` (e.g. "00_quickstart": its own database is
    ``nb_00_quickstart_<random>``), pandas' display and a read-only jupysql session."""
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]  # pandas ships no types

    os.environ.setdefault("BILANTOOLS_HOME", str(PROJECT_SANDBOX.resolve()))
    own_database = os.environ.get("DATABASE_URL") is None
    if own_database:  # a fresh, empty sandbox database for this run only
        target = commands.resolve_target(
            target=commands.sandbox().new_db(f"nb_{name}_{secrets.token_hex(3)}")
        )
    else:  # None: DATABASE_URL, read exactly as the command line reads it
        target = commands.resolve_target(target=None)
    pd.set_option("display.max_rows", 500)
    pd.set_option("display.max_colwidth", 200)
    origin = "a new sandbox database for this run" if own_database else "from DATABASE_URL"
    print(f"target: {target.masked} ({target.kind}, {origin})")
    runbook = Runbook(target, own_database, read_only_engine(target), yes)
    _connect_jupysql(runbook.engine)
    return runbook


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


def html(frame: Any) -> Any:
    """A table as HTML only: its plain-text form would align columns on durations and sizes."""
    from IPython.display import HTML

    return HTML(frame.to_html(index=False, na_rep=""))  # type: ignore[no-untyped-call, unused-ignore]


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
