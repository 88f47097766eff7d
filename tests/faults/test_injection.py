"""Injection: names are data, never SQL.

Object, schema, role, database, version, file and directory names holding quotes,
semicolons and unicode (``a'b; DROP TABLE victim; --``, ``"x"``, ``élève;``) go through
every inspection, verification, backup and restore drill: each gives the right answer,
names the objects exactly as the catalog spells them, and the ``victim`` table is still
there with its rows. Names that bilantools itself refuses (migration files, versions,
sandbox databases) are refused by name, before anything reaches the server. A last test
reads the package's source: every statement handed to ``execute`` is a constant or a
``psycopg.sql`` composition.
"""

from __future__ import annotations

import ast
import html
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import nbformat
import pglast
import psycopg
import pytest
from psycopg import sql

from bilantools import commands
from bilantools.db import backup as backups
from bilantools.db import catalog
from bilantools.db.fingerprint import fingerprint
from bilantools.db.sandbox import Sandbox
from bilantools.db.stats import schema_stats
from bilantools.db.target import parse_target
from tests.conftest import TEMPLATE
from tests.faults.conftest import Figures

PACKAGE = Path(__file__).parent.parent.parent / "bilantools"
EVIL = "a'b; DROP TABLE victim; --"
QUOTED = '"x"'
UNICODE = "élève;"
HTMLISH = "<b>t</b>'); DROP TABLE victim; --"
SCHEMA = 'Sch\'ema "q"; DROP TABLE victim; --'
VERSION = "001'; DROP TABLE victim; --"
ROLE = 'o\'brien "q"; DROP TABLE victim; --'
INDEX = "i'dx; DROP TABLE victim; --"
POLICY = 'p\'ol "q"; DROP TABLE victim; --'
TRIGGER = "t'rg; DROP TABLE victim; --"
FUNCTION = 'f\'n "q"; DROP TABLE victim; --'
SEQUENCE = "s'eq; DROP TABLE victim; --"
TYPE = "ty'pe; DROP TABLE victim; --"
VIEW = "v'iew; DROP TABLE victim; --"
DIRECTORY = 'bk\'; DROP TABLE victim; -- "é" $(touch pwned)'


def ident(*names: str) -> sql.Identifier:
    return sql.Identifier(*names)


