"""Shared fixtures: one real PostgreSQL server per test session, a fresh database per test.

The server is a bilantools sandbox in a temporary BILANTOOLS_HOME, started by the
fixture itself (never a server started by hand). BILANTOOLS_TEST_PG_BIN chooses other
server binaries (the Makefile runs the `pg15` tests on Debian's PostgreSQL 15). If the
server cannot start, every database test errors: none is skipped.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from bilantools.cli.main import main
from bilantools.db.sandbox import Sandbox

FIXTURES = Path(__file__).parent / "fixtures"
TEMPLATE = "bt_template"


def pytest_configure(config: pytest.Config) -> None:
    """Started in the background by a shell without job control (`make test &`, a CI
    runner), the suite inherits SIGINT ignored, and so would every CLI it starts (a
    process keeps an ignored SIGINT across exec): the Ctrl-C tests would then wait for a
    command that rightly ignores Ctrl-C. A user's terminal delivers SIGINT; so does the
    suite, by handling it itself (children then start with SIGINT at its default)."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def server() -> Iterator[Sandbox]:
    # Not under pytest's tmp_path: pytest deletes old base directories of its runs, which
    # would pull the data directory from under a server of a run still going.
    home = Path(tempfile.mkdtemp(prefix="bilantools-test-server-"))
    box = Sandbox(home, pg_bin=os.environ.get("BILANTOOLS_TEST_PG_BIN") or None)
    try:
        box.start()
        box.new_db(TEMPLATE)
        yield box
    finally:
        box.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may reach a developer's DATABASE_URL or ./.bilantools."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("BILANTOOLS_PG_BIN", raising=False)
    monkeypatch.setenv("BILANTOOLS_HOME", str(tmp_path / "no-sandbox-here"))
    monkeypatch.setenv("TQDM_DISABLE", "1")


@pytest.fixture
def db_url(server: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database cloned from the session's template; dropped afterwards."""
    monkeypatch.setenv("BILANTOOLS_HOME", str(server.home))
    name = "t_" + uuid.uuid4().hex[:12]
    url = server.new_db(name, template=TEMPLATE)
    yield url
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def basic(tmp_path: Path) -> Path:
    """A writable copy of the three-migration fixture set."""
    target = tmp_path / "migrations"
    shutil.copytree(FIXTURES / "basic", target)
    return target


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> object:
    """Run the CLI in-process: cli('--db', url, 'status') -> CliResult."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        else:
            code = 0
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def snapshot(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    """Columns, constraints, indexes, functions and tracking rows: enough to see any change."""
    queries = [
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
        " WHERE table_schema = 'public' ORDER BY 1, 2",
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2",
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
        "SELECT p.oid::regprocedure::text, md5(p.prosrc) FROM pg_proc p"
        " WHERE p.pronamespace = 'public'::regnamespace ORDER BY 1",
    ]
    rows: list[tuple[object, ...]] = []
    for q in queries:
        rows.extend(conn.execute(q).fetchall())
    if "schema_migrations" in tables(conn):
        rows.extend(
            conn.execute(
                "SELECT version, checksum, success, error_message FROM schema_migrations ORDER BY version"
            ).fetchall()
        )
        rows.extend(conn.execute("SELECT count(*) FROM schema_migration_events").fetchall())
    return rows
