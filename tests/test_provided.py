"""Objects declared `provided` in [tool.bilantools], confirmed on the target: apply (and
its dry run) is refused before anything changes while one is absent, verify lists each as
a row and fails without it. Against a real server; roles are cluster-wide, so each test
names its own and drops it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from bilantools import commands
from bilantools.commands import RunOptions
from bilantools.db.provided import lookups, presence
from bilantools.errors import InputError, RefusedError
from tests.conftest import tables

# A Supabase-like project: the auth schema and its uid() come from the host, hstore from
# the DBA, the role from the platform. The function body needs hstore when it is created
# (an SQL function is checked then); the plpgsql one reads auth.uid() when it runs.
MIGRATION = """\
CREATE TABLE notes (id serial PRIMARY KEY, owner uuid, tags hstore);
CREATE FUNCTION note_tags(n notes) RETURNS text[] LANGUAGE sql AS $$ SELECT akeys(n.tags) $$;
CREATE FUNCTION my_notes() RETURNS SETOF notes LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY SELECT * FROM notes WHERE owner = auth.uid();
END $$;
GRANT SELECT ON notes TO {role};
"""
ROLLBACK = "DROP FUNCTION my_notes();\nDROP FUNCTION note_tags(notes);\nDROP TABLE notes;\n"


@pytest.fixture
def role(db_url: str) -> Iterator[str]:
    """A role name of this test's own (created by the test when it wants it)."""
    name = "app_" + uuid.uuid4().hex[:8]
    yield name
    with psycopg.connect(db_url, autocommit=True) as conn:
        if exists(conn, name):  # its grants first: a role with privileges cannot be dropped
            conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)", (role,)).fetchone() == (
        True,
    )


def project(tmp_path: Path, provided: list[str], migration: str) -> Path:
    """A project directory: pyproject.toml with `provided`, and one migration."""
    (tmp_path / "pyproject.toml").write_text(f"[tool.bilantools]\nprovided = {json.dumps(provided)}\n")
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "001_notes.sql").write_text(migration)
    (directory / "001_notes_rollback.sql").write_text(ROLLBACK)
    return directory


def provide_all(conn: psycopg.Connection, role: str) -> None:
    conn.execute("CREATE SCHEMA auth")
    conn.execute("CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql AS $$ SELECT NULL::uuid $$")
    conn.execute("CREATE EXTENSION hstore")
    conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))


def untouched(conn: psycopg.Connection, backups: Path) -> None:
    """No tracking table, no table of the migration, no backup."""
    assert tables(conn) == []
    assert conn.execute("SELECT to_regclass('schema_migration_events')").fetchone() == (None,)
    assert not backups.exists() or list(backups.iterdir()) == []


def test_apply_is_refused_until_every_provided_object_exists(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, role: str
) -> None:
    migrations = project(
        tmp_path,
        ["schema:auth", "extension:hstore", "function:auth.uid", f"role:{role}"],
        MIGRATION.format(role=role),
    )
    backups = tmp_path / "backups"
    options = RunOptions(backup=True, backup_dir=backups)
    with pytest.raises(RefusedError) as caught:
        commands.apply(target=db_url, project=migrations, options=options)
    assert str(caught.value) == (
        f"refusing to apply: 4 objects declared provided in pyproject.toml are absent from {db_url}: "
        f"extension hstore (CREATE EXTENSION hstore), function auth.uid, role {role} (CREATE ROLE {role}), "
        "schema auth (CREATE SCHEMA auth); create them or remove them from provided"
    )
    with pytest.raises(RefusedError):
        commands.apply(target=db_url, project=migrations, options=options.but(dry_run=True))
    untouched(conn, backups)

    provide_all(conn, role)
    conn.execute("DROP FUNCTION auth.uid()")  # one missing: named alone, no statement to offer
    with pytest.raises(
        RefusedError,
        match=r"^refusing to apply: function auth\.uid is declared provided in "
        r"pyproject\.toml but absent from .*: create it or remove it from provided$",
    ):
        commands.apply(target=db_url, project=migrations, options=options)
    untouched(conn, backups)

    conn.execute("CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql AS $$ SELECT NULL::uuid $$")
    assert commands.apply(target=db_url, project=migrations, options=options.but(dry_run=True)).dry_run
    result = commands.apply(target=db_url, project=migrations, options=options)
    assert [s.outcome for s in result.steps] == ["applied"] and result.backup is not None
    assert tables(conn) == ["notes", "schema_migration_events", "schema_migrations"]


