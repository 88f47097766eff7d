"""The check rules that protect what the engine relies on, each with its exact finding:
its tracking objects (tracking-object), the session the migrations of a run share
(session-setting), the client connection (copy-client-stream), the bytes of a file
(encoding: NUL) and the width of the tracking columns (version-too-long); and rollback
scripts with '-- transaction: off', which run outside a transaction like migrations do.

`apply` refusing each error before any change is in tests/faults/test_bad_input.py.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands
from bilantools.db.history import tracking, tracking_sql
from bilantools.errors import MigrationFailed
from bilantools.source.check import check
from bilantools.source.files import VERSION_MAX_LENGTH, checksum
from bilantools.source.findings import Finding
from bilantools.source.layouts.native import discover
from tests.test_check import BASE, REPO, Files, rows, write

Exact = tuple[str, str, str, int | None, str, str]

TRACKING_HINT = "remove the statement; the engine keeps the history"
DECLARATION_HINT = (
    "remove the statement; the engine creates and keeps its tracking objects (a copy must match "
    "bilantools/db/tracking.sql exactly)"
)
TX_OFF_HINT = (
    "SET LOCAL and set_config(..., true) have no effect in this file, which runs with '-- transaction: "
    "off', outside any transaction block: use the '-- lock-timeout:' and '-- statement-timeout:' header "
    "lines for timeouts and schema-qualified names instead of search_path, or move the statements that "
    "need the setting to a migration that runs in a transaction, with SET LOCAL"
)
RULES = ("tracking-object", "copy-client-stream", "session-setting", "encoding", "version-too-long")


def exact(f: Finding) -> Exact:
    return (f.rule, f.severity, Path(f.file).name, f.line, f.message, f.hint)


def findings_of(tmp_path: Path, sql: str, rollback: str = "SELECT 1;\n") -> list[Exact]:
    """The findings of the rules above for a 002 migration made of `sql` (after a comment
    line, so that line numbers are checked), over the usual 001."""
    files: Files = {**BASE, "002_x.sql": "-- 002\n" + textwrap.dedent(sql), "002_x_rollback.sql": rollback}
    directory = write(tmp_path / "migrations", files)
    report = check(directory, lint_rules=False, tracking=tracking())
    return [exact(f) for f in report.findings if f.rule in RULES]


def table(name: str = "schema_migrations") -> str:
    return f"the engine's tracking table {name}"


def function(name: str) -> str:
    return f"the engine's tracking function {name}()"


# --- tracking-object ---------------------------------------------------------------------

RECORD_MIGRATION = textwrap.dedent(
    tracking_sql().split("CREATE OR REPLACE FUNCTION record_migration(")[1].split("$fn$;")[0]
)
TRACKING_CASES: list[tuple[str, str, str, str]] = [
    ("delete", "DELETE FROM schema_migrations WHERE version = '001';", f"DELETE writes to {table()}", ""),
    ("delete-qualified", "DELETE FROM public.schema_migrations;", f"DELETE writes to {table()}", ""),
    ("insert", "INSERT INTO schema_migrations (version) VALUES ('999');", f"INSERT writes to {table()}", ""),
    (
        "update-event-log",
        "UPDATE schema_migration_events SET detail = NULL;",
        f"UPDATE writes to {table('schema_migration_events')}",
        "",
    ),
    (
        "writable-cte",
        "WITH gone AS (DELETE FROM schema_migrations RETURNING 1) SELECT 1;",
        "DELETE writes to " + table(),
        "",
    ),
    ("do-block", "DO $$ BEGIN DELETE FROM schema_migrations; END $$;", f"DELETE writes to {table()}", ""),
    ("truncate", "TRUNCATE people, schema_migrations;", f"TRUNCATE empties {table()}", ""),
    (
        "copy-from-file",
        "COPY schema_migrations FROM '/srv/rows.csv';",
        f"COPY ... FROM writes to {table()}",
        "",
    ),
    (
        "alter-add-column",
        "ALTER TABLE schema_migrations ADD COLUMN dirty boolean;",
        "ALTER TABLE changes " + table(),
        "",
    ),
    (
        "rename",
        "ALTER TABLE schema_migrations RENAME TO old_migrations;",
        f"ALTER ... RENAME renames {table()}",
        "",
    ),
    (
        "set-schema",
        "ALTER TABLE schema_migrations SET SCHEMA archive;",
        f"ALTER ... SET SCHEMA moves {table()}",
        "",
    ),
    ("drop-table", "DROP TABLE IF EXISTS schema_migrations CASCADE;", f"DROP TABLE drops {table()}", ""),
    (
        "drop-schema-public",
        "DROP SCHEMA public CASCADE;",
        "DROP SCHEMA public CASCADE drops the engine's tracking tables and functions",
        "",
    ),
    (
        "replace-function",
        "CREATE OR REPLACE FUNCTION record_migration("
        + RECORD_MIGRATION.replace("success = true", "success = false")
        + "$fn$;",
        f"CREATE OR REPLACE FUNCTION redefines {function('record_migration')}",
        DECLARATION_HINT,
    ),
    (
        "overload-function",
        "CREATE FUNCTION public.migration_applied(v int) RETURNS boolean LANGUAGE sql AS 'SELECT true';",
        f"CREATE FUNCTION redefines {function('migration_applied')}",
        DECLARATION_HINT,
    ),
    (
        "declare-table-differently",
        "CREATE TABLE IF NOT EXISTS schema_migrations (id serial PRIMARY KEY, version varchar(255) UNIQUE);",
        f"CREATE TABLE declares {table()} differently from the engine",
        DECLARATION_HINT,
    ),
    (
        "drop-function",
        "DROP FUNCTION IF EXISTS get_migration_status();",
        "DROP FUNCTION drops " + function("get_migration_status"),
        "",
    ),
    (
        "alter-function",
        "ALTER FUNCTION record_migration_failure(varchar, text, text) SECURITY DEFINER;",
        f"ALTER FUNCTION changes {function('record_migration_failure')}",
        "",
    ),
    (
        "rename-function",
        "ALTER FUNCTION migration_applied(varchar) RENAME TO applied;",
        f"ALTER FUNCTION ... RENAME renames {function('migration_applied')}",
        "",
    ),
    (
        "function-owner",
        "ALTER FUNCTION migration_applied(varchar) OWNER TO CURRENT_USER;",
        f"ALTER FUNCTION ... OWNER TO changes {function('migration_applied')}",
        "",
    ),
    (
        "trigger",
        "CREATE TRIGGER keep BEFORE DELETE ON schema_migrations FOR EACH ROW EXECUTE FUNCTION touch();",
        f"CREATE TRIGGER keep adds a trigger to {table()}",
        "",
    ),
    (
        "rule",
        "CREATE RULE keep AS ON DELETE TO schema_migrations DO INSTEAD NOTHING;",
        "CREATE RULE keep adds a rule to " + table(),
        "",
    ),
    (
        "policy",
        "CREATE POLICY hide ON schema_migrations USING (false);",
        "CREATE POLICY hide adds a policy to " + table(),
        "",
    ),
    (
        "drop-trigger",
        "DROP TRIGGER IF EXISTS keep ON public.schema_migrations;",
        f"DROP TRIGGER changes {table()}",
        "",
    ),
    (
        "unique-index",
        "CREATE UNIQUE INDEX one_name ON schema_migrations (description);",
        f"CREATE UNIQUE INDEX adds a unique index to {table()}",
        "",
    ),
    (
        "record-migration-call",
        "SELECT record_migration('002', 'x');",
        f"calling record_migration() writes to {table()}",
        "",
    ),
    (
        "record-failure-call",
        "CALL public.record_migration_failure('002', 'x', 'no');",
        f"calling record_migration_failure() writes to {table()}",
        "",
    ),
]


@pytest.mark.parametrize(
    ("sql", "message", "hint"), [c[1:] for c in TRACKING_CASES], ids=[c[0] for c in TRACKING_CASES]
)
def test_tracking_object(tmp_path: Path, sql: str, message: str, hint: str) -> None:
    assert findings_of(tmp_path, sql) == [
        ("tracking-object", "error", "002_x.sql", 2, message, hint or TRACKING_HINT)
    ]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM schema_migrations;",
        "SELECT migration_applied('001'), (SELECT count(*) FROM get_migration_status());",
        "CREATE VIEW applied AS SELECT version FROM schema_migrations WHERE success;",
        "GRANT SELECT ON schema_migrations TO PUBLIC;",
        "REVOKE ALL ON schema_migration_events FROM PUBLIC;",
        "COMMENT ON TABLE schema_migrations IS 'the history';",
        "CREATE INDEX by_day ON schema_migrations (applied_at);",
        "DELETE FROM other.schema_migrations;",  # another tool's table, in another schema
        "DROP SCHEMA IF EXISTS archive CASCADE;",
        # the engine's own statements, repeated verbatim (and with public. before the table)
        "ALTER TABLE public.schema_migration_events ADD COLUMN IF NOT EXISTS backup text;",
        "CREATE OR REPLACE FUNCTION record_migration(" + RECORD_MIGRATION + "$fn$;",
    ],
)
def test_tracking_object_left_alone(tmp_path: Path, sql: str) -> None:
    """Reads, grants, comments and plain indexes cannot make the engine's writes fail or
    change what it records; the engine's own statements, repeated, change nothing."""
    assert findings_of(tmp_path, sql) == []