def create_victim(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE victim (id int PRIMARY KEY)")
    conn.execute("INSERT INTO victim SELECT generate_series(1, 3)")


def assert_victim(url: str) -> None:
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM victim").fetchone() == (3,), "victim lost rows"


def create_evil_objects(conn: psycopg.Connection, schema: str = "public", role: str | None = None) -> None:
    """Tables, columns, constraints, indexes, RLS, a policy, a trigger and its function, a
    sequence, a type and a view, all named to break string-built SQL."""
    s = ident(schema)
    statements = [
        sql.SQL(
            "CREATE TABLE {s}.{t} (id serial PRIMARY KEY, {c} text DEFAULT 'a''; DROP TABLE victim; --',"
            " {u} int CONSTRAINT {k} CHECK ({u} > 0))"
        ).format(s=s, t=ident(EVIL), c=ident(QUOTED), u=ident(UNICODE), k=ident(EVIL + " check")),
        sql.SQL(
            "CREATE TABLE {s}.{t} (id int PRIMARY KEY, evil_id int CONSTRAINT {f} REFERENCES {s}.{e})"
        ).format(s=s, t=ident(UNICODE), f=ident(QUOTED + " fk"), e=ident(EVIL)),
        sql.SQL("CREATE TABLE {s}.{t} (id int)").format(s=s, t=ident(QUOTED)),
        sql.SQL("CREATE TABLE {s}.{t} (id int)").format(s=s, t=ident(HTMLISH)),
        sql.SQL("CREATE INDEX {i} ON {s}.{t} ({u})").format(
            i=ident(INDEX), s=s, t=ident(EVIL), u=ident(UNICODE)
        ),
        sql.SQL("ALTER TABLE {s}.{t} ENABLE ROW LEVEL SECURITY").format(s=s, t=ident(EVIL)),
        sql.SQL("CREATE POLICY {p} ON {s}.{t} TO {r} USING ({c} <> 'x''; DROP TABLE victim; --')").format(
            p=ident(POLICY),
            s=s,
            t=ident(EVIL),
            r=ident(role) if role else sql.SQL("PUBLIC"),
            c=ident(QUOTED),
        ),
        sql.SQL(
            "CREATE FUNCTION {s}.{f}() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$"
        ).format(s=s, f=ident(FUNCTION)),
        sql.SQL("CREATE TRIGGER {g} BEFORE INSERT ON {s}.{t} FOR EACH ROW EXECUTE FUNCTION {s}.{f}()").format(
            g=ident(TRIGGER),
            s=s,
            t=ident(EVIL),
            f=ident(FUNCTION),
        ),
        sql.SQL("CREATE SEQUENCE {s}.{q}").format(s=s, q=ident(SEQUENCE)),
        sql.SQL("CREATE TYPE {s}.{y} AS ENUM ('a''b', 'c;d', 'é\"')").format(s=s, y=ident(TYPE)),
        sql.SQL("CREATE VIEW {s}.{v} AS SELECT id, {c} FROM {s}.{t}").format(
            s=s, v=ident(VIEW), c=ident(QUOTED), t=ident(EVIL)
        ),
        sql.SQL(
            "INSERT INTO {s}.{t} ({c}, {u}) VALUES ('''); DROP TABLE victim; --', 1), (DEFAULT, 2)"
        ).format(s=s, t=ident(EVIL), c=ident(QUOTED), u=ident(UNICODE)),
    ]
    with conn.transaction():
        for statement in statements:
            conn.execute(statement)


@pytest.fixture
def evil_db(cli: Any, conn: psycopg.Connection, db_url: str, basic: Path) -> str:
    """The basic migrations applied, then the victim and the evil objects created by hand."""
    assert cli("--db", db_url, "--migrations", str(basic), "apply").code == 0
    create_victim(conn)
    create_evil_objects(conn)
    return db_url


def test_every_inspection_reads_evil_names_as_data(
    cli: Any, conn: psycopg.Connection, evil_db: str, basic: Path, tmp_path: Path, figures: Figures
) -> None:
    before = fingerprint(conn)
    ran = 0

    def run(*args: str, code: int = 0) -> Any:
        nonlocal ran
        r = cli("--db", evil_db, "--migrations", str(basic), *args)
        assert r.code == code, (args, r.out, r.err)
        assert_victim(evil_db)
        ran += 1
        return json.loads(r.out) if "--json" in args else r

    expected = {  # inspection kind -> names it must list, exactly as the catalog spells them
        "tables": {EVIL, UNICODE, QUOTED, HTMLISH, "victim"},
        "columns": {QUOTED, UNICODE},
        "indexes": {INDEX},
        "constraints": {EVIL + " check", QUOTED + " fk"},
        "foreign-keys-without-index": {QUOTED + " fk"},
        "rls": {EVIL},
        "policies": {POLICY},
        "triggers": {TRIGGER},
        "functions": {'"' + FUNCTION.replace('"', '""') + '"()'},  # regprocedure: quoted, with its arguments
        "sequences": {SEQUENCE},
        "extensions": {"plpgsql"},
    }
    for kind in [k.replace("_", "-") for k in commands.INSPECTIONS]:
        rows = run("inspect", kind, "--json")["rows"]
        values = {str(v) for row in rows for v in row.values()}
        for name in expected[kind]:
            assert name in values, (kind, name, sorted(values)[:20])
    tables = run("inspect", "tables", "--json")["rows"]
    assert {t["table"]: t["rls_enabled"] for t in tables}[EVIL] is True
    stats = run("stats", "--json", "--exact-rows")
    counted = {t["name"]: t["rows"] for t in stats["largest_tables"]}  # all 6 tables: under the top 10
    assert (counted[EVIL], counted["victim"], counted[UNICODE]) == (2, 3, 0)
    assert stats["totals"]["policies"] == 1 and stats["totals"]["triggers"] == 1
    objects = run("fingerprint", "--details", "--json")["objects"]
    for key in (f"table\t{EVIL}", f"column\t{EVIL}.{QUOTED}", f"index\t{INDEX}", f"type\t{TYPE}"):
        assert key in objects, key
    assert f"view\t{VIEW}" in objects and f"trigger\t{EVIL}.{TRIGGER}" in objects
    assert run("verify", "--json")["ok"]
    drift = run("drift", "--json", code=1)
    assert f"table {EVIL}" in drift["unexpected"] and f"table {QUOTED}" in drift["unexpected"]
    assert not drift["absent"] and not drift["changed"]
    detected = run("detect", "--json")  # tracked: no baseline suggested, its history named
    assert detected["suggested_baseline"] is None and detected["tracked"]["last"] == "003"
    out = tmp_path / DIRECTORY
    taken = run("backup", "--out", str(out), "--json")
    assert Path(taken["file"]).parent == out
    run("backup", "--out", str(out), "--schema-only", "--format", "plain")
    verified = run("backup", "verify", taken["file"], "--json")
    assert verified["ok"] and not verified["differences"], verified
    assert "no difference" in run("backup", "diff", taken["file"]).out
    listed = run("backup", "--out", str(out), "list", "--json")["backups"]
    assert len(listed) == 2 and all(b["verified"] is None or b["verified"]["ok"] for b in listed)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    assert fingerprint(conn) == before, "an inspection changed the database"
    figures.add("injection: commands run against evil names", ran)


def test_the_table_explorer_escapes_evil_names(evil_db: str, basic: Path) -> None:
    from bilantools.notebook import TableExplorer

    explorer = TableExplorer(evil_db, basic)
    assert HTMLISH in [value for _, value in explorer.tables.options]
    explorer.tables.value = HTMLISH
    assert html.escape(HTMLISH) in explorer.columns.value and "<b>t</b>" not in explorer.columns.value
    explorer.tables.value = EVIL
    page = explorer.columns.value + explorer.indexes.value + explorer.policies.value + explorer.triggers.value
    for name in (QUOTED, UNICODE, INDEX, TRIGGER):
        assert html.escape(name) in page, name
    assert_victim(evil_db)


def test_a_schema_named_like_an_injection(conn: psycopg.Connection, db_url: str, figures: Figures) -> None:
    """The Python API takes any schema name: it is a value, never parsed as SQL."""
    create_victim(conn)
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(ident(SCHEMA)))
    create_evil_objects(conn, SCHEMA)
    assert set(catalog.tables(conn, SCHEMA)["table"]) == {EVIL, UNICODE, QUOTED, HTMLISH}
    assert set(catalog.columns(conn, SCHEMA)["column"]) >= {QUOTED, UNICODE}
    assert list(catalog.policies(conn, SCHEMA)["policy"]) == [POLICY]
    assert list(catalog.foreign_keys_without_index(conn, SCHEMA)["constraint"]) == [QUOTED + " fk"]
    calls = 4
    for kind in commands.INSPECTIONS:
        if kind != "extensions":
            getattr(catalog, kind)(conn, SCHEMA)
            calls += 1
    assert catalog.summary(conn, SCHEMA)["policies"] == 1
    found = fingerprint(conn, SCHEMA)
    assert found.objects[("rows", EVIL)] == "2" and ("trigger", f"{EVIL}.{TRIGGER}") in found.objects
    assert ("table", "victim") not in found.objects  # the other schema's table is not counted
    overview = schema_stats(conn, "", {}, schema=SCHEMA, exact_rows=True)
    assert overview.totals["tables"] == 4 and overview.totals["policies"] == 1
    assert {t.name: t.rows for t in overview.tables}[EVIL] == 2
    assert_victim(db_url)
    figures.add("injection: API calls with an evil schema name", calls + 3)


