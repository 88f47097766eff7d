"""Other tools' layouts read as they are (golang-migrate, dbmate) and detection, against a
real server: apply, status, rollback and verify on each fixture directory, and the proof
that a dbmate down section never runs on apply."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands
from bilantools.commands import Project, RunOptions
from bilantools.errors import InputError, MigrationFailed
from bilantools.source.layouts import detect
from tests.conftest import FIXTURES, tables

GOLANG = FIXTURES / "golang_migrate"
DBMATE = FIXTURES / "dbmate"


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return directory


def scalar(url: str, query: str) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
        return row[0] if row else None


# --- golang-migrate ----------------------------------------------------------------------


def test_golang_migrate_apply_status_verify_rollback(cli: Any, db_url: str) -> None:
    base = ["--db", db_url, "--migrations", str(GOLANG)]
    r = cli(*base, "apply", "--yes")
    assert r.code == 0, r.err
    assert r.err.splitlines()[:2] == [
        f"target: {db_url} (sandbox, from --db)",
        "layout: golang-migrate (detected)",
    ]
    assert [line.split()[:3] for line in r.out.splitlines()[:3]] == [
        ["20240101000001", "create_teams", "applied"],
        ["20240101000002", "create_players", "applied"],
        ["20240101000003", "seed_teams", "applied"],
    ]
    with psycopg.connect(db_url) as conn:
        assert {"teams", "players"} <= set(tables(conn))
    assert scalar(db_url, "SELECT count(*) FROM teams") == 2
    status = json.loads(cli(*base, "status", "--json").out)
    assert status["layout"] == "golang-migrate"
    assert [(m["version"], m["state"]) for m in status["migrations"]] == [
        ("20240101000001", "applied"),
        ("20240101000002", "applied"),
        ("20240101000003", "applied"),
    ]
    assert cli(*base, "verify").code == 0
    r = cli(*base, "rollback", "--yes", "--to", "20240101000001")
    assert r.code == 0, r.err
    with psycopg.connect(db_url) as conn:
        assert "players" not in tables(conn) and "teams" in tables(conn)
    assert scalar(db_url, "SELECT count(*) FROM teams") == 0
    assert cli(*base, "rollback", "--yes", "--to", "0").code == 0
    with psycopg.connect(db_url) as conn:
        assert not {"teams", "players"} & set(tables(conn))


def test_golang_migrate_own_begin_commit_runs_in_our_transaction_with_lines_kept() -> None:
    """The outer BEGIN/COMMIT pair is blanked, not removed: every statement keeps its line."""
    found = Project.load(GOLANG).migrations
    players = found.migrations[1]
    raw = players.path.read_text(encoding="utf-8")
    assert players.transactional
    assert "BEGIN" in raw and "BEGIN" not in players.script.text and "COMMIT" not in players.script.text
    assert players.script.text.count("\n") == raw.count("\n")
    assert players.script.text.split("\n")[3] == raw.split("\n")[3] == "CREATE TABLE players ("
    assert players.rollback is not None and "COMMIT" not in players.rollback.text


def test_golang_migrate_failure_in_own_transaction_names_the_real_line(db_url: str, tmp_path: Path) -> None:
    d = write(
        tmp_path / "m",
        {
            "1_t.up.sql": "CREATE TABLE t (id int);\n",
            "1_t.down.sql": "DROP TABLE t;\n",
            "2_u.up.sql": """
                BEGIN;
                CREATE TABLE u (id int);

                INSERT INTO missing_table VALUES (1);
                COMMIT;
            """,
        },
    )
    with pytest.raises(MigrationFailed) as caught:
        commands.apply(target=db_url, project=d)
    assert (caught.value.version, caught.value.line) == ("2", 4)
    assert caught.value.file == str(d / "2_u.up.sql")
    with psycopg.connect(db_url) as conn:
        assert "u" not in tables(conn) and "t" in tables(conn)  # all of 2 or nothing


def test_golang_migrate_file_with_two_transactions_is_refused(db_url: str, tmp_path: Path) -> None:
    d = write(
        tmp_path / "m",
        {
            "1_t.up.sql": "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\n"
            "BEGIN;\nCREATE TABLE u (id int);\nCOMMIT;\n",
        },
    )
    report = commands.check(project=d)
    assert [(f.rule, f.line) for f in report.errors] == [("transaction-control", n) for n in (1, 3, 4, 6)]
    with pytest.raises(InputError, match="controls the transaction"):
        commands.apply(target=db_url, project=d)
    with psycopg.connect(db_url) as conn:
        assert tables(conn) == []


def test_golang_migrate_empty_down_file_is_no_rollback(tmp_path: Path) -> None:
    d = write(
        tmp_path / "m", {"1_t.up.sql": "CREATE TABLE t (id int);\n", "1_t.down.sql": "-- irreversible\n"}
    )
    found = Project.load(d).migrations
    assert found.migrations[0].rollback is None
    assert [(f.rule, f.severity, f.hint) for f in found.findings] == [
        ("missing-rollback", "warning", "write its rollback SQL in 1_t.down.sql")
    ]


def test_golang_migrate_down_without_up_is_an_orphan(tmp_path: Path) -> None:
    d = write(
        tmp_path / "m",
        {"1_t.up.sql": "CREATE TABLE t (id int);\n", "2_u.down.sql": "DROP TABLE u;\n"},
    )
    found = Project.load(d).migrations
    assert [(f.rule, f.message) for f in found.errors] == [
        ("orphan-rollback", "rollback 2_u.down.sql has no migration 2_u.up.sql")
    ]


# --- dbmate ------------------------------------------------------------------------------


def test_dbmate_down_section_never_runs_on_apply_and_runs_on_rollback(cli: Any, db_url: str) -> None:
    base = ["--db", db_url, "--migrations", str(DBMATE)]
    r = cli(*base, "apply", "--yes")
    assert r.code == 0, r.err
    assert "layout: dbmate (detected)" in r.err.splitlines()
    with psycopg.connect(db_url) as conn:
        assert {"rollback_log", "notes"} <= set(tables(conn))  # what the up sections create exists
    assert scalar(db_url, "SELECT count(*) FROM rollback_log") == 0  # the down section's insert did not run
    # transaction:false: the concurrent index was built (it cannot be inside a transaction)
    assert scalar(db_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'notes_body'::regclass") is True
    status = json.loads(cli(*base, "status", "--json").out)
    assert status["layout"] == "dbmate" and {m["state"] for m in status["migrations"]} == {"applied"}
    verify = cli(*base, "verify", "--json")
    assert verify.code == 0 and json.loads(verify.out)["ok"] is True

    r = cli(*base, "rollback", "--yes", "--step", "2")
    assert r.code == 0, r.err
    with psycopg.connect(db_url) as conn:
        assert "notes" not in tables(conn)
    assert scalar(db_url, "SELECT array_agg(what) FROM rollback_log") == ["notes dropped"]
    assert cli(*base, "rollback", "--yes", "--to", "0").code == 0
    with psycopg.connect(db_url) as conn:
        assert not {"rollback_log", "notes"} & set(tables(conn))


def test_dbmate_sections_keep_the_real_line_numbers() -> None:
    notes = Project.load(DBMATE).migrations.migrations[1]
    raw = notes.path.read_text(encoding="utf-8").split("\n")
    up, down = notes.script.text.split("\n"), notes.rollback.text.split("\n") if notes.rollback else []
    assert "DROP TABLE" not in notes.script.text and "CREATE TABLE" not in "\n".join(down)
    assert up[1] == raw[1] == "CREATE TABLE notes ("
    assert down[8] == raw[8] == "DROP TABLE IF EXISTS notes;"
    index = Project.load(DBMATE).migrations.migrations[2]
    assert (index.transactional, index.rollback_transactional) == (False, False)


def test_dbmate_failure_names_the_line_of_the_real_file(db_url: str, tmp_path: Path) -> None:
    d = write(
        tmp_path / "m",
        {
            "20240101_t.sql": """
                -- a header comment
                -- migrate:up
                CREATE TABLE t (id int);

                INSERT INTO missing_table VALUES (1);

                -- migrate:down
                DROP TABLE t;
            """
        },
    )
    with pytest.raises(MigrationFailed) as caught:
        commands.apply(target=db_url, project=d)
    assert caught.value.line == 5 and "20240101_t.sql:5" in str(caught.value)


def test_dbmate_file_without_up_marker_is_an_error_naming_it_and_the_fix(
    cli: Any, db_url: str, tmp_path: Path
) -> None:
    d = write(
        tmp_path / "m",
        {
            "20240101_t.sql": "-- migrate:up\nCREATE TABLE t (id int);\n-- migrate:down\nDROP TABLE t;\n",
            "20240102_u.sql": "CREATE TABLE u (id int);\nDROP TABLE u;\n",
        },
    )
    r = cli("--db", db_url, "--migrations", str(d), "--layout", "dbmate", "apply", "--yes")
    assert r.code == 2 and r.out == ""
    assert r.err.splitlines()[-1] == (
        "error: 20240102_u.sql has no '-- migrate:up' line, so its migration cannot be "
        "told from its rollback; put '-- migrate:up' above the SQL that migrates and '-- migrate:down' above "
        "the SQL that rolls it back"
    )
    with psycopg.connect(db_url) as conn:
        assert tables(conn) == []


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "-- migrate:down\nDROP TABLE t;\n-- migrate:up\nCREATE TABLE t (id int);\n",
            1,
            "has '-- migrate:down' before '-- migrate:up' (line 3)",
        ),
        (
            "CREATE TABLE x (id int);\n-- migrate:up\nCREATE TABLE t (id int);\n",
            1,
            "has SQL before '-- migrate:up', which belongs to neither section",
        ),
        (
            "-- migrate:up\nSELECT 1;\n-- migrate:up\nSELECT 2;\n",
            3,
            "has a second '-- migrate:up' line (the first is line 1)",
        ),
        (
            "-- migrate:up transaction:maybe\nSELECT 1;\n",
            1,
            "has '-- migrate:up transaction:maybe': the option 'transaction:maybe' is not understood",
        ),
        ("-- migrate:up\n\n-- migrate:down\nSELECT 1;\n", 1, "has no SQL under '-- migrate:up'"),
    ],
)
def test_dbmate_sections_that_cannot_be_told_apart(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    d = tmp_path / "m"
    d.mkdir()
    (d / "1_x.sql").write_text(text)
    found = Project.load(d, layout="dbmate").migrations
    assert [(f.rule, f.line, f.message) for f in found.errors] == [("sections", line, f"1_x.sql {message}")]


# --- detection ---------------------------------------------------------------------------


def test_each_fixture_is_detected_as_its_layout() -> None:
    assert detect(GOLANG) == "golang-migrate"
    assert detect(DBMATE) == "dbmate"
    assert detect(FIXTURES / "basic") == "bilantools"
    project = Project.load(DBMATE)
    assert (project.layout, project.layout_source) == ("dbmate", "detected")


def test_unrecognised_directory_is_an_error_never_0_migrations(cli: Any, db_url: str, tmp_path: Path) -> None:
    d = write(tmp_path / "m", {"init.sql": "SELECT 1;\n", "more.sql": "SELECT 2;\n"})
    r = cli("--db", db_url, "--migrations", str(d), "status")
    assert (r.code, r.out) == (2, "")
    assert r.err.splitlines()[-1] == (
        f"error: {d} holds 2 .sql files but no migration of any known layout (bilantools, golang-migrate, "
        "dbmate, flyway, sqitch): name them as one layout does (bilantools: NNN_slug.sql (rollback "
        "NNN_slug_rollback.sql); golang-migrate: <version>_<title>.up.sql / .down.sql; dbmate: "
        "<version>_<name>.sql with '-- migrate:up' and '-- migrate:down' sections; flyway: "
        "V<version>__<description>.sql (undo U<version>__<description>.sql, repeatable "
        "R__<description>.sql); sqitch: sqitch.plan with deploy/, revert/ and verify/ scripts) or pass "
        "--layout NAME"
    )
    r = cli("--db", db_url, "--migrations", str(d), "--layout", "golang-migrate", "status")
    assert r.code == 2
    assert r.err.splitlines()[-1] == (
        f"error: {d} holds 2 .sql files but no golang-migrate migration: name them "
        "<version>_<title>.up.sql / .down.sql or pass the layout they follow (--layout NAME; one of "
        "bilantools, golang-migrate, dbmate, flyway, sqitch)"
    )


def test_two_layouts_in_one_directory_is_an_error_naming_both(cli: Any, tmp_path: Path) -> None:
    d = write(
        tmp_path / "m",
        {"001_t.sql": "CREATE TABLE t (id int);\n", "2_u.up.sql": "CREATE TABLE u (id int);\n"},
    )
    with pytest.raises(InputError) as caught:
        Project.load(d)
    assert str(caught.value) == (
        f"{d} holds migrations of more than one layout: bilantools (1 file(s)) and golang-migrate "
        "(1 file(s)); pass layout=bilantools or layout=golang-migrate"
    )
    r = cli("--migrations", str(d), "check")
    assert r.code == 2 and r.err.splitlines()[-1].endswith(
        "pass --layout bilantools or --layout golang-migrate"
    )
    r = cli("--migrations", str(d), "--layout", "bilantools", "check")
    assert r.err.splitlines()[0] == "layout: bilantools (from --layout)"
    assert f"{d}/2_u.up.sql: error: [file-name]" in r.out


def test_layout_from_pyproject_and_unknown_layouts(cli: Any, tmp_path: Path) -> None:
    d = shutil.copytree(DBMATE, tmp_path / "db" / "migrations")
    (tmp_path / "pyproject.toml").write_text('[tool.bilantools]\nlayout = "dbmate"\n')
    project = Project.load(d)
    assert (project.layout, project.layout_source) == ("dbmate", "pyproject.toml")
    r = cli("--migrations", str(d), "check")
    assert r.err.splitlines()[0] == "layout: dbmate (from pyproject.toml)"
    (tmp_path / "pyproject.toml").write_text('[tool.bilantools]\nlayout = "liquibase"\n')
    with pytest.raises(
        InputError, match=r"layout 'liquibase' is not a known layout; write one of 'bilantools'"
    ):
        Project.load(d)
    r = cli("--migrations", str(d), "--layout", "liquibase", "check")
    assert (r.code, r.err.splitlines()[-1]) == (
        2,
        "error: unknown migrations layout 'liquibase'; choose one of bilantools, golang-migrate, dbmate, "
        "flyway, sqitch (--layout NAME)",
    )


def test_front_door_takes_a_project_of_another_layout(db_url: str) -> None:
    project = Project.load(GOLANG, layout="golang-migrate")
    result = commands.apply(target=db_url, project=project, options=RunOptions(step=1))
    assert [s.version for s in result.steps] == ["20240101000001"]
    assert commands.status(target=db_url, project=project).as_dict()["layout"] == "golang-migrate"


@pytest.mark.parametrize(("directory", "layout"), [(GOLANG, "golang-migrate"), (DBMATE, "dbmate")])
def test_check_and_plan_name_the_layout(cli: Any, db_url: str, directory: Path, layout: str) -> None:
    r = cli("--migrations", str(directory), "check")
    assert r.code == 0 and r.err.splitlines() == [f"layout: {layout} (detected)"]
    assert r.out.splitlines()[-1].startswith("3 migration(s) checked: 0 error(s)")
    plan = json.loads(cli("--db", db_url, "--migrations", str(directory), "plan", "--json").out)
    assert [m["transaction"] for m in plan["migrations"]] == [True, True, layout == "golang-migrate"]


def test_dbmate_check_names_the_real_line_of_a_down_section(tmp_path: Path) -> None:
    d = write(
        tmp_path / "m",
        {"1_t.sql": "-- migrate:up\nCREATE TABLE t (id int);\n\n-- migrate:down\nDROP TABLE t\nDROP u;\n"},
    )
    errors = commands.check(project=d).errors
    assert [(f.rule, f.file, f.line) for f in errors] == [("syntax-error", str(d / "1_t.sql"), 6)]


# --- check: each script of a file linted as itself -----------------------------------------


def found(d: Path) -> list[tuple[str, str, int | None, str]]:
    """(rule, severity, line, message) of every finding `check` reports for `d`."""
    return [(f.rule, f.severity, f.line, f.message) for f in commands.check(project=d).findings]


def test_dbmate_sections_get_the_findings_of_our_layout_on_their_lines(tmp_path: Path) -> None:
    up = "CREATE TABLE t (id int, x int);\nALTER TABLE t DROP COLUMN x;\n"
    dbmate = write(tmp_path / "dbmate", {"1_t.sql": f"-- migrate:up\n{up}\n-- migrate:down\nDROP TABLE t;\n"})
    ours = write(
        tmp_path / "ours",
        {"001_t.sql": f"-- up\n{up}", "001_t_rollback.sql": "-- down\n\n\n\n\nDROP TABLE t;\n"},
    )
    findings = found(dbmate)
    assert findings == found(ours)
    assert {(rule, line) for rule, _, line, _ in findings} >= {
        ("create-table-not-idempotent", 2),
        ("drop-without-if-exists", 3),
        ("squawk:ban-drop-column", 3),
        ("drop-without-if-exists", 6),
    }


def test_dbmate_drop_in_the_down_section_is_a_rollback_duty(tmp_path: Path) -> None:
    d = write(
        tmp_path / "m",
        {
            "1_t.sql": "-- migrate:up\nCREATE TABLE IF NOT EXISTS t (id bigint, x bigint);\n\n"
            "-- migrate:down\nALTER TABLE t DROP COLUMN IF EXISTS x;\nDROP TABLE IF EXISTS t;\n"
        },
    )
    rules = {rule for rule, *_ in found(d)}
    assert rules.isdisjoint({"squawk:ban-drop-column", "squawk:ban-drop-table"})


def test_dbmate_ignore_comments_count_in_the_section_they_stand_in(tmp_path: Path) -> None:
    d = write(
        tmp_path / "m",
        {
            "1_t.sql": "-- migrate:up\n"
            "-- bilantools: ignore unresolved-reference, squawk\n"
            "CREATE INDEX IF NOT EXISTS i ON missing (id);\n\n"
            "-- migrate:down\n"
            "-- bilantools: ignore drop-without-if-exists, squawk\n"
            "DROP INDEX i;\n"
        },
    )
    assert found(d) == []


def test_golang_migrate_outer_begin_commit_is_not_given_to_squawk(tmp_path: Path) -> None:
    d = write(
        tmp_path / "m",
        {
            "1_t.up.sql": "BEGIN;\nCREATE TABLE IF NOT EXISTS t (id bigint);\nCOMMIT;\n",
            "1_t.down.sql": "DROP TABLE IF EXISTS t;\n",
        },
    )
    rules = {rule for rule, *_ in found(d)}
    assert "squawk:transaction-nesting" not in rules and "squawk:require-statement-timeout" in rules
