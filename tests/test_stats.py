"""`bilantools stats`: the guide's schema overview from the live catalog, on the 29
migrations applied to a real PostgreSQL. Every figure is checked against an independent
catalog query (or count), not against the code that computes it."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle
from psycopg import sql

from bilantools import commands
from bilantools.db.history import tracking_objects
from bilantools.db.stats import (
    CATEGORY_COLUMNS,
    INDEX_COLUMNS,
    TABLE_COLUMNS,
    TOTAL_KEYS,
    TRACKING_TABLES,
    SchemaStats,
    schema_stats,
)
from bilantools.errors import DatabaseError
from bilantools.render import plots
from bilantools.render.stats import render_text
from bilantools.render.text import human_bytes
from bilantools.source.categories import UNCATEGORIZED, load_categories

pytestmark = pytest.mark.pg15
REPO = Path(__file__).parent.parent
MIGRATIONS = REPO / "migrations"
CATEGORIES = load_categories(MIGRATIONS)
GUIDE_ORDER = [
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
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def migrated(db_url: str, conn: psycopg.Connection, exact_rows: bool = False) -> SchemaStats:
    commands.apply(target=db_url, project=MIGRATIONS)
    return schema_stats(conn, "test", CATEGORIES, exact_rows=exact_rows)


def catalog_totals(conn: psycopg.Connection) -> dict[str, int]:
    """The six totals, from the views a DBA would query by hand."""
    row = conn.execute(
        """SELECT
             (SELECT count(*) FROM pg_tables WHERE schemaname = 'public'),
             (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'),
             (SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND rowsecurity),
             (SELECT count(*) FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
                WHERE c.relnamespace = 'public'::regnamespace),
             (SELECT count(DISTINCT (event_object_table, trigger_name)) FROM information_schema.triggers
                WHERE trigger_schema = 'public'),
             (SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND prokind <> 'a')"""
    ).fetchone()
    assert row is not None
    return dict(zip(TOTAL_KEYS, row, strict=True))


def exact_counts(conn: psycopg.Connection, names: list[str]) -> dict[str, int]:
    counts = {}
    for name in names:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))).fetchone()
        assert row is not None
        counts[name] = row[0]
    return counts


def test_totals_and_categories_match_the_catalog(db_url: str, conn: psycopg.Connection) -> None:
    stats = migrated(db_url, conn)
    assert stats.totals == catalog_totals(conn)
    assert stats.totals["tables"] == 45 and stats.totals["rls_tables"] == 15
    assert stats.summary["application_tables"] == 43 and stats.summary["tracking_tables"] == 2

    assert [c.name for c in stats.category_stats] == GUIDE_ORDER
    assert stats.categories == [(name, CATEGORIES[name]) for name in GUIDE_ORDER]
    assert stats.categories[0][1][:2] == ["users", "organizations"]
    assert stats.uncategorized == [] and stats.missing == {}
    assert all(c.missing == [] for c in stats.category_stats)

    per_table = {
        name: (indexes, total, table, index)
        for name, indexes, total, table, index in conn.execute(
            """SELECT t.tablename, (SELECT count(*) FROM pg_indexes i WHERE i.schemaname = 'public'
                                      AND i.tablename = t.tablename),
                      pg_total_relation_size(c.oid), pg_table_size(c.oid), pg_indexes_size(c.oid)
               FROM pg_tables t JOIN pg_class c ON c.oid = format('public.%I', t.tablename)::regclass
               WHERE t.schemaname = 'public'"""
        ).fetchall()
    }
    for category in stats.category_stats:
        names = CATEGORIES[category.name]
        assert category.index_count == sum(per_table[n][0] for n in names), category.name
        assert category.bytes == sum(per_table[n][1] for n in names), category.name
        assert category.table_bytes == sum(per_table[n][2] for n in names), category.name
        assert category.index_bytes == sum(per_table[n][3] for n in names), category.name
        assert category.bytes > 0
    assert sum(c.index_count for c in stats.category_stats) == stats.totals["indexes"]
    assert stats.summary["bytes"] == sum(v[1] for v in per_table.values())
    for table in stats.tables:  # a table's index bytes are its indexes' bytes
        assert table.index_bytes == sum(i.bytes for i in stats.indexes if i.table == table.name)

    # The front door gives the same overview.
    front = commands.stats(target=db_url, project=MIGRATIONS).as_dict()
    assert {**front, "target": "test"} == stats.as_dict()


def test_as_dict_keeps_the_contract_and_adds_the_new_keys(db_url: str, conn: psycopg.Connection) -> None:
    data = json.loads(json.dumps(migrated(db_url, conn).as_dict()))
    assert set(data["totals"]) == set(TOTAL_KEYS)  # closed: test_stats_json_shape checks it too
    assert {"target", "totals", "categories", "uncategorized", "largest_tables", "largest_indexes"} <= set(
        data
    )
    assert data["rows_source"] == "estimate" and data["schema"] == "public"
    core = data["categories"][0]
    assert core["name"] == "Core" and core["tables"] == CATEGORIES["Core"]
    assert core["table_count"] == 9 and core["missing"] == []
    assert {"index_count", "rows", "bytes", "table_bytes", "index_bytes"} <= set(core)
    assert set(data["largest_tables"][0]) == set(TABLE_COLUMNS)
    assert set(data["largest_indexes"][0]) == set(INDEX_COLUMNS)
    assert len(data["largest_tables"]) == 10 and len(data["largest_indexes"]) == 10


def test_row_estimates_and_exact_counts(db_url: str, conn: psycopg.Connection) -> None:
    commands.apply(target=db_url, project=MIGRATIONS)
    names = [t for tables in CATEGORIES.values() for t in tables]
    truth = exact_counts(conn, names)
    assert truth["mbti_questions"] == 48 and truth["qualiopi_indicators"] == 32

    exact = schema_stats(conn, "test", CATEGORIES, exact_rows=True)
    assert exact.rows_exact and exact.as_dict()["rows_source"] == "exact"
    assert {t.name: t.rows for t in exact.tables} == truth
    assert {c.name: c.rows for c in exact.category_stats} == {
        name: sum(truth[t] for t in tables) for name, tables in CATEGORIES.items()
    }

    # Never analysed: reltuples is -1, the estimate comes from the cumulative statistics
    # (which the applying session flushes when it ends: wait for them).
    reltuples = conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'mbti_questions'::regclass")
    assert reltuples.fetchone() == (-1,)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        live = conn.execute("SELECT n_live_tup FROM pg_stat_user_tables WHERE relname = 'mbti_questions'")
        if live.fetchone() == (48,):
            break
        time.sleep(0.1)
    estimated = {t.name: t.rows for t in schema_stats(conn, "test", CATEGORIES).tables}
    assert estimated["mbti_questions"] == 48
    assert all(rows >= 0 for rows in estimated.values())

    # Analysed: small tables are sampled whole, so reltuples is exact.
    conn.execute("ANALYZE")
    assert {t.name: t.rows for t in schema_stats(conn, "test", CATEGORIES).tables} == truth


def test_flags_report_a_stray_table_and_a_missing_one(db_url: str, conn: psycopg.Connection) -> None:
    commands.apply(target=db_url, project=MIGRATIONS)
    # The stray table is partitioned: its partition is not a table of its own, and its
    # rows, bytes and indexes are the partition's.
    conn.execute("CREATE TABLE stray (id integer, note text) PARTITION BY RANGE (id)")
    conn.execute("CREATE TABLE stray_low PARTITION OF stray FOR VALUES FROM (0) TO (1000)")
    conn.execute("CREATE INDEX stray_id ON stray (id)")
    conn.execute("INSERT INTO stray SELECT g, repeat('x', 100) FROM generate_series(0, 499) g")
    conn.execute("DROP TABLE conversations CASCADE")

    stats = schema_stats(conn, "test", CATEGORIES, exact_rows=True)
    assert stats.uncategorized == ["stray"]
    assert stats.missing == {"Chat": ["conversations"]}
    assert [c.name for c in stats.category_stats] == [*GUIDE_ORDER, UNCATEGORIZED]
    chat = stats.category_stats[GUIDE_ORDER.index("Chat")]
    assert chat.tables == [] and chat.missing == ["conversations"] and chat.bytes == 0
    assert all(c.missing == [] for c in stats.category_stats if c.name != "Chat")
    assert stats.totals["tables"] == 45  # 45 - conversations + stray

    rest = stats.category_stats[-1]
    assert rest.table_names == ["stray"]
    (stray,) = rest.tables
    sizes = conn.execute(
        "SELECT pg_table_size('stray_low'), pg_indexes_size('stray_low'), pg_total_relation_size('stray')"
    ).fetchone()
    assert sizes is not None and sizes[2] == 0  # the parent itself stores nothing
    assert (stray.rows, stray.table_bytes, stray.index_bytes) == (500, sizes[0], sizes[1])
    assert stray.index_count == 2  # the partitioned index and the partition's
    assert sum(c.index_count for c in stats.category_stats) == stats.totals["indexes"]

    data = stats.as_dict()
    assert data["uncategorized"] == ["stray"]
    assert data["missing"] == {"Chat": ["conversations"]}
    assert data["categories"][GUIDE_ORDER.index("Chat")]["missing"] == ["conversations"]
    assert data["categories"][-1] == {**data["categories"][-1], "name": UNCATEGORIZED, "tables": ["stray"]}
    text = render_text(stats)
    assert "uncategorized (1): stray" in text
    assert "missing from Chat (1): conversations" in text
    assert "   6. Chat (0):\n" in text and "  11. Uncategorized (1): stray\n" in text
    assert "none: every table" not in text


def test_largest_tables_and_indexes_ordered_by_size(db_url: str, conn: psycopg.Connection) -> None:
    commands.apply(target=db_url, project=MIGRATIONS)
    conn.execute("CREATE TABLE bulky (id integer PRIMARY KEY, payload text)")
    conn.execute("INSERT INTO bulky SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
    stats = schema_stats(conn, "test", {**CATEGORIES, "Scratch": ["bulky"]})

    expected_tables = conn.execute(
        """SELECT tablename, pg_total_relation_size(format('public.%I', tablename)::regclass) AS b
           FROM pg_tables WHERE schemaname = 'public' ORDER BY b DESC, tablename LIMIT 10"""
    ).fetchall()
    assert [(t.name, t.bytes) for t in stats.largest_tables] == expected_tables
    assert stats.largest_tables[0].name == "bulky" and stats.largest_tables[0].category == "Scratch"
    sizes = [t.bytes for t in stats.largest_tables]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > 10 * sizes[1]

    expected_indexes = conn.execute(
        """SELECT indexname, tablename, pg_total_relation_size(format('public.%I', indexname)::regclass) AS b
           FROM pg_indexes WHERE schemaname = 'public' ORDER BY b DESC, indexname LIMIT 10"""
    ).fetchall()
    assert [(i.name, i.table, i.bytes) for i in stats.largest_indexes] == expected_indexes
    assert stats.largest_indexes[0].name == "bulky_pkey"
    assert [i["name"] for i in stats.as_dict()["largest_indexes"]] == [r[0] for r in expected_indexes]


class CountingConnection:
    """Counts the statements sent, whatever goes through: proves the query count is constant."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.statements = 0

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        self.statements += 1
        return self.conn.execute(*args, **kwargs)

    def transaction(self) -> Any:
        return self.conn.transaction()

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("schema_stats must go through execute()")


def test_a_constant_number_of_queries_whatever_the_tables(db_url: str, conn: psycopg.Connection) -> None:
    commands.apply(target=db_url, project=MIGRATIONS)

    def statements(exact_rows: bool) -> int:
        counting = CountingConnection(conn)
        schema_stats(counting, "test", CATEGORIES, exact_rows=exact_rows)  # type: ignore[arg-type]
        return counting.statements

    before = (statements(False), statements(True))
    for n in range(40):
        conn.execute(f"CREATE TABLE extra_{n} (id integer PRIMARY KEY)")
    assert len(schema_stats(conn, "test", CATEGORIES).uncategorized) == 40
    assert (statements(False), statements(True)) == before == (3, 5)  # exact: SET LOCAL + one count


def test_exact_rows_refused_when_row_level_security_would_filter(
    db_url: str, conn: psycopg.Connection
) -> None:
    commands.apply(target=db_url, project=MIGRATIONS)
    role = "bt_stats_" + uuid.uuid4().hex[:8]
    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    try:
        conn.execute(
            sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(role))
        )
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        estimated = schema_stats(conn, "test", CATEGORIES)  # the catalog needs no privilege
        assert estimated.totals["tables"] == 45
        with pytest.raises(DatabaseError, match=r"row-level security.*BYPASSRLS"):
            schema_stats(conn, "test", CATEGORIES, exact_rows=True)
        # Without the guard the count would silently be 0 for the RLS tables:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (29,)
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)
    finally:
        conn.execute("RESET ROLE")
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_frames_have_the_documented_columns(db_url: str, conn: psycopg.Connection) -> None:
    stats = migrated(db_url, conn)
    frames = stats.frames()
    assert set(frames) == {"categories", "largest_tables", "largest_indexes", "tables", "indexes"}
    categories = frames["categories"]
    assert list(categories.columns) == list(CATEGORY_COLUMNS)
    assert list(categories["name"]) == GUIDE_ORDER
    assert list(categories["table_count"]) == [len(CATEGORIES[n]) for n in GUIDE_ORDER]
    assert int(categories["bytes"].sum()) == stats.summary["bytes"]
    assert int(categories["index_count"].sum()) == stats.totals["indexes"]
    assert list(frames["largest_tables"].columns) == list(TABLE_COLUMNS)
    assert list(frames["largest_tables"]["name"]) == [t.name for t in stats.largest_tables]
    assert list(frames["largest_indexes"].columns) == list(INDEX_COLUMNS)
    assert list(frames["largest_indexes"]["bytes"]) == [i.bytes for i in stats.largest_indexes]
    assert len(frames["tables"]) == 45 and len(frames["indexes"]) == stats.totals["indexes"]