def test_tracking_object_without_the_engine_objects(tmp_path: Path) -> None:
    """check() called without `tracking` (a caller that does not know the engine) skips the rule."""
    directory = write(tmp_path / "migrations", {**BASE, "002_x.sql": "DELETE FROM schema_migrations;\n"})
    assert "tracking-object" not in {f.rule for f in check(directory, lint_rules=False).findings}


def test_tracking_object_in_a_rollback_script(tmp_path: Path) -> None:
    assert findings_of(
        tmp_path, "SELECT 2;", rollback="DELETE FROM schema_migrations WHERE version = '002';\n"
    ) == [("tracking-object", "error", "002_x_rollback.sql", 1, f"DELETE writes to {table()}", TRACKING_HINT)]


def test_the_project_029_declares_the_tracking_objects_like_the_engine(tmp_path: Path) -> None:
    """029 repeats tracking.sql's table and functions verbatim: no finding; an edited body is one."""
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    for m in discover(REPO / "migrations"):
        for script in (m.script, m.rollback):
            assert script is not None
            (migrations / script.path.name).write_text(script.text)
    assert [
        f for f in check(migrations, lint_rules=False, tracking=tracking()).findings if f.rule in RULES
    ] == []
    m029 = migrations / "029_create_migration_tracking.sql"
    m029.write_text(m029.read_text().replace("success = true,", "success = true AND false,"))
    report = check(migrations, lint_rules=False, tracking=tracking())
    assert [exact(f) for f in report.findings if f.rule in RULES] == [
        (
            "tracking-object",
            "error",
            "029_create_migration_tracking.sql",
            40,
            f"CREATE OR REPLACE FUNCTION redefines {function('record_migration')}",
            DECLARATION_HINT,
        )
    ]


