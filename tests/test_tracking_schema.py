"""Where bilantools keeps its history (`tracking-schema`): public for our own layout,
schema bilantools for another tool's, so that golang-migrate's or dbmate's own
schema_migrations never meets ours; against a real server."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands
from bilantools.commands import Project
from bilantools.errors import InputError
from bilantools.source.config import load_config
from tests.conftest import FIXTURES, tables

GOLANG = FIXTURES / "golang_migrate"
HISTORIES = FIXTURES / "histories"
GOLANG_TABLE = [("dirty", "boolean"), ("version", "bigint")]


def peer_history(url: str, tool: str) -> None:
    """The peer tool's history table with its rows, as tests/fixtures/histories has it."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((HISTORIES / f"{tool}.sql").read_text(encoding="utf-8"))


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def columns(url: str, schema: str, table: str) -> list[tuple[str, str]]:
    return rows(
        url,
        "SELECT column_name::text, data_type::text FROM information_schema.columns"
        f" WHERE table_schema = '{schema}' AND table_name = '{table}' ORDER BY 1",
    )


def project(tmp_path: Path, source: Path, settings: str = "") -> Path:
    directory = tmp_path / "project" / "migrations"
    shutil.copytree(source, directory)
    if settings:
        (directory.parent / "pyproject.toml").write_text(textwrap.dedent(settings), encoding="utf-8")
    return directory


def test_peer_layout_keeps_its_history_in_schema_bilantools(cli: Any, db_url: str) -> None:
    peer_history(db_url, "golang_migrate")
    base = ["--db", db_url, "--migrations", str(GOLANG)]
    r = cli(*base, "apply", "--yes")
    assert r.code == 0, r.err
    # golang's table: untouched, same columns, same one row
    assert columns(db_url, "public", "schema_migrations") == GOLANG_TABLE
    assert rows(db_url, "SELECT version, dirty FROM public.schema_migrations") == [(20240101000002, False)]
    # ours: in schema bilantools, with the three migrations
    assert rows(db_url, "SELECT version FROM bilantools.schema_migrations ORDER BY id") == [
        ("20240101000001",),
        ("20240101000002",),
        ("20240101000003",),
    ]
    assert rows(db_url, "SELECT count(*) FROM bilantools.schema_migration_events WHERE action = 'apply'") == [
        (3,)
    ]
    status = json.loads(cli(*base, "status", "--json").out)
    assert status["tracking"] == "bilantools.schema_migrations"
    assert [m["state"] for m in status["migrations"]] == ["applied"] * 3
    assert "schema_migrations" in tables(psycopg.connect(db_url))  # golang's, still there
    r = cli(*base, "rollback", "--yes", "--step", "1")
    assert r.code == 0, r.err
    assert rows(db_url, "SELECT count(*) FROM bilantools.schema_migrations") == [(2,)]
    assert rows(db_url, "SELECT version, dirty FROM public.schema_migrations") == [(20240101000002, False)]


def test_guide_functions_work_qualified_whatever_the_search_path(cli: Any, db_url: str) -> None:
    assert cli("--db", db_url, "--migrations", str(GOLANG), "apply", "--yes").code == 0
    with psycopg.connect(db_url) as conn:
        conn.execute("SET search_path TO public")  # the tracking schema is not in it
        total, ok, failed, last, _at = conn.execute(
            "SELECT * FROM bilantools.get_migration_status()"
        ).fetchone()  # type: ignore[misc]
        assert (total, ok, failed, last) == (3, 3, 0, "20240101000003")
        assert conn.execute("SELECT bilantools.migration_applied('20240101000002')").fetchone() == (True,)
        conn.execute("SELECT bilantools.record_migration('20240101000009', 'by hand')")
        conn.execute("SELECT bilantools.record_migration_failure('20240101000010', 'by hand', 'boom')")
        assert conn.execute("SELECT * FROM bilantools.get_migration_status()").fetchone()[:3] == (5, 4, 1)  # type: ignore[index]
        # none of them wrote to a schema_migrations of the caller's search_path
        assert conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone() == (None,)


