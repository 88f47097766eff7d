"""The 29 migrations of the guide, applied by bilantools to a real PostgreSQL: the schema
they build, rollback round trips, idempotent re-runs, and 029's tracking objects.

(Row level security is proven by behaviour in test_rls.py.)"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands
from bilantools.db.fingerprint import Fingerprint, fingerprint
from bilantools.db.history import ensure_tracking, tracking_sql
from bilantools.source.categories import load_categories
from bilantools.source.files import Script, checksum
from bilantools.source.layouts.native import discover
from bilantools.source.statements import split

pytestmark = pytest.mark.pg15
MIGRATIONS = Path(__file__).parent.parent / "migrations"
TRACKING_FUNCTIONS = {
    "migration_applied",
    "record_migration",
    "record_migration_failure",
    "get_migration_status",
}


def explain(before: Fingerprint, after: Fingerprint) -> str:
    return "; ".join(f"{kind} {name} {change}" for kind, name, change in before.diff(after)[:10])


def test_the_directory_is_complete_and_valid() -> None:
    found = discover(MIGRATIONS)
    assert [m.version for m in found] == [f"{n:03d}" for n in range(1, 30)]
    assert found.findings == []  # every migration has its rollback, no clash, no bad header
    assert all(m.transactional for m in found)


def test_schema_figures_from_the_catalog(db_url: str, conn: psycopg.Connection) -> None:
    commands.apply(target=db_url, project=MIGRATIONS)
    guide = {t for tables in load_categories(MIGRATIONS).values() for t in tables}
    live = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert live == guide
    assert len(live - {"schema_migrations", "schema_migration_events"}) == 43
    figures = conn.execute(
        """SELECT
             (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'),
             (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace
                AND relkind = 'r' AND relrowsecurity),
             (SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal),
             (SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace
                AND NOT proname = ANY(%s))""",
        (list(TRACKING_FUNCTIONS),),
    ).fetchone()
    assert figures is not None
    indexes, rls_tables, triggers, functions = figures
    assert indexes >= 100 and rls_tables == 15 and triggers >= 20 and functions >= 15
    without_policy = conn.execute(
        """SELECT c.relname FROM pg_class c
           WHERE c.relnamespace = 'public'::regnamespace AND c.relrowsecurity
             AND NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)"""
    ).fetchall()
    assert without_policy == []
    tracked = conn.execute("SELECT count(*) FROM schema_migrations WHERE success").fetchone()
    assert tracked == (29,)


def test_seed_data(db_url: str, conn: psycopg.Connection) -> None:
    commands.apply(target=db_url, project=MIGRATIONS)
    criteria = conn.execute(
        "SELECT criterion_number, array_agg(indicator_number ORDER BY indicator_number)"
        " FROM qualiopi_indicators GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert [(c, min(n), max(n)) for c, n in criteria] == [
        (1, 1, 3),
        (2, 4, 8),
        (3, 9, 16),
        (4, 17, 20),
        (5, 21, 22),
        (6, 23, 29),
        (7, 30, 32),
    ]
    assert sum(len(n) for _, n in criteria) == 32
    counts: dict[str, int] = dict(
        conn.execute(
            "SELECT 'mbti', count(*) FROM mbti_questions"
            " UNION ALL SELECT 'riasec', count(*) FROM riasec_questions"
            " UNION ALL SELECT 'values', count(*) FROM values_questions"
            " UNION ALL SELECT 'interests', count(*) FROM interests_questions"
        ).fetchall()
    )
    assert counts["mbti"] >= 40 and counts["riasec"] >= 36 and counts["values"] + counts["interests"] >= 30
    dimensions = conn.execute("SELECT count(DISTINCT dimension) FROM mbti_questions").fetchone()
    types = conn.execute("SELECT array_agg(DISTINCT category::text) FROM riasec_questions").fetchone()
    assert dimensions == (4,) and types is not None and sorted(types[0]) == sorted("ACEIRS")
    french = conn.execute("SELECT count(*) FROM qualiopi_indicators WHERE title ~ '[éèàçêô]'").fetchone()
    assert french is not None and french[0] > 0


def test_rollback_round_trip_of_every_migration(db_url: str, conn: psycopg.Connection) -> None:
    """For each k: 1..k then rollback k equals 1..k-1, and re-applying k gives 1..k again."""
    ensure_tracking(conn)  # the engine creates these before 001; they are not 001's
    previous = fingerprint(conn)
    for m in discover(MIGRATIONS):
        commands.apply(target=db_url, project=MIGRATIONS, options=commands.RunOptions(to=m.version))
        applied = fingerprint(conn)
        assert applied.digest != previous.digest, f"{m.label} changed nothing"
        assert [s.version for s in commands.rollback(target=db_url, project=MIGRATIONS).steps] == [m.version]
        after_rollback = fingerprint(conn)
        assert after_rollback.digest == previous.digest, (
            f"rollback of {m.label}: {explain(previous, after_rollback)}"
        )
        commands.apply(target=db_url, project=MIGRATIONS, options=commands.RunOptions(to=m.version))
        again = fingerprint(conn)
        assert again.digest == applied.digest, f"re-applying {m.label}: {explain(applied, again)}"
        previous = applied


def test_rerunning_every_migration_changes_nothing(db_url: str, conn: psycopg.Connection) -> None:
    """The guide's troubleshooting: a migration run again by hand must not fail or change anything."""
    commands.apply(target=db_url, project=MIGRATIONS)
    before = fingerprint(conn)
    for m in discover(MIGRATIONS):
        with conn.transaction():
            for statement in split(m.script):
                conn.execute(statement.text)
        after = fingerprint(conn)
        assert after.digest == before.digest, f"re-running {m.label}: {explain(before, after)}"


