"""`check` offers the safe form of each statement that locks an existing table while it scans
or builds: as the finding's fix and, in --json, its SQL ("safe_sql"); the safe forms
themselves draw no such finding; the timeouts the engine sets are notes, not warnings.
The SQL it offers is run on a real server, on a table with rows, to show that it does what
the fix says.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import psycopg

from bilantools.source.check import check
from bilantools.source.lint import squawk_binary

TABLES = """
    CREATE TABLE IF NOT EXISTS orgs (id bigint PRIMARY KEY);
    CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, org_id bigint, age bigint, email text);
    CREATE INDEX IF NOT EXISTS users_email ON users (email);
    """
RISKY = """
    ALTER TABLE users ADD CONSTRAINT users_org FOREIGN KEY (org_id) REFERENCES orgs (id);
    ALTER TABLE users ADD CHECK (age > 0);
    CREATE INDEX IF NOT EXISTS users_age ON users (age);
    DROP INDEX IF EXISTS users_email;
    ALTER TABLE users ALTER COLUMN age SET NOT NULL;
    """
LATER = "-- in a later migration:"
OWN = "-- in a migration of its own:\n-- transaction: off"
SAFE_SQL = {
    1: (
        "squawk:adding-foreign-key-constraint",
        "ALTER TABLE users ADD CONSTRAINT users_org FOREIGN KEY (org_id) REFERENCES orgs (id) NOT VALID;\n"
        f"{LATER}\nALTER TABLE users VALIDATE CONSTRAINT users_org;",
    ),
    2: (
        "squawk:constraint-missing-not-valid",
        f"ALTER TABLE users ADD CONSTRAINT users_age_check CHECK (age > 0) NOT VALID;\n{LATER}\n"
        "ALTER TABLE users VALIDATE CONSTRAINT users_age_check;",
    ),
    3: (
        "squawk:require-concurrent-index-creation",
        f"{OWN}\nCREATE INDEX CONCURRENTLY IF NOT EXISTS users_age ON users (age);",
    ),
    4: ("squawk:require-concurrent-index-deletion", f"{OWN}\nDROP INDEX CONCURRENTLY IF EXISTS users_email;"),
    5: (
        "squawk:adding-not-nullable-field",
        "ALTER TABLE users ADD CONSTRAINT users_age_not_null CHECK (age IS NOT NULL) NOT VALID;\n"
        f"{LATER}\nALTER TABLE users VALIDATE CONSTRAINT users_age_not_null;\n"
        "ALTER TABLE users ALTER COLUMN age SET NOT NULL;\n"
        "ALTER TABLE users DROP CONSTRAINT IF EXISTS users_age_not_null;",
    ),
}
COVERED = {rule for rule, _ in SAFE_SQL.values()} | {
    "squawk:constraint-missing-not-valid",
    "squawk:ban-drop-constraint",
}


def project(tmp_path: Path, files: dict[str, str]) -> Path:
    """A migrations directory (with a no-op rollback each) outside the repository's settings."""
    assert squawk_binary(), "squawk is missing: pip install squawk-cli"
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "pyproject.toml").write_text("[tool.bilantools]\n")
    directory = tmp_path / "migrations"
    directory.mkdir()
    for name, text in files.items():
        (directory / f"{name}.sql").write_text(textwrap.dedent(text).lstrip("\n"))
        (directory / f"{name}_rollback.sql").write_text("SELECT 1;\n")
    return directory


def test_each_risky_form_gets_its_safe_form(tmp_path: Path) -> None:
    directory = project(tmp_path, {"001_tables": TABLES, "002_risky": RISKY})
    report = check(directory)
    file = str(directory / "002_risky.sql")
    found = {f.line: (f.rule, f.safe_sql) for f in report.findings if f.file == file and f.safe_sql}
    assert found == SAFE_SQL
    # one finding per statement: squawk's second rule on the foreign key is folded into the first
    first = [f.rule for f in report.findings if f.file == file and f.line == 1]
    assert first == [SAFE_SQL[1][0], "squawk:require-statement-timeout"]
    [index] = [f for f in report.findings if f.file == file and f.line == 3]
    assert index.hint.startswith(
        "build it without blocking writes, in a migration of its own whose header is '-- transaction: off': "
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS users_age ON users (age);"
    )
    [not_null] = [f for f in report.findings if f.file == file and f.line == 5]
    assert "PostgreSQL 12+ does without a scan" in not_null.hint and not_null.hint.endswith(
        "ALTER TABLE users DROP CONSTRAINT IF EXISTS users_age_not_null;"
    )
    # the same statements on tables the migration itself creates: nobody waits, no rows
    report = check(project(tmp_path / "new", {"001_tables": TABLES + RISKY}))
    assert [f for f in report.findings if f.safe_sql or f.rule in COVERED] == []


