"""A migration that tampers with the engine's own tracking objects never reports success.

Each case puts one tampering statement in migration 003 (or a rollback script) of a
four-migration directory and runs the CLI in-process against a real database. Batches
are made to grow whatever the machine's speed, so 003 travels with 002 in the run's
second pipelined batch, in one round trip: the proof must fail on the server before
003's COMMIT. The run must stop with the one line that names the migration, its file and
what it changed, exit 1, and leave the schema (fingerprint with row counts), the history
rows, the event log and the tracking functions exactly as a run that stopped before 003.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools.db import runner
from bilantools.db.fingerprint import fingerprint
from bilantools.db.sandbox import Sandbox
from tests.conftest import TEMPLATE
from tests.faults.conftest import Figures

RECORD_MIGRATION = (
    "CREATE OR REPLACE FUNCTION record_migration(p_version varchar, p_description text,"
    " p_checksum varchar DEFAULT NULL, p_applied_by text DEFAULT current_user,"
    " p_execution_time_ms integer DEFAULT NULL) RETURNS void LANGUAGE sql AS $$ SELECT $$;"
)
SKIP_INSERTS = (
    "CREATE FUNCTION skip_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;\n"
    "CREATE TRIGGER skip BEFORE INSERT ON schema_migrations FOR EACH ROW EXECUTE FUNCTION skip_row();"
)
# (statement in 003, what the error line must say it changed)
TAMPERING = {
    "delete-history": ("DELETE FROM schema_migrations;", "2 history row(s) deleted"),
    "delete-one-row": ("DELETE FROM schema_migrations WHERE version = '001';", "1 history row(s) deleted"),
    "update-row": (
        "UPDATE schema_migrations SET checksum = 'forged' WHERE version = '002';",
        "history row(s) 002 added or changed",
    ),
    "reinsert-every-row": (
        "DELETE FROM schema_migrations; INSERT INTO schema_migrations (version, checksum)"
        " SELECT v, 'x' FROM generate_series(1, 9) AS g, LATERAL (SELECT lpad(g::text, 3, '0') AS v) AS f;",
        "history row(s) 001, 002, 004, 005, 006 (and 3 more) added or changed",
    ),
    "insert-row": (
        "INSERT INTO schema_migrations (version, description) VALUES ('900', 'forged');",
        "history row(s) 900 added or changed",
    ),
    "truncate-history": (
        "TRUNCATE schema_migrations;",
        "schema_migrations was truncated or rewritten",
    ),
    "replace-record-migration": (
        RECORD_MIGRATION,
        "its history row is missing; function record_migration(varchar,text,varchar,text,integer) "
        "was redefined or dropped",
    ),
    "replace-migration-applied": (
        "CREATE OR REPLACE FUNCTION migration_applied(p_version varchar) RETURNS boolean"
        " LANGUAGE sql STABLE AS $$ SELECT true $$;",
        "function migration_applied(varchar) was redefined or dropped",
    ),
    "drop-get-status": (
        "DROP FUNCTION get_migration_status();",
        "function get_migration_status() was redefined or dropped",
    ),
    "drop-table": (
        "DROP TABLE schema_migrations CASCADE;",
        'its tracking write failed: ERROR 42P01: relation "schema_migrations" does not exist',
    ),
    "not-null-column": (
        "ALTER TABLE schema_migrations ADD COLUMN owner_team int NOT NULL DEFAULT 0;\n"
        "ALTER TABLE schema_migrations ALTER COLUMN owner_team DROP DEFAULT;",
        'its tracking write failed: ERROR 23502: null value in column "owner_team" of relation '
        '"schema_migrations" violates not-null constraint',
    ),
    "drop-column": (
        "ALTER TABLE schema_migrations DROP COLUMN error_message;",
        'its tracking write failed: ERROR 42703: column "error_message" of relation "schema_migrations" '
        "does not exist",
    ),
    "rewrite-table": (
        "ALTER TABLE schema_migrations ALTER COLUMN checksum TYPE text USING upper(checksum);",
        "schema_migrations was truncated or rewritten",
    ),
    "trigger-skips-row": (SKIP_INSERTS, "its history row is missing"),
    "delete-events": ("DELETE FROM schema_migration_events;", "rows of schema_migration_events were deleted"),
    "drop-events": (
        "DROP TABLE schema_migration_events;",
        'its tracking write failed: ERROR 42P01: relation "schema_migration_events" does not exist',
    ),
    "rename-record-migration": (
        "ALTER FUNCTION record_migration(varchar, text, varchar, text, integer) RENAME TO old_record;",
        "its tracking write failed: ERROR 42883: function record_migration(",
    ),
}


@pytest.fixture(autouse=True)
def batches_grow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 1, 2, 4... migrations, even on a slow machine (see Runner._run_all)."""
    monkeypatch.setattr(runner, "GROW_BELOW", 3600.0)