def test_nothing_to_apply_asks_nothing(tmp_path: Path, db_url: str, conn: psycopg.Connection) -> None:
    """An up-to-date database is not refused: the objects are needed by migrations to run."""
    migrations = project(tmp_path, ["extension:pgcrypto"], "CREATE TABLE t (id int);\n")
    (migrations / "001_notes_rollback.sql").write_text("DROP TABLE t;\n")
    with pytest.raises(RefusedError, match=r"extension pgcrypto .* create it \(CREATE EXTENSION pgcrypto\)"):
        commands.apply(target=db_url, project=migrations)
    commands.baseline(target=db_url, project=migrations, options=RunOptions(to="001"))
    assert commands.apply(target=db_url, project=migrations).steps == []


def test_the_cli_refuses_with_exit_2_and_json_kind_refused(
    cli: Any, tmp_path: Path, db_url: str, conn: psycopg.Connection
) -> None:
    """The message masks the password of the URL it was given."""
    migrations = project(tmp_path, ["schema:auth"], "CREATE TABLE t (id int);\n")
    secret = db_url.replace("postgres@", "postgres:s3cr3t-pw@", 1)
    r = cli("--db", secret, "--migrations", str(migrations), "apply", "--yes")
    assert r.code == 2 and r.out == ""
    assert "schema auth is declared provided in pyproject.toml but absent from" in r.err
    assert "create it (CREATE SCHEMA auth) or remove it from provided" in r.err
    r = cli("--db", secret, "--migrations", str(migrations), "apply", "--yes", "--json")
    data = json.loads(r.out)
    assert (r.code, data["ok"], data["failure"], data["steps"]) == (2, False, "refused", [])
    assert "schema auth is declared provided" in data["error"]
    assert "s3cr3t-pw" not in r.out + r.err
    r = cli("--db", secret, "--migrations", str(migrations), "apply", "--dry-run", "--json")
    assert (r.code, json.loads(r.out)["failure"]) == (2, "refused")
    untouched(conn, tmp_path / "backups")


def test_names_that_need_quoting(tmp_path: Path, db_url: str, conn: psycopg.Connection, role: str) -> None:
    """Names are compared exactly as written, and the statement offered quotes them."""
    odd_role = f'{role} "x"'
    provided = ["schema:My Auth", f"role:{odd_role}", "table:My Auth.Users", "column:My Auth.Users.e-mail"]
    migrations = project(tmp_path, provided, "CREATE TABLE t (id int);\n")
    with pytest.raises(RefusedError) as caught:
        commands.apply(target=db_url, project=migrations)
    assert str(caught.value).endswith(
        f': column My Auth.Users.e-mail, role {odd_role} (CREATE ROLE "{role} ""x"""), '
        'schema My Auth (CREATE SCHEMA "My Auth"), table My Auth.Users; '
        "create them or remove them from provided"
    )
    conn.execute('CREATE SCHEMA "My Auth"')
    conn.execute('CREATE TABLE "My Auth"."Users" ("e-mail" text)')
    conn.execute('CREATE TABLE "My Auth".users (email text)')  # the folded name is another table
    try:
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(odd_role)))
        assert [s.outcome for s in commands.apply(target=db_url, project=migrations).steps] == ["applied"]
        rows = [r for r in commands.verify(target=db_url, project=migrations).rows if r.kind == "provided"]
        assert [(r.name, r.status) for r in rows] == [(p, "ok") for p in sorted(provided)]
    finally:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(odd_role)))