def test_project_migrations_pass_check_with_every_rule(cli: Any) -> None:
    """`bilantools check migrations`, lint rules and squawk included: nothing at all."""
    r = cli("--migrations", str(REPO / "migrations"), "check")
    assert (r.code, r.out, r.err) == (0, "29 migration(s) checked: 0 error(s), 0 warning(s), 0 note(s)\n", "")


# --- copy-client-stream --------------------------------------------------------------------

FROM_STDIN = (
    "COPY ... FROM STDIN waits for rows from the client, and a migration file has no client-side data stream",
    "put the rows in the migration as INSERT ... VALUES, or COPY FROM a file on the database server "
    "(needs pg_read_server_files)",
)
TO_STDOUT = (
    "COPY ... TO STDOUT sends rows to the client, and a migration file has no client-side data stream",
    "remove it, or COPY TO a file on the database server (needs pg_write_server_files)",
)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("COPY people FROM STDIN;", FROM_STDIN),
        ("COPY people (name) FROM stdin WITH (FORMAT csv);", FROM_STDIN),
        ("COPY people TO STDOUT;", TO_STDOUT),
        ("COPY (SELECT * FROM people) TO STDOUT WITH (FORMAT csv, HEADER);", TO_STDOUT),
    ],
)
def test_copy_client_stream(tmp_path: Path, sql: str, expected: tuple[str, str]) -> None:
    assert findings_of(tmp_path, sql) == [("copy-client-stream", "error", "002_x.sql", 2, *expected)]


@pytest.mark.parametrize(
    "sql",
    [
        "COPY people FROM '/srv/data/people.csv' WITH (FORMAT csv);",
        "COPY people TO '/tmp/people.csv';",
        "COPY people FROM PROGRAM 'cat /srv/data/people.csv';",
    ],
)
def test_copy_of_a_server_file_is_left_alone(tmp_path: Path, sql: str) -> None:
    assert findings_of(tmp_path, sql) == []


