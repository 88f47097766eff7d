"""Versions are numbers: `001_users.sql` renamed `1_users.sql` is the same migration.

The README says versions are compared as numbers. Every statement that finds a history
row by version (the rollback's DELETE, the upsert of a success or a failure, repair, the
dry run, the partial flag of status) must find the row written under the other spelling,
and keep the text as first written.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from tests.faults.conftest import Figures

USERS = "CREATE TABLE users (id int PRIMARY KEY);\n"
USERS_ROLLBACK = "DROP TABLE users;\n"


def rename(directory: Path, old: str, new: str) -> None:
    for suffix in (".sql", "_rollback.sql"):
        (directory / f"{old}{suffix}").rename(directory / f"{new}{suffix}")


def rows(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    return conn.execute("SELECT version, success FROM schema_migrations ORDER BY id").fetchall()


def users_exists(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('users') IS NOT NULL").fetchone() == (True,)


def write_users(directory: Path, version: str, body: str = USERS) -> None:
    directory.mkdir(exist_ok=True)
    (directory / f"{version}_users.sql").write_text(body)
    (directory / f"{version}_users_rollback.sql").write_text(USERS_ROLLBACK)


def test_renamed_file_rolls_back_and_reapplies_as_one_row(
    db_url: str, tmp_path: Path, conn: psycopg.Connection, cli: object, figures: Figures
) -> None:
    migrations = tmp_path / "m"
    write_users(migrations, "001")
    base = ("--db", db_url, "--migrations", str(migrations))
    assert cli(*base, "apply").code == 0  # type: ignore[operator]
    rename(migrations, "001_users", "1_users")

    status = cli(*base, "status", "--json")  # type: ignore[operator]
    assert '"state": "applied"' in status.out and "missing-file" not in status.out
    assert "pending" not in status.out

    dry = cli(*base, "rollback", "--to", "0", "--dry-run")  # type: ignore[operator]
    assert dry.code == 0 and "would roll back" in dry.err + dry.out

    done = cli(*base, "rollback", "--to", "0", "--yes")  # type: ignore[operator]
    assert done.code == 0, done.err
    assert not users_exists(conn)
    assert rows(conn) == []  # before: the '001' row stayed

    again = cli(*base, "apply")  # type: ignore[operator]
    assert again.code == 0, again.err
    assert rows(conn) == [("1", True)]
    assert users_exists(conn)
    figures.add("versions: renamed-file round trips")


def test_a_failed_row_is_retried_and_repaired_under_its_first_spelling(
    db_url: str, tmp_path: Path, conn: psycopg.Connection, cli: object
) -> None:
    migrations = tmp_path / "m"
    write_users(migrations, "001", "CREATE TABLE users (id int PRIMARY KEY, nope nosuchtype);\n")
    base = ("--db", db_url, "--migrations", str(migrations))
    assert cli(*base, "apply").code == 1  # type: ignore[operator]
    assert rows(conn) == [("001", False)]

    # repair clears the failed row found by number
    rename(migrations, "001_users", "01_users")
    assert cli(*base, "repair", "--yes").code == 0  # type: ignore[operator]
    assert rows(conn) == []

    # fail again, rename, fix: the retry overwrites the failed row (one row, first spelling)
    rename(migrations, "01_users", "001_users")
    assert cli(*base, "apply").code == 1  # type: ignore[operator]
    rename(migrations, "001_users", "1_users")
    write_users(migrations, "1")
    retried = cli(*base, "apply")  # type: ignore[operator]
    assert retried.code == 0, retried.err
    assert rows(conn) == [("001", True)]
    status = cli(*base, "status", "--json")  # type: ignore[operator]
    assert status.out.count('"state": "applied"') == 1 and "missing-file" not in status.out


def test_half_way_flag_follows_the_number(db_url: str, tmp_path: Path, cli: object) -> None:
    """A `transaction: off` migration that failed half-way as 001, then renamed 1 and
    fixed, is applied and no longer half-way (its latest apply event is found by number)."""
    migrations = tmp_path / "m"
    off = "-- transaction: off\n"
    write_users(migrations, "001", off + "CREATE TABLE users (id int PRIMARY KEY);\nSELECT 1/0;\n")
    base = ("--db", db_url, "--migrations", str(migrations))
    assert cli(*base, "apply").code == 1  # type: ignore[operator]
    assert '"partial": true' in cli(*base, "status", "--json").out  # type: ignore[operator]

    rename(migrations, "001_users", "1_users")
    write_users(migrations, "1", off + "CREATE TABLE IF NOT EXISTS users (id int PRIMARY KEY);\n")
    assert cli(*base, "apply").code == 0  # type: ignore[operator]
    status = cli(*base, "status", "--json").out  # type: ignore[operator]
    assert '"state": "applied"' in status and '"partial": false' in status
