"""`bilantools locks`: while a migration waits for a lock, it shows the waiter, the
session that blocks it, the long transactions and who holds the migration lock."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands
from bilantools.errors import BilanToolsError

ADD_COLUMN = "ALTER TABLE people ADD COLUMN nickname text;\n"


def test_locks_shows_the_blocker_the_waiter_and_the_migration_lock_holder(
    cli: Any, db_url: str, conn: psycopg.Connection, basic: Path
) -> None:
    commands.apply(target=db_url, project=basic)
    (basic / "004_add_nickname.sql").write_text(ADD_COLUMN)
    (basic / "004_add_nickname_rollback.sql").write_text("SELECT 1;\n")
    where = ("--db", db_url, "--migrations", str(basic))
    quiet = cli(*where, "locks")
    assert quiet.code == 0, quiet.err
    assert quiet.out.splitlines()[:2] == ["waiting for a lock (0): none", "blocking them (0): none"]
    assert quiet.out.splitlines()[-1] == "migration lock: free"

    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            commands.apply(target=db_url, project=basic, options=commands.RunOptions(lock_timeout="30s"))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    with psycopg.connect(db_url, application_name="long-report") as blocker:
        blocker.execute("SELECT count(*) FROM people").fetchone()
        blocker_pid = blocker.info.backend_pid
        runner = threading.Thread(target=migrate)
        runner.start()
        deadline = time.monotonic() + 10
        while not conn.execute("SELECT 1 FROM pg_locks WHERE NOT granted").fetchone():
            assert time.monotonic() < deadline, "the migration never waited"
            time.sleep(0.05)
        shown = cli(*where, "locks", "--json", "--older-than", "0")
        text = cli(*where, "locks", "--older-than", "0")
        blocker.rollback()
        runner.join(timeout=30)
    assert not errors, errors
    assert shown.code == 0, shown.err
    found = json.loads(shown.out)
    assert set(found) == {
        "target",
        "older_than_s",
        "waiters",
        "blockers",
        "long_transactions",
        "migration_lock",
    }
    [waiter] = found["waiters"]
    assert waiter["mode"] == "AccessExclusiveLock" and waiter["relation"] == "people"
    assert waiter["blocked_by"] == [blocker_pid] and waiter["application"].startswith("bilantools apply ")
    assert waiter["waited_s"] >= 0 and waiter["query"].startswith("ALTER TABLE people")
    [blocking] = found["blockers"]
    assert blocking["pid"] == blocker_pid and blocking["application"] == "long-report"
    assert blocking["holds"] == ["AccessShareLock on people"] and blocking["blocking"] == [waiter["pid"]]
    assert blocking["state"] == "idle in transaction"
    assert blocker_pid in [t["pid"] for t in found["long_transactions"]]
    holder = found["migration_lock"]
    assert holder["pid"] == waiter["pid"] and holder["application"].startswith("bilantools apply ")

    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert lines[0] == "waiting for a lock (1):"
    assert lines[1].split() == [
        "PID",
        "USER",
        "APPLICATION",
        "MODE",
        "ON",
        "WAITED",
        "BLOCKED",
        "BY",
        "QUERY",
    ]
    assert lines[2].split()[0] == str(waiter["pid"]) and "AccessExclusiveLock  people" in lines[2]
    row = next(x for x in lines if x.startswith(f"{blocker_pid} "))
    assert "long-report" in row and "AccessShareLock on people" in row
    assert "transactions open longer than 0 s (" in text.out
    assert lines[-1].startswith(f"migration lock: held by pid {waiter['pid']} (bilantools apply ")
    assert "nickname" in [
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'people'"
        )
    ]


def test_a_negative_threshold_is_refused(db_url: str, basic: Path) -> None:
    with pytest.raises(BilanToolsError) as refused:
        commands.locks(target=db_url, project=basic, older_than=-1)
    assert str(refused.value) == "older_than=-1: pass a number of seconds, 0 or more"


def test_a_negative_threshold_is_refused_before_connecting(cli: Any, tmp_path: Path) -> None:
    result = cli("--db", "postgresql://nobody@127.0.0.1:1/none", "locks", "--older-than", "-5")
    assert result.code == 2
    assert "Invalid value for '--older-than': -5.0 is not in the range x>=0." in result.err
    assert "target:" not in result.err
