"""A real streaming replica of the test server: the recovery gate on it, the lag gate on
the primary while its replay is paused, and the sandbox commands that make a local fleet.
A replica that cannot start fails these tests (the fixture raises): none is skipped."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands
from bilantools.db.health import GateSettings, Health, read_health, wait_until_healthy
from bilantools.db.sandbox import Sandbox
from bilantools.fleet.selection import from_urls

NONE = frozenset[str]()
LOW_LAG = GateSettings(max_replica_lag_s=0.5, backoff_initial_s=0.2, backoff_max_s=0.5, wait_limit_s=20)


@pytest.fixture(scope="module")
def replica(server: Sandbox) -> Iterator[str]:
    url = server.start_replica()
    try:
        yield url
    finally:
        server.stop_replica()


@pytest.fixture
def paused(replica: str, db_url: str) -> Iterator[psycopg.Connection]:
    """The replica with its replay paused while the primary keeps writing (a commit every
    0.1 s); yields the replica's connection, resumed and caught up afterwards."""
    stop = threading.Event()
    with (
        psycopg.connect(replica, autocommit=True) as standby,
        psycopg.connect(db_url, autocommit=True) as primary,
    ):
        primary.execute("CREATE TABLE ticks (at timestamptz)")
        standby.execute("SELECT pg_wal_replay_pause()")

        def tick() -> None:
            while not stop.wait(0.1):
                primary.execute("INSERT INTO ticks VALUES (now())")

        writer = threading.Thread(target=tick)
        writer.start()
        try:
            yield standby
        finally:
            stop.set()
            writer.join()
            standby.execute("SELECT pg_wal_replay_resume()")