@pytest.mark.parametrize(
    "name",
    [
        f"004_{EVIL}.sql",
        "004_élève.sql",
        '004_"x".sql',
        "004_x;y.sql",
        "004_x'.sql",
        f"004_ok_rollback{EVIL}.sql",
    ],
)
def test_migration_files_with_evil_names_are_refused(
    cli: Any, conn: psycopg.Connection, db_url: str, basic: Path, name: str, figures: Figures
) -> None:
    create_victim(conn)
    (basic / name).write_text("DROP TABLE victim;\n")
    before = fingerprint(conn)
    r = cli("--db", db_url, "--migrations", str(basic), "apply")
    assert r.code == 2 and f"migration file name '{name}' does not match NNN_slug.sql" in r.err, r.err
    checked = cli("--migrations", str(basic), "check")
    assert checked.code == 1 and f"'{name}'" in checked.out
    assert fingerprint(conn) == before and conn.execute(
        "SELECT to_regclass('schema_migrations')"
    ).fetchone() == (None,)
    assert_victim(db_url)
    figures.add("injection: evil file names refused", 1)


@pytest.mark.parametrize(
    "args",
    [
        ["apply", "--to", VERSION],
        ["apply", "--dry-run", "--to", VERSION],
        ["plan", "--to", VERSION],
        ["plan", "--sql", "--to", VERSION],
        ["rollback", "--to", VERSION],
        ["baseline", "--to", VERSION],
        ["apply", "--to", "１"],  # a full-width digit: isdigit(), yet not a version
        ["apply", "--step", "1; DROP TABLE victim; --"],
    ],
)
def test_evil_versions_are_input_errors(
    cli: Any, conn: psycopg.Connection, db_url: str, basic: Path, args: list[str], figures: Figures
) -> None:
    create_victim(conn)
    assert cli("--db", db_url, "--migrations", str(basic), "apply", "--to", "002").code == 0
    before = fingerprint(conn), conn.execute("SELECT count(*) FROM schema_migration_events").fetchone()
    r = cli("--db", db_url, "--migrations", str(basic), *args)
    assert r.code == 2, r.err
    error = r.err.strip().splitlines()[-1]
    assert error.startswith("error: ") and (
        "no migration has version" in error or "is not a valid integer" in error
    ), error
    assert (
        fingerprint(conn),
        conn.execute("SELECT count(*) FROM schema_migration_events").fetchone(),
    ) == before
    assert_victim(db_url)
    figures.add("injection: evil versions refused", 1)


