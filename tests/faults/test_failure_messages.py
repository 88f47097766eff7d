"""A migration that breaks what the engine does around it: the error names the migration,
the file:line and the statement that caused it, never "check the user's privileges".

Before, the tracking write (or COMMIT) failing after a migration's last statement escaped
the runner as a raw server error, and the CLI said "<target> refused the apply: ERROR ...;
check the user's privileges and the server's state" (exit 2) with no migration named:
after `SET SESSION AUTHORIZATION`, `SET search_path`, a deferred constraint failing at
COMMIT. Now the session is reset before the engine records a migration (those switches
no longer break the record: last test), a deferred constraint is named, and privileges
are blamed only for a 42501 on the connected role (tests/faults/test_privileges.py). A
migration that drops or alters the tracking objects is tests/faults/test_tampering.py's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.conftest import tables
from tests.faults.conftest import Figures

BASE = ["people", "schema_migration_events", "schema_migrations"]


@pytest.fixture
def role(conn: psycopg.Connection) -> Iterator[str]:
    """A role with no privileges of its own; dropped afterwards."""
    name = "bt_other_" + uuid.uuid4().hex[:8]
    conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(name)))
    yield name
    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def apply(cli: Any, db_url: str, basic: Path, *args: str) -> tuple[int, str]:
    r = cli("--db", db_url, "--migrations", str(basic), "apply", *args)
    lines = r.err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("target: "), r.err
    return r.code, lines[1]


def history(conn: psycopg.Connection) -> list[tuple[str, bool]]:
    rows = conn.execute("SELECT version, success FROM schema_migrations ORDER BY version").fetchall()
    return [(str(v), bool(s)) for v, s in rows]


def failed_004(conn: psycopg.Connection) -> str:
    row = conn.execute("SELECT error_message FROM schema_migrations WHERE version = '004'").fetchone()
    assert row is not None
    return str(row[0])


def test_a_statement_refused_to_the_role_the_migration_switched_to(
    cli: Any, db_url: str, conn: psycopg.Connection, basic: Path, role: str, figures: Figures
) -> None:
    """The connected role (the owner) may create tables: the refusal is the migration's doing."""
    (basic / "004_role.sql").write_text(f"SET ROLE {role};\nCREATE TABLE t4 (id int);\n")
    code, error = apply(cli, db_url, basic)
    assert (code, error) == (
        1,
        "error: migration 004_role failed at 004_role.sql:2: ERROR 42501: permission denied for schema "
        "public (statement: CREATE TABLE t4 (id int)); its changes were rolled back and the failure "
        "recorded: fix the file and run apply again (it ran as the role set at 004_role.sql:1 "
        f"(statement: SET ROLE {role}), not as postgres)",
    )
    assert history(conn) == [("001", True), ("002", True), ("003", True), ("004", False)]
    figures.add("failure messages: cases")


def test_a_deferred_constraint_failing_at_commit(
    cli: Any, db_url: str, conn: psycopg.Connection, basic: Path, figures: Figures
) -> None:
    (basic / "004_deferred.sql").write_text(
        "CREATE TABLE parent (id int PRIMARY KEY);\n"
        "CREATE TABLE child (parent_id int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);\n"
        "INSERT INTO child VALUES (1);\n"
    )
    code, error = apply(cli, db_url, basic)
    assert (code, error) == (
        1,
        "error: migration 004_deferred failed after its last statement, at its COMMIT: ERROR 23503: "
        'insert or update on table "child" violates foreign key constraint "child_parent_id_fkey"; '
        "its last statement: 004_deferred.sql:3 (statement: INSERT INTO child VALUES (1)); its changes "
        "were rolled back and the failure recorded: fix the file and run apply again",
    )
    assert history(conn) == [("001", True), ("002", True), ("003", True), ("004", False)]
    assert tables(conn) == BASE
    figures.add("failure messages: cases")


def test_an_altered_tracking_table_is_not_blamed_on_privileges(
    cli: Any, db_url: str, conn: psycopg.Connection, basic: Path, figures: Figures
) -> None:
    """Outside any migration (reading the history) the server's error is named as it is."""
    assert cli("--db", db_url, "--migrations", str(basic), "apply").code == 0
    conn.execute("ALTER TABLE schema_migrations DROP COLUMN applied_by")
    r = cli("--db", db_url, "--migrations", str(basic), "status")
    assert (r.code, r.err.strip().splitlines()[-1]) == (
        2,
        f"error: the status on {db_url} failed: ERROR 42703: column m.applied_by does not exist; fix what "
        "the error names, then run the status again",
    )
    figures.add("failure messages: cases")


@pytest.mark.parametrize("header", ["", "-- transaction: off\n"], ids=["transaction", "transaction-off"])
@pytest.mark.parametrize(
    "switch",
    ["SET SESSION AUTHORIZATION {role}", "SET ROLE {role}", "SET search_path = other"],
    ids=["session-authorization", "role", "search-path"],
)
def test_a_session_the_migration_switched_is_reset_before_the_engine_records_it(
    cli: Any,
    db_url: str,
    conn: psycopg.Connection,
    basic: Path,
    role: str,
    header: str,
    switch: str,
    figures: Figures,
) -> None:
    """Once the tracking write failed after such a switch (and the CLI blamed privileges);
    now the session is reset first: the migration is recorded as the connected role, and
    the next one runs in the session the run started with."""
    conn.execute("CREATE SCHEMA other")
    statement = switch.format(role=role)
    (basic / "004_switch.sql").write_text(f"{header}CREATE TABLE t4 (id int);\n{statement};\n")
    (basic / "005_next.sql").write_text("CREATE TABLE t5 (id int);\n")
    r = cli("--db", db_url, "--migrations", str(basic), "apply")
    assert r.code == 0, r.err
    assert history(conn)[-2:] == [("004", True), ("005", True)]
    owners = conn.execute(
        "SELECT c.relnamespace::regnamespace::text, c.relname, pg_get_userbyid(c.relowner)"
        " FROM pg_class c WHERE c.relname IN ('t4', 't5') ORDER BY 2"
    ).fetchall()
    assert owners == [("public", "t4", "postgres"), ("public", "t5", "postgres")]
    figures.add("failure messages: cases")
