"""Invalid indexes, whoever left them: `status` and `verify` list every one of the database,
and a `-- transaction: off` migration that builds an index of that name concurrently drops
it first and builds it for real (IF NOT EXISTS would otherwise skip the build).

The invalid index is made as another tool would leave it: a CREATE UNIQUE INDEX
CONCURRENTLY over duplicate rows fails and leaves the index behind, INVALID.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands

DEFINITION = "CREATE UNIQUE INDEX people_name_uniq ON public.people USING btree (name)"
LEFT = {"schema": "public", "table": "people", "index": "people_name_uniq", "definition": DEFINITION}
BUILD = (
    "-- transaction: off\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS people_name_uniq ON people (name);\n"
)


def leave_invalid_index(conn: psycopg.Connection) -> None:
    """A failed concurrent build, not ours: duplicate names make the unique index fail."""
    conn.execute("INSERT INTO people (name) SELECT name FROM people")
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY people_name_uniq ON people (name)")


def valid(conn: psycopg.Connection) -> object:
    query = "SELECT indisvalid FROM pg_index WHERE indexrelid = 'people_name_uniq'::regclass"
    row = conn.execute(query).fetchone()
    return row[0] if row else None


def test_status_and_verify_list_every_invalid_index(
    cli: Any, db_url: str, conn: psycopg.Connection, basic: Path
) -> None:
    commands.apply(target=db_url, project=basic)
    r = cli("--db", db_url, "--migrations", str(basic), "status", "--json")
    assert "invalid_indexes" not in json.loads(r.out)  # the key comes with the first one
    leave_invalid_index(conn)
    assert valid(conn) is False

    r = cli("--db", db_url, "--migrations", str(basic), "status", "--json")
    assert (r.code, json.loads(r.out)["invalid_indexes"]) == (0, [LEFT])
    line = (
        "invalid index public.people_name_uniq on public.people (ignored by queries, still updated by every "
        f"write): DROP INDEX CONCURRENTLY public.people_name_uniq, then build it again ({DEFINITION}), or "
        "apply the migration that builds it"
    )
    r = cli("--db", db_url, "--migrations", str(basic), "status")
    assert r.code == 0 and r.out.splitlines()[-2:] == [line, "3 migrations: 3 applied"]

    r = cli("--db", db_url, "--migrations", str(basic), "verify", "--json")
    shown = json.loads(r.out)
    assert (r.code, shown["ok"], shown["invalid_indexes"]) == (0, True, [LEFT])  # the schema is as migrated
    r = cli("--db", db_url, "--migrations", str(basic), "verify")
    assert r.code == 0 and r.out.splitlines()[-1] == line


def test_a_concurrent_build_drops_the_invalid_index_someone_left(
    cli: Any, db_url: str, conn: psycopg.Connection, basic: Path
) -> None:
    commands.apply(target=db_url, project=basic)
    leave_invalid_index(conn)
    conn.execute("DELETE FROM people WHERE ctid NOT IN (SELECT min(ctid) FROM people GROUP BY name)")
    (basic / "004_unique_names.sql").write_text(BUILD)
    (basic / "004_unique_names_rollback.sql").write_text("DROP INDEX IF EXISTS people_name_uniq;\n")

    r = cli("--db", db_url, "--migrations", str(basic), "apply", "--yes")
    assert r.code == 0, r.err
    dropped = (
        "dropped the invalid index(es) public.people_name_uniq a failed build had left (built again now)"
    )
    [step] = [line for line in r.out.splitlines() if line.startswith("004")]
    assert step.endswith(dropped)
    assert valid(conn) is True  # built, not skipped by IF NOT EXISTS
    assert commands.status(target=db_url, project=basic).invalid_indexes == []
    detail = conn.execute(
        "SELECT detail FROM schema_migration_events WHERE version = '004' AND outcome = 'started'"
    ).fetchone()
    assert detail == (f"started; {dropped}",)