def test_native_layout_keeps_its_history_in_public(cli: Any, db_url: str, basic: Path) -> None:
    r = cli("--db", db_url, "--migrations", str(basic), "apply", "--yes")
    assert r.code == 0, r.err
    status = json.loads(cli("--db", db_url, "--migrations", str(basic), "status", "--json").out)
    assert status["tracking"] == "public.schema_migrations"
    assert rows(db_url, "SELECT count(*) FROM public.schema_migrations") == [(3,)]
    assert rows(db_url, "SELECT to_regnamespace('bilantools')") == [(None,)]


def test_a_peer_table_in_our_place_is_refused_before_any_change(
    cli: Any, db_url: str, tmp_path: Path
) -> None:
    """tracking-schema = "public" for a golang project whose own table is there: refused,
    naming the table, its columns and the fix; nothing changed."""
    peer_history(db_url, "golang_migrate")
    directory = project(tmp_path, GOLANG, '[tool.bilantools]\ntracking-schema = "public"\n')
    for command in (["apply", "--yes"], ["status"], ["baseline", "--to", "20240101000001", "--yes"]):
        r = cli("--db", db_url, "--migrations", str(directory), *command)
        assert r.code == 2, (command, r.err)
        assert r.err.splitlines()[-1] == (
            "error: public.schema_migrations exists with columns (version bigint, dirty boolean), which "
            "are not bilantools' (another tool's history, e.g. golang-migrate's or dbmate's): bilantools "
            'will not read or write it; nothing was changed: set tracking-schema = "bilantools" under '
            "[tool.bilantools] in pyproject.toml so that bilantools keeps its history there"
        ), r.err
    assert tables(psycopg.connect(db_url)) == ["schema_migrations"]
    assert columns(db_url, "public", "schema_migrations") == GOLANG_TABLE
    assert rows(db_url, "SELECT version, dirty FROM public.schema_migrations") == [(20240101000002, False)]


def test_a_configured_tracking_schema(cli: Any, db_url: str, tmp_path: Path, basic: Path) -> None:
    directory = project(tmp_path, basic, '[tool.bilantools]\ntracking-schema = "audit_trail"\n')
    r = cli("--db", db_url, "--migrations", str(directory), "apply", "--yes", "--dry-run")
    assert r.code == 0, r.err
    assert rows(db_url, "SELECT to_regnamespace('audit_trail')") == [(None,)]  # a dry run keeps nothing
    assert cli("--db", db_url, "--migrations", str(directory), "apply", "--yes").code == 0
    assert rows(db_url, "SELECT count(*) FROM audit_trail.schema_migrations") == [(3,)]
    assert rows(db_url, "SELECT to_regclass('public.schema_migrations')") == [(None,)]
    plan = cli("--db", db_url, "--migrations", str(directory), "plan")
    assert plan.code == 0


@pytest.mark.parametrize("value", ['"Audit"', '"a-b"', '"x; DROP TABLE t"', "3"])
def test_a_bad_tracking_schema_is_refused(tmp_path: Path, value: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.bilantools]\ntracking-schema = {value}\n")
    with pytest.raises(InputError, match=r"tracking-schema .* is not a plain schema name"):
        load_config(tmp_path)


def test_check_guards_the_configured_tracking_schema(tmp_path: Path) -> None:
    """In schema bilantools, ours are the qualified names; an unqualified schema_migrations is
    the peer tool's own table, which its migrations may write."""
    directory = project(tmp_path, GOLANG)
    (directory / "20240101000004_touch.up.sql").write_text(
        "INSERT INTO schema_migrations (version, dirty) VALUES (1, false);\n"
        "DELETE FROM bilantools.schema_migrations;\n"
        "SELECT bilantools.record_migration('1', 'x');\n"
    )
    (directory / "20240101000004_touch.down.sql").write_text("SELECT 1;\n")
    found = [
        (f.line, f.message)
        for f in commands.check(project=Project.load(directory)).findings
        if f.rule == "tracking-object"
    ]
    assert found == [
        (2, "DELETE writes to the engine's tracking table schema_migrations"),
        (3, "calling record_migration() writes to the engine's tracking table schema_migrations"),
    ]


