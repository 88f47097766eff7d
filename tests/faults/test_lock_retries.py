"""Lock retries: a transactional migration that times out waiting for a lock is rolled
back and run again after a pause with a longer lock_timeout ([tool.bilantools.lock-retries]),
each wait reported with the session that holds the lock; after the last attempt the run
stops (exit 1) with a retryable 'lock-timeout' event and no failure row, and status and
validate say to retry when the lock is released, not to fix the file."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands
from bilantools.db.engine.results import Progress
from bilantools.db.engine.retries import LockRetries
from bilantools.db.sandbox import Sandbox
from bilantools.errors import MigrationFailed
from tests.faults.conftest import Figures
from tests.faults.harness import CliRun, running
from tests.faults.test_blocking import ADD_COLUMN, columns, with_migration
from tests.faults.test_interrupt import assert_released, interrupt

pytestmark = pytest.mark.pg15


def retries(tmp_path: Path, **settings: object) -> None:
    """[tool.bilantools.lock-retries] for the projects under tmp_path."""
    lines = "".join(f"{key} = {value!r}\n".replace("'", '"') for key, value in settings.items())
    (tmp_path / "pyproject.toml").write_text("[tool.bilantools.lock-retries]\n" + lines)


@contextmanager
def reader(db_url: str, app: str = "long-report") -> Iterator[psycopg.Connection]:
    """An open transaction that selected from people: it holds ACCESS SHARE until it ends."""
    with psycopg.connect(db_url, application_name=app) as conn:
        conn.execute("SELECT count(*) FROM people").fetchone()
        yield conn


def events(conn: psycopg.Connection, version: str) -> list[str]:
    rows = conn.execute(
        "SELECT outcome FROM schema_migration_events WHERE version = %s AND action = 'apply' ORDER BY id",
        (version,),
    ).fetchall()
    return [r[0] for r in rows]


def test_the_schedule_grows_from_the_migrations_own_lock_timeout() -> None:
    schedule = LockRetries()
    assert [schedule.lock_timeout("5s", k) for k in range(1, 6)] == ["5s", "10s", "20s", "20s", "20s"]
    assert [schedule.lock_timeout("300ms", k) for k in (1, 2, 3)] == ["300ms", "600ms", "1200ms"]
    assert schedule.lock_timeout("1min", 3) == "60s"  # the cap never shortens a header's wait
    assert schedule.lock_timeout("0", 3) == "0" and schedule.lock_timeout(None, 3) is None
    assert LockRetries(growth=1).lock_timeout("2s", 4) == "2s"


def test_released_during_the_second_attempt_the_run_goes_on(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, basic: Path, figures: Figures
) -> None:
    """004 and 006 do not touch people; 005 waits. 004 commits, 005 gives up, the pause,
    the blocker ends during attempt 2, which succeeds, and 006 follows: one 'start' per
    migration, one wait that names the blocker."""
    commands.apply(target=db_url, project=basic)
    retries(tmp_path, attempts=3, pause="300ms")
    with_migration(basic, "004_other", "CREATE TABLE other_a (id int);\n")
    with_migration(basic, "005_add_nickname", ADD_COLUMN)
    with_migration(basic, "006_other", "CREATE TABLE other_b (id int);\n")
    seen: list[Progress] = []
    with reader(db_url) as blocker:
        pid = blocker.info.backend_pid

        def hook(progress: Progress) -> None:
            seen.append(progress)
            if progress.event == "wait":  # released while attempt 2 waits (from 0.3 s to 1.3 s)
                threading.Timer(0.8, blocker.rollback).start()

        result = commands.apply(
            target=db_url, project=basic, options=commands.RunOptions(lock_timeout="500ms"), progress=hook
        )
    assert [s.version for s in result.steps] == ["004", "005", "006"]
    assert "nickname" in columns(conn)
    assert [(p.event, p.migration.version) for p in seen if p.event != "start"] == [
        ("done", "004"),  # made durable and reported before the pause
        ("wait", "005"),
        ("done", "005"),
        ("done", "006"),
    ]
    assert sorted(p.migration.version for p in seen if p.event == "start") == ["004", "005", "006"]
    [wait] = [p.wait for p in seen if p.wait is not None]
    assert wait.attempt == 2 and wait.attempts == 3 and wait.lock_timeout == "1s"
    assert [b.pid for b in wait.blockers] == [pid] and wait.tables == ("people",)
    assert re.fullmatch(
        rf"waiting for a lock on people: held by pid {pid} \(\w+, long-report, xact \d+ s\): "
        r"attempt 2/3 in 0.3 s \(waiting up to 1s\)",
        wait.line(),
    ), wait.line()
    assert events(conn, "005") == ["success"]  # a wait is no failure
    figures.add("lock retries: waits that ended in success")


def test_the_cli_prints_each_wait_with_the_blocker(
    cli: Any, tmp_path: Path, db_url: str, conn: psycopg.Connection, basic: Path
) -> None:
    assert cli("--db", db_url, "--migrations", str(basic), "apply").code == 0
    retries(tmp_path, attempts=3, pause="300ms")
    with_migration(basic, "004_add_nickname", ADD_COLUMN)
    with reader(db_url, "psql") as blocker:
        pid = blocker.info.backend_pid
        threading.Timer(1.3, blocker.rollback).start()  # attempt 1: 0-0.5 s, attempt 2: 0.8-1.8 s
        result = cli("--db", db_url, "--migrations", str(basic), "apply", "--lock-timeout", "500ms")
    assert result.code == 0, result.err
    waits = [line for line in result.err.splitlines() if "waiting for a lock" in line]
    assert len(waits) == 1 and waits[0].startswith(
        f"004_add_nickname: waiting for a lock on people: held by pid {pid} ("
    )
    assert re.search(r", psql, xact \d+ s\): attempt 2/3 in 0.3 s \(waiting up to 1s\)$", waits[0]), waits[0]
    assert "004" in result.out and "applied" in result.out
    assert "nickname" in columns(conn)


def test_never_released_the_run_stops_retryable_and_a_rerun_applies_it(
    cli: Any, tmp_path: Path, db_url: str, conn: psycopg.Connection, basic: Path, figures: Figures
) -> None:
    assert cli("--db", db_url, "--migrations", str(basic), "apply").code == 0
    retries(tmp_path, attempts=3, pause="100ms")
    with_migration(basic, "004_add_nickname", ADD_COLUMN)
    where = ("--db", db_url, "--migrations", str(basic))
    with reader(db_url) as blocker:
        pid = blocker.info.backend_pid
        result = cli(*where, "apply", "--lock-timeout", "200ms")
        assert result.code == 1, result.err
        line = result.err.strip().splitlines()[-1]
        assert line.startswith(
            "error: migration 004_add_nickname timed out waiting for a lock at 004_add_nickname.sql:1: "
            "ERROR 55P03: canceling statement due to lock timeout (waited lock_timeout 800ms for a lock, "
            f"held by pid {pid} (application 'long-report'"
        ), line
        assert (
            " over 3 attempts (lock_timeout 200ms, 400ms, 800ms); it was rolled back and stays pending "
            in line
        )
        assert "recorded as a 'lock-timeout' event, not as a failure" in line
        assert "retry when the blocking session has finished (or end it)" in line
        assert "fix the file" not in line
        assert len([x for x in result.err.splitlines() if x.startswith("004_add_nickname: waiting")]) == 2

        status = cli(*where, "status")
        assert status.code == 0
        note = next(x for x in status.out.splitlines() if x.startswith("004 pending: "))
        assert re.fullmatch(
            rf"004 pending: timed out waiting for a lock on people held by pid {pid} \(\w+, long-report, "
            r"xact \d+ s\) over 3 attempts \(lock_timeout 200ms, 400ms, 800ms\) at 004_add_nickname.sql:1: "
            "retry when it is released",
            note,
        ), note
        validate = cli(*where, "validate")
        assert "fix the file" not in validate.out
        assert "info: [lock-timeout] " in validate.out
        assert "retry when it is released: run 'bilantools apply' again (nothing is wrong with the file)" in (
            validate.out
        )
        assert validate.code == 0 and validate.out.endswith("valid: no problems found\n")
        shown = json.loads(cli(*where, "apply", "--lock-timeout", "100ms", "--json").out)
        assert (shown["failure"], shown["retryable"], shown["version"]) == ("failed", True, "004")
    assert "nickname" not in columns(conn)
    assert conn.execute("SELECT count(*) FROM schema_migrations WHERE version = '004'").fetchone() == (0,)
    assert events(conn, "004") == ["lock-timeout", "lock-timeout"]
    assert cli(*where, "apply").code == 0
    assert "nickname" in columns(conn) and events(conn, "004") == ["lock-timeout", "lock-timeout", "success"]
    assert "pending" not in cli(*where, "status").out
    figures.add("lock retries: runs that gave up, retryable")


def test_a_migration_outside_a_transaction_is_not_retried(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, basic: Path
) -> None:
    """Its statements commit one by one: running it again is the file's business (its
    IF NOT EXISTS), so it stops at the first timeout, as before."""
    commands.apply(target=db_url, project=basic)
    retries(tmp_path, attempts=3, pause="100ms")
    with_migration(basic, "004_off", "-- transaction: off\nALTER TABLE people ADD COLUMN nickname text;\n")
    seen: list[Progress] = []
    with reader(db_url), pytest.raises(MigrationFailed) as failed:
        commands.apply(
            target=db_url,
            project=basic,
            options=commands.RunOptions(lock_timeout="200ms"),
            progress=seen.append,
        )
    assert "waited lock_timeout 200ms" in str(failed.value)
    assert not [p for p in seen if p.event == "wait"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            "attempts = 0",
            "[tool.bilantools.lock-retries] attempts = 0 must be a whole number from 1 (no retry) to 100",
        ),
        (
            'pause = "soon"',
            "[tool.bilantools.lock-retries] pause = 'soon' is not a duration; write a duration",
        ),
        (
            "tries = 3",
            "[tool.bilantools.lock-retries] has unknown key(s) tries; the keys are attempts, growth",
        ),
        ("growth = true", "[tool.bilantools.lock-retries] growth = True must be a number from 1"),
    ],
)
def test_bad_settings_are_refused_before_anything_runs(
    cli: Any, tmp_path: Path, db_url: str, conn: psycopg.Connection, basic: Path, settings: str, message: str
) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.bilantools.lock-retries]\n{settings}\n")
    result = cli("--db", db_url, "--migrations", str(basic), "apply")
    assert result.code == 2 and message in result.err, result.err
    assert len(result.err.strip().splitlines()) <= 2
    assert "schema_migrations" not in [
        r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    ]


def test_an_event_log_of_an_earlier_release_is_widened_for_the_lock_timeout(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, basic: Path
) -> None:
    commands.apply(target=db_url, project=basic)
    conn.execute(
        "ALTER TABLE schema_migration_events DROP CONSTRAINT schema_migration_events_outcome_check;"
        " ALTER TABLE schema_migration_events ADD CONSTRAINT schema_migration_events_outcome_check"
        " CHECK (outcome IN ('success', 'failure', 'partial', 'started'))"
    )
    retries(tmp_path, attempts=1)
    with_migration(basic, "004_add_nickname", ADD_COLUMN)
    with reader(db_url), pytest.raises(MigrationFailed) as failed:
        commands.apply(target=db_url, project=basic, options=commands.RunOptions(lock_timeout="100ms"))
    assert "could not be recorded" not in str(failed.value)
    assert events(conn, "004") == ["lock-timeout"]


def test_the_panels_progress_logs_a_wait(basic: Path) -> None:
    """The notebook panels get the same progress events: a wait is one orange line, and the
    bar says it is waiting (the migration's 'done' follows as usual)."""
    import ipywidgets as widgets

    from bilantools.db.blocking import Blocker
    from bilantools.db.engine.results import Wait
    from bilantools.notebook.runs import RunProgress

    out = widgets.Output()
    progress = RunProgress(out)
    progress.start()
    m = commands.Project.load(basic).migrations.migrations[1]
    blocker = Blocker(42, "psql", "alice", "idle in transaction", None, 40.2, "SELECT 1", None, ("people",))
    wait = Wait(("people",), (blocker,), True, 2, 5, 3.0, "10s")
    progress(Progress("start", m, 1, 3))
    progress(Progress("wait", m, 1, 3, wait=wait))
    assert progress.bar.description == "waiting"
    [shown] = out.outputs
    text = shown["data"]["text/plain"]
    assert "002_add_email: waiting for a lock on people: held by pid 42 (alice, psql, xact 40 s): " in text
    assert "attempt 2/5 in 3 s (waiting up to 10s)" in text


def test_a_rollback_is_retried_too(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, basic: Path
) -> None:
    with_migration(basic, "004_add_nickname", ADD_COLUMN, "ALTER TABLE people DROP COLUMN nickname;\n")
    commands.apply(target=db_url, project=basic)
    retries(tmp_path, attempts=2, pause="100ms")
    seen: list[Progress] = []
    with reader(db_url) as blocker:
        pid = blocker.info.backend_pid

        def hook(progress: Progress) -> None:
            seen.append(progress)
            if progress.event == "wait":
                threading.Timer(0.3, blocker.rollback).start()  # attempt 2 waits from 0.1 s to 0.5 s

        result = commands.rollback(
            target=db_url, project=basic, options=commands.RunOptions(lock_timeout="250ms"), progress=hook
        )
    assert [(s.version, s.outcome) for s in result.steps] == [("004", "rolled back")]
    assert [b.pid for p in seen if p.wait is not None for b in p.wait.blockers] == [pid]
    assert "nickname" not in columns(conn)


def test_ctrl_c_during_the_pause_stops_at_once(
    tmp_path: Path, db_url: str, conn: psycopg.Connection, basic: Path, server: Sandbox
) -> None:
    """The pause between two attempts is no time to be stuck in: Ctrl-C ends the run
    there, 004 applied before the wait stays, 005 stays pending."""
    commands.apply(target=db_url, project=basic)
    retries(tmp_path, attempts=3, pause="60s")
    with_migration(basic, "004_other", "CREATE TABLE other_a (id int);\n")
    with_migration(basic, "005_add_nickname", ADD_COLUMN)
    with reader(db_url):
        run = CliRun(db_url, basic, "apply", "--lock-timeout", "200ms", home=server.home)
        with running(run):
            deadline = time.monotonic() + 30
            while not any("waiting for a lock on people" in line for line in run.err):
                assert time.monotonic() < deadline and run.proc.poll() is None, run.err
                time.sleep(0.05)
            code, took = interrupt(run)
    assert code == 130 and took < 5, (code, took, run.err)
    assert run.last_err == (
        "error: interrupted (Ctrl-C) before migration 005_add_nickname started; committed before the "
        "interrupt: 004_other; not applied: 005_add_nickname; run apply again to continue"
    ), run.last_err
    states = {s.version: s.state for s in commands.status(target=db_url, project=basic).migrations}
    assert (states["004"], states["005"]) == ("applied", "pending")
    assert "nickname" not in columns(conn)
    assert_released(conn)