def test_029_declares_the_engine_tracking_objects_verbatim() -> None:
    engine_sql = tracking_sql().split("-- Engine-only from here on")[0]
    engine = {
        " ".join(s.text.split())
        for s in split(Script(Path("tracking.sql"), engine_sql, checksum(engine_sql)))
    }
    m029 = discover(MIGRATIONS).find("029")
    assert m029 is not None
    declared = {" ".join(s.text.split()) for s in split(m029.script)}
    assert len(engine) == 5 and engine <= declared


def test_029_rollback_keeps_the_tracking_table(db_url: str, conn: psycopg.Connection) -> None:
    commands.apply(target=db_url, project=MIGRATIONS)
    commands.rollback(target=db_url, project=MIGRATIONS, options=commands.RunOptions(step=1))
    assert conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone() == (True,)
    assert conn.execute("SELECT migration_applied('028'), migration_applied('029')").fetchone() == (
        True,
        False,
    )


def test_stats_json_shape(cli: Any, db_url: str) -> None:
    commands.apply(target=db_url, project=MIGRATIONS)
    r = cli("--db", db_url, "--migrations", str(MIGRATIONS), "stats", "--json")
    assert r.code == 0
    data = json.loads(r.out)
    assert set(data["totals"]) == {"tables", "indexes", "rls_tables", "policies", "triggers", "functions"}
    assert data["totals"]["tables"] == 45 and data["totals"]["rls_tables"] == 15
    assert [c["name"] for c in data["categories"]] == [
        "Core",
        "Assessments",
        "Auth",
        "AI/ML",
        "Tests",
        "Chat",
        "Scheduling",
        "Qualiopi",
        "Documents",
        "Tracking",
    ]
    assert data["categories"][0]["tables"][:2] == ["users", "organizations"]
    text = cli("--db", db_url, "--migrations", str(MIGRATIONS), "stats").out
    assert "RLS-enabled tables      15" in text and "10. Tracking (2): schema_migrations" in text


GUIDE_CHAINS = [
    ["001", "002", "003", "004", "005", "006", "007"],
    ["004", "018", "019", "020", "021", "022"],
    ["018", "027", "028"],
    ["027", "029"],
    ["008", "009", "010", "011", "012", "013"],
    ["014", "015", "016", "017"],
    ["023", "024", "025", "026"],
]
# Links of the guide with no object-level dependency in the schema: kept by `-- depends:`
# (the header of each file says why; inventing a dependency would only worsen the schema).
DECLARED_ONLY = {
    ("004", "005"),
    ("006", "007"),
    ("004", "018"),
    ("019", "020"),
    ("027", "029"),
    ("023", "024"),
    ("024", "025"),
    ("025", "026"),
}


def test_the_guide_chains_come_out_of_the_sql() -> None:
    from bilantools.db.history import tracking_objects
    from bilantools.source.graph import analyse

    analysis = analyse(discover(MIGRATIONS), tracking_objects())
    assert analysis.findings == []
    inferred, declared = set(), set()
    for chain in GUIDE_CHAINS:
        for before, after in itertools.pairwise(chain):
            if before in analysis.inferred[after]:
                inferred.add((before, after))
            elif before in analysis.declared[after]:
                declared.add((before, after))
    assert declared == DECLARED_ONLY
    assert len(inferred) == 17