def write(directory: Path, third: str, third_rollback: str = "DROP TABLE c;\n", header: str = "") -> None:
    """`check` refuses most of these files before anything runs (rule tracking-object): the
    directory turns that rule off, as a project may, so that the engine's own proof is what
    is tested (the defence behind the check, and the only one for SQL that check cannot
    read, such as EXECUTE of a built string)."""
    directory.mkdir()
    (directory / "pyproject.toml").write_text('[tool.bilantools]\ndisable = ["tracking-object"]\n')
    bodies = {
        "001_a": "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n",
        "002_b": "CREATE TABLE b (id int);\n",
        "003_tamper": f"{header}CREATE TABLE c (id int);\n{third}\n",
        "004_d": "CREATE TABLE d (id int);\n",
    }
    rollbacks = {"001_a": "DROP TABLE a;\n", "002_b": "DROP TABLE b;\n", "003_tamper": third_rollback}
    for name, body in bodies.items():
        (directory / f"{name}.sql").write_text(body)
        (directory / f"{name}_rollback.sql").write_text(rollbacks.get(name, "DROP TABLE d;\n"))


def state(url: str) -> tuple[Any, ...]:
    """Schema (fingerprint with row counts, tracking functions included), history rows and
    the event log (without times and run ids), and the history table's columns."""
    with psycopg.connect(url, autocommit=True) as conn:
        history = conn.execute(
            "SELECT version, checksum, success, error_message FROM schema_migrations ORDER BY id"
        ).fetchall()
        events = conn.execute(
            "SELECT version, action, outcome FROM schema_migration_events ORDER BY id"
        ).fetchall()
        columns = conn.execute(
            "SELECT attname, atttypid, attnotnull FROM pg_attribute"
            " WHERE attrelid = 'schema_migrations'::regclass AND attnum > 0 ORDER BY attnum"
        ).fetchall()
        return fingerprint(conn).digest, history, events, columns


@pytest.fixture
def reference(server: Sandbox) -> Iterator[str]:
    """A second fresh database: where the run is stopped by hand before 003."""
    name = "t_" + uuid.uuid4().hex[:12]
    yield server.new_db(name, template=TEMPLATE)
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampering_migration_is_rolled_back(
    case: str, db_url: str, reference: str, tmp_path: Path, cli: Any, figures: Figures
) -> None:
    statement, what = TAMPERING[case]
    migrations = tmp_path / "m"
    write(migrations, statement)
    assert cli("--db", reference, "--migrations", str(migrations), "apply", "--to", "002").code == 0
    before = state(reference)

    run = cli("--db", db_url, "--migrations", str(migrations), "apply")
    assert run.code == 1, run.err
    line = run.err.strip().splitlines()[-1]
    assert line.startswith(
        f"error: migration 003 (003_tamper.sql) changed the engine's tracking objects ({what}"
    ), line
    assert line.endswith("); it was rolled back: remove that statement from the file"), line
    assert "Traceback" not in run.err
    assert state(db_url) == before
    dry = cli("--db", reference, "--migrations", str(migrations), "apply", "--dry-run")
    assert "failed" in dry.out and "(003_tamper.sql) changed the engine's tracking objects (" in dry.out
    assert state(reference) == before
    figures.add("tampering: kinds refused")


def test_a_column_the_engine_does_not_write_is_allowed(db_url: str, tmp_path: Path, cli: Any) -> None:
    migrations = tmp_path / "m"
    write(migrations, "ALTER TABLE schema_migrations ADD COLUMN note text;")
    run = cli("--db", db_url, "--migrations", str(migrations), "apply")
    assert run.code == 0, run.err
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT version, success FROM schema_migrations ORDER BY id").fetchall()
    assert rows == [("001", True), ("002", True), ("003", True), ("004", True)]