def bars(ax: Axes) -> list[Rectangle]:
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def test_plots_write_three_readable_pngs(db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    stats = migrated(db_url, conn)
    written = plots.save_all(stats, tmp_path / "charts")
    assert [p.name for p in written] == ["category_objects.png", "category_sizes.png", "index_sizes.png"]
    for path in written:
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000, path
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert (width, height) == (1200, 660), path  # 10 x 5.5 inches at 120 dpi

    objects = plots.category_objects(stats).axes[0]
    assert [t.get_text() for t in objects.get_xticklabels()] == GUIDE_ORDER
    heights = [int(p.get_height()) for p in bars(objects)]
    assert heights == [len(CATEGORIES[n]) for n in GUIDE_ORDER] + [
        c.index_count for c in stats.category_stats
    ]
    assert "45 tables" in objects.get_title()

    sizes = plots.category_sizes(stats).axes[0]
    assert [t.get_text() for t in sizes.get_xticklabels()] == GUIDE_ORDER
    stacked = [p.get_y() + p.get_height() for p in bars(sizes)[len(GUIDE_ORDER) :]]
    unit = 1024 if sizes.get_ylabel() == "size (kB)" else 1024**2
    assert stacked == pytest.approx([c.bytes / unit for c in stats.category_stats])

    histogram = plots.index_sizes(stats).axes[0]
    assert sum(p.get_height() for p in bars(histogram)) == stats.totals["indexes"]
    assert f"{stats.totals['indexes']} indexes" in histogram.get_title()


def test_render_text_reproduces_the_guide_overview(db_url: str, conn: psycopg.Connection) -> None:
    stats = migrated(db_url, conn)
    text = render_text(stats)
    for heading in (
        "Database Schema Overview",
        "Table Categories",
        "Size per category",
        "Flags",
        "Largest tables",
        "Largest indexes",
    ):
        assert f"\n{heading}" in "\n" + text, heading
    assert "  Total Tables            45  43 application + 2 tracking\n" in text
    assert "RLS-enabled tables      15" in text  # the first version's format, which scripts grep
    for number, name in enumerate(GUIDE_ORDER, start=1):
        assert f"{number:>2}. {name} ({len(CATEGORIES[name])}): {', '.join(CATEGORIES[name])}\n" in text
    core = stats.category_stats[0]
    assert f"Core              9       {core.index_count}" in text
    assert human_bytes(core.bytes) in text.split("Size per category")[1].split("\n")[2]
    assert "none: every table is in a category and every listed table exists" in text
    largest = text.split("Largest tables")[1].split("\n")
    assert largest[2].split()[0] == stats.largest_tables[0].name


def test_human_bytes_reads_like_pg_size_pretty() -> None:
    assert [human_bytes(n) for n in (0, 1023, 8192, 16384, 500_000, 3 * 1024**3)] == [
        "0 bytes",
        "1023 bytes",
        "8.0 kB",
        "16 kB",
        "488 kB",
        "3.0 GB",
    ]


def test_the_tracking_tables_are_the_engines() -> None:
    engine = {o.split(":", 1)[1] for o in tracking_objects() if o.startswith("table:")}
    assert set(TRACKING_TABLES) == engine


def test_categories_on_a_database_without_migrations(conn: psycopg.Connection) -> None:
    for name in ("alpha", "beta", "gamma", "delta"):
        conn.execute(sql.SQL("CREATE TABLE {} (id integer)").format(sql.Identifier(name)))
    listed = {"X": ["beta", "alpha", "ghost"], "Y": ["alpha", "gamma"], "Z": ["nothing"]}
    stats = schema_stats(conn, "test", listed)
    assert [(c.name, c.table_names, c.missing) for c in stats.category_stats] == [
        ("X", ["beta", "alpha"], ["ghost"]),  # the file's order, not the alphabet's
        ("Y", ["gamma"], []),  # alpha belongs to the first category listing it
        ("Z", [], ["nothing"]),
        (UNCATEGORIZED, ["delta"], []),
    ]
    assert stats.summary["application_tables"] == 4 and stats.summary["tracking_tables"] == 0
    # Without categories.toml every table is uncategorized, as in the first version.
    bare = schema_stats(conn, "test", {})
    assert bare.categories == [(UNCATEGORIZED, ["alpha", "beta", "delta", "gamma"])]
    assert bare.missing == {} and bare.uncategorized == ["alpha", "beta", "delta", "gamma"]
