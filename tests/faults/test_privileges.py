"""Privileges: what a role that may not create, or may only read, gets from bilantools.

* A role without CREATE on schema public: `apply` stops with one line (exit 2) that names
  the missing privilege and the fix, and the database is exactly as before (schema
  fingerprint with row counts, and the tracking rows).
* A read-only role (CONNECT, USAGE on the schema, SELECT on every table, nothing else) on a
  fully migrated database runs status, verify, stats, drift, validate, fingerprint,
  inspect and detect with exit 0 and the same answers as the owner gets.
* On a database that was never migrated, `status` works for that role too.

Roles are cluster-wide: each test creates its own, with a unique name, and drops it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

from bilantools.db.fingerprint import fingerprint
from bilantools.db.sandbox import Sandbox
from tests.faults.conftest import Figures

REPO = Path(__file__).parent.parent.parent
MIGRATIONS = REPO / "migrations"
PASSWORD = "Priv-t3st-pw"


@pytest.fixture
def make_role(server: Sandbox, db_url: str) -> Iterator[Any]:
    """make_role(*grants) -> URL of a new LOGIN role on the test's database, after running
    each grant (SQL with {role} and {db} placeholders, as identifiers). Dropped afterwards."""
    made: list[str] = []
    dbname = db_url.rsplit("/", 1)[1]

    def make(*grants: str) -> str:
        name = "bt_priv_" + uuid.uuid4().hex[:10]
        made.append(name)
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(name), sql.Literal(PASSWORD)
                )
            )
            for grant in grants:
                conn.execute(sql.SQL(grant).format(role=sql.Identifier(name), db=sql.Identifier(dbname)))
        return db_url.replace("postgres@", f"{name}:{quote(PASSWORD, safe='')}@", 1)

    yield make
    with psycopg.connect(db_url, autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def state(conn: psycopg.Connection) -> tuple[str, list[tuple[Any, ...]]]:
    """The schema fingerprint (row counts included) and every tracking and event row."""
    rows: list[tuple[Any, ...]] = []
    for table in ("schema_migrations", "schema_migration_events"):
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() != (None,):
            query = sql.SQL("SELECT row_to_json(t)::text FROM {} t ORDER BY 1").format(sql.Identifier(table))
            rows.extend(conn.execute(query).fetchall())
    return fingerprint(conn).digest, rows


NO_CREATE = (
    "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
    "GRANT CONNECT ON DATABASE {db} TO {role}",
    "GRANT USAGE ON SCHEMA public TO {role}",
)
# What an application role usually has: it reads and writes rows, it never changes the schema.
READ_WRITE = (
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
    "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}",
)
READ_ONLY = (
    "GRANT CONNECT ON DATABASE {db} TO {role}",
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
)


def test_apply_without_create_on_a_fresh_database(
    cli: Any, conn: psycopg.Connection, make_role: Any, basic: Path, figures: Figures
) -> None:
    url = make_role(*NO_CREATE)
    before = state(conn)
    r = cli("--db", url, "--migrations", str(basic), "apply")
    assert r.code == 2, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("target: "), r.err  # the target, then one line
    error = lines[1]
    assert error.startswith("error: ") and "permission denied for schema public" in error, error
    assert "GRANT CREATE ON SCHEMA public" in error and "schema owner" in error, error
    assert state(conn) == before
    figures.add("privileges: cases", 1)


def test_apply_without_create_on_a_tracked_database(
    cli: Any, conn: psycopg.Connection, db_url: str, make_role: Any, basic: Path, figures: Figures
) -> None:
    """The owner applied 001; an application role that may write rows (the tracking table's
    too) but not create anything runs apply: it must be refused, and record nothing."""
    (basic / "002_add_email.sql").write_text("CREATE TABLE emails (id serial PRIMARY KEY, email text);\n")
    (basic / "002_add_email_rollback.sql").write_text("DROP TABLE IF EXISTS emails;\n")
    assert cli("--db", db_url, "--migrations", str(basic), "apply", "--to", "001").code == 0
    url = make_role(*NO_CREATE, *READ_WRITE)
    before = state(conn)
    r = cli("--db", url, "--migrations", str(basic), "apply")
    after = state(conn)
    assert after[0] == before[0], "the schema changed"
    assert after[1] == before[1], (
        f"a refused apply wrote history: {[r for r in after[1] if r not in before[1]]}"
    )
    lines = r.err.strip().splitlines()
    error = lines[-1]
    assert (r.code, len(lines)) == (2, 2), r.err
    assert error.startswith("error: ") and "permission denied for schema public" in error, error
    assert "GRANT CREATE ON SCHEMA public" in error, error  # the fix, not "fix the file"
    figures.add("privileges: cases", 1)


def test_apply_without_the_right_to_write_the_history(
    cli: Any, conn: psycopg.Connection, db_url: str, make_role: Any, basic: Path, figures: Figures
) -> None:
    """A role that may create tables but not write the tracking table the owner created: the
    migration and its tracking row are one transaction, so the migration is undone too."""
    assert cli("--db", db_url, "--migrations", str(basic), "apply", "--to", "001").code == 0
    (basic / "002_add_email.sql").write_text("CREATE TABLE emails (id serial PRIMARY KEY, email text);\n")
    url = make_role(
        "GRANT CONNECT ON DATABASE {db} TO {role}",
        "GRANT USAGE, CREATE ON SCHEMA public TO {role}",
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
    )
    before = state(conn)
    r = cli("--db", url, "--migrations", str(basic), "apply")
    assert state(conn) == before, "the migration stayed without its tracking row"
    lines = r.err.strip().splitlines()
    assert (r.code, len(lines)) == (2, 2), r.err
    assert "permission denied for table schema_migration" in lines[1] and "privileges" in lines[1], r.err
    figures.add("privileges: cases", 1)


def test_a_read_only_role_reads_everything(
    cli: Any, conn: psycopg.Connection, db_url: str, make_role: Any, figures: Figures
) -> None:
    assert cli("--db", db_url, "--migrations", str(MIGRATIONS), "apply").code == 0
    url = make_role(*READ_ONLY)
    with psycopg.connect(url) as reader:  # what the role may do: read, and nothing else
        assert reader.execute("SELECT count(*) FROM mbti_questions").fetchone() == (48,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("DELETE FROM schema_migrations")
    before = state(conn)

    def run(*args: str) -> Iterator[Any]:
        """The owner's answer, then the reader's (the masked target differs: the user)."""
        for who in (db_url, url):
            r = cli("--db", who, "--migrations", str(MIGRATIONS), *args)
            assert r.code == 0, (args, who == url, r.err)
            answer = json.loads(r.out)
            answer.pop("target", None)
            yield answer

    owner, reader = run("status", "--json")
    assert [m["state"] for m in reader["migrations"]] == ["applied"] * 29 and reader == owner
    owner, reader = run("verify", "--json")
    assert reader["ok"] and len(reader["rows"]) > 500 and reader == owner
    owner, reader = run("drift", "--json")
    assert reader == owner == {"unexpected": [], "absent": [], "changed": [], "definitions": {}}
    owner, reader = run("stats", "--json")
    assert reader["totals"] == owner["totals"]
    assert (reader["totals"]["tables"], reader["totals"]["policies"]) == (45, 32)
    assert reader["categories"] == owner["categories"]
    owner, reader = run("validate", "--json")
    assert reader == owner == {"findings": []}
    owner, reader = run("fingerprint", "--details", "--json")
    assert reader == owner  # the reader sees the whole catalog, function bodies included
    owner, reader = run("inspect", "tables", "--json")
    assert reader == owner and len(reader["rows"]) == 45
    owner, reader = run("detect", "--json")
    assert reader == owner and reader["suggested_baseline"] is None  # tracked: no baseline to suggest
    assert reader["tracked"] == {"table": "public.schema_migrations", "applied": 29, "last": "029"}
    assert state(conn) == before, "reading changed the database"
    figures.add("privileges: read-only commands checked", 8)
    figures.add("privileges: cases", 1)


def test_a_read_only_role_on_a_never_migrated_database(
    cli: Any, conn: psycopg.Connection, make_role: Any, figures: Figures
) -> None:
    url = make_role(*READ_ONLY)
    before = state(conn)
    r = cli("--db", url, "--migrations", str(MIGRATIONS), "status")
    assert r.code == 0, r.err
    assert r.out.strip().splitlines()[-1] == "29 migrations: 29 pending"
    assert state(conn) == before and before[1] == []
    figures.add("privileges: cases", 1)
