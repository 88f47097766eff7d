"""`bilantools adopt`: another tool's history recorded in ours without running anything,
with the catalog's word on each migration; and the peers' history readers, each on a
database holding that tool's own table (tests/fixtures/histories); against a real server."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools.db.peers import dbmate, flyway, golang_migrate, sqitch
from bilantools.errors import InputError, RefusedError
from bilantools.source.layouts.sqitch_plan import change_ids
from tests.conftest import FIXTURES

GOLANG = FIXTURES / "golang_migrate"
DBMATE = FIXTURES / "dbmate"
HISTORIES = FIXTURES / "histories"
SQITCH = FIXTURES / "sqitch"
PLANNED_TO_V1 = ["appschema", "app/teams", "app/players", "app.functions/team_size@v1.0"]


def run_sql(url: str, text: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(text)


def peer_history(url: str, tool: str) -> None:
    run_sql(url, (HISTORIES / f"{tool}.sql").read_text(encoding="utf-8"))


def golang_ran(url: str, upto: int) -> None:
    """What golang-migrate did up to migration `upto` of the fixture: the up files' SQL run,
    and its history table saying so."""
    for path in sorted(GOLANG.glob("*.up.sql"))[:upto]:
        run_sql(url, path.read_text(encoding="utf-8"))
    peer_history(url, "golang_migrate")


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def ours(url: str) -> list[str]:
    return [v for (v,) in rows(url, "SELECT version FROM bilantools.schema_migrations ORDER BY id")]


# --- golang-migrate, end to end -------------------------------------------------------------


def test_adopt_golang_migrate(cli: Any, db_url: str) -> None:
    golang_ran(db_url, 2)
    base = ["--db", db_url, "--migrations", str(GOLANG)]
    r = cli(*base, "adopt", "--yes")
    assert r.code == 0, r.err
    assert r.out.splitlines()[0] == (
        "golang-migrate's history public.schema_migrations -> bilantools.schema_migrations"
    )
    lines = [line.split() for line in r.out.splitlines()[2:4]]
    assert lines == [
        ["20240101000001", "create_teams", "recorded", "4", "4", "100%"],
        ["20240101000002", "create_players", "recorded", "6", "6", "100%"],
    ]
    assert r.out.splitlines()[4:] == [
        "never applied by golang-migrate (pending: 'bilantools apply'): 20240101000003",
        "2 migration(s) adopted",
    ]
    assert ours(db_url) == ["20240101000001", "20240101000002"]
    assert rows(
        db_url,
        "SELECT DISTINCT action, detail FROM bilantools.schema_migration_events WHERE version IS NOT NULL",
    ) == [("baseline", "adopted from golang-migrate's history public.schema_migrations")]
    assert rows(db_url, "SELECT version, dirty FROM public.schema_migrations") == [(20240101000002, False)]
    # twice: a no-op that says so
    again = cli(*base, "adopt", "--yes")
    assert again.code == 0, again.err
    assert again.out.splitlines()[-1] == (
        "nothing to adopt: the 2 migration(s) golang-migrate applied are already in bilantools' history"
    )
    assert ours(db_url) == ["20240101000001", "20240101000002"]
    # and apply goes on from there
    applied = cli(*base, "apply", "--yes")
    assert applied.code == 0, applied.err
    assert ours(db_url) == ["20240101000001", "20240101000002", "20240101000003"]
    assert rows(db_url, "SELECT count(*) FROM teams") == [(2,)]


def test_adopt_json_and_dry_run(cli: Any, db_url: str) -> None:
    golang_ran(db_url, 2)
    base = ["--db", db_url, "--migrations", str(GOLANG)]
    r = cli(*base, "adopt", "--dry-run", "--json")
    assert r.code == 0, r.err
    found = json.loads(r.out)
    assert {k: found[k] for k in ("ok", "tool", "history", "tracking", "dry_run", "recorded", "already")} == {
        "ok": True,
        "tool": "golang-migrate",
        "history": "public.schema_migrations",
        "tracking": "bilantools.schema_migrations",
        "dry_run": True,
        "recorded": ["20240101000001", "20240101000002"],
        "already": [],
    }
    assert (found["no_file"], found["never"], found["unconfirmed"]) == ([], ["20240101000003"], [])
    assert [(m["version"], m["share"]) for m in found["migrations"]] == [
        ("20240101000001", 1.0),
        ("20240101000002", 1.0),
    ]
    assert rows(db_url, "SELECT to_regclass('bilantools.schema_migrations')") == [(None,)]  # nothing recorded


def test_adopt_names_what_the_catalog_does_not_confirm(cli: Any, db_url: str) -> None:
    golang_ran(db_url, 2)
    run_sql(db_url, "DROP INDEX players_team_id")
    r = cli("--db", db_url, "--migrations", str(GOLANG), "adopt", "--yes")
    assert r.code == 1, r.err
    assert "20240101000002  create_players  recorded  6        5        83%" in r.out
    assert (
        "not confirmed by the catalog (objects missing: 'bilantools verify' names them): 20240101000002"
        in r.out.splitlines()
    )
    assert ours(db_url) == ["20240101000001", "20240101000002"]  # recorded all the same: the peer's word


def test_adopt_names_a_peer_version_with_no_file(cli: Any, db_url: str) -> None:
    golang_ran(db_url, 3)
    run_sql(db_url, "UPDATE schema_migrations SET version = 20240101000005")
    r = cli("--db", db_url, "--migrations", str(GOLANG), "adopt", "--yes", "--json")
    found = json.loads(r.out)
    assert r.code == 0, r.err
    assert (found["recorded"], found["no_file"], found["never"]) == (
        ["20240101000001", "20240101000002", "20240101000003"],
        ["20240101000005"],
        [],
    )


def test_adopt_refuses_a_dirty_golang_history(cli: Any, db_url: str) -> None:
    golang_ran(db_url, 2)
    run_sql(db_url, "UPDATE schema_migrations SET dirty = true")
    r = cli("--db", db_url, "--migrations", str(GOLANG), "adopt", "--yes")
    assert r.code == 2
    assert r.err.splitlines()[-1] == (
        "error: refusing to adopt golang-migrate's history (public.schema_migrations): version "
        "20240101000002 is dirty (its migration failed half-way); nothing was recorded: repair the schema by "
        "hand, then run golang-migrate's `migrate force <version>` with the version the schema is really at, "
        "and adopt again (a migration that fails under bilantools later is rolled back, and `bilantools "
        "repair` clears its failed row)"
    )
    assert rows(db_url, "SELECT to_regclass('bilantools.schema_migrations')") == [(None,)]


def test_adopt_refuses_without_the_peer_table_or_with_another_tools(cli: Any, db_url: str) -> None:
    base = ["--db", db_url, "--migrations", str(GOLANG)]
    r = cli(*base, "adopt", "--yes")
    assert r.code == 2
    assert r.err.splitlines()[-1] == (
        "error: no golang-migrate history here: public.schema_migrations does not exist; run adopt on the "
        "database golang-migrate migrated, or name the tool that did with --from TOOL"
    )
    peer_history(db_url, "dbmate")
    r = cli(*base, "adopt", "--yes")
    assert r.code == 2
    assert r.err.splitlines()[-1] == (
        "error: public.schema_migrations is not golang-migrate's history (its columns are version character "
        "varying(128), golang-migrate's are version, dirty); name the tool that wrote it with --from TOOL"
    )
    r = cli(*base, "adopt", "--yes", "--from", "liquibase")
    assert r.code == 2
    assert r.err.splitlines()[-1] == (
        "error: bilantools cannot read 'liquibase''s history; name one of golang-migrate, dbmate, flyway, "
        "sqitch with --from TOOL"
    )
    assert rows(db_url, "SELECT to_regclass('bilantools.schema_migrations')") == [(None,)]


def test_adopt_in_our_own_layout_needs_from(cli: Any, db_url: str, basic: Path) -> None:
    r = cli("--db", db_url, "--migrations", str(basic), "adopt", "--yes")
    assert r.code == 2
    assert re.search(r"in bilantools' own layout: name the tool .* with --from TOOL$", r.err.splitlines()[-1])
    assert cli("--db", db_url, "--migrations", str(basic), "apply", "--yes").code == 0
    r = cli("--db", db_url, "--migrations", str(basic), "adopt", "--yes", "--from", "golang-migrate")
    assert (r.code, r.err.splitlines()[-1]) == (
        2,
        "error: public.schema_migrations is bilantools' own history, not golang-migrate's: there is no "
        "golang-migrate history to adopt here; name the tool that migrated the database with --from TOOL",
    )


# --- dbmate, end to end -----------------------------------------------------------------------


def test_adopt_dbmate(cli: Any, db_url: str) -> None:
    run_sql(
        db_url,
        "CREATE TABLE rollback_log (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, what text NOT NULL);"
        "CREATE TABLE notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text NOT NULL);",
    )
    peer_history(db_url, "dbmate")
    base = ["--db", db_url, "--migrations", str(DBMATE)]
    r = cli(*base, "adopt", "--yes", "--json")
    assert r.code == 0, r.err
    found = json.loads(r.out)
    assert (found["tool"], found["recorded"], found["never"]) == (
        "dbmate",
        ["20240201000001", "20240201000002"],
        ["20240201000003"],
    )
    assert ours(db_url) == ["20240201000001", "20240201000002"]
    assert cli(*base, "apply", "--yes").code == 0
    assert rows(db_url, "SELECT to_regclass('notes_body') IS NOT NULL") == [(True,)]


# --- the readers, on each tool's own table ----------------------------------------------------


def test_golang_and_dbmate_readers(conn: psycopg.Connection, tmp_path: Path) -> None:
    peer_history(conn.info.dsn, "golang_migrate")
    found = golang_migrate.read(conn, tmp_path)
    assert (found.table, [(r.key, r.through) for r in found.rows]) == (
        "public.schema_migrations",
        [("20240101000002", True)],
    )
    conn.execute("DROP TABLE schema_migrations")
    peer_history(conn.info.dsn, "dbmate")
    found = dbmate.read(conn, tmp_path)
    assert [(r.key, r.through) for r in found.rows] == [("20240201000001", False), ("20240201000002", False)]


def test_flyway_reader(conn: psycopg.Connection, tmp_path: Path) -> None:
    peer_history(conn.info.dsn, "flyway")
    found = flyway.read(conn, tmp_path)
    assert found.table == "public.flyway_schema_history"
    assert [(r.key, r.description, r.checksum, r.through) for r in found.rows] == [
        ("1", "create teams", "1203884133", False),
        ("1.1", "create players", "-455129378", False),
        ("1.2", "seed teams", None, False),
        ("R__team_view", "team view", "-11223344", False),  # the repeatable's latest run
    ]
    # a baseline marks every version up to its own; an undo takes its version back
    conn.execute(
        "INSERT INTO flyway_schema_history VALUES"
        " (6, '1.1', 'create players', 'UNDO_SQL', 'U1_1__create_players.sql', 7, 'app', now(), 3, true),"
        " (7, '2', '<< Flyway Baseline >>', 'BASELINE', '<< Flyway Baseline >>', NULL, 'app', now(), 0, true)"
    )
    assert [(r.key, r.through) for r in flyway.read(conn, tmp_path).rows] == [
        ("1", False),
        ("1.2", False),
        ("R__team_view", False),
        ("2", True),
    ]
    conn.execute(
        "INSERT INTO flyway_schema_history VALUES"
        " (8, '3', 'add index', 'SQL', 'V3__add_index.sql', 99, 'app', now(), 40, false)"
    )
    with pytest.raises(RefusedError) as refused:
        flyway.read(conn, tmp_path)
    assert str(refused.value) == (
        "refusing to adopt flyway's history (public.flyway_schema_history): installed_rank 8 "
        "(V3__add_index.sql, version 3) failed; nothing was recorded: fix what it left half-done, run "
        "`flyway repair` to remove the failed row, and adopt again"
    )


def test_sqitch_reader(conn: psycopg.Connection, tmp_path: Path) -> None:
    peer_history(conn.info.dsn, "sqitch")
    (tmp_path / "sqitch.plan").write_text(
        "%syntax-version=1.0.0\n%project=flipr\n%uri=https://example.org/flipr/\n\n"
        "appschema 2024-03-30T10:00:00Z Ada <ada@example.org> # Add schema for all flipr objects.\n"
    )
    found = sqitch.read(conn, tmp_path)
    assert found.table == "sqitch.changes (project flipr)"
    assert [(r.key, r.description) for r in found.rows] == [
        ("appschema", "7f2a1c0d9e8b7a6f5e4d3c2b1a09f8e7d6c5b4a3"),
        ("users", "8e3b2d1f0a9c8b7e6d5f4a3c2b1e0d9f8a7c6b5e @v1.0"),
        ("app.flips/create", "9f4c3e2a1b0d9c8f7e6a5b4d3c2f1e0a9b8d7c6f"),
    ]
    assert str(found.rows[0].applied_at).startswith("2024-04-01 08:00:01")
    (tmp_path / "sqitch.plan").write_text("%syntax-version=1.0.0\n")
    with pytest.raises(InputError, match="several Sqitch projects"):
        sqitch.read(conn, tmp_path)


# --- Sqitch, end to end -----------------------------------------------------------------------


def test_adopt_sqitch(cli: Any, db_url: str, tmp_path: Path) -> None:
    """Sqitch deployed the league project up to @v1.0 (its registry rows carry the plan's
    change IDs): adopt takes the four changes, the reworked one's earlier instance by its ID."""
    directory = tmp_path / "league"
    shutil.copytree(SQITCH, directory)
    (directory / "pyproject.toml").write_text("[tool.bilantools]\n")  # not the repository's settings
    base = ["--db", db_url, "--migrations", str(directory)]
    assert cli(*base, "apply", "--yes", "--to", "@v1.0").code == 0, "the schema Sqitch built"
    run_sql(db_url, "DROP SCHEMA bilantools CASCADE")
    peer_history(db_url, "sqitch")  # the registry, with two other projects' rows
    plan = sqitch.plan_of(directory)
    assert plan is not None
    ids = change_ids(plan)
    assert ids is not None
    deployed = PLANNED_TO_V1
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO sqitch.projects VALUES"
            " ('league', 'https://example.com/league/', now(), 'Dana', 'd@x')"
        )
        for at, key in enumerate(deployed):
            conn.execute(
                "INSERT INTO sqitch.changes VALUES (%s, %s, %s, 'league', '',"
                " %s::timestamptz + %s * interval '1s', 'Dana', 'd@x', now(), 'Dana', 'd@x')",
                (ids[key], f"{at:040d}", key.split("@")[0], "2024-05-01 00:00:00+00", at),
            )
        conn.execute(
            "INSERT INTO sqitch.tags VALUES ('t1', '@v1.0', 'league', %s, '', now(), 'Dana', 'd@x', now(),"
            " 'Dana', 'd@x')",
            (ids[deployed[-1]],),
        )
    r = cli(*base, "adopt", "--yes", "--json")
    found = json.loads(r.out)
    assert (found["tool"], found["history"]) == ("sqitch", "sqitch.changes (project league)")
    assert (found["recorded"], found["never"], found["no_file"]) == (
        deployed,
        ["seed/teams", "app.functions/team_size"],
        [],
    )
    # detect reads the catalog of schema public only, and the league's objects are in schema
    # league: the catalog confirms none of them (exit 1), though they are there
    assert (r.code, found["unconfirmed"]) == (1, deployed[1:])
    assert cli(*base, "apply", "--yes").code == 0
    assert ours(db_url) == [*deployed, "seed/teams", "app.functions/team_size"]


def test_adopt_from_python_names_its_parameter(db_url: str, basic: Path) -> None:
    from bilantools import commands

    with pytest.raises(InputError, match=r"with source=TOOL$"):
        commands.adopt(target=db_url, project=basic)