def test_a_transaction_off_file_gets_the_concurrent_form_in_place(tmp_path: Path) -> None:
    off = "-- transaction: off\nCREATE INDEX IF NOT EXISTS users_age ON users (age);\n"
    directory = project(tmp_path, {"001_tables": TABLES, "002_off": off})
    [finding] = [f for f in check(directory).findings if f.safe_sql]
    assert finding.line == 2
    assert finding.safe_sql == "CREATE INDEX CONCURRENTLY IF NOT EXISTS users_age ON users (age);"
    assert finding.hint.startswith("build it without blocking writes, here: CREATE INDEX CONCURRENTLY")


def test_the_safe_forms_draw_no_lock_finding(tmp_path: Path) -> None:
    """NOT VALID now and VALIDATE later; CONCURRENTLY with '-- transaction: off'; the CHECK
    dropped after SET NOT NULL (squawk's ban-drop-constraint does not apply: NOT NULL holds)."""
    now = "\n".join(sql.split(LATER)[0] for line, (_, sql) in SAFE_SQL.items() if line in (1, 2, 5))
    later = "\n".join(sql.split(LATER + "\n")[1] for line, (_, sql) in SAFE_SQL.items() if line in (1, 2, 5))
    concurrent = "\n".join(
        sql.removeprefix("-- in a migration of its own:\n") for _, sql in (SAFE_SQL[3], SAFE_SQL[4])
    )
    directory = project(
        tmp_path,
        {"001_tables": TABLES, "002_not_valid": now, "003_validate": later, "004_concurrently": concurrent},
    )
    report = check(directory)
    assert [f.one_line() for f in report.findings if f.safe_sql or f.rule in COVERED] == []


def test_the_timeouts_the_engine_sets_are_notes(cli: Any, tmp_path: Path) -> None:
    """squawk asks each file for a lock_timeout; the engine sets one: a note, not a warning,
    except in a file whose header turns the limit off."""
    directory = project(tmp_path, {"001_tables": TABLES, "002_risky": RISKY})
    file = str(directory / "002_risky.sql")
    [note] = [f for f in check(directory).engine_safe if f.file == file]
    assert (note.rule, note.severity, note.line) == ("squawk:require-lock-timeout", "info", 1)
    assert note.message.startswith("the engine sets lock_timeout before this migration runs: this statement")
    r = cli("--migrations", str(directory), "check", "--json")
    assert note.as_dict() in json.loads(r.out)["engine_safe"]
    r = cli("--migrations", str(directory), "check")
    assert "require-lock-timeout" not in r.out
    (directory / "002_risky.sql").write_text("-- lock-timeout: 0\n" + textwrap.dedent(RISKY).lstrip("\n"))
    report = check(directory)
    assert [f for f in report.engine_safe if f.file == file] == []
    assert ("squawk:require-lock-timeout", 2) in {(f.rule, f.line) for f in report.findings if f.file == file}


def test_the_safe_sql_runs_and_does_what_it_says(tmp_path: Path, conn: psycopg.Connection) -> None:
    """On tables with rows: the constraints end valid, the column NOT NULL without the helper
    CHECK, the index built and valid, the other one gone."""
    conn.execute(textwrap.dedent(TABLES))
    conn.execute(
        "INSERT INTO orgs VALUES (1);"
        " INSERT INTO users SELECT g, 1, g, 'u' || g FROM generate_series(1, 500) g"
    )
    for _, sql in SAFE_SQL.values():
        for line in sql.split("\n"):
            if not line.startswith("--"):
                conn.execute(line)  # each its own transaction, as the migrations would be
    constraints: dict[str, bool] = dict(
        conn.execute(
            "SELECT conname, convalidated FROM pg_constraint"
            " WHERE conrelid = 'users'::regclass AND contype IN ('f', 'c')"
        ).fetchall()
    )
    assert constraints == {"users_org": True, "users_age_check": True}
    assert conn.execute(
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'age'"
    ).fetchone() == (True,)
    indexes: dict[str, bool] = dict(
        conn.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE i.indrelid = 'users'::regclass"
        ).fetchall()
    )
    assert indexes == {"users_pkey": True, "users_age": True}