def test_evil_sandbox_database_names_are_refused(cli: Any, conn: psycopg.Connection, server: Sandbox) -> None:
    def databases() -> set[str]:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}

    before = databases()
    for name in (f"x{EVIL}", UNICODE, QUOTED, "x; DROP DATABASE postgres"):
        r = cli("sandbox", "new-db", name)
        assert r.code == 2 and f"invalid database name '{name}'" in r.err, r.err
    assert databases() == before


@pytest.fixture
def evil_database(server: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """A database (not a sandbox-made one: any name the server accepts) named to break SQL,
    and its URL, percent-encoded."""
    monkeypatch.setenv("BILANTOOLS_HOME", str(server.home))  # backup verify's scratch server
    name = 'bt_inj é\'x; "y" DROP TABLE victim; -- ' + uuid.uuid4().hex[:6]
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(ident(name), ident(TEMPLATE)))
    try:
        yield name, server.url(quote(name, safe=""))
    finally:
        with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident(name)))


def test_an_evil_database_name_and_backup_directory(
    cli: Any, evil_database: tuple[str, str], server: Sandbox, basic: Path, tmp_path: Path, figures: Figures
) -> None:
    name, url = evil_database
    with psycopg.connect(url, autocommit=True) as conn:
        create_victim(conn)
    applied = cli("--db", url, "--migrations", str(basic), "apply")
    assert applied.code == 0, applied.err
    status = cli("--db", url, "--migrations", str(basic), "status", "--json")
    assert [m["state"] for m in json.loads(status.out)["migrations"]] == ["applied"] * 3
    assert parse_target(url, "--db").dbname == name
    out = tmp_path / DIRECTORY
    r = cli("--db", url, "backup", "--out", str(out), "--json")
    assert r.code == 0, r.err
    taken = json.loads(r.out)
    assert Path(taken["file"]).parent == out and "'" not in Path(taken["file"]).name  # a safe file name
    assert json.loads(Path(taken["sidecar"]).read_text())["database"] == name
    verified = cli("backup", "verify", taken["file"], "--json")
    assert verified.code == 0 and json.loads(verified.out)["ok"], verified.out
    assert cli("--db", url, "backup", "diff", taken["file"]).code == 0
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE victim")  # what a restore must bring back
    restored = cli("--db", url, "restore", taken["file"], "--clean", "--yes")
    assert restored.code == 0, restored.err
    assert_victim(url)
    figures.add("injection: evil database and directory names", 1)