def test_native_layout_without_a_setting_keeps_its_history_where_the_search_path_puts_it(
    cli: Any, db_url: str, basic: Path
) -> None:
    """As before tracking-schema existed: a connection whose search_path starts with schema
    app finds (and keeps) its history in app, where earlier runs put it."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA app")
    url = db_url + "?options=-csearch_path%3Dapp"
    assert cli("--db", url, "--migrations", str(basic), "apply", "--yes").code == 0
    assert rows(db_url, "SELECT count(*) FROM app.schema_migrations") == [(3,)]
    status = json.loads(cli("--db", url, "--migrations", str(basic), "status", "--json").out)
    assert status["tracking"] == "app.schema_migrations"
    assert [m["state"] for m in status["migrations"]] == ["applied"] * 3


def test_the_proof_guards_the_tracking_schema(cli: Any, db_url: str, tmp_path: Path) -> None:
    """A migration that deletes our history in schema bilantools by dynamic SQL (which check
    cannot see) is rolled back by the proof that ends its transaction."""
    directory = project(tmp_path, GOLANG)
    (directory / "20240101000004_sneaky.up.sql").write_text(
        "CREATE TABLE sneaky (id int);\n"
        "DO $$ BEGIN EXECUTE 'DELETE FROM bilantools.schema_migrations"
        " WHERE version = ''20240101000001'''; END $$;\n"
    )
    (directory / "20240101000004_sneaky.down.sql").write_text("DROP TABLE sneaky;\n")
    r = cli("--db", db_url, "--migrations", str(directory), "apply", "--yes")
    assert r.code == 1
    assert r.err.splitlines()[-1] == (
        "error: migration 20240101000004 (20240101000004_sneaky.up.sql) changed the engine's tracking "
        "objects (1 history row(s) deleted); it was rolled back: remove that statement from the file"
    ), r.err
    assert rows(db_url, "SELECT count(*) FROM bilantools.schema_migrations WHERE success") == [(3,)]
    assert rows(db_url, "SELECT to_regclass('sneaky')") == [(None,)]


def test_a_history_left_in_public_by_an_earlier_bilantools_is_not_forked(
    cli: Any, db_url: str, tmp_path: Path
) -> None:
    """A golang-migrate project applied before tracking-schema existed has our history in
    public: the default place (schema bilantools) is refused rather than started empty,
    and either setting goes on."""
    directory = project(tmp_path, GOLANG, '[tool.bilantools]\ntracking-schema = "public"\n')
    base = ["--db", db_url, "--migrations", str(directory)]
    assert cli(*base, "apply", "--yes", "--to", "20240101000001").code == 0  # as the earlier release did
    (directory.parent / "pyproject.toml").unlink()
    for command in (["status"], ["apply", "--yes"]):
        r = cli(*base, *command)
        assert r.code == 2, r.err
        assert r.err.splitlines()[-1] == (
            "error: bilantools' history is in public.schema_migrations (where bilantools kept it before "
            "tracking-schema), and this project's default place is bilantools.schema_migrations; nothing was "
            'changed: set tracking-schema = "public" under [tool.bilantools] in pyproject.toml to go on with '
            'that history, or tracking-schema = "bilantools" if it is another project\'s'
        )
    assert rows(db_url, "SELECT to_regnamespace('bilantools')") == [(None,)]
    (directory.parent / "pyproject.toml").write_text('[tool.bilantools]\ntracking-schema = "public"\n')
    assert cli(*base, "apply", "--yes").code == 0
    assert rows(db_url, "SELECT count(*) FROM public.schema_migrations") == [(3,)]