def wait_for(check: Any, what: str, limit: float = 15) -> Any:
    deadline = time.monotonic() + limit
    while not (value := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return value


def test_the_replica_is_a_standby(server: Sandbox, replica: str, conn: psycopg.Connection) -> None:
    with psycopg.connect(replica, autocommit=True) as standby:
        health = read_health(standby, GateSettings(), NONE)
        assert standby.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
    assert not health.ok
    assert health.reasons == ["standby: the server is in recovery (a standby is never a migration target)"]
    waits: list[Health] = []
    started = time.monotonic()
    health = wait_until_healthy(
        lambda: psycopg.connect(replica, autocommit=True),
        GateSettings(),
        NONE,
        waits.append,
        threading.Event(),
    )
    assert not health.ok and waits == [] and time.monotonic() - started < 2  # never waits on a standby
    primary = read_health(conn, GateSettings(min_replicas=1), NONE)
    assert primary.ok
    assert read_health(conn, GateSettings(min_replicas=2), NONE).reasons == [
        "1 streaming replica(s) < min_replicas 2: a replica is disconnected or not streaming"
    ]
    [seen] = primary.readings["replicas"]
    assert seen["client"] == "127.0.0.1" and seen["state"] == "streaming"
    assert server.replica_status()["url"] == replica


def test_paused_replay_holds_until_resumed(
    db_url: str, conn: psycopg.Connection, paused: psycopg.Connection
) -> None:
    health = wait_for(lambda: (h := read_health(conn, LOW_LAG, NONE)).reasons and h, "the lag never grew")
    [reason] = health.reasons
    assert reason.startswith("replica walreceiver (127.0.0.1): replay lag ")
    assert "s > max_replica_lag_s 0.5 (" in reason and reason.endswith(" bytes behind)")
    [replica] = health.readings["replicas"]
    assert replica["replay_lag_s"] > 0.5 and replica["gap_bytes"] > 0
    waits: list[Health] = []

    def on_wait(h: Health) -> None:
        waits.append(h)
        if len(waits) == 2:
            paused.execute("SELECT pg_wal_replay_resume()")

    health = wait_until_healthy(
        lambda: psycopg.connect(db_url, autocommit=True), LOW_LAG, NONE, on_wait, threading.Event()
    )
    assert health.ok and len(waits) >= 2
    assert all(w.reasons[0].startswith("replica walreceiver") for w in waits)


def test_paused_replay_gives_up_after_the_wait_limit(
    db_url: str, conn: psycopg.Connection, paused: psycopg.Connection
) -> None:
    wait_for(lambda: not read_health(conn, LOW_LAG, NONE).ok, "the lag never grew")
    settings = GateSettings(max_replica_lag_s=0.5, backoff_initial_s=0.2, wait_limit_s=1)
    health = wait_until_healthy(
        lambda: psycopg.connect(db_url, autocommit=True), settings, NONE, lambda h: None, threading.Event()
    )
    assert not health.ok
    assert health.reasons[0].startswith("replica walreceiver (127.0.0.1): replay lag ")
    assert health.reasons[-1] == "still gated after wait_limit_s 1"


def test_sandbox_cli_makes_a_local_fleet(cli: Any, server: Sandbox, replica: str, db_url: str) -> None:
    prefix = "f" + uuid.uuid4().hex[:6]
    r = cli("sandbox", "new-dbs", "3", "--prefix", prefix)
    assert r.code == 0
    urls = r.out.splitlines()
    assert urls == [server.url(f"{prefix}_{n:03d}") for n in (1, 2, 3)]
    try:
        r = cli("sandbox", "new-dbs", "4", "--prefix", prefix)
        assert r.code == 2 and r.out == ""
        taken = ", ".join(f"{prefix}_{n:03d}" for n in (1, 2, 3))
        assert f"error: the sandbox already has {taken}; choose another --prefix or drop them" in r.err
        r = cli("sandbox", "new-dbs", "2", "--prefix", "9bad")
        assert r.code == 2 and "invalid --prefix 9bad: database names are letters" in r.err
        assert cli("sandbox", "new-dbs", "0").code == 2
    finally:
        for n in (1, 2, 3):
            server.drop_db(f"{prefix}_{n:03d}")
    status = json.loads(cli("sandbox", "replica", "status", "--json").out)
    assert status["running"] and status["url"] == replica
    assert cli("sandbox", "replica", "start").out.strip() == replica  # already up: its URL
    r = cli("sandbox", "replica", "status", "--name", "other")
    assert r.out.strip() == "not running (start it with 'bilantools sandbox replica start --name other')"
    assert (
        cli("sandbox", "replica", "stop", "--name", "other").out.strip()
        == "the replica other was not running"
    )
    r = cli("sandbox", "replica", "start", "--name", "bad-name")
    assert r.code == 2 and "invalid replica name --name bad-name: use letters" in r.err


def test_stopping_the_sandbox_stops_its_replica(tmp_path: Path) -> None:
    """A sandbox of its own: replica start, stop, restart (no new clone) and stop with the
    sandbox; the replica follows the primary's writes."""
    home = Path(tempfile.mkdtemp(prefix="bilantools-test-replica-"))
    box = Sandbox(home, pg_bin=os.environ.get("BILANTOOLS_TEST_PG_BIN") or None)
    try:
        primary = box.start()
        url = box.start_replica("r1")
        with psycopg.connect(primary, autocommit=True) as conn:
            conn.execute("CREATE TABLE seen AS SELECT 42 AS answer")
        with psycopg.connect(url, autocommit=True) as standby:
            wait_for(
                lambda: (
                    standby.execute("SELECT count(*) FROM pg_class WHERE relname = 'seen'").fetchone() == (1,)
                ),
                "the replica never replayed the table",
            )
        assert box.stop_replica("r1") and not box.stop_replica("r1")
        assert box.start_replica("r1").startswith("postgresql://postgres@127.0.0.1:")
        assert box.replica_status("r1")["running"]
        assert box.stop()
        assert not box.replica_status("r1")["running"]
    finally:
        box.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_a_lagging_replica_holds_a_fleet_rollout_until_it_catches_up(
    paused: psycopg.Connection, db_url: str, basic: Path, tmp_path: Path
) -> None:
    """The rollout's target waits, shown as gated with the replica's lag, while replay is
    paused; once replay resumes and the replica catches up, the target is migrated."""
    (tmp_path / "pyproject.toml").write_text(
        "[tool.bilantools.gates]\nmax-replica-lag-s = 0.5\nwait-limit-s = 60\n"
        "backoff-initial-s = 0.2\nbackoff-max-s = 0.5\n"
    )
    with psycopg.connect(db_url, autocommit=True) as primary:
        wait_for(lambda: not read_health(primary, LOW_LAG, NONE).ok, "the replica never lagged")
    seen: list[tuple[str, str | None]] = []
    resume = threading.Timer(2.0, paused.execute, args=("SELECT pg_wal_replay_resume()",))
    resume.start()
    try:
        result = commands.fleet(
            action="apply",
            stages=from_urls([db_url]),
            project=basic,
            options=commands.RunOptions(backup=False),
            watch=lambda run: seen.append((run.state, run.gate)),
        )
    finally:
        resume.join()
    gated = [gate for state, gate in seen if state == "gated"]
    assert gated and all(gate and "replay lag" in gate for gate in gated), seen
    [target] = result.targets
    assert (target.outcome, target.applied) == ("done", 3), target
    assert target.duration_ms is not None and target.duration_ms >= 1500