def test_two_backups_of_the_same_second_are_both_kept(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the secrets suite: the automatic backups of two runs in one second had the
    same name, and the second replaced the first."""

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Frozen:
            return cls(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    monkeypatch.setattr(backups, "datetime", Frozen)
    target = parse_target(db_url, "--db")
    first, second = backups.take(target, tmp_path / DIRECTORY), backups.take(target, tmp_path / DIRECTORY)
    assert first.file != second.file and first.file.exists() and second.file.exists()
    assert second.file.name == first.file.name.replace("Z_full", "Z-2_full")
    assert json.loads(second.sidecar.read_text())["file"] == second.file.name
    assert len(backups.listing(tmp_path / DIRECTORY)) == 2
    assert not list((tmp_path / DIRECTORY).glob(".*partial"))


@pytest.fixture
def evil_role(server: Sandbox, db_url: str) -> Iterator[str]:
    """A role named like an injection, owner of the test's database; its URL."""
    password = "Inj-pw-" + uuid.uuid4().hex[:6]
    dbname = db_url.rsplit("/", 1)[1]
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(ident(ROLE), sql.Literal(password)))
        conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(ident(dbname), ident(ROLE)))
    try:
        yield db_url.replace("postgres@", f"{quote(ROLE, safe='')}:{password}@", 1)
    finally:
        with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident(dbname)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(ident(ROLE)))


def test_an_evil_role_name(cli: Any, evil_role: str, basic: Path, tmp_path: Path, figures: Figures) -> None:
    url = evil_role
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (ROLE,)
        create_victim(conn)
    assert cli("--db", url, "--migrations", str(basic), "apply").code == 0
    with psycopg.connect(url, autocommit=True) as conn:
        create_evil_objects(conn, role=ROLE)
        applied_by = conn.execute("SELECT DISTINCT applied_by FROM schema_migrations").fetchall()
        actors = conn.execute("SELECT DISTINCT actor FROM schema_migration_events").fetchall()
    assert applied_by == actors == [(ROLE,)]
    status = json.loads(cli("--db", url, "--migrations", str(basic), "status", "--json").out)
    assert {m["applied_by"] for m in status["migrations"]} == {ROLE}
    policies = json.loads(cli("--db", url, "inspect", "policies", "--json").out)["rows"]
    assert [p["roles"] for p in policies] == [ROLE]
    rls = json.loads(cli("--db", url, "inspect", "rls", "--json").out)["rows"]
    assert {r["table"]: r["roles"] for r in rls}[EVIL] == ROLE
    # another run waits for the lock the evil role holds: the message names it as data
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", (0x62696C61, 0x6E746F6F))
        r = cli("--db", url, "--migrations", str(basic), "rollback", "--lock-wait", "0.2")
    assert r.code == 2 and f"user {ROLE}, " in r.err, r.err
    taken = json.loads(cli("--db", url, "backup", "--out", str(tmp_path / "b"), "--json").out)
    verified = cli("backup", "verify", taken["file"], "--json")
    assert verified.code == 0 and json.loads(verified.out)["ok"], verified.out
    assert_victim(url)
    figures.add("injection: evil role name", 1)


