"""A migration that breaks what the engine does around it: the error names the migration,
the file:line and the statement that caused it, never "check the user's privileges".

Before, the tracking write (or COMMIT) failing after a migration's last statement escaped
the runner as a raw server error, and the CLI said "<target> refused the apply: ERROR ...;
check the user's privileges and the server's state" (exit 2) with no migration named:
after `SET SESSION AUTHORIZATION`, `DROP TABLE schema_migrations`, `SET search_path`, a
deferred constraint failing at COMMIT. Privileges are blamed only for a 42501 on the
connected role (tests/faults/test_privileges.py): a role the migration switched to is
named as the cause.
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


def without_tracking_rule(basic: Path) -> None:
    """`check` refuses these files (rule tracking-object) before anything runs; with the rule
    turned off by the project, the engine still names the statement that broke it."""
    (basic / "pyproject.toml").write_text('[tool.bilantools]\ndisable = ["tracking-object"]\n')


def failed_004(conn: psycopg.Connection) -> str:
    row = conn.execute("SELECT error_message FROM schema_migrations WHERE version = '004'").fetchone()
    assert row is not None
    return str(row[0])


def test_session_authorization_to_a_role_that_may_not_write_the_history(
    cli: Any, db_url: str, conn: psycopg.Connection, basic: Path, role: str, figures: Figures
) -> None:
    (basic / "004_switch.sql").write_text(f"CREATE TABLE t4 (id int);\nSET SESSION AUTHORIZATION {role};\n")
    code, error = apply(cli, db_url, basic)
    assert (code, error) == (
        1,
        "error: migration 004_switch failed after its last statement, when the engine recorded it: "
        "ERROR 42501: permission denied for table schema_migration_events; 004_switch.sql:2 (statement: "
        f"SET SESSION AUTHORIZATION {role}) switches to a role that may not write the history: switch "
        "back before the end of the file (RESET ROLE, RESET SESSION AUTHORIZATION); its changes were "
        "rolled back and the failure recorded: fix the file and run apply again",
    )
    assert history(conn) == [("001", True), ("002", True), ("003", True), ("004", False)]
    assert tables(conn) == BASE
    figures.add("failure messages: cases")


def test_a_dropped_tracking_table(
    cli: Any, db_url: str, conn: psycopg.Connection, basic: Path, figures: Figures
) -> None:
    without_tracking_rule(basic)
    (basic / "004_drop.sql").write_text("CREATE TABLE t4 (id int);\nDROP TABLE schema_migrations;\n")
    (basic / "005_next.sql").write_text("CREATE TABLE t5 (id int);\n")
    code, error = apply(cli, db_url, basic)
    assert (code, error) == (
        1,
        "error: migration 004_drop failed after its last statement, when the engine recorded it: "
        'ERROR 42P01: relation "schema_migrations" does not exist; 004_drop.sql:2 (statement: DROP '
        "TABLE schema_migrations) touches the engine's tracking objects, which a migration must not "
        "change; its changes were rolled back and the failure recorded: fix the file and run apply again",
    )
    assert history(conn) == [("001", True), ("002", True), ("003", True), ("004", False)]
    assert failed_004(conn) == (
        'ERROR 42P01: relation "schema_migrations" does not exist when the engine recorded it; '
        "004_drop.sql:2 (statement: DROP TABLE schema_migrations) touches the engine's tracking objects, "
        "which a migration must not change"
    )
    assert tables(conn) == BASE
    figures.add("failure messages: cases")


def test_a_search_path_change(
    cli: Any, db_url: str, conn: psycopg.Connection, basic: Path, figures: Figures
) -> None:
    (basic / "004_path.sql").write_text("CREATE SCHEMA other;\nSET search_path = other;\n")
    code, error = apply(cli, db_url, basic)
    expected = (
        "migration 004_path failed after its last statement, when the engine recorded it: ERROR 42883: "
        "function record_migration(unknown, unknown, unknown, name, integer) does not exist; 004_path.sql:2 "
        "(statement: SET search_path = other) changes search_path, which the engine's tracking statements "
        "rely on: qualify names with their schema instead, or restore it before the end of the file (RESET "
        "search_path); its changes were rolled back and the failure recorded: fix the file and run apply "
        "again"
    )
    assert (code, error) == (1, f"error: {expected}")
    assert history(conn) == [("001", True), ("002", True), ("003", True), ("004", False)]
    assert conn.execute("SELECT to_regnamespace('other')").fetchone() == (None,)
    figures.add("failure messages: cases")


def test_a_search_path_change_outside_a_transaction(
    cli: Any, db_url: str, conn: psycopg.Connection, basic: Path, figures: Figures
) -> None:
    """Its statements commit one by one, so the SET outlives them: recording its success fails."""
    (basic / "004_path.sql").write_text(
        "-- transaction: off\nCREATE SCHEMA other;\nSET search_path = other;\n"
    )
    code, error = apply(cli, db_url, basic)
    assert (code, error) == (
        1,
        "error: migration 004_path failed after its last statement, when the engine recorded it: ERROR "
        "42883: function record_migration(unknown, unknown, unknown, name, integer) does not exist; "
        "004_path.sql:3 (statement: SET search_path = other) changes search_path, which the engine's "
        "tracking statements rely on: qualify names with their schema instead, or restore it before the "
        "end of the file (RESET search_path); all 2 of its statements had committed (it runs outside a "
        "transaction) and it stays recorded as started and not finished: make the file safe to re-run, "
        "then run apply again",
    )
    assert history(conn) == [("001", True), ("002", True), ("003", True), ("004", False)]
    assert failed_004(conn).startswith("interrupted: started ")
    figures.add("failure messages: cases")


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


def test_a_rollback_that_drops_the_tracking_table(
    cli: Any, db_url: str, conn: psycopg.Connection, basic: Path, figures: Figures
) -> None:
    without_tracking_rule(basic)
    (basic / "003_seed_people_rollback.sql").write_text("DROP TABLE schema_migrations;\n")
    assert cli("--db", db_url, "--migrations", str(basic), "apply").code == 0
    r = cli("--db", db_url, "--migrations", str(basic), "rollback")
    assert (r.code, r.err.strip().splitlines()[-1]) == (
        1,
        "error: rollback of 003_seed_people failed after its last statement, when the engine recorded it: "
        'ERROR 42P01: relation "schema_migrations" does not exist; 003_seed_people_rollback.sql:1 '
        "(statement: DROP TABLE schema_migrations) touches the engine's tracking objects, which a "
        "migration must not change; its changes were rolled back and the migration stays applied: fix the "
        "rollback script and run rollback again",
    )
    assert history(conn) == [("001", True), ("002", True), ("003", True)]
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


def test_session_authorization_outside_a_transaction_outlives_its_statements(
    cli: Any, db_url: str, conn: psycopg.Connection, basic: Path, role: str, figures: Figures
) -> None:
    """The session still runs as the role when the engine records the success: the
    connected role's own privileges are asked by name, and they are not to blame."""
    (basic / "004_switch.sql").write_text(f"-- transaction: off\nSET SESSION AUTHORIZATION {role};\n")
    code, error = apply(cli, db_url, basic)
    assert (code, error) == (
        1,
        "error: migration 004_switch failed after its last statement, when the engine recorded it: "
        "ERROR 42501: permission denied for table schema_migration_events; 004_switch.sql:2 (statement: "
        f"SET SESSION AUTHORIZATION {role}) switches to a role that may not write the history: switch "
        "back before the end of the file (RESET ROLE, RESET SESSION AUTHORIZATION); its one "
        "statement had committed (it runs outside a transaction) and it stays recorded as started and "
        "not finished: make the file safe to re-run, then run apply again",
    )
    assert history(conn) == [("001", True), ("002", True), ("003", True), ("004", False)]
    figures.add("failure messages: cases")
