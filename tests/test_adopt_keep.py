"""keep-peer-history: apply and rollback write the peer tool's own history table as that
tool would, in the transaction of our tracking row, so that a team can switch back;
against a real server."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools.db.peers import flyway
from bilantools.errors import InputError
from bilantools.source.config import load_config
from tests.conftest import FIXTURES

GOLANG = FIXTURES / "golang_migrate"
DBMATE = FIXTURES / "dbmate"


def project(tmp_path: Path, source: Path, settings: str) -> Path:
    directory = tmp_path / "project" / "migrations"
    shutil.copytree(source, directory)
    (directory.parent / "pyproject.toml").write_text(f"[tool.bilantools]\n{settings}\n", encoding="utf-8")
    return directory


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


def test_flyway_history_kept_in_step(cli: Any, db_url: str, tmp_path: Path, basic: Path) -> None:
    directory = project(tmp_path, basic, 'keep-peer-history = "flyway"')
    base = ["--db", db_url, "--migrations", str(directory)]
    assert cli(*base, "apply", "--yes").code == 0
    assert cli(*base, "rollback", "--yes", "--step", "1").code == 0
    found = rows(
        db_url,
        "SELECT installed_rank, version, description, type, script, checksum, installed_by = current_user,"
        " execution_time >= 0, success FROM flyway_schema_history ORDER BY installed_rank",
    )
    names = sorted(p.name for p in basic.glob("*.sql"))
    forward = [n for n in names if not n.endswith("_rollback.sql")]
    assert found == [
        (1, "001", forward[0][4:-4].replace("_", " "), "SQL", forward[0], None, True, True, True),
        (2, "002", forward[1][4:-4].replace("_", " "), "SQL", forward[1], None, True, True, True),
        (3, "003", forward[2][4:-4].replace("_", " "), "SQL", forward[2], None, True, True, True),
        (
            4,
            "003",
            forward[2][4:-4].replace("_", " "),
            "UNDO_SQL",
            forward[2][:-4] + "_rollback.sql",
            None,
            True,
            True,
            True,
        ),
    ]
    # what Flyway would read from it: 001 and 002 applied
    with psycopg.connect(db_url) as conn:
        assert [r.key for r in flyway.read(conn, directory).rows] == ["001", "002"]


@pytest.mark.parametrize(
    ("settings", "layout", "message"),
    [
        (
            'keep-peer-history = "sqitch"',
            "golang-migrate",
            "bilantools cannot keep Sqitch's registry in step",
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