@pytest.mark.pg15
def test_inspect_table_and_erd_of_evil_names(
    cli: Any, conn: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    """A table name typed for `inspect table` is a bound value; the names the catalog returns
    are quoted in the CREATE script and escaped in the diagram."""
    create_victim(conn)
    create_evil_objects(conn)
    quoted = sql.Identifier(EVIL).as_string(conn)
    r = cli("--db", db_url, "inspect", "table", quoted, "--json")
    assert r.code == 0, r.err
    found = json.loads(r.out)
    assert found["name"] == quoted and found["policies"][0]["name"] == sql.Identifier(POLICY).as_string(conn)
    assert len(pglast.parse_sql(found["create_sql"])) == 5  # table, index, RLS, policy, trigger: all quoted
    for typed in (EVIL, "victim; DROP TABLE victim; --", "victim'); DROP TABLE victim; --"):
        refused = cli("--db", db_url, "inspect", "table", typed)
        assert refused.code == 2 and f"no table {typed}: see `bilantools inspect tables`" in refused.err
    drawn = tmp_path / "evil.svg"
    assert cli("--db", db_url, "erd", "--out", str(drawn)).code == 0
    assert "a&#39;b; DROP TABLE victim; &#45;&#45;" in drawn.read_text()
    assert_victim(db_url)


def test_a_runbook_parameter_with_quotes_stays_a_value(
    cli: Any, conn: psycopg.Connection, db_url: str, basic: Path, tmp_path: Path
) -> None:
    """papermill writes parameters into the notebook as Python literals; the value reaches
    `commands.plan` as a string and is refused there as an unknown version."""
    create_victim(conn)
    notebooks = tmp_path / "nb"
    notebooks.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(f"to = None\nmigrations = {str(basic)!r}"),
        nbformat.v4.new_code_cell("print('to is', repr(to))"),
        nbformat.v4.new_code_cell(
            "from bilantools import commands\n"
            "commands.plan(target=None, project=migrations, options=commands.RunOptions(to=to))"
        ),
    ]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(nb, str(notebooks / "09_plan.ipynb"))
    value = VERSION + "\"; import os; os.system('touch pwned'); \"\\"
    runs = tmp_path / "runs"
    r = cli(
        "--db",
        db_url,
        "runbook",
        "run",
        "09",
        "-p",
        f"to={value}",
        "--notebooks",
        str(notebooks),
        "--runs",
        str(runs),
    )
    assert r.code == 1 and "failed at cell 4 (InputError)" in r.err and "no migration has version" in r.err, (
        r.err
    )
    executed = nbformat.read(str(next(runs.glob("*.ipynb"))), 4)
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert f"to is {value!r}" in printed
    assert not (notebooks / "pwned").exists() and not (tmp_path / "pwned").exists()
    assert_victim(db_url)


# -- reading the code ------------------------------------------------------------------------------
# Calls whose statement is built from strings, each read and found safe: the parts put
# together are constants of the code, never a name or value from outside.
AUDITED = {
    ("db/engine/limits.py", "set_limits"): "'set_config(%s, %s, %s)' repeated; the values are bound",
    ("db/engine/sending.py", "send"): "a migration's own statement, or one of the engine's built from "
    "constants (history, integrity, limits) with its values bound",
    ("db/history.py", "run"): "the module's statements (EVENT_COLUMNS, a constant list of columns), "
    "values bound",
    ("db/history.py", "read_history"): "one of two constant subqueries",
    ("db/history.py", "_lock_timeouts"): "a constant query; the event log named by Tracking.sql",
    ("fleet/selection.py", "query_databases"): "the user's own --from-query, sent as written (its "
    "purpose) inside a READ ONLY transaction",
    ("db/events.py", "read_events"): "a constant list of columns, the event log named by Tracking.sql "
    "(sql.Identifier), the constant filter history.SAME_VERSION; values bound",
    ("db/plain_dump.py", "restore"): "a plain dump's own statement, sent as the dump has it (a restore's "
    "purpose), after its psql meta-commands were refused",
}


