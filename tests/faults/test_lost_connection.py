"""The runner's connection ended by the server (pg_terminate_backend) at chosen points:
before the first statement of a batch, while a statement of a batch runs, inside a
`-- transaction: off` migration. Deterministic twins of the random crashes of
test_crash.py (the first is where seed 3786609107 stopped the server: an IndexError).

The error must name exactly the migrations whose fate is unknown (their COMMIT was sent
and not yet known to be on disk) and say the rest did not commit; the database, read
afterwards, must agree: the applied migrations are the first k, with k from the last
reported (or the first unknown) to the last unknown.
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from bilantools import commands
from bilantools.db.engine.results import Progress
from bilantools.db.sandbox import Sandbox
from bilantools.errors import ConnectionLostError
from tests.faults.conftest import Figures
from tests.faults.harness import REPORTED, RUNNER_SESSIONS, UNKNOWN, CliRun, claimed, running


def corpus(directory: Path, slow: str = "", header: str = "") -> list[str]:
    """Five small migrations; the third gets `slow` after its first statement."""
    directory.mkdir()
    labels = []
    for n in range(1, 6):
        label = f"00{n}_t{n}"
        body = f"CREATE TABLE t{n} (id int);\n"
        if n == 3 and slow:
            body = f"{header}{body}{slow};\nCREATE TABLE t{n}b (id int);\n"
        (directory / f"{label}.sql").write_text(body)
        labels.append(label)
    return labels


def applied(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations WHERE success ORDER BY version").fetchall()
    return [str(r[0]) for r in rows]


def terminate(url: str, condition: str) -> None:
    """End the runner's backend(s) on this database that match `condition`."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = current_database()"
            f" AND pid <> pg_backend_pid() AND {RUNNER_SESSIONS} AND {condition}"
        )


def test_lost_before_the_first_statement_of_a_batch(db_url: str, tmp_path: Path, figures: Figures) -> None:
    """Migration 002 always starts the second batch (the first holds one migration): the
    connection ends after 002's 'start' event, before its BEGIN is sent."""
    labels = corpus(tmp_path / "m")
    reported: list[str] = []

    def hook(progress: Progress) -> None:
        if progress.event == "done":
            reported.append(progress.migration.label)
        elif progress.index == 1:
            terminate(db_url, "true")

    with pytest.raises(ConnectionLostError) as caught:
        commands.apply(
            target=db_url, project=tmp_path / "m", options=commands.RunOptions(backup=False), progress=hook
        )
    error = str(caught.value)
    assert error.startswith(f"lost the connection to {db_url} during migration 002_t2 ("), error
    tail = (
        "002_t2 and the 3 after it did not commit: once the server is back, 'bilantools status' shows what "
        "is applied; then run apply again"
    )
    known = "each migration commits together with its tracking row, so none is half-done"
    assert error.endswith(
        f"{known}; {REPORTED if reported else 'whether 001_t1 committed is unknown'}; {tail}"
    )
    low, high = claimed(error, labels)
    assert low <= len(applied(db_url)) <= high and len(reported) <= len(applied(db_url))
    assert applied(db_url) == ["001"]  # the server is up: what committed stays
    figures.add("lost connections: at chosen points (before a batch, mid-batch, transaction: off)")


def test_lost_while_a_statement_of_a_batch_runs(
    db_url: str, server: Sandbox, tmp_path: Path, figures: Figures
) -> None:
    """003 sleeps after its first statement: its COMMIT was sent with the rest of its batch,
    so whether it committed is unknown to the runner (it did not: the backend died)."""
    labels = corpus(tmp_path / "m", "SELECT pg_sleep(30)")
    run = CliRun(db_url, tmp_path / "m", "apply", home=server.home)
    with running(run):
        wait_active(db_url, run, "query LIKE '%pg_sleep%'")
        terminate(db_url, "query LIKE '%pg_sleep%'")
        assert run.finish(timeout=30) == 2, run.err
    error = run.last_err
    assert error.startswith(f"error: lost the connection to {db_url} during migration 003_t3 ("), error
    unknown = UNKNOWN.search(error)  # up to 003, or 004 when it shares the batch (timing)
    assert unknown and (unknown[2] or unknown[1]) in ("003_t3", "004_t4"), error
    low, high = claimed(error, labels)
    assert low <= len(applied(db_url)) <= high and run.steps <= len(applied(db_url))
    assert applied(db_url) == ["001", "002"]
    figures.add("lost connections: at chosen points (before a batch, mid-batch, transaction: off)")


def test_lost_inside_a_migration_outside_a_transaction(
    db_url: str, server: Sandbox, tmp_path: Path, figures: Figures
) -> None:
    corpus(tmp_path / "m", "SELECT pg_sleep(30)", header="-- transaction: off\n")
    run = CliRun(db_url, tmp_path / "m", "apply", home=server.home)
    with running(run):
        wait_active(db_url, run, "query LIKE '%pg_sleep%'")
        terminate(db_url, "query LIKE '%pg_sleep%'")
        assert run.finish(timeout=30) == 2, run.err
    error = run.last_err
    assert error.startswith(f"error: lost the connection to {db_url} during migration 003_t3 ("), error
    assert error.endswith(
        "); 003_t3 runs outside a transaction: 1 of its 3 statements had committed, whether 003_t3.sql:3 "
        "(statement: SELECT pg_sleep(30)) did is unknown, and it is recorded as started and not finished; "
        "every migration reported applied is committed; 004_t4 and the 1 after it did not commit: once the "
        "server is back, 'bilantools status' shows what is applied; then run apply again"
    ), error
    status = {m.version: m for m in commands.status(target=db_url, project=tmp_path / "m").migrations}
    assert [status[v].state for v in ("001", "002", "003", "004", "005")] == [
        "applied",
        "applied",
        "failed",
        "pending",
        "pending",
    ]
    assert status["003"].partial
    figures.add("lost connections: at chosen points (before a batch, mid-batch, transaction: off)")


def wait_active(url: str, run: CliRun, condition: str, timeout: float = 30, state: str = "active") -> None:
    """Until a runner session of this database is in `state` with a query matching `condition`."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                f" AND {RUNNER_SESSIONS} AND state = '{state}' AND {condition}"
            ).fetchone()
            if row and row[0]:
                return
            assert run.proc.poll() is None, f"{run} ended first: {run.err}"
            assert time.monotonic() < deadline, f"{run}: the statement never ran: {run.err}"
            time.sleep(0.02)


def test_lost_before_the_first_migration(
    db_url: str, server: Sandbox, tmp_path: Path, figures: Figures
) -> None:
    """The runner waits for the migration lock (held here) when its connection ends."""
    from bilantools.db.lock import LOCK_KEYS

    corpus(tmp_path / "m")
    with psycopg.connect(db_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", LOCK_KEYS)
        run = CliRun(db_url, tmp_path / "m", "apply", "--lock-wait", "60", home=server.home)
        with running(run):
            wait_active(db_url, run, "query LIKE '%pg_try_advisory_lock%'", state="idle")
            terminate(db_url, "true")
            assert run.finish(timeout=30) == 2, run.err
    error = run.last_err
    assert error.startswith(
        f"error: lost the connection to {db_url} during the apply, before its first migration ("
    ), error
    assert error.endswith(
        "); none of the migrations of this run committed: once the server is back, run apply again"
    ), error
    assert claimed(error, ["001_t1"]) == (0, 0)
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,)
    figures.add("lost connections: at chosen points (before a batch, mid-batch, transaction: off)")