def test_psql_copy_meta_command_is_a_syntax_error(tmp_path: Path) -> None:
    """psql's \\copy is no SQL: the parser refuses the whole file, so nothing of it runs."""
    files: Files = {
        **BASE,
        "002_x.sql": "\\copy people FROM 'people.csv'\n",
        "002_x_rollback.sql": "SELECT 1;\n",
    }
    report = check(write(tmp_path / "migrations", files), lint_rules=False, tracking=tracking())
    assert rows(report) == [("syntax-error", "error", "002_x.sql", 1)]
    assert report.errors[0].message == 'syntax error: syntax error at or near "\\"'


# --- session-setting -----------------------------------------------------------------------

WHOLE_SESSION = "changes the whole session, not only this migration"
ENDS = "it then ends with the migration's transaction"
SET_CONFIG_HINT = f"pass true as set_config's third argument (is_local): {ENDS}"
SESSION_CASES: list[tuple[str, str, str, str]] = [
    (
        "set-search-path",
        "SET search_path = other, public;",
        "SET search_path",
        f"write SET LOCAL search_path ... (or set_config(..., true)): {ENDS}",
    ),
    (
        "set-session-lock-timeout",
        "SET SESSION lock_timeout = 0;",
        "SET lock_timeout",
        f"write SET LOCAL lock_timeout ... (or set_config(..., true)): {ENDS}",
    ),
    (
        "set-to-default",
        "SET statement_timeout TO DEFAULT;",
        "SET statement_timeout",
        f"write SET LOCAL statement_timeout ... (or set_config(..., true)): {ENDS}",
    ),
    ("set-role", "SET ROLE postgres;", "SET ROLE", f"write SET LOCAL ROLE ...: {ENDS}"),
    (
        "set-session-authorization",
        "SET SESSION AUTHORIZATION postgres;",
        "SET SESSION AUTHORIZATION",
        f"write SET LOCAL SESSION AUTHORIZATION ...: {ENDS}",
    ),
    (
        "reset",
        "RESET lock_timeout;",
        "RESET lock_timeout",
        f"write SET LOCAL lock_timeout TO DEFAULT: {ENDS}",
    ),
    ("reset-role", "RESET ROLE;", "RESET ROLE", f"write SET LOCAL ROLE TO DEFAULT: {ENDS}"),
    (
        "reset-all",
        "RESET ALL;",
        "RESET ALL",
        f"write SET LOCAL ... TO DEFAULT, for each setting that needs it: {ENDS}",
    ),
    (
        "session-characteristics",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY;",
        "SET SESSION CHARACTERISTICS",
        f"write SET TRANSACTION ...: {ENDS}",
    ),
    (
        "pg-dump-set-config",
        "SELECT pg_catalog.set_config('search_path', '', false);",
        "set_config('search_path', ...) without is_local = true",
        SET_CONFIG_HINT,
    ),
    (
        "set-config-not-a-constant",
        "SELECT set_config('lock_timeout', '0', current_setting('is_superuser') = 'on');",
        "set_config('lock_timeout', ...) without is_local = true",
        SET_CONFIG_HINT,
    ),
    (
        "set-config-two-arguments",
        "SELECT set_config(name, '1', false) FROM (VALUES ('work_mem')) AS s (name);",
        "set_config(...) without is_local = true",
        SET_CONFIG_HINT,
    ),
    (
        "do-block-perform",
        "DO $$ BEGIN PERFORM set_config('search_path', 'other', false); END $$;",
        "set_config('search_path', ...) without is_local = true",
        SET_CONFIG_HINT,
    ),
    (
        "do-block-set",
        "DO $$ BEGIN SET search_path = other; END $$;",
        "SET search_path",
        f"write SET LOCAL search_path ... (or set_config(..., true)): {ENDS}",
    ),
]


@pytest.mark.parametrize(
    ("sql", "words", "hint"), [c[1:] for c in SESSION_CASES], ids=[c[0] for c in SESSION_CASES]
)
def test_session_setting(tmp_path: Path, sql: str, words: str, hint: str) -> None:
    assert findings_of(tmp_path, sql) == [
        ("session-setting", "warning", "002_x.sql", 2, f"{words} {WHOLE_SESSION}", hint)
    ]


