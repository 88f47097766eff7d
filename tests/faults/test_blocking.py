"""Blocking: a migration that needs a lock another transaction holds fails after
lock_timeout, naming the session that blocks it, instead of queueing behind it (and
making every later query on the table queue behind the migration). statement_timeout
likewise. Both are settable per run (--lock-timeout, --statement-timeout) and per script
(`-- lock-timeout:` and `-- statement-timeout:` headers, which win).

Each test here is about one wait: lock retries are off (attempts = 1); they are tested in
test_lock_retries.py.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands
from bilantools.db.fingerprint import fingerprint
from bilantools.errors import BilanToolsError, MigrationFailed
from tests.conftest import CliResult
from tests.faults.conftest import Figures

pytestmark = pytest.mark.pg15

ADD_COLUMN = "ALTER TABLE people ADD COLUMN nickname text;\n"


@pytest.fixture(autouse=True)
def one_attempt(tmp_path: Path) -> None:
    """No lock retries for the projects under tmp_path (`basic` is tmp_path/migrations)."""
    (tmp_path / "pyproject.toml").write_text("[tool.bilantools.lock-retries]\nattempts = 1\n")


@contextmanager
def holding(db_url: str, sql: str, app: str = "blocker-app") -> Iterator[int]:
    """An open transaction that ran `sql` and keeps its locks; yields its pid. A timer ends
    its session after 30 s so that a migration that ignores its lock timeout would end up
    succeeding (and the test failing) rather than hanging."""
    conn = psycopg.connect(db_url, application_name=app)
    conn.execute(sql)
    pid = conn.info.backend_pid

    def terminate() -> None:
        with psycopg.connect(db_url, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (pid,))

    watchdog = threading.Timer(30, terminate)
    watchdog.start()
    try:
        yield pid
    finally:
        watchdog.cancel()
        conn.close()


def with_migration(directory: Path, name: str, text: str, rollback: str = "SELECT 1;\n") -> None:
    (directory / f"{name}.sql").write_text(text)
    (directory / f"{name}_rollback.sql").write_text(rollback)


def columns(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'people' ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def last_line(result: CliResult) -> str:
    lines = result.err.strip().splitlines()
    return lines[-1] if lines else ""


def test_lock_timeout_fails_and_names_the_blocker(
    cli: Any, db_url: str, conn: psycopg.Connection, basic: Path, figures: Figures
) -> None:
    assert cli("--db", db_url, "--migrations", str(basic), "apply").code == 0
    with_migration(basic, "004_add_nickname", ADD_COLUMN)
    before = fingerprint(conn)
    with holding(db_url, "BEGIN; SELECT count(*) FROM people") as pid:
        result = cli("--db", db_url, "--migrations", str(basic), "apply", "--lock-timeout", "300ms")
        assert result.code == 1, result.err
        line = last_line(result)
        assert line.startswith(
            "error: migration 004_add_nickname timed out waiting for a lock at 004_add_nickname.sql:1: "
        )
        assert "ERROR 55P03: canceling statement due to lock timeout" in line
        assert "waited lock_timeout 300ms for a lock, held by pid " + str(pid) in line
        assert "application 'blocker-app'" in line and "AccessShareLock on people" in line
        assert f"SELECT pg_terminate_backend({pid})" in line
        assert "raise the limit with --lock-timeout or a '-- lock-timeout:' header" in line
        assert "nickname" not in columns(conn)  # rolled back, while the blocker still holds
    assert fingerprint(conn) == before
    state = {s.version: s for s in commands.status(target=db_url, project=basic).migrations}["004"]
    assert state.state == "pending"  # not a failure of the file: nothing is recorded as failed
    assert re.fullmatch(
        rf"timed out waiting for a lock on people held by pid {pid} \(\w+, blocker-app, xact \d+ s\)"
        " at 004_add_nickname.sql:1: retry when it is released",
        state.error or "",
    ), state.error
    assert cli("--db", db_url, "--migrations", str(basic), "apply").code == 0
    assert "nickname" in columns(conn)
    figures.add("blocking: lock timeouts provoked")


def test_the_default_lock_timeout_is_a_few_seconds(
    db_url: str, conn: psycopg.Connection, basic: Path
) -> None:
    commands.apply(target=db_url, project=basic)
    with_migration(basic, "004_add_nickname", ADD_COLUMN)
    with (
        holding(db_url, "BEGIN; LOCK TABLE people IN ACCESS SHARE MODE"),
        pytest.raises(MigrationFailed) as failed,
    ):
        commands.apply(target=db_url, project=basic)
    assert "waited lock_timeout 5s for a lock" in str(failed.value)
    assert "nickname" not in columns(conn)


def test_the_header_wins_over_the_run(db_url: str, conn: psycopg.Connection, basic: Path) -> None:
    commands.apply(target=db_url, project=basic)
    with_migration(basic, "004_add_nickname", "-- lock-timeout: 200ms\n" + ADD_COLUMN)
    with holding(db_url, "BEGIN; SELECT count(*) FROM people"), pytest.raises(MigrationFailed) as failed:
        commands.apply(target=db_url, project=basic, options=commands.RunOptions(lock_timeout="1h"))
    assert "waited lock_timeout 200ms for a lock" in str(failed.value)


def test_rollback_respects_its_own_header(
    db_url: str, conn: psycopg.Connection, basic: Path, figures: Figures
) -> None:
    with_migration(
        basic,
        "004_add_nickname",
        ADD_COLUMN,
        "-- lock-timeout: 250ms\nALTER TABLE people DROP COLUMN nickname;\n",
    )
    commands.apply(target=db_url, project=basic)
    with holding(db_url, "BEGIN; SELECT count(*) FROM people") as pid:
        with pytest.raises(MigrationFailed) as failed:
            commands.rollback(target=db_url, project=basic, options=commands.RunOptions(lock_timeout="1h"))
        message = str(failed.value)
    assert message.startswith("rollback of 004_add_nickname failed at 004_add_nickname_rollback.sql:2: ")
    assert f"waited lock_timeout 250ms for a lock, held by pid {pid}" in message
    assert "the migration stays applied" in message
    assert "nickname" in columns(conn)
    commands.rollback(target=db_url, project=basic)
    assert "nickname" not in columns(conn)
    figures.add("blocking: lock timeouts provoked")


def test_a_blocker_on_another_table_is_found_among_the_oldest_transactions(
    db_url: str, conn: psycopg.Connection, basic: Path
) -> None:
    """A row lock is not a table lock: the statement's tables show no holder, so the
    message falls back on the oldest open transactions, which include the blocker."""
    commands.apply(target=db_url, project=basic)
    with_migration(basic, "004_rename", "UPDATE people SET name = 'x' WHERE id = 1;\n")
    conn.execute("INSERT INTO people (id, name) VALUES (1, 'a') ON CONFLICT DO NOTHING")
    with (
        holding(db_url, "BEGIN; SELECT * FROM people WHERE id = 1 FOR UPDATE", "row-locker") as pid,
        pytest.raises(MigrationFailed) as failed,
    ):
        commands.apply(target=db_url, project=basic, options=commands.RunOptions(lock_timeout="200ms"))
    message = str(failed.value)
    assert f"pid {pid} (application 'row-locker'" in message


def test_statement_timeout_per_run_and_per_header(
    cli: Any, db_url: str, conn: psycopg.Connection, basic: Path, figures: Figures
) -> None:
    assert cli("--db", db_url, "--migrations", str(basic), "apply").code == 0
    with_migration(basic, "004_slow", "CREATE TABLE slow (id int);\nSELECT pg_sleep(30);\n")
    result = cli("--db", db_url, "--migrations", str(basic), "apply", "--statement-timeout", "150ms")
    assert result.code == 1
    line = last_line(result)
    assert "ERROR 57014: canceling statement due to statement timeout" in line
    assert "ran longer than statement_timeout 150ms" in line
    assert "004_slow.sql:2" in line and "raise the limit with --statement-timeout" in line
    assert "slow" not in [r[0] for r in conn.execute("SELECT tablename FROM pg_tables").fetchall()]

    (basic / "004_slow.sql").write_text(
        "-- statement-timeout: 100ms\nCREATE TABLE slow (id int);\nSELECT pg_sleep(30);\n"
    )
    with pytest.raises(MigrationFailed) as failed:
        commands.apply(target=db_url, project=basic, options=commands.RunOptions(statement_timeout="1h"))
    assert "ran longer than statement_timeout 100ms" in str(failed.value)
    figures.add("blocking: statement timeouts provoked", 2)


def test_limits_stay_inside_the_migration(db_url: str, conn: psycopg.Connection, basic: Path) -> None:
    """The limits are SET LOCAL: the next migration of the run gets its own (here none)."""
    with_migration(basic, "004_tight", "-- statement-timeout: 10s\nSELECT 1;\n")
    with_migration(
        basic, "005_check", "CREATE TABLE seen AS SELECT current_setting('statement_timeout') AS v;\n"
    )
    commands.apply(target=db_url, project=basic, options=commands.RunOptions(statement_timeout="42s"))
    assert conn.execute("SELECT v FROM seen").fetchone() == ("42s",)


def test_non_transactional_migration_times_out_and_says_half_way(
    db_url: str, conn: psycopg.Connection, basic: Path, figures: Figures
) -> None:
    """CREATE INDEX CONCURRENTLY waits for the transactions that could see the table; it
    gives up after lock_timeout like any lock wait, and leaves an INVALID index that a
    re-run with IF NOT EXISTS would skip: the engine drops it before the retry."""
    commands.apply(target=db_url, project=basic)
    with_migration(
        basic,
        "004_index_email",
        "-- transaction: off\nCREATE TABLE IF NOT EXISTS audit (id int);\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS people_email_idx ON people (email);\n",
    )
    with (
        holding(db_url, "BEGIN; INSERT INTO people (name) VALUES ('writer')", "open-writer") as pid,
        pytest.raises(MigrationFailed) as failed,
    ):
        commands.apply(target=db_url, project=basic, options=commands.RunOptions(lock_timeout="300ms"))
    message = str(failed.value)
    assert "lock timeout" in message and f"pid {pid}" in message
    assert "the invalid index public.people_email_idx it left could not be dropped yet" in message
    assert failed.value.partial
    state = {s.version: s for s in commands.status(target=db_url, project=basic).migrations}["004"]
    assert state.state == "failed" and state.partial
    commands.apply(target=db_url, project=basic)
    valid = conn.execute(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'people_email_idx'::regclass"
    ).fetchone()
    assert valid == (True,)
    detail = conn.execute(
        "SELECT detail FROM schema_migration_events WHERE version = '004' AND outcome = 'started'"
        " ORDER BY id DESC LIMIT 1"
    ).fetchone()
    left = "public.people_email_idx an earlier attempt left"
    assert detail == (f"started; dropped the invalid index(es) {left}",)
    figures.add("blocking: lock timeouts provoked")


def test_production_queries_queue_only_until_the_lock_timeout(
    db_url: str, conn: psycopg.Connection, basic: Path, figures: Figures
) -> None:
    """The reason for the limit: a waiting ALTER TABLE makes every later query on the table
    queue behind it. With the limit, a reader that arrives while the migration waits is
    served as soon as the migration gives up, while the blocker is still open."""
    commands.apply(target=db_url, project=basic)
    with_migration(basic, "004_add_nickname", ADD_COLUMN)
    served: list[object] = []

    def production_reader() -> None:
        with psycopg.connect(db_url, autocommit=True, application_name="production") as reader:
            served.append(reader.execute("SELECT count(*) FROM people").fetchone())

    with holding(db_url, "BEGIN; SELECT count(*) FROM people"):
        reader = threading.Thread(target=production_reader)
        timer = threading.Timer(0.3, reader.start)  # arrives while the ALTER waits
        timer.start()
        with pytest.raises(MigrationFailed):
            commands.apply(target=db_url, project=basic, options=commands.RunOptions(lock_timeout="1s"))
        timer.join()
        reader.join(timeout=10)
        assert served == [(2,)]  # served while the blocker still holds its lock
    figures.add("blocking: lock timeouts provoked")


def test_the_automatic_backup_does_not_queue_behind_a_lock_either(
    db_url: str, conn: psycopg.Connection, basic: Path, tmp_path: Path, figures: Figures
) -> None:
    """pg_dump locks every table it dumps: behind a session holding an exclusive lock it
    would wait forever (and block readers meanwhile). It gets the run's lock timeout."""
    commands.apply(target=db_url, project=basic, options=commands.RunOptions(to="002"))
    before = fingerprint(conn)
    with (
        holding(db_url, "BEGIN; LOCK TABLE people IN ACCESS EXCLUSIVE MODE", "ddl-session"),
        pytest.raises(BilanToolsError) as failed,
    ):
        commands.apply(
            target=db_url,
            project=basic,
            options=commands.RunOptions(lock_timeout="300ms", backup=True, backup_dir=tmp_path / "backups"),
        )
    message = str(failed.value)
    assert "canceling statement due to lock timeout" in message and "nothing was kept" in message
    assert fingerprint(conn) == before
    assert [s.state for s in commands.status(target=db_url, project=basic).migrations] == [
        "applied",
        "applied",
        "pending",
    ]
    assert not list((tmp_path / "backups").glob("*.dump"))
    figures.add("blocking: lock timeouts provoked")
