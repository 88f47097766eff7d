"""Bad input: one clear line naming the problem and the fix, a non-zero exit, and the
database and files exactly as they were."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands
from bilantools.db.lock import LOCK_KEYS
from tests.conftest import snapshot

pytestmark = pytest.mark.pg15

Setup = Callable[[Path], None]


def nothing(_: Path) -> None:
    pass


def write(name: str, text: str | bytes) -> Setup:
    def setup(directory: Path) -> None:
        path = directory / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)

    return setup


def remove(name: str) -> Setup:
    return lambda directory: (directory / name).unlink()


def empty_dir(directory: Path) -> None:
    for path in directory.iterdir():
        path.unlink()


def edit_applied(directory: Path) -> None:
    path = directory / "001_create_people.sql"
    path.write_text(path.read_text() + "-- edited after apply\n")


CASES: list[tuple[str, Setup, list[str], int, str]] = [
    (
        "unreachable-host",
        nothing,
        ["--db", "postgresql://postgres@127.0.0.1:1/x", "status"],
        2,
        "cannot connect to postgresql://postgres@127.0.0.1:1/x: Connection refused",
    ),
    (
        "unknown-host",
        nothing,
        ["--db", "postgresql://postgres@no-such-host.invalid/x", "status"],
        2,
        "check the host and port",
    ),
    (
        "malformed-port",
        nothing,
        ["--db", "postgresql://u:pw@localhost:notaport/db", "status"],
        2,
        "malformed database URL postgresql://u:***@localhost:notaport/db from --db",
    ),
    (
        "malformed-scheme",
        nothing,
        ["--db", "http://example.org/db", "status"],
        2,
        "malformed database URL http://example.org/db from --db: unknown scheme; expected postgresql://",
    ),
    ("malformed-words", nothing, ["--db", "not a url", "status"], 2, "malformed database URL"),
    ("empty-url", nothing, ["--db", "", "status"], 2, "the database URL from --db is empty"),
    (
        "missing-database",
        nothing,
        ["--db", "{server}/no_such_db", "status"],
        2,
        'database "no_such_db" does not exist; create the database first',
    ),
    (
        "missing-dir",
        nothing,
        ["--migrations", "{dir}/nope", "status"],
        2,
        "nope does not exist; pass --migrations DIR",
    ),
    ("empty-dir", empty_dir, ["apply"], 2, "no migrations in"),
    (
        "bad-file-name",
        write("4_add-thing.sql.bak.sql", "SELECT 1;"),
        ["apply"],
        2,
        "does not match NNN_slug.sql; rename it",
    ),
    ("bad-file-name-2", write("add_thing.sql", "SELECT 1;"), ["apply"], 2, "'add_thing.sql' does not match"),
    (
        "duplicate-version",
        write("002_other.sql", "SELECT 1;"),
        ["apply"],
        2,
        "two migrations share version 002: 002_add_email.sql and 002_other.sql; renumber one of them",
    ),
    (
        "orphan-rollback",
        write("009_ghost_rollback.sql", "SELECT 1;"),
        ["apply"],
        2,
        "rollback 009_ghost_rollback.sql has no migration 009_ghost.sql; add the migration or remove it",
    ),
    (
        "non-utf8",
        write("004_latin1.sql", b"INSERT INTO people (name) VALUES ('\xc9milie');"),
        ["apply"],
        2,
        "004_latin1.sql is not UTF-8 (byte 0xc9 at offset 35); save the file as UTF-8",
    ),
    ("empty-file", write("004_empty.sql", "\n\n"), ["apply"], 2, "004_empty.sql contains no SQL"),
    (
        "unknown-dependency",
        write("004_x.sql", "-- depends: 042\nSELECT 1;"),
        ["apply"],
        2,
        "'-- depends: 042' names no migration in",
    ),
    (
        "self-dependency",
        write("004_x.sql", "-- depends: 004\nSELECT 1;"),
        ["apply"],
        2,
        "004_x.sql depends on itself; fix the '-- depends:' line",
    ),
    (
        "bad-depends-value",
        write("004_x.sql", "-- depends: first\nSELECT 1;"),
        ["apply"],
        2,
        "'-- depends:' names 'first', which is not a version number",
    ),
    (
        "bad-transaction-header",
        write("004_x.sql", "-- transaction: no\nSELECT 1;"),
        ["apply"],
        2,
        "'-- transaction: no' is not understood",
    ),
    ("unknown-to", nothing, ["apply", "--to", "099"], 2, "--to 099: no migration has version 099"),
    ("unknown-rollback-to", nothing, ["rollback", "--to", "77"], 2, "--to 77: no migration has version 77"),
    ("to-and-step", nothing, ["apply", "--to", "003", "--step", "1"], 2, "cannot be used together"),
    ("step-zero", nothing, ["apply", "--step", "0"], 2, "Invalid value for '--step'"),
    ("baseline-without-to", nothing, ["baseline"], 2, "Missing option '--to'"),
    ("unknown-command", nothing, ["migrate"], 2, "No such command 'migrate'"),
    (
        "syntax-error",
        write("004_typo.sql", "CREATE TABLE t (id int);\nCREAT INDEX i ON t (id);\n"),
        ["apply"],
        2,
        '004_typo.sql:2:1: syntax error: syntax error at or near "CREAT"',
    ),
    (
        "transaction-control",
        write("004_tx.sql", "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\n"),
        ["apply"],
        2,
        "004_tx.sql:1: 'BEGIN' controls the transaction",
    ),
    (
        "needs-transaction-off",
        write("004_idx.sql", "CREATE INDEX CONCURRENTLY i ON people (name);\n"),
        ["apply"],
        2,
        "cannot run inside a transaction; add the header line '-- transaction: off'",
    ),
    (
        "missing-rollback-script",
        remove("001_create_people_rollback.sql"),
        ["rollback"],
        2,
        "no rollback script for 001_create_people",
    ),
    (
        "changed-after-apply",
        edit_applied,
        ["apply"],
        2,
        "001 changed since they were applied (checksum differs)",
    ),
    (
        "bad-pg-bin",
        nothing,
        ["--pg-bin", "{dir}", "sandbox", "start"],
        2,
        "no postgres, pg_ctl, initdb there; pass the bin directory of a PostgreSQL server install",
    ),
    (
        "sandbox-bad-db-name",
        nothing,
        ["sandbox", "new-db", "x; DROP DATABASE y"],
        2,
        "invalid database name 'x; DROP DATABASE y'",
    ),
    ("lock-wait-negative", nothing, ["apply", "--lock-wait", "-1"], 2, "Invalid value for '--lock-wait'"),
]


def digest(directory: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        h.update(path.name.encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize(
    ("setup", "args", "code", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input(
    cli: Any,
    db_url: str,
    basic: Path,
    conn: psycopg.Connection,
    setup: Setup,
    args: list[str],
    code: int,
    fragment: str,
) -> None:
    commands.apply(db_url, basic, to="001")
    setup(basic)
    before_db, before_files = snapshot(conn), digest(basic)
    server = db_url.rsplit("/", 1)[0]
    argv = [a.replace("{server}", server).replace("{dir}", str(basic)) for a in args]
    if "--db" not in argv:
        argv = ["--db", db_url, *argv]
    if "--migrations" not in argv:
        argv = ["--migrations", str(basic), *argv]
    if argv[-1] in ("apply", "rollback") or "--to" in argv or "--step" in argv:
        argv.append("--yes")
    result = cli(*argv)
    assert result.code == code, result.err
    error_lines = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.err
    assert fragment in error_lines[0]
    assert snapshot(conn) == before_db
    assert digest(basic) == before_files


def test_cycle(cli: Any, db_url: str, basic: Path, conn: psycopg.Connection) -> None:
    (basic / "004_x.sql").write_text("-- depends: 005\nSELECT 1;")
    (basic / "005_y.sql").write_text("-- depends: 004\nSELECT 1;")
    before = snapshot(conn)
    r = cli("--db", db_url, "--migrations", str(basic), "apply")
    assert r.code == 2 and "dependency cycle" in r.err and "fix the '-- depends:' lines" in r.err
    assert snapshot(conn) == before


def test_lock_held_by_another_runner(cli: Any, db_url: str, basic: Path, conn: psycopg.Connection) -> None:
    with psycopg.connect(db_url, autocommit=True, application_name="bilantools apply elsewhere") as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)", LOCK_KEYS)
        r = cli("--db", db_url, "--migrations", str(basic), "apply", "--lock-wait", "0.2")
    assert r.code == 2
    assert "another run holds the migration lock" in r.err and "'bilantools apply elsewhere'" in r.err
    assert snapshot(conn) == []
