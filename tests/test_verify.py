"""Verification tables, drift, fingerprint and detect, on the 29 migrations, with things
broken on purpose."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands
from bilantools.db.fingerprint import fingerprint
from bilantools.db.sandbox import embedded_bin
from bilantools.source.layouts.native import discover
from tests.conftest import tables

pytestmark = pytest.mark.pg15
MIGRATIONS = Path(__file__).parent.parent / "migrations"


@pytest.fixture
def migrated(db_url: str) -> str:
    commands.apply(target=db_url, project=MIGRATIONS)
    return db_url


def problems(url: str) -> list[tuple[str, str, str, str]]:
    return [
        (r.migration, r.kind, r.name, r.status)
        for r in commands.verify(target=url, project=MIGRATIONS).rows
        if r.status != "ok"
    ]


def test_fully_migrated_database_verifies(cli: Any, migrated: str) -> None:
    result = commands.verify(target=migrated, project=MIGRATIONS)
    assert result.ok and len(result.rows) > 1000
    assert {r.migration for r in result.rows} == {f"{n:03d}" for n in range(1, 30)} - {"019"}
    assert commands.drift(target=migrated, project=MIGRATIONS).lists() == {
        "unexpected": [],
        "absent": [],
        "changed": [],
    }
    r = cli("--db", migrated, "--migrations", str(MIGRATIONS), "verify", "--json")
    data = json.loads(r.out)
    assert r.code == 0 and data["ok"] is True
    assert {"migration", "kind", "name", "status"} <= set(data["rows"][0])
    assert [s["migration"] for s in data["summary"]][:2] == ["001", "002"]
    r = cli("--db", migrated, "--migrations", str(MIGRATIONS), "drift")
    assert (r.code, r.out.strip()) == (0, "no drift")
    r = cli("--db", migrated, "fingerprint", "--json")
    with psycopg.connect(migrated) as conn:
        assert json.loads(r.out) == {"fingerprint": fingerprint(conn, rows=False).digest}


def test_a_dropped_index(cli: Any, migrated: str, conn: psycopg.Connection) -> None:
    before = fingerprint(conn, rows=False)
    conn.execute("DROP INDEX idx_messages_conversation_id")
    assert problems(migrated) == [("028", "index", "idx_messages_conversation_id", "missing")]
    assert commands.drift(target=migrated, project=MIGRATIONS).lists() == {
        "unexpected": [],
        "absent": ["index idx_messages_conversation_id"],
        "changed": [],
    }
    assert before.diff(fingerprint(conn, rows=False)) == [
        ("index", "idx_messages_conversation_id", "removed")
    ]
    r = cli("--db", migrated, "--migrations", str(MIGRATIONS), "verify")
    assert r.code == 1 and "idx_messages_conversation_id  MISSING" in r.out
    assert r.out.strip().endswith("objects verified: 1 problem(s)")


def test_row_level_security_disabled(migrated: str, conn: psycopg.Connection) -> None:
    before = fingerprint(conn, rows=False)
    conn.execute("ALTER TABLE bilans DISABLE ROW LEVEL SECURITY")
    assert before.diff(fingerprint(conn, rows=False)) == [("table", "bilans", "changed")]
    assert problems(migrated) == [("001", "table", "bilans", "changed")]
    assert commands.drift(target=migrated, project=MIGRATIONS).changed == ["table bilans"]
    row = next(r for r in commands.verify(target=migrated, project=MIGRATIONS).rows if r.status == "changed")
    assert "rls=true" in row.expected and "rls=false" in row.found


def test_a_stray_table(cli: Any, migrated: str, conn: psycopg.Connection) -> None:
    before = fingerprint(conn, rows=False)
    conn.execute("CREATE TABLE notes_by_hand (id int PRIMARY KEY, body text)")
    assert [(k, n) for k, n, change in before.diff(fingerprint(conn, rows=False)) if change == "added"] == [
        ("column", "notes_by_hand.body"),
        ("column", "notes_by_hand.id"),
        ("constraint", "notes_by_hand.notes_by_hand_pkey"),
        ("index", "notes_by_hand_pkey"),
        ("table", "notes_by_hand"),
    ]
    assert problems(migrated) == []  # nothing a migration creates is missing or changed
    assert commands.drift(target=migrated, project=MIGRATIONS).lists() == {
        "unexpected": [
            "column notes_by_hand.body",
            "column notes_by_hand.id",
            "constraint notes_by_hand.notes_by_hand_pkey",
            "index notes_by_hand_pkey",
            "table notes_by_hand",
        ],
        "absent": [],
        "changed": [],
    }
    r = cli("--db", migrated, "--migrations", str(MIGRATIONS), "drift")
    assert r.code == 1 and "table notes_by_hand: not created by any migration" in r.out


def test_an_edited_function_body(migrated: str, conn: psycopg.Connection) -> None:
    before = fingerprint(conn, rows=False)
    conn.execute(
        "CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$"
    )
    assert before.diff(fingerprint(conn, rows=False)) == [("function", "set_updated_at()", "changed")]
    assert problems(migrated) == [("001", "function", "set_updated_at()", "changed")]
    assert commands.drift(target=migrated, project=MIGRATIONS).changed == ["function set_updated_at()"]


def test_verify_and_drift_show_both_sides_of_a_change(
    cli: Any, migrated: str, conn: psycopg.Connection
) -> None:
    """A changed object is shown as what the migrations create (-) and what the database
    has (+), cut to where they differ; a function body as its changed lines."""
    conn.execute("ALTER TABLE bilans ALTER COLUMN status SET DEFAULT 'open'")
    conn.execute(
        "CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "BEGIN\n    NEW.updated_at := clock_timestamp();\n    RETURN NEW;\nEND;\n$$"
    )
    base = ["--db", migrated, "--migrations", str(MIGRATIONS)]
    r = cli(*base, "verify")
    assert r.code == 1
    [column] = [line for line in r.out.splitlines() if "bilans.status" in line]
    assert column.split()[3:] == [
        "CHANGED",
        "…default",
        "'draft'::character…",
        "…default",
        "'open'::character…",
    ]
    assert (
        "function set_updated_at() (001): - expected, + found" not in r.out
    )  # one line each: the table shows it
    r = cli(*base, "drift")
    lines = r.out.splitlines()
    at = lines.index("column bilans.status: definition differs from the migrations")
    assert lines[at + 1 : at + 3] == [
        "  - …not null default 'draft'::character varying",
        "  + …not null default 'open'::character varying",
    ]
    at = lines.index("function set_updated_at(): definition differs from the migrations")
    assert lines[at + 1 : at + 3] == [
        "  - NEW.updated_at := now();",
        "  + NEW.updated_at := clock_timestamp();",
    ]
    data = json.loads(cli(*base, "drift", "--json").out)
    assert data["changed"] == ["column bilans.status", "function set_updated_at()"]
    status = data["definitions"]["column bilans.status"]
    assert status == {
        "expected": "character varying(20) not null default 'draft'::character varying",
        "found": "character varying(20) not null default 'open'::character varying",
    }
    assert "clock_timestamp()" in data["definitions"]["function set_updated_at()"]["found"]


def psql_apply(url: str, upto: int) -> None:
    """Run the files with psql as the guide's runbook does: no tracking table."""
    binary = embedded_bin()
    psql = str(binary / "psql") if binary else shutil.which("psql")
    assert psql, "psql is needed to build a hand-migrated database"
    for m in discover(MIGRATIONS):
        if m.order <= (upto,):
            subprocess.run(
                [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-f", str(m.path), url],
                check=True,
                capture_output=True,
            )


@pytest.mark.parametrize("upto", [29, 17])
def test_detect_suggests_the_baseline(cli: Any, db_url: str, conn: psycopg.Connection, upto: int) -> None:
    psql_apply(db_url, upto)
    before = fingerprint(conn)
    found = commands.detect(target=db_url, project=MIGRATIONS)
    assert found.suggested == f"{upto:03d}"
    shares = {s["version"]: s["share"] for s in found.shares}
    assert all(shares[f"{n:03d}"] in (1.0, None) for n in range(1, upto + 1))
    if upto < 29:
        assert shares["018"] == 0.0 and shares["027"] == 0.0
    assert fingerprint(conn) == before  # detect writes nothing
    assert "schema_migration_events" not in tables(conn)
    r = cli("--db", db_url, "--migrations", str(MIGRATIONS), "detect")
    assert r.code == 0 and r.out.strip().endswith(f"suggested: bilantools baseline --to {upto:03d}")
    # the suggestion is the one to use: after baseline, nothing is pending up to it
    commands.baseline(target=db_url, project=MIGRATIONS, options=commands.RunOptions(to=f"{upto:03d}"))
    assert commands.verify(target=db_url, project=MIGRATIONS).ok


def test_detect_on_an_empty_database(db_url: str) -> None:
    found = commands.detect(target=db_url, project=MIGRATIONS)
    assert found.suggested is None and all(s["share"] in (0.0, None) for s in found.shares)


def test_detect_on_a_tracked_database_says_so(cli: Any, migrated: str) -> None:
    """A database bilantools migrated needs no baseline: detect says where its history is."""
    found = commands.detect(target=migrated, project=MIGRATIONS)
    assert found.suggested is None and found.tracked is not None and len(found.tracked[1]) == 29
    r = cli("--db", migrated, "--migrations", str(MIGRATIONS), "detect")
    assert r.code == 0 and "suggested" not in r.out
    assert r.out.strip().endswith(
        "tracked: public.schema_migrations records 29 applied migration(s), the last 029: no baseline "
        "needed; see 'bilantools status' (and 'verify' for what differs)"
    )
    data = json.loads(cli("--db", migrated, "--migrations", str(MIGRATIONS), "detect", "--json").out)
    assert data["tracked"] == {"table": "public.schema_migrations", "applied": 29, "last": "029"}
    assert data["suggested_baseline"] is None