@pytest.mark.parametrize(
    "sql",
    [
        "SET LOCAL search_path = other, public;",
        "SET LOCAL ROLE postgres;",
        "SELECT set_config('search_path', 'other', true);",
        "SELECT pg_catalog.set_config('lock_timeout', '1s', 'on');",
        "SET CONSTRAINTS ALL DEFERRED;",
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE;",
        # settings of a function, a role, a database: not the session's
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET search_path = public, pg_temp AS 'SELECT 1';",
        "ALTER ROLE CURRENT_USER SET lock_timeout = '1s';",
        # a view calls set_config when queried, not now
        "CREATE VIEW v AS SELECT set_config('a.b', 'c', false);",
        "SELECT my_set_config('a', 'b', false);",
    ],
)
def test_session_setting_left_alone(tmp_path: Path, sql: str) -> None:
    assert findings_of(tmp_path, sql) == []


def test_session_setting_in_a_file_without_transaction(tmp_path: Path) -> None:
    """SET LOCAL would do nothing there: the hint says so and gives what works."""
    assert findings_of(
        tmp_path, "-- transaction: off\nSET lock_timeout = 0;\nSELECT set_config('a.b', 'c', false);"
    ) == [
        ("session-setting", "warning", "002_x.sql", 3, f"SET lock_timeout {WHOLE_SESSION}", TX_OFF_HINT),
        (
            "session-setting",
            "warning",
            "002_x.sql",
            4,
            f"set_config('a.b', ...) without is_local = true {WHOLE_SESSION}",
            TX_OFF_HINT,
        ),
    ]


def test_session_setting_switched_off_by_comment_and_pyproject(tmp_path: Path) -> None:
    sql = "-- bilantools: ignore session-setting\nSET search_path = other, public;\nRESET ALL;"
    assert [f[0:4] for f in findings_of(tmp_path, sql)] == [("session-setting", "warning", "002_x.sql", 4)]
    (tmp_path / "pyproject.toml").write_text('[tool.bilantools]\ndisable = ["session-setting"]\n')
    assert findings_of(tmp_path, sql) == []


@pytest.mark.pg15
def test_a_session_setting_does_not_refuse_apply(db_url: str, tmp_path: Path) -> None:
    """A warning: apply runs the migration (the engine itself resets the session)."""
    files: Files = {**BASE, "002_x.sql": "SET search_path = public;\nCREATE TABLE u (id int);\n"}
    directory = write(tmp_path / "migrations", files)
    result = commands.apply(target=db_url, project=directory, options=commands.RunOptions(backup=False))
    assert [(s.version, s.outcome) for s in result.steps] == [("001", "applied"), ("002", "applied")]


# --- encoding: a NUL byte ------------------------------------------------------------------

NUL_FILE = b"CREATE TABLE a (id int);\nSELECT 1;\x00\nCREATE TABLE b (id int);\n"
NUL_MESSAGE = (
    "002_nul.sql contains a NUL byte at line 2: everything after it would be cut off without a word",
    "remove it (a file saved as UTF-16 has one after every ASCII character: save it as UTF-8)",
)


def test_nul_byte(tmp_path: Path) -> None:
    directory = write(tmp_path / "migrations", {**BASE, "002_nul.sql": NUL_FILE})
    report = check(directory, lint_rules=False, tracking=tracking())
    assert [exact(f) for f in report.findings] == [("encoding", "error", "002_nul.sql", 2, *NUL_MESSAGE)]
    assert report.findings[0].column == 10
    assert report.findings[0].one_line() == f"{directory}/002_nul.sql:2:10: {'; '.join(NUL_MESSAGE)}"
    assert [m.version for m in discover(directory)] == ["001"]  # never planned, never applied


def test_utf16_file_is_refused(tmp_path: Path) -> None:
    """UTF-16 without a byte order mark decodes as UTF-8 with a NUL after each character."""
    directory = write(tmp_path / "migrations", {**BASE, "002_nul.sql": "SELECT 1;\n".encode("utf-16-le")})
    (finding,) = discover(directory).findings
    assert (finding.rule, finding.line, finding.column) == ("encoding", 1, 2)