def test_verify_lists_provided_objects_and_fails_without_one(
    cli: Any, tmp_path: Path, db_url: str, conn: psycopg.Connection, role: str
) -> None:
    provided = ["schema:auth", "extension:hstore", "function:auth.uid", f"role:{role}", "function:auth.uid()"]
    migration = "CREATE TABLE notes (id serial PRIMARY KEY, owner uuid);\n" + MIGRATION.split(";\n", 2)[
        2
    ].format(role=role)
    migrations = project(tmp_path, provided, migration)
    (migrations / "001_notes_rollback.sql").write_text("DROP FUNCTION my_notes();\nDROP TABLE notes;\n")
    provide_all(conn, role)
    commands.apply(target=db_url, project=migrations)
    result = commands.verify(target=db_url, project=migrations)
    assert result.ok
    rows = [
        (r.migration, r.kind, r.name, r.status, r.found) for r in result.rows if r.migration == "provided"
    ]
    assert rows == [("provided", "provided", p, "ok", "present") for p in sorted(provided)]
    assert result.summary()[-1] == {
        "migration": "provided",
        "objects": 5,
        "ok": 5,
        "missing": 0,
        "changed": 0,
    }

    conn.execute("DROP EXTENSION hstore")
    r = cli("--db", db_url, "--migrations", str(migrations), "verify", "--json")
    data = json.loads(r.out)
    assert (r.code, data["ok"]) == (1, False)
    assert {
        "migration": "provided",
        "kind": "provided",
        "name": "extension:hstore",
        "status": "missing",
        "expected": "present",
        "found": "absent",
    } in data["rows"]
    r = cli("--db", db_url, "--migrations", str(migrations), "verify")
    assert r.code == 1
    assert [line.split() for line in r.out.splitlines() if "hstore" in line] == [
        ["provided", "provided", "extension:hstore", "MISSING", "present", "absent"]
    ]


def test_kinds_that_cannot_be_looked_up_are_refused_by_name() -> None:
    with pytest.raises(
        InputError, match=r"provided entry 'widget:x' in \[tool.bilantools\] has kind 'widget'"
    ):
        lookups(frozenset({"widget:x"}))
    assert lookups(
        frozenset({"function:f(integer, text)", "index:auth.i", "rls:auth.users.rls", "rls:t"})
    ) == [
        ("signature", "", "f(integer, text)", ""),
        ("relation", "auth", "i", "iI"),
        ("rls", "auth", "users", ""),
        ("rls", "", "t", ""),
    ]


def test_every_kind_is_looked_up_in_one_query(conn: psycopg.Connection) -> None:
    """Each kind a config can name, present and absent, answered by the catalog."""
    conn.execute("CREATE SCHEMA auth")
    conn.execute("CREATE TABLE auth.users (id int CONSTRAINT users_pk PRIMARY KEY, email text)")
    conn.execute("ALTER TABLE auth.users ENABLE ROW LEVEL SECURITY")
    conn.execute("CREATE POLICY own ON auth.users USING (true)")
    conn.execute(
        "CREATE FUNCTION auth.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$"
    )
    conn.execute(
        "CREATE TRIGGER touched BEFORE UPDATE ON auth.users FOR EACH ROW EXECUTE FUNCTION auth.touch()"
    )
    conn.execute("CREATE INDEX users_email ON auth.users (email)")
    conn.execute("CREATE VIEW auth.emails AS SELECT email FROM auth.users")
    conn.execute("CREATE SEQUENCE auth.ids")
    conn.execute("CREATE TYPE auth.level AS ENUM ('a')")
    conn.execute("CREATE FUNCTION auth.f(integer, text) RETURNS int LANGUAGE sql AS 'SELECT 1'")
    conn.execute("CREATE TABLE plain (id int)")
    present = [
        "table:auth.users", "table:plain", "column:auth.users.email", "constraint:auth.users.users_pk",
        "policy:auth.users.own", "trigger:auth.users.touched", "rls:auth.users.rls", "index:auth.users_email",
        "view:auth.emails", "sequence:auth.ids", "type:auth.level", "function:auth.f(integer, text)",
        "function:auth.touch", "function:now", "schema:auth", "role:postgres", "extension:plpgsql",
    ]  # fmt: skip
    absent = [
        "table:auth.emails", "table:users", "column:auth.users.id2", "constraint:auth.users.other",
        "policy:auth.users.none", "trigger:plain.touched", "rls:plain", "index:auth.users",
        "view:auth.users", "sequence:auth.users", "type:auth.users_x", "function:auth.f(text)",
        "function:auth.uid", "schema:Auth", "role:nobody_here", "extension:hstore",
    ]  # fmt: skip
    found = presence(conn, frozenset(present + absent))
    assert {p.entry for p in found if p.present} == set(present)
    assert {p.entry for p in found if not p.present} == set(absent)
    assert presence(conn, frozenset()) == []
