"""Ctrl-C (SIGINT) sent to a real `bilantools apply` / `rollback` process while the server
runs one of its migrations' statements.

The run must cancel the statement on the server, roll back the current migration, say
"interrupted" and name the migrations that had committed, leave the history right (no
row for what did not commit, a row for what did; a `-- transaction: off` migration is
recorded as failed half-way), release the migration lock and exit 130, within seconds
(the statement would have run 30 s).

psycopg 3 on its own, for the record: a KeyboardInterrupt while it waits for a result
makes it cancel the query and re-raise, so the transaction is left aborted and the
pipeline half-read; Python raises the KeyboardInterrupt wherever the main thread is, a
finalizer included (printed and swallowed there). Before the fix the run then failed to
release the lock ("refused: ERROR 25P02 current transaction is aborted", exit 2), or
went on to finish.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psycopg
import pytest

from bilantools.db.lock import LOCK_KEYS
from bilantools.db.sandbox import Sandbox
from tests.conftest import tables
from tests.faults.conftest import Figures
from tests.faults.harness import RUNNER_SESSIONS, CliRun, running

SLEEP = "SELECT pg_sleep(30)"


def corpus(directory: Path, slow: str, header: str = "", rollback: str | None = None) -> Path:
    """001 and 002 fast, 003 slow (its statement `slow` after a CREATE TABLE), 004 fast."""
    directory.mkdir()
    files = {
        "001_a": ("CREATE TABLE a (id int);\n", "DROP TABLE a;\n"),
        "002_b": ("CREATE TABLE b (id int);\n", "DROP TABLE b;\n"),
        "003_slow": (
            f"{header}CREATE TABLE c (id int);\n{slow};\nCREATE TABLE c2 (id int);\n",
            rollback or "DROP TABLE c2;\nDROP TABLE c;\n",
        ),
        "004_d": ("CREATE TABLE d (id int);\n", "DROP TABLE d;\n"),
    }
    for name, (forward, backward) in files.items():
        (directory / f"{name}.sql").write_text(forward)
        (directory / f"{name}_rollback.sql").write_text(backward)
    return directory


def wait_running(
    conn: psycopg.Connection, run: CliRun, condition: str, timeout: float = 30, state: str = "active"
) -> None:
    """Until a runner session of this database is in `state` with a query matching `condition`."""
    deadline = time.monotonic() + timeout
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        f" AND {RUNNER_SESSIONS} AND state = %s AND {condition.replace('%', '%%')}"
    )
    while True:
        row = conn.execute(query, (state,)).fetchone()
        if row and row[0]:
            return
        assert run.proc.poll() is None, f"{run} ended before the statement ran: {run.err}"
        assert time.monotonic() < deadline, f"{run}: the statement never ran: {run.err}"
        time.sleep(0.02)


def interrupt(run: CliRun) -> tuple[int, float]:
    """SIGINT the CLI; its exit code and how long it took to exit."""
    sent = time.monotonic()
    os.kill(run.proc.pid, signal.SIGINT)
    code = run.finish(timeout=30)
    took = time.monotonic() - sent
    print(f"{run}: exit {code} {took:.2f}s after SIGINT")
    return code, took


def history(conn: psycopg.Connection) -> list[tuple[str, bool]]:
    rows = conn.execute("SELECT version, success FROM schema_migrations ORDER BY version").fetchall()
    return [(str(v), bool(s)) for v, s in rows]


def assert_released(conn: psycopg.Connection) -> None:
    """No runner session left, and nobody holds the migration lock."""
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s::oid AND objid = %s::oid",
        LOCK_KEYS,
    ).fetchone()
    assert row == (0,), "the migration lock is still held"
    row = conn.execute(
        f"SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND {RUNNER_SESSIONS}"
    ).fetchone()
    assert row == (0,), "the runner's session is still there"


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_ctrl_c_in_a_transactional_migration(
    db_url: str, conn: psycopg.Connection, server: Sandbox, tmp_path: Path, figures: Figures, as_json: bool
) -> None:
    directory = corpus(tmp_path / "migrations", SLEEP)
    run = CliRun(db_url, directory, "apply", *(["--json"] if as_json else []), home=server.home)
    with running(run):
        wait_running(conn, run, "query LIKE '%pg_sleep%'")
        code, took = interrupt(run)
    expected = (
        "error: interrupted (Ctrl-C) during migration 003_slow at 003_slow.sql:2 (statement: SELECT "
        "pg_sleep(30)): the statement was cancelled and 003_slow rolled back, nothing is recorded for it; "
        "committed before the interrupt: 001_a, 002_b; not applied: 003_slow and the 1 after it; run apply "
        "again to continue"
    )
    assert (code, run.last_err) == (130, expected), run.err
    assert took < 5, f"exited {took:.1f}s after SIGINT"
    assert history(conn) == [("001", True), ("002", True)]
    assert tables(conn) == ["a", "b", "schema_migration_events", "schema_migrations"]
    assert_released(conn)
    if as_json:
        assert len(run.out) == 1, run.out
        data = json.loads(run.out[0])
        assert (data["ok"], data["failure"], data["error"]) == (
            False,
            "interrupted",
            expected[len("error: ") :],
        )
        assert [(s["version"], s["outcome"]) for s in data["steps"]] == [
            ("001", "applied"),
            ("002", "applied"),
        ]
        assert (data["action"], data["version"], data["line"]) == ("apply", "003", 2)
    else:
        assert run.step_versions() == ["001", "002"]
    figures.add("interrupts: Ctrl-C during a statement (apply, rollback, transaction: off)")


def test_ctrl_c_in_a_migration_outside_a_transaction(
    db_url: str, conn: psycopg.Connection, server: Sandbox, tmp_path: Path, figures: Figures
) -> None:
    directory = corpus(tmp_path / "migrations", SLEEP, header="-- transaction: off\n")
    run = CliRun(db_url, directory, "apply", home=server.home)
    with running(run):
        wait_running(conn, run, "query LIKE '%pg_sleep%'")
        code, took = interrupt(run)
    assert (code, run.last_err) == (
        130,
        "error: interrupted (Ctrl-C) during migration 003_slow at 003_slow.sql:3 (statement: SELECT "
        "pg_sleep(30)): the statement was cancelled; 003_slow runs outside a transaction and 1 of its 3 "
        "statements had committed, so it is recorded as failed half-way: make it safe to re-run (IF NOT "
        "EXISTS) or finish it by hand; committed before the interrupt: 001_a, 002_b; not applied: 004_d; run "
        "apply again to continue",
    ), run.err
    assert took < 5, f"exited {took:.1f}s after SIGINT"
    assert history(conn) == [("001", True), ("002", True), ("003", False)]
    row = conn.execute("SELECT error_message FROM schema_migrations WHERE version = '003'").fetchone()
    assert row is not None and row[0].startswith(
        "failed half-way, 1 of 3 statements committed: interrupted (Ctrl-C) at 003_slow.sql:3 "
        "(statement 2 of 3: SELECT pg_sleep(30))"
    ), row
    assert tables(conn) == ["a", "b", "c", "schema_migration_events", "schema_migrations"]
    assert_released(conn)
    figures.add("interrupts: Ctrl-C during a statement (apply, rollback, transaction: off)")


def test_ctrl_c_in_a_rollback_waiting_for_a_lock(
    db_url: str, conn: psycopg.Connection, server: Sandbox, tmp_path: Path, figures: Figures
) -> None:
    """The rollback of 003 waits for a lock the test holds: Ctrl-C ends the wait."""
    directory = corpus(tmp_path / "migrations", "SELECT 1")
    run = CliRun(db_url, directory, "apply", home=server.home)
    with running(run):
        assert run.finish() == 0, run.err
    with psycopg.connect(db_url) as blocker:
        blocker.execute("LOCK TABLE c IN ACCESS SHARE MODE")
        run = CliRun(db_url, directory, "rollback", "--to", "0", "--lock-timeout", "60s", home=server.home)
        with running(run):
            wait_running(conn, run, "wait_event_type = 'Lock'")
            code, took = interrupt(run)
        blocker.rollback()
    assert (code, run.last_err) == (
        130,
        "error: interrupted (Ctrl-C) during the rollback of 003_slow at 003_slow_rollback.sql:2 (statement: "
        "DROP TABLE c): the statement was cancelled and the rollback of 003_slow undone, it stays applied; "
        "rolled back before the interrupt: 004_d; not rolled back: 003_slow and the 2 after it; run rollback "
        "again to continue",
    ), run.err
    assert took < 5, f"exited {took:.1f}s after SIGINT"
    assert history(conn) == [("001", True), ("002", True), ("003", True)]
    assert tables(conn) == ["a", "b", "c", "c2", "schema_migration_events", "schema_migrations"]
    assert_released(conn)
    figures.add("interrupts: Ctrl-C during a statement (apply, rollback, transaction: off)")


def test_ctrl_c_in_a_rollback_outside_a_transaction(
    db_url: str, conn: psycopg.Connection, server: Sandbox, tmp_path: Path, figures: Figures
) -> None:
    """A '-- transaction: off' rollback script: what committed stays, the migration stays
    applied, and a 'partial' rollback event says how far it went."""
    rollback = f"-- transaction: off\nDROP TABLE c2;\n{SLEEP};\nDROP TABLE c;\n"
    directory = corpus(tmp_path / "migrations", "SELECT 1", rollback=rollback)
    run = CliRun(db_url, directory, "apply", home=server.home)
    with running(run):
        assert run.finish() == 0, run.err
    run = CliRun(db_url, directory, "rollback", "--to", "0", home=server.home)
    with running(run):
        wait_running(conn, run, "query LIKE '%pg_sleep%'")
        code, took = interrupt(run)
    assert (code, run.last_err) == (
        130,
        "error: interrupted (Ctrl-C) during the rollback of 003_slow at 003_slow_rollback.sql:3 (statement: "
        "SELECT pg_sleep(30)): the statement was cancelled; the rollback script of 003_slow runs outside a "
        "transaction and 1 of its 3 statements had committed; 003_slow stays applied: make the script safe "
        "to re-run (IF EXISTS) or finish it by hand; rolled back before the interrupt: 004_d; not rolled "
        "back: 003_slow and the 2 after it; run rollback again to continue",
    ), run.err
    assert took < 5, f"exited {took:.1f}s after SIGINT"
    assert history(conn) == [("001", True), ("002", True), ("003", True)]
    assert tables(conn) == ["a", "b", "c", "schema_migration_events", "schema_migrations"]
    event = conn.execute(
        "SELECT outcome, detail FROM schema_migration_events WHERE version = '003' AND action = 'rollback'"
        " ORDER BY id DESC LIMIT 1"
    ).fetchone()
    detail = "1 of 3 statements committed: interrupted (Ctrl-C) at 003_slow_rollback.sql:3"
    assert event == ("partial", detail)
    assert_released(conn)
    figures.add("interrupts: Ctrl-C during a statement (apply, rollback, transaction: off)")


def test_ctrl_c_while_waiting_for_the_migration_lock(
    db_url: str, conn: psycopg.Connection, server: Sandbox, tmp_path: Path, figures: Figures
) -> None:
    """Before the runner changes anything Ctrl-C stops the command at once: nothing changed."""
    directory = corpus(tmp_path / "migrations", "SELECT 1")
    conn.execute("SELECT pg_advisory_lock(%s, %s)", LOCK_KEYS)
    run = CliRun(db_url, directory, "apply", "--lock-wait", "60", "--json", home=server.home)
    with running(run):
        wait_running(conn, run, "query LIKE '%pg_try_advisory_lock%'", state="idle")
        code, took = interrupt(run)
    conn.execute("SELECT pg_advisory_unlock(%s, %s)", LOCK_KEYS)
    error = "interrupted (Ctrl-C) before any change: nothing was changed; run apply again"
    assert (code, run.last_err) == (130, f"error: {error}"), run.err
    assert took < 5, f"exited {took:.1f}s after SIGINT"
    data = json.loads(run.out[0])
    assert (data["ok"], data["failure"], data["error"], data["steps"]) == (False, "interrupted", error, [])
    assert tables(conn) == []
    figures.add("interrupts: Ctrl-C while waiting for the migration lock")