@pytest.mark.pg15
@pytest.mark.parametrize("command", ["status", "graph", "validate", "plan"])
def test_nul_byte_seen_by_every_command_that_reads_files(
    cli: Any, db_url: str, tmp_path: Path, command: str
) -> None:
    """Discovery drops the file with its finding, for every command: none reads the text
    before the NUL as if it were the whole file. status and graph leave it out, validate
    and plan name it (apply refusing it is in the bad-input suite)."""
    directory = write(tmp_path / "migrations", {**BASE, "002_nul.sql": NUL_FILE})
    r = cli("--db", db_url, "--migrations", str(directory), command)
    if command in ("status", "graph"):
        assert r.code == 0 and "nul" not in r.out and not re.search(r"\b002\b", r.out), r.out
    else:
        assert r.code in (1, 2) and "002_nul.sql contains a NUL byte at line 2" in r.out + r.err


# --- version-too-long ----------------------------------------------------------------------


def test_version_too_long(tmp_path: Path) -> None:
    long_name = "1" * 60 + "_big.sql"
    directory = write(
        tmp_path / "migrations",
        {**BASE, long_name: "SELECT 1;\n", "1" * 60 + "_big_rollback.sql": "SELECT 1;\n"},
    )
    widest = "9" * VERSION_MAX_LENGTH + "_wide.sql"
    write(directory, {widest: "SELECT 2;\n", "9" * VERSION_MAX_LENGTH + "_wide_rollback.sql": "SELECT 2;\n"})
    report = check(directory, lint_rules=False, tracking=tracking())
    assert [exact(f) for f in report.findings if f.rule != "numbering-gap"] == [
        (
            "version-too-long",
            "error",
            long_name,
            None,
            f"{long_name} has a version of 60 digits; the tracking table stores versions of at most 50 "
            "characters",
            "renumber the migration (and its rollback) with at most 50 digits",
        )
    ]


def _varchar_widths(sql: str) -> dict[tuple[str, str], int | None]:
    """(table, column) -> the varchar width (None: text, no limit) of every CREATE TABLE."""
    from pglast import parser

    widths: dict[tuple[str, str], int | None] = {}
    for stmt in json.loads(parser.parse_sql_json(sql))["stmts"]:
        create = stmt["stmt"].get("CreateStmt")
        for element in create["tableElts"] if create else []:
            column = element.get("ColumnDef")
            if column is None:
                continue
            type_name = column["typeName"]["names"][-1]["String"]["sval"]
            mods = column["typeName"].get("typmods", [])
            width = mods[0]["A_Const"]["ival"]["ival"] if mods else None
            widths[(create["relation"]["relname"], column["colname"])] = (
                width if type_name == "varchar" else (None if type_name == "text" else -1)
            )
    return widths


def test_what_a_migration_file_puts_in_the_tracking_tables_fits_their_columns() -> None:
    """The one limit bilantools/db/tracking.sql sets on a migration file's values (the
    version: `VERSION_MAX_LENGTH`) and the ones that need no check (the name goes to a
    text column, the checksum is always 64 hex digits) are those of tracking.sql."""
    widths = _varchar_widths(tracking_sql())
    assert widths[("schema_migrations", "version")] == VERSION_MAX_LENGTH
    assert widths[("schema_migration_events", "version")] == VERSION_MAX_LENGTH
    assert widths[("schema_migrations", "description")] is None
    assert widths[("schema_migrations", "checksum")] == len(checksum("")) == 64
    assert widths[("schema_migration_events", "checksum")] == len(checksum(""))


# --- rollback scripts with '-- transaction: off' -------------------------------------------

INDEXED: Files = {
    **BASE,
    "002_idx.sql": "-- transaction: off\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_id ON t (id);\n",
    "002_idx_rollback.sql": "-- transaction: off\nDROP INDEX CONCURRENTLY IF EXISTS t_id;\n",
}


def test_rollback_with_transaction_off_passes_check(tmp_path: Path) -> None:
    directory = write(tmp_path / "migrations", INDEXED)
    assert check(directory, lint_rules=False, tracking=tracking()).findings == []
    (directory / "002_idx_rollback.sql").write_text("DROP INDEX CONCURRENTLY IF EXISTS t_id;\n")
    report = check(directory, lint_rules=False, tracking=tracking())
    assert rows(report) == [("needs-transaction-off", "error", "002_idx_rollback.sql", 1)]
    assert report.errors[0].hint.startswith("add the header line '-- transaction: off' to the file")


