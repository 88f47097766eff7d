"""Health gates on a real server: settings, long transactions, lock waiters, vacuum, disk,
and waiting with backoff (the replica's lag and recovery gates are in test_replica.py)."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bilantools.db.health import GateSettings, Health, load_gate_settings, read_health, wait_until_healthy
from bilantools.errors import InputError
from bilantools.source.config import load_config

NONE = frozenset[str]()


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "pyproject.toml").write_text(text)
    (tmp_path / "migrations").mkdir()
    return tmp_path / "migrations"


def test_settings_from_pyproject(tmp_path: Path) -> None:
    assert load_gate_settings(tmp_path) == GateSettings()  # no file: the defaults
    start = write(
        tmp_path,
        '[tool.bilantools]\nsquawk-after = "002"\n\n[tool.bilantools.gates]\n'
        "max-replica-lag-s = 2\nmax-lock-waiters = 1\nblock-on-autovacuum = false\nwait-limit-s = 10.5\n",
    )
    settings = load_gate_settings(start)
    assert settings == GateSettings(
        max_replica_lag_s=2.0, max_lock_waiters=1, block_on_autovacuum=False, wait_limit_s=10.5
    )
    assert isinstance(settings.max_replica_lag_s, float)
    assert load_config(start).squawk_after == "002"  # the check settings accept the gates table


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "max-lag = 1",
            "[tool.bilantools.gates] has unknown key(s) max-lag; the keys are max-replica-lag-s,",
        ),
        ("max-replica-lag-s = -1", "[tool.bilantools.gates] max-replica-lag-s = -1 must be 0 or more"),
        ("max-lock-waiters = 1.5", "[tool.bilantools.gates] max-lock-waiters = 1.5 must be a whole number"),
        ('wait-limit-s = "5m"', "[tool.bilantools.gates] wait-limit-s = '5m' must be a number"),
        ("block-on-autovacuum = 1", "[tool.bilantools.gates] block-on-autovacuum = 1 must be true or false"),
        ("backoff-initial-s = 0", "[tool.bilantools.gates] backoff-initial-s = 0 must be above 0"),
        (
            "backoff-initial-s = 60",
            "[tool.bilantools.gates] backoff-initial-s 60 is above backoff-max-s 30; "
            "make the first pause at most the longest one",
        ),
    ],
)
def test_bad_settings_are_one_line(tmp_path: Path, body: str, message: str) -> None:
    start = write(tmp_path, f"[tool.bilantools.gates]\n{body}\n")
    with pytest.raises(InputError) as caught:
        load_gate_settings(start)
    assert str(caught.value).startswith(f"{tmp_path / 'pyproject.toml'}: {message}")
    assert "\n" not in str(caught.value)


def test_bad_settings_from_python() -> None:
    with pytest.raises(InputError, match=r"^gate setting max_lock_waiters=-1 must be 0 or more$"):
        GateSettings(max_lock_waiters=-1)
    with pytest.raises(InputError, match="backoff_initial_s 5 is above backoff_max_s 2"):
        GateSettings(backoff_initial_s=5, backoff_max_s=2)


def test_gates_table_must_be_a_table(tmp_path: Path) -> None:
    start = write(tmp_path, '[tool.bilantools]\ngates = "strict"\n')
    with pytest.raises(InputError, match=r"tool\.bilantools\.gates must be a table"):
        load_gate_settings(start)


def test_a_quiet_database_is_healthy(conn: psycopg.Connection) -> None:
    health = read_health(conn, GateSettings(), NONE)
    assert health.ok and health.reasons == []
    readings = health.readings
    assert readings["in_recovery"] is False and readings["long_transactions"] == []
    assert readings["lock_waiters"] == [] and readings["disk"]["visible"] is True
    assert readings["disk"]["free_bytes"] > 0


def test_a_missing_replica_is_named_with_its_idle_slot(conn: psycopg.Connection) -> None:
    """A disconnected replica leaves pg_stat_replication, so no lag can hold the target:
    min_replicas does, naming the physical slot it left behind."""
    assert read_health(conn, GateSettings(), NONE).ok  # no replica expected, none there
    health = read_health(conn, GateSettings(min_replicas=1), NONE)
    assert health.reasons == [
        "0 streaming replica(s) < min_replicas 1: a replica is disconnected or not streaming"
    ]
    slot = "bt_gone_" + uuid.uuid4().hex[:8]
    conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (slot,))
    try:
        health = read_health(conn, GateSettings(min_replicas=1), NONE)
        [reason] = health.reasons
        assert reason.startswith(f"0 streaming replica(s) < min_replicas 1: inactive slot(s) {slot} (")
        assert reason.endswith(" bytes of WAL kept)")
        [seen] = [s for s in health.readings["slots"] if s["name"] == slot]
        assert seen["active"] is False and seen["retained_bytes"] is not None
    finally:
        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))


@pytest.fixture
def other(db_url: str) -> Iterator[psycopg.Connection]:
    """Another session on the same database."""
    with psycopg.connect(db_url, application_name="other-session") as connection:
        yield connection


def test_a_long_transaction_blocks_and_is_named(conn: psycopg.Connection, other: psycopg.Connection) -> None:
    other.execute("SELECT 1")  # open a transaction, then sit idle in it
    pid = other.info.backend_pid
    time.sleep(0.3)
    health = read_health(conn, GateSettings(max_transaction_age_s=0.2), NONE)
    assert not health.ok
    [reason] = health.reasons
    assert reason.startswith(f"pid {pid} (postgres, other-session, idle in transaction): transaction open ")
    assert "s > max_transaction_age_s 0.2: SELECT 1" in reason
    assert read_health(conn, GateSettings(max_transaction_age_s=60), NONE).ok
    other.rollback()
    assert read_health(conn, GateSettings(max_transaction_age_s=0), NONE).ok
    # our own open transaction does not count, and read_health leaves it open
    conn.autocommit = False
    conn.execute("SELECT 1")
    time.sleep(0.1)
    assert read_health(conn, GateSettings(max_transaction_age_s=0), NONE).ok
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    conn.rollback()


def test_a_lock_waiter_is_named_with_its_blocker(
    db_url: str, conn: psycopg.Connection, other: psycopg.Connection
) -> None:
    conn.execute("CREATE TABLE gate_t (id int)")
    other.execute("LOCK TABLE gate_t IN ACCESS EXCLUSIVE MODE")
    holder = other.info.backend_pid
    with psycopg.connect(db_url, autocommit=True) as waiter:
        thread = threading.Thread(target=waiter.execute, args=("SELECT * FROM gate_t",))
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not (health := read_health(conn, GateSettings(), NONE)).readings["lock_waiters"]:
                assert time.monotonic() < deadline, "the waiter never waited"
                time.sleep(0.05)
            assert not health.ok
            [reason] = health.reasons
            assert reason.startswith(
                f"1 lock waiter(s) > max_lock_waiters 0: pid {waiter.info.backend_pid} waits "
            )
            assert reason.endswith(f"for AccessShareLock on gate_t, blocked by pid {holder}")
            assert read_health(conn, GateSettings(max_lock_waiters=1), NONE).ok
        finally:
            other.rollback()
            thread.join()
    assert read_health(conn, GateSettings(), NONE).ok


def test_a_vacuum_on_a_touched_table_blocks(
    db_url: str, conn: psycopg.Connection, other: psycopg.Connection
) -> None:
    """A VACUUM (FREEZE) waits for the buffer pin of an open cursor, so it stays in progress
    (pg_stat_progress_vacuum) while we read; only a table the migration touches blocks."""
    conn.execute("CREATE TABLE gate_v AS SELECT g AS id FROM generate_series(1, 1000) g")
    cursor = other.cursor("pin")
    cursor.execute("SELECT * FROM gate_v")
    cursor.fetchone()  # holds a pin on the first page
    with psycopg.connect(db_url, autocommit=True) as vacuum:
        thread = threading.Thread(target=vacuum.execute, args=("VACUUM (FREEZE) gate_v",))
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not (health := read_health(conn, GateSettings(), frozenset({"gate_v"}))).readings[
                "vacuums"
            ]:
                assert time.monotonic() < deadline, "the vacuum never showed"
                time.sleep(0.05)
            [reason] = health.reasons
            assert reason.startswith(f"vacuum (pid {vacuum.info.backend_pid}, ")
            assert reason.endswith(
                "on public.gate_v, a table the migration touches, and block_on_autovacuum is on"
            )
            assert read_health(conn, GateSettings(), frozenset({"public.gate_v"})).reasons == [reason]
            assert read_health(conn, GateSettings(), frozenset({"users"})).ok
            assert read_health(conn, GateSettings(block_on_autovacuum=False), frozenset({"gate_v"})).ok
        finally:
            cursor.close()
            other.rollback()
            thread.join()


def test_disk_headroom_where_visible(db_url: str, conn: psycopg.Connection) -> None:
    health = read_health(conn, GateSettings(min_free_disk_bytes=1 << 62), NONE)
    disk = health.readings["disk"]
    assert health.reasons == [
        f"free disk {disk['free_bytes']} bytes < min_free_disk_bytes {1 << 62} at {disk['path']}"
    ]
    # a role without pg_read_all_settings cannot see the data directory: no reading, no block
    role, password = "gate_" + uuid.uuid4().hex[:8], "gate-pw"
    conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    try:
        plain = db_url.replace("postgres@", f"{role}:{password}@")
        with psycopg.connect(plain, autocommit=True) as limited:
            health = read_health(limited, GateSettings(min_free_disk_bytes=1 << 62), NONE)
        assert health.ok
        assert health.readings["disk"] == {
            "visible": False,
            "why": "not visible: data_directory needs pg_read_all_settings",
        }
    finally:
        conn.execute(f"DROP ROLE {role}")


def test_wait_until_healthy_backs_off_then_passes(db_url: str, other: psycopg.Connection) -> None:
    other.execute("SELECT 1")
    waits: list[tuple[float, Health]] = []
    threading.Timer(1.2, other.rollback).start()
    settings = GateSettings(
        max_transaction_age_s=0, backoff_initial_s=0.2, backoff_max_s=0.4, wait_limit_s=20
    )
    health = wait_until_healthy(
        lambda: psycopg.connect(db_url, autocommit=True),
        settings,
        NONE,
        lambda h: waits.append((time.monotonic(), h)),
        threading.Event(),
    )
    assert health.ok
    assert len(waits) >= 3 and all("transaction open" in h.reasons[0] for _, h in waits)
    pauses = [b[0] - a[0] for a, b in itertools.pairwise(waits)]
    assert 0.15 < pauses[0] < 0.35 and all(0.35 < p < 0.6 for p in pauses[1:])  # doubled, capped


def test_wait_until_healthy_gives_up_or_stops(db_url: str, other: psycopg.Connection) -> None:
    other.execute("SELECT 1")
    pid = other.info.backend_pid
    settings = GateSettings(
        max_transaction_age_s=0, backoff_initial_s=0.1, backoff_max_s=0.2, wait_limit_s=0.8
    )
    started = time.monotonic()
    health = wait_until_healthy(
        lambda: psycopg.connect(db_url, autocommit=True), settings, NONE, lambda h: None, threading.Event()
    )
    assert 0.8 <= time.monotonic() - started < 3
    assert not health.ok and health.reasons[0].startswith(f"pid {pid} ")
    assert health.reasons[-1] == "still gated after wait_limit_s 0.8"
    stop = threading.Event()
    health = wait_until_healthy(
        lambda: psycopg.connect(db_url, autocommit=True),
        GateSettings(max_transaction_age_s=0, wait_limit_s=60),
        NONE,
        lambda h: stop.set(),
        stop,
    )
    assert not health.ok and health.reasons[-1] == "stopped while waiting for the gates"
    other.rollback()
