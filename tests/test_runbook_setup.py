"""bilantools.notebook.runbook.setup, the runbooks' shared set-up, in a real IPython shell.

Each case runs in its own Python process (an InteractiveShell is a process-wide singleton
that would change how the other tests' widgets display), against the test server.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools.db.sandbox import Sandbox
from bilantools.notebook.runbook import SCRATCH_MARK

SCRIPT = r"""
import json
from IPython.core.interactiveshell import InteractiveShell

from bilantools.notebook.runbook import setup

shell = InteractiveShell.instance()
runbook = setup("09_test", yes=False)
magic = shell.find_magic("sql").__self__
settings = {name: getattr(magic, name) for name in ("short_errors", "displaycon", "displaylimit")}
read_only = shell.run_line_magic("sql", "SHOW default_transaction_read_only").dict()
try:
    shell.run_line_magic("sql", "CREATE TABLE written_by_jupysql (a int)")
    write = "succeeded"
except Exception as exc:  # short_errors off: the server's refusal raises
    write = type(exc).__name__ + ": " + str(exc).splitlines()[0]
print("RESULT " + json.dumps({
    "dbname": runbook.target.dbname,
    "own_database": runbook.own_database,
    "settings": settings,
    "read_only": read_only,
    "write": write,
    "may_change": runbook.may_change("apply"),
    "backups": runbook.backups(None),
    "version": shell.run_line_magic("sql", "SHOW server_version").dict()["server_version"][0],
}))
"""


def run(env: dict[str, str], cwd: Path) -> tuple[dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    printed, _, result = done.stdout.partition("RESULT ")
    # the shell shows the banner's widget as its repr first: the lines after it are the text
    shown = "".join(line for line in printed.splitlines(keepends=True) if not line.startswith("HTML("))
    return json.loads(result.splitlines()[0]), shown  # jupysql says "Closing ..." at exit


def test_setup_on_database_url_reads_only_and_raises_sql_errors(db_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": db_url}
    result, printed = run(env, tmp_path)
    assert result["dbname"] == db_url.rsplit("/", 1)[1]
    assert result["own_database"] is False
    assert result["settings"] == {"short_errors": False, "displaycon": False, "displaylimit": 0}
    assert result["read_only"] == {"default_transaction_read_only": ["on"]}
    assert "read-only transaction" in result["write"]
    assert result["may_change"] is True  # the test server is a sandbox
    assert result["backups"] == "../backups"
    [heading, where, _note] = printed.splitlines()[:3]
    host, port = db_url.split("@", 1)[1].split("/", 1)[0].split(":")
    dbname = db_url.rsplit("/", 1)[1]
    assert heading == (
        f"✅ sandbox · server {host}:{port} · database {dbname} · role postgres · "
        f"PostgreSQL {result['version']} · read-write (superuser)"
    )
    assert where == f"{db_url} (from DATABASE_URL) · migrations: ../migrations"
    assert "backups: ../backups" in printed
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT to_regclass('written_by_jupysql')").fetchone() == (None,)


def test_setup_without_database_url_works_on_a_scratch_database_dropped_at_the_end(
    server: Sandbox, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"BILANTOOLS_HOME": str(server.home)}
    orphan = "nb_09_orphan_abcdef"  # left by a kernel that was killed: its pid is gone
    server.new_db(orphan)
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute(f"COMMENT ON DATABASE {orphan} IS '{SCRATCH_MARK}999999999 on {socket.gethostname()}'")
    result, printed = run(env, tmp_path)
    assert result["own_database"] is True
    assert result["dbname"].startswith("nb_09_test_") and len(result["dbname"]) == len("nb_09_test_") + 6
    where = printed.splitlines()[1]
    scratch = "scratch database, dropped at the end: no DATABASE_URL"
    assert where.endswith(f"/{result['dbname']} ({scratch}) · migrations: ../migrations")
    assert "from --db" not in printed
    assert result["backups"] == str(server.home / "backups" / result["dbname"])
    assert f"backups: the sandbox's backups/{result['dbname']}/" in printed
    with psycopg.connect(server.url("postgres")) as conn:
        left = {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'nb_09_%'")}
    assert left == set()  # its own dropped when the process ended, the orphan when it started


def test_may_change_refuses_another_database_without_yes(capsys: pytest.CaptureFixture[str]) -> None:
    from bilantools import commands
    from bilantools.notebook.runbook import Runbook

    target = commands.resolve_target(target="postgresql://app:s3cret@db.example:5432/bilan")
    runbook = Runbook(target, own_database=False, engine=None, yes=False)  # type: ignore[arg-type]
    assert runbook.may_change("apply") is False
    out = capsys.readouterr().out
    assert out == (
        "not run: apply on postgresql://app:***@db.example:5432/bilan needs the parameter yes=True, "
        "or a panel's Confirm\n"
    )
    assert Runbook(target, own_database=False, engine=None, yes=True).may_change("apply")  # type: ignore[arg-type]