def test_the_guides_manual_record_of_its_own_version_is_allowed(
    db_url: str, tmp_path: Path, cli: Any
) -> None:
    """The guide records a migration by hand with record_migration(); a file that keeps
    that line for its own version writes the row the engine writes: not tampering."""
    migrations = tmp_path / "m"
    write(migrations, "SELECT record_migration('003', 'tamper', NULL, CURRENT_USER, 1500);")
    run = cli("--db", db_url, "--migrations", str(migrations), "apply")
    assert run.code == 0, run.err
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT version, checksum IS NOT NULL, success FROM schema_migrations ORDER BY id"
        )
        assert rows.fetchall() == [(v, True, True) for v in ("001", "002", "003", "004")]


def test_tampering_rollback_script_is_rolled_back(
    db_url: str, reference: str, tmp_path: Path, cli: Any
) -> None:
    migrations = tmp_path / "m"
    write(migrations, "", "DROP TABLE c;\nDELETE FROM schema_migrations WHERE version = '001';\n")
    for url in (db_url, reference):
        assert cli("--db", url, "--migrations", str(migrations), "apply").code == 0
    assert cli("--db", reference, "--migrations", str(migrations), "rollback", "--step", "1").code == 0
    before = state(reference)

    run = cli("--db", db_url, "--migrations", str(migrations), "rollback", "--to", "0", "--yes")
    assert run.code == 1, run.err
    assert run.err.strip().splitlines()[-1] == (
        "error: rollback of 003 (003_tamper_rollback.sql) changed the engine's tracking objects "
        "(1 history row(s) deleted); it was rolled back: remove that statement from the file"
    )
    assert state(db_url) == before  # 004 rolled back, 003's rollback undone, 002 not reached


def test_a_rollback_script_that_keeps_its_row_is_refused(db_url: str, tmp_path: Path, cli: Any) -> None:
    migrations = tmp_path / "m"
    keep = (
        "DROP TABLE c;\n"
        "CREATE FUNCTION keep_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;\n"
        "CREATE TRIGGER keep BEFORE DELETE ON schema_migrations FOR EACH ROW EXECUTE FUNCTION keep_row();\n"
    )
    write(migrations, "", keep)
    assert cli("--db", db_url, "--migrations", str(migrations), "apply", "--to", "003").code == 0
    run = cli("--db", db_url, "--migrations", str(migrations), "rollback", "--yes")
    assert run.code == 1, run.err
    assert "rollback of 003 (003_tamper_rollback.sql) changed the engine's tracking objects" in run.err
    assert "its history row is still there" in run.err
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT to_regclass('c') IS NOT NULL").fetchone() == (True,)


# (statement in a `-- transaction: off` 003, what the error line must say it changed)
COMMITTED = {
    "delete-one-row": ("DELETE FROM schema_migrations WHERE version = '001';", "1 history row(s) deleted"),
    "update-row": (
        "UPDATE schema_migrations SET success = false WHERE version = '002';",
        "history rows of other migrations changed",
    ),
    "replace-migration-applied": (
        TAMPERING["replace-migration-applied"][0],
        "function migration_applied(varchar) was redefined or dropped",
    ),
    "drop-column": TAMPERING["drop-column"],
}


@pytest.mark.parametrize("case", list(COMMITTED))
def test_tampering_outside_a_transaction_is_reported_as_committed(
    case: str, db_url: str, tmp_path: Path, cli: Any
) -> None:
    statement, what = COMMITTED[case]
    migrations = tmp_path / "m"
    write(migrations, statement, header="-- transaction: off\n")
    run = cli("--db", db_url, "--migrations", str(migrations), "apply")
    assert run.code == 1, run.err
    line = run.err.strip().splitlines()[-1]
    assert line.startswith(
        f"error: migration 003 (003_tamper.sql) changed the engine's tracking objects ({what}"
    ), line
    assert line.endswith(
        "; it runs outside a transaction, so that change had committed and the history is no longer "
        "right: restore the tracking objects (the backup taken before the run has them), remove that "
        "statement from the file, then run apply again"
    ), line
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT to_regclass('d') IS NULL").fetchone() == (True,)  # 004 never ran
