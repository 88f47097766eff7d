"""keep-peer-history: apply and rollback write the peer tool's own history table as that
tool would, in the transaction of our tracking row, so that a team can switch back;
against a real server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools.errors import InputError
from bilantools.source.config import load_config
from bilantools.source.layouts.flyway import flyway_checksum
from tests.conftest import FIXTURES

GOLANG = FIXTURES / "golang_migrate"
DBMATE = FIXTURES / "dbmate"
FLYWAY = FIXTURES / "flyway"


def project(tmp_path: Path, source: Path, settings: str) -> Path:
    directory = tmp_path / "project" / "migrations"
    shutil.copytree(source, directory)
    (directory.parent / "pyproject.toml").write_text(f"[tool.bilantools]\n{settings}\n", encoding="utf-8")
    return directory


def run_sql(url: str, text: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(text)


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def test_golang_migrate_row_kept_in_step(cli: Any, db_url: str, tmp_path: Path) -> None:
    directory = project(tmp_path, GOLANG, "keep-peer-history = true")
    base = ["--db", db_url, "--migrations", str(directory)]
    assert cli(*base, "apply", "--yes", "--to", "20240101000001").code == 0
    # created as golang-migrate creates it, holding the one current version
    assert rows(
        db_url,
        "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = 'schema_migrations' ORDER BY ordinal_position",
    ) == [("version", "bigint", "NO"), ("dirty", "boolean", "NO")]
    golang = "SELECT version, dirty FROM public.schema_migrations"
    assert rows(db_url, golang) == [(20240101000001, False)]
    assert cli(*base, "apply", "--yes").code == 0
    assert rows(db_url, golang) == [(20240101000003, False)]
    assert cli(*base, "rollback", "--yes", "--step", "1").code == 0
    assert rows(db_url, golang) == [(20240101000002, False)]
    assert cli(*base, "rollback", "--yes", "--to", "0").code == 0
    assert rows(db_url, golang) == []  # golang-migrate's "no version"
    assert rows(db_url, "SELECT count(*) FROM bilantools.schema_migrations") == [(0,)]


def test_a_failed_migration_leaves_the_peer_row_alone(cli: Any, db_url: str, tmp_path: Path) -> None:
    directory = project(tmp_path, GOLANG, 'keep-peer-history = "golang-migrate"')
    (directory / "20240101000004_broken.up.sql").write_text("CREATE TABLE later (id int);\nSELECT 1/0;\n")
    (directory / "20240101000004_broken.down.sql").write_text("DROP TABLE later;\n")
    r = cli("--db", db_url, "--migrations", str(directory), "apply", "--yes")
    assert r.code == 1
    assert rows(db_url, "SELECT version, dirty FROM public.schema_migrations") == [(20240101000003, False)]
    assert rows(db_url, "SELECT to_regclass('later')") == [(None,)]


def test_dbmate_rows_kept_in_step(cli: Any, db_url: str, tmp_path: Path) -> None:
    """The third migration runs outside a transaction (transaction:false): its row is written
    with ours, after its statement."""
    directory = project(tmp_path, DBMATE, "keep-peer-history = true")
    base = ["--db", db_url, "--migrations", str(directory)]
    dbmate = "SELECT version FROM public.schema_migrations ORDER BY 1"
    assert cli(*base, "apply", "--yes", "--dry-run").code == 0
    assert rows(db_url, "SELECT to_regclass('public.schema_migrations')") == [(None,)]
    assert cli(*base, "apply", "--yes").code == 0
    assert rows(db_url, dbmate) == [("20240201000001",), ("20240201000002",), ("20240201000003",)]
    assert cli(*base, "rollback", "--yes", "--step", "2").code == 0
    assert rows(db_url, dbmate) == [("20240201000001",)]


def test_flyway_history_kept_in_step_then_adopted_back(cli: Any, db_url: str, tmp_path: Path) -> None:
    """Flyway's rows as Flyway writes them (versions, repeatable scripts, a script outside a
    transaction, an undo), which `adopt` reads back into a history of ours."""
    directory = tmp_path / "project" / "migrations"
    shutil.copytree(FLYWAY, directory)
    settings = (FLYWAY / "pyproject.toml").read_text(encoding="utf-8") + "keep-peer-history = true\n"
    (directory.parent / "pyproject.toml").write_text(settings, encoding="utf-8")
    (directory / "pyproject.toml").unlink()
    base = ["--db", db_url, "--migrations", str(directory)]
    assert cli(*base, "apply", "--yes").code == 0
    assert cli(*base, "rollback", "--yes", "--step", "1").code == 0
    found = rows(
        db_url,
        "SELECT installed_rank, version, description, type, script, checksum, installed_by = current_user,"
        " execution_time >= 0, success FROM flyway_schema_history ORDER BY installed_rank",
    )

    def checksum(name: str) -> int:
        return flyway_checksum((FLYWAY / name).read_text(encoding="utf-8"))

    assert [row[:5] for row in found] == [
        (1, "1", "create accounts", "SQL", "V1__create_accounts.sql"),
        (2, "1.2", "index accounts name", "SQL", "V1_2__index_accounts_name.sql"),
        (3, "1.9", "create orders", "SQL", "V1_9__create_orders.sql"),
        (4, "1.10", "add orders total", "SQL", "V1.10__add_orders_total.sql"),
        (5, None, "account names", "SQL", "R__account_names.sql"),
        (6, None, "order count", "SQL", "R__order_count.sql"),
        (7, "1.10", "add orders total", "UNDO_SQL", "U1.10__add_orders_total.sql"),
    ]
    assert [row[5] for row in found] == [checksum(row[4]) for row in found]
    assert {row[6:] for row in found} == {(True, True, True)}
    # what Flyway would read from it, and what adopt takes back from it
    run_sql(db_url, "DROP SCHEMA bilantools CASCADE")
    r = cli(*base, "adopt", "--yes", "--json")
    assert r.code == 0, r.err
    adopted = json.loads(r.out)
    assert (adopted["tool"], adopted["history"]) == ("flyway", "public.flyway_schema_history")
    assert adopted["recorded"] == ["1", "1.2", "1.9", "R__account_names", "R__order_count"]
    assert (adopted["never"], adopted["no_file"], adopted["unconfirmed"]) == (["1.10"], [], [])
    status = json.loads(cli(*base, "status", "--json").out)
    assert [(m["version"], m["state"]) for m in status["migrations"]] == [
        ("1", "applied"),
        ("1.2", "applied"),
        ("1.9", "applied"),
        ("1.10", "pending"),
        ("R__account_names", "applied"),
        ("R__order_count", "applied"),
    ]


@pytest.mark.parametrize(
    ("settings", "layout", "message"),
    [
        (
            'keep-peer-history = "sqitch"',
            "golang-migrate",
            "bilantools does not write Sqitch's registry",
        ),
        (
            'keep-peer-history = "liquibase"',
            "golang-migrate",
            "must be true, false or one of 'golang-migrate'",
        ),
        (
            "keep-peer-history = true",
            "bilantools",
            "this project is in bilantools' own layout: name the tool",
        ),
        (
            'keep-peer-history = "golang-migrate"\ntracking-schema = "public"',
            "golang-migrate",
            "golang-migrate's schema_migrations and bilantools' would be one table",
        ),
    ],
)
def test_keep_peer_history_refused_settings(tmp_path: Path, settings: str, layout: str, message: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.bilantools]\n{settings}\n")
    with pytest.raises(InputError) as refused:
        load_config(tmp_path).peer_history_for(layout)
    assert message in str(refused.value)
