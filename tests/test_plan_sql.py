"""`plan --sql` is recorded by the executor that runs nothing (engine.recording): on the
project's 29 migrations it is, statement by statement and parameter by parameter, what
the batched executor sends, and the printed script runs in psql and applies them."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import ClientCursor

from bilantools import commands
from bilantools.db import history, runner
from bilantools.db.engine import batched
from bilantools.db.engine.recording import ELAPSED_MS, NO_PROOF, STARTED_AT
from bilantools.db.pgtools import choose
from bilantools.db.runner import Runner
from bilantools.db.target import parse_target
from bilantools.options import RunOptions
from bilantools.source.layouts.native import discover

PROJECT = Path(__file__).parents[1] / "migrations"

Sent = tuple[str, Any]


def _runner(db_url: str) -> Runner:
    target = parse_target(db_url, "--db")
    return Runner(target.connect(), discover(PROJECT), target)


def _psql(db_url: str, script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    with psycopg.connect(db_url) as conn:
        major = conn.info.server_version // 10000
    path = tmp_path / "plan.sql"
    path.write_text(script, encoding="utf-8")
    psql = choose("psql", major).path
    return subprocess.run(
        [str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db_url, "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_recorded_plan_is_what_the_batched_executor_sends(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One commit that waits for the disk, the run's last, as the plan shows (on a slow
    # machine a run makes an earlier one wait too, which a plan cannot know beforehand).
    monkeypatch.setattr(runner, "DURABLE_EVERY", 3600.0)
    engine = _runner(db_url)
    history.ensure_tracking(engine.conn)
    recorded = engine.recorded()
    printed = engine.plan_sql()
    expected: list[Sent] = [
        (c.query, c.params or None)
        for unit in recorded.units
        for c in unit.commands
        if not isinstance(c, str)
    ]
    assert len(recorded.units) == 29 and all(unit.transactional for unit in recorded.units)

    # The tap: every statement handed to psycopg while the batched executor runs.
    sent: list[Sent] = []
    sending = False
    execute = engine.conn.execute

    def tapped(query: Any, params: Any = None, **kwargs: Any) -> Any:
        if sending:
            sent.append((query, params))
        return execute(query, params, **kwargs)

    run = batched.Batched.run

    def batch(self: batched.Batched, *args: Any) -> Any:
        nonlocal sending
        sending = True
        try:
            return run(self, *args)
        finally:
            sending = False

    monkeypatch.setattr(engine.conn, "execute", tapped)
    monkeypatch.setattr(batched.Batched, "run", batch)
    result = engine.apply()
    assert [s.outcome for s in result.steps] == ["applied"] * 29
    assert len(sent) == len(expected)
    for number, (got, want) in enumerate(zip(sent, expected, strict=True)):
        assert got == want, f"command {number} of the run differs from the plan's"

    # ... and each, as psycopg binds it on the client, is printed in that order.
    cursor = ClientCursor(engine.conn)
    position = 0
    for query, params in sent:
        text = cursor.mogrify(query, params) if params else query
        found = printed.find(text.rstrip(), position)
        assert found >= 0, f"not printed after offset {position}: {text[:200]}"
        position = found + len(text.rstrip())
    engine.conn.close()


def test_the_printed_plan_applies_the_migrations_in_psql(db_url: str, tmp_path: Path) -> None:
    engine = _runner(db_url)
    history.ensure_tracking(engine.conn)
    script = engine.plan_sql()
    engine.conn.close()
    assert script.count("\nBEGIN;") == 29 and script.count("\nCOMMIT;") == 29 and NO_PROOF not in script
    done = _psql(db_url, script, tmp_path)
    assert done.returncode == 0, done.stderr
    assert {m.state for m in commands.status(target=db_url, project=PROJECT).migrations} == {"applied"}
    assert commands.validate(target=db_url, project=PROJECT) == []


def test_on_a_fresh_database_the_plan_creates_the_tracking_objects_first(db_url: str, tmp_path: Path) -> None:
    """Their proof names the oids they get when created: the plan says where it goes."""
    engine = _runner(db_url)
    script = engine.plan_sql(to="003")
    engine.conn.close()
    assert "CREATE TABLE IF NOT EXISTS schema_migrations" in script
    assert script.count(NO_PROOF) == 3
    done = _psql(db_url, script, tmp_path)
    assert done.returncode == 0, done.stderr
    states = [m.state for m in commands.status(target=db_url, project=PROJECT).migrations]
    assert states == ["applied"] * 3 + ["pending"] * 26


def test_a_migration_outside_a_transaction_is_printed_as_the_autocommit_executor_sends_it(
    db_url: str, basic: Path, tmp_path: Path
) -> None:
    """Its 'started' record, its statements each on their own, then its success; the values
    only the run knows (when it started, how long it took) are named in the script."""
    (basic / "004_index_email.sql").write_text(
        "-- transaction: off\nCREATE INDEX CONCURRENTLY IF NOT EXISTS people_email_idx ON people (email);\n"
    )
    (basic / "004_index_email_rollback.sql").write_text("DROP INDEX IF EXISTS people_email_idx;\n")
    assert commands.apply(target=db_url, project=basic, options=RunOptions(to="003", backup=False)).steps
    target = parse_target(db_url, "--db")
    engine = Runner(target.connect(), discover(basic), target)
    script = engine.plan_sql()
    engine.conn.close()
    unit = script.split("-- 004_index_email.sql", 1)[1]
    assert "-- transaction: off: each statement commits on its own" in unit
    assert STARTED_AT in unit and ELAPSED_MS in unit and "record_migration_failure(" in unit
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS people_email_idx ON people (email);" in unit
    done = _psql(db_url, script, tmp_path)
    assert done.returncode == 0, done.stderr
    assert [m.state for m in commands.status(target=db_url, project=basic).migrations] == ["applied"] * 4
    assert commands.validate(target=db_url, project=basic) == []
