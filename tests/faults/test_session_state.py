"""Session state set by one migration does not leak into the next one of the same run.

Migration 002 of each case changes the session (search_path, a pg_dump-style set_config,
a timeout, the role, the session user, a temporary table); 003 creates the table `probe`
recording what it sees. Applied in one run or in two runs, the result must be the same
(the tables of every schema with their owners, and the probe's row), and rolling 003
back must remove the table it created.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from bilantools.db.sandbox import Sandbox
from tests.conftest import TEMPLATE
from tests.faults.conftest import Figures

PROBE = (
    "CREATE TABLE probe AS SELECT current_user::text AS who, session_user::text AS session,"
    " current_setting('search_path') AS path, current_setting('lock_timeout') AS lock_timeout,"
    " current_setting('statement_timeout') AS statement_timeout,"
    " current_setting('DateStyle') AS datestyle,"
    " (SELECT count(*) FROM pg_class WHERE relpersistence = 't' AND relkind = 'r') AS temp_tables;\n"
)
# 002's statement ({role} is a role made for the test); 002 qualifies its own table.
LEAKS = {
    "search-path": "SET search_path = other, public;",
    "pg-dump-set-config": "SELECT pg_catalog.set_config('search_path', '', false);",
    "lock-timeout": "SET lock_timeout = 0;",
    "statement-timeout": "SET statement_timeout = '123s';",
    "datestyle": "SET DateStyle = 'SQL, DMY';",
    "set-role": "SET ROLE {role};",
    "session-authorization": "SET SESSION AUTHORIZATION {role};",
    "temp-table": "CREATE TEMP TABLE scratch AS SELECT 1 AS n;",
}


@pytest.fixture
def second_db(server: Sandbox) -> Iterator[str]:
    name = "t_" + uuid.uuid4().hex[:12]
    yield server.new_db(name, template=TEMPLATE)
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def role(db_url: str, second_db: str) -> Iterator[str]:
    """A role that may create in schema public of both databases."""
    name = "bt_leak_" + uuid.uuid4().hex[:10]
    ident = sql.Identifier(name)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {}").format(ident))
    for url in (db_url, second_db):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(ident))
    yield name
    for url in (db_url, second_db):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(ident))


def write(directory: Path, leak: str, fourth_rollback: str = "DROP TABLE public.t4;\n") -> None:
    directory.mkdir()
    bodies = {
        "001_schema": ("CREATE SCHEMA other;\n", "DROP SCHEMA other;\n"),
        "002_leak": (f"CREATE TABLE public.t2 (id int);\n{leak}\n", "DROP TABLE public.t2;\n"),
        "003_probe": (PROBE, "DROP TABLE IF EXISTS probe;\n"),
        "004_last": ("CREATE TABLE public.t4 (id int);\n", fourth_rollback),
    }
    for name, (body, rollback) in bodies.items():
        (directory / f"{name}.sql").write_text(body)
        (directory / f"{name}_rollback.sql").write_text(rollback)


def seen(url: str) -> tuple[Any, ...]:
    """Every user table (schema, name, owner) and the probe's row, wherever it was made."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r'"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"
            " ORDER BY 1, 2"
        ).fetchall()
        probes = [(schema, name) for schema, name, _ in tables if name == "probe"]
        rows = [
            conn.execute(sql.SQL("SELECT * FROM {}.{}").format(*map(sql.Identifier, where))).fetchall()
            for where in probes
        ]
        return tables, rows


@pytest.mark.parametrize("case", list(LEAKS))
def test_one_run_and_two_runs_give_the_same_schema(
    case: str, db_url: str, second_db: str, role: str, tmp_path: Path, cli: Any, figures: Figures
) -> None:
    migrations = tmp_path / "m"
    write(migrations, LEAKS[case].format(role=role))
    base = ("--migrations", str(migrations))
    limit = ("--lock-timeout", "7s")
    together = cli("--db", db_url, *base, "apply", *limit)
    assert together.code == 0, together.err
    assert cli("--db", second_db, *base, "apply", "--to", "002", *limit).code == 0
    apart = cli("--db", second_db, *base, "apply", *limit)
    assert apart.code == 0, apart.err

    tables, probe = seen(db_url)
    assert (tables, probe) == seen(second_db)
    assert ("public", "probe", "postgres") in tables
    assert probe == [[("postgres", "postgres", '"$user", public', "7s", "0", "ISO, MDY", 0)]]

    back = cli("--db", db_url, *base, "rollback", "--step", "2")
    assert back.code == 0, back.err
    assert not [t for t in seen(db_url)[0] if t[1] == "probe"]
    figures.add("session state: leaks reset between migrations")


def test_a_rollback_script_leaks_nothing_into_the_next_one(db_url: str, tmp_path: Path, cli: Any) -> None:
    migrations = tmp_path / "m"
    write(
        migrations,
        "",
        "DROP TABLE public.t4;\nSELECT pg_catalog.set_config('search_path', 'other', false);\n",
    )
    base = ("--db", db_url, "--migrations", str(migrations))
    assert cli(*base, "apply").code == 0
    back = cli(*base, "rollback", "--to", "0", "--yes")
    assert back.code == 0, back.err
    left = [table for table in seen(db_url)[0] if not table[1].startswith("schema_migration")]
    assert left == []  # before: 003's DROP TABLE IF EXISTS probe looked in 'other' only


def test_a_session_the_engine_cannot_reset_is_one_line(db_url: str, tmp_path: Path, cli: Any) -> None:
    """A cursor WITH HOLD left open on a temporary table stops DISCARD TEMP: the migration
    is rolled back with a line that says so, not a raw server error."""
    migrations = tmp_path / "m"
    hold = "CREATE TEMP TABLE scratch AS SELECT 1 AS n;\nDECLARE held CURSOR WITH HOLD FOR TABLE scratch;"
    write(migrations, hold)
    run = cli("--db", db_url, "--migrations", str(migrations), "apply")
    assert run.code == 1, run.err
    assert run.err.strip().splitlines()[-1] == (
        "error: migration 002 (002_leak.sql) left its session in a state the engine cannot reset (ERROR "
        '55006: cannot DROP TABLE "scratch" because it is being used by active queries in this session); '
        "it was rolled back: close what the file opens (a cursor WITH HOLD) before its end"
    )
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT to_regclass('public.t2')").fetchone() == (None,)