def _statement_is_safe(node: ast.expr) -> bool:
    """A literal, a module constant, a psycopg.sql composition, or a variable holding one
    (checked where it is assigned); never an f-string, % or .format() on a plain string."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.Name):
        return True  # a variable: its assignment is checked on its own (see below)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.attr.isupper():
        return True  # another module's constant (catalog_queries.SUMMARY_SQL), as a module's own name above
    if isinstance(node, ast.Attribute) and node.attr == "text" and getattr(node.value, "id", "") == "stmt":
        return True  # a migration's own statement, as its file says
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        root = node.func.value
        while isinstance(root, ast.Call | ast.Attribute):
            root = root.func if isinstance(root, ast.Call) else root.value
        if isinstance(root, ast.Name) and root.id == "sql":
            return True
        if node.func.attr in ("read_text", "tracking_sql"):
            return True
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "tracking_sql"


def _unsafe_sql(tree: ast.Module) -> list[tuple[str, int]]:
    """(function, line) of every execute() whose statement is string-built."""
    found: list[tuple[str, int]] = []
    for function in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        for call in ast.walk(function):
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "execute"
                and call.args
                and not _statement_is_safe(call.args[0])
            ):
                found.append((function.name, call.lineno))
        # a variable given to execute() must itself be a literal, a constant or a composition
        for assign in ast.walk(function):
            if not isinstance(assign, ast.Assign):
                continue
            named = any(isinstance(t, ast.Name) and t.id in ("query", "statement") for t in assign.targets)
            if named and not _statement_is_safe(assign.value):
                found.append((function.name, assign.lineno))
    return found


def test_no_statement_is_built_from_strings(figures: Figures) -> None:
    unsafe, audited, calls = [], set(), 0
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        relative = path.relative_to(PACKAGE).as_posix()
        calls += sum(
            1 for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "execute"
        )
        for function, line in _unsafe_sql(tree):
            if (relative, function) in AUDITED:
                audited.add((relative, function))
            else:
                unsafe.append(f"bilantools/{relative}:{line} in {function}()")
    assert not unsafe, "SQL built from strings (use psycopg.sql, or audit and list it): " + ", ".join(unsafe)
    assert audited == AUDITED.keys(), f"audited sites that changed: {sorted(AUDITED.keys() - audited)}"
    assert calls > 50
    figures.add("injection: execute() calls read in the source", calls)


def test_the_grant_suggested_to_an_evil_role_is_valid_sql(
    cli: Any, conn: psycopg.Connection, db_url: str, basic: Path, server: Sandbox
) -> None:
    """Refused for lack of CREATE, the message suggests a GRANT naming the role: it must be
    the role quoted as an identifier, runnable as given."""
    create_victim(conn)
    assert cli("--db", db_url, "--migrations", str(basic), "apply", "--to", "001").code == 0
    (basic / "002_add_email.sql").write_text("CREATE TABLE emails (id serial PRIMARY KEY, email text);\n")
    name = ROLE + " " + uuid.uuid4().hex[:6]
    dbname = db_url.rsplit("/", 1)[1]
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'Inj-grant-pw'").format(ident(name)))
    try:
        for grant in (
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
            "GRANT CONNECT ON DATABASE {db} TO {role}",
            "GRANT USAGE ON SCHEMA public TO {role}",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
            "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}",
        ):
            conn.execute(sql.SQL(grant).format(role=ident(name), db=ident(dbname)))
        url = db_url.replace("postgres@", f"{quote(name, safe='')}:Inj-grant-pw@", 1)
        r = cli("--db", url, "--migrations", str(basic), "apply")
        assert r.code == 2, r.err
        quoted = sql.Identifier(name).as_string(conn)
        suggested = f"GRANT CREATE ON SCHEMA public TO {quoted}"
        assert suggested in r.err, r.err
        conn.execute(suggested)  # as the operator would, verbatim
        assert cli("--db", url, "--migrations", str(basic), "apply", "--to", "002").code == 0
        assert conn.execute("SELECT applied_by FROM schema_migrations WHERE version = '002'").fetchone() == (
            name,
        )
        assert_victim(db_url)
    finally:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(ident(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(ident(name)))