@pytest.mark.pg15
def test_rollback_with_transaction_off_runs_outside_a_transaction(
    db_url: str, tmp_path: Path, conn: psycopg.Connection
) -> None:
    directory = write(tmp_path / "migrations", INDEXED)
    commands.apply(target=db_url, project=directory, options=commands.RunOptions(backup=False))
    assert conn.execute("SELECT to_regclass('t_id') IS NOT NULL").fetchone() == (True,)
    dry = commands.rollback(target=db_url, project=directory, options=commands.RunOptions(dry_run=True))
    assert [(s.action, s.outcome) for s in dry.steps] == [("rollback", "skipped")]
    result = commands.rollback(target=db_url, project=directory)
    assert [(s.version, s.outcome, s.statements) for s in result.steps] == [("002", "rolled back", 1)]
    assert conn.execute("SELECT to_regclass('t_id')").fetchone() == (None,)
    assert conn.execute("SELECT version FROM schema_migrations").fetchall() == [("001",)]
    assert conn.execute(
        "SELECT version, action, outcome, duration_ms >= 0 FROM schema_migration_events"
        " WHERE action = 'rollback' ORDER BY id"
    ).fetchall() == [("002", "rollback", "started", None), ("002", "rollback", "success", True)]
    assert [m.state for m in commands.status(target=db_url, project=directory).migrations] == [
        "applied",
        "pending",
    ]


@pytest.mark.pg15
def test_rollback_with_transaction_off_failing_half_way(
    db_url: str, tmp_path: Path, conn: psycopg.Connection
) -> None:
    directory = write(tmp_path / "migrations", INDEXED)
    commands.apply(target=db_url, project=directory, options=commands.RunOptions(backup=False))
    (directory / "002_idx_rollback.sql").write_text(
        "-- transaction: off\nDROP INDEX CONCURRENTLY IF EXISTS t_id;\nDROP INDEX CONCURRENTLY t_gone;\n"
    )
    with pytest.raises(MigrationFailed) as failure:
        commands.rollback(target=db_url, project=directory)
    assert str(failure.value) == (
        'rollback of 002_idx failed at 002_idx_rollback.sql:3: ERROR 42704: index "t_gone" does not exist '
        "(statement: DROP INDEX CONCURRENTLY t_gone); the rollback script runs outside a transaction and "
        "1 of 2 statements had committed, and 002_idx stays applied: make the rollback script safe to re-run "
        "(IF EXISTS) and run rollback again"
    )
    assert failure.value.partial
    assert conn.execute("SELECT to_regclass('t_id')").fetchone() == (None,)  # committed on its own
    assert [m.state for m in commands.status(target=db_url, project=directory).migrations] == [
        "applied",
        "applied",
    ]
    assert conn.execute(
        "SELECT outcome, detail FROM schema_migration_events WHERE action = 'rollback' ORDER BY id"
    ).fetchall() == [
        ("started", None),
        (
            "partial",
            '1 of 2 statements committed: ERROR 42704: index "t_gone" does not exist at '
            "002_idx_rollback.sql:3",
        ),
    ]
    (directory / "002_idx_rollback.sql").write_text(
        "-- transaction: off\nDROP INDEX CONCURRENTLY IF EXISTS t_id;\n"
        "DROP INDEX CONCURRENTLY IF EXISTS t_gone;\n"
    )
    assert [s.outcome for s in commands.rollback(target=db_url, project=directory).steps] == ["rolled back"]
    assert [m.state for m in commands.status(target=db_url, project=directory).migrations] == [
        "applied",
        "pending",
    ]


# --- the remembered check --------------------------------------------------------------------


@pytest.mark.parametrize("module", ["source/engine_rules.py", "db/tracking.sql", "source/files.py"])
def test_a_changed_rule_is_never_answered_by_a_remembered_check(tmp_path: Path, module: str) -> None:
    """apply skips a check that passed for identical files, keyed by the code that checks
    them too: with a rule or the engine's tracking script edited, the key differs (a pass
    remembered before these rules existed is not reused for a COPY FROM STDIN)."""
    import os

    import bilantools
    from bilantools.source import passed
    from bilantools.source.config import CheckConfig

    found = discover(write(tmp_path / "migrations", BASE))
    before = passed.key(found, CheckConfig())
    path = Path(bilantools.__file__).parent / module
    stat = path.stat()
    try:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        assert passed.key(found, CheckConfig()) != before
    finally:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert passed.key(found, CheckConfig()) == before
