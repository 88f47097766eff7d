"""Concurrent runs on one database: they take the migration lock in turn, every
migration is applied exactly once, the event log stays consistent, and a process that
does not get the lock fails only with the lock message.

The first two tests race two appliers on a small slow corpus (they also run on
PostgreSQL 15); the others race 8 processes on the real 29 migrations, then applies,
rollbacks, baselines and status readers together. Their random choices (lock waits,
the order of the mixed processes) come from the seeds of SEEDS under `make test`, from a
new printed seed under `make faults` (see harness.seeded).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from bilantools import commands
from bilantools.db.sandbox import Sandbox
from tests.conftest import TEMPLATE
from tests.faults.conftest import Figures, scale
from tests.faults.harness import (
    LOCK_MESSAGE,
    MIGRATIONS,
    CliRun,
    Corpus,
    build_references,
    running,
    scratch_db,
    seeded,
    settled,
    tracking_rows,
)

CLI = str(Path(sys.executable).parent / "bilantools")


def slow_migrations(directory: Path, count: int = 4) -> Path:
    directory.mkdir()
    for i in range(1, count + 1):
        (directory / f"00{i}_step_{i}.sql").write_text(
            f"CREATE TABLE step_{i} (id int);\nSELECT pg_sleep(0.25);\n"
        )
        (directory / f"00{i}_step_{i}_rollback.sql").write_text(f"DROP TABLE step_{i};\n")
    return directory


def start(db_url: str, migrations: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TQDM_DISABLE": "1"}
    return subprocess.Popen(
        [CLI, "--db", db_url, "--migrations", str(migrations), "apply", "--yes", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def applied_events(db_url: str) -> list[tuple[str, int]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT version, count(*)::int FROM schema_migration_events"
            " WHERE action = 'apply' AND outcome = 'success' GROUP BY version ORDER BY version"
        ).fetchall()


@pytest.mark.pg15
def test_second_runner_waits_then_finds_nothing(db_url: str, tmp_path: Path) -> None:
    migrations = slow_migrations(tmp_path / "m")
    runs = [start(db_url, migrations) for _ in range(2)]
    results = [(p.wait(timeout=60), *p.communicate()) for p in runs]
    assert [code for code, _, _ in results] == [0, 0], results
    outputs = sorted(out.splitlines()[-1] for _, out, _ in results)
    assert outputs == ["4 migration(s) applied", "nothing to do: no migration applied"]
    assert applied_events(db_url) == [("001", 1), ("002", 1), ("003", 1), ("004", 1)]


@pytest.mark.pg15
def test_second_runner_stops_with_the_lock_message(db_url: str, tmp_path: Path) -> None:
    migrations = slow_migrations(tmp_path / "m")
    runs = [start(db_url, migrations, "--lock-wait", "0.2") for _ in range(2)]
    results = sorted((p.wait(timeout=60), *p.communicate()) for p in runs)
    (ok, ok_out, _), (refused, _, refused_err) = results
    assert (ok, refused) == (0, 2)
    assert ok_out.splitlines()[-1] == "4 migration(s) applied"
    last = refused_err.strip().splitlines()[-1]
    assert last.startswith("error: another run holds the migration lock on ")
    assert "application 'bilantools apply" in last and "pg_terminate_backend(" in last
    assert applied_events(db_url) == [("001", 1), ("002", 1), ("003", 1), ("004", 1)]


# -- eight appliers, and a mixed race, on the real 29 migrations ---------------------------
APPLIERS = 8
ROUNDS = scale(3, 20)  # per seed
# The seeds `make test` replays (see harness.seeded); every seed that ever failed goes here.
SEEDS = (90210,)
MIXED_ROUNDS = scale(1, 4)
APPLIED = re.compile(r"^(\d+) migration\(s\) (applied|rolled back|baselined)$")
NOTHING = re.compile(r"^nothing to do: no migration (applied|rolled back|baselined)$")
VERB = {"applied": "apply", "rolled back": "rollback", "baselined": "baseline"}


@pytest.fixture(scope="module")
def real(server: Sandbox) -> Corpus:
    return build_references(server, MIGRATIONS, TEMPLATE)


@dataclass
class Event:
    id: int
    run_id: str
    version: str | None
    action: str
    outcome: str
    os_user: str | None
    host: str | None
    tool_version: str | None


def events_since(url: str, after: int) -> list[Event]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id, run_id::text, version, action, outcome, os_user, host, tool_version"
            " FROM schema_migration_events WHERE id > %s ORDER BY id",
            (after,),
        ).fetchall()
    return [Event(*row) for row in rows]


def last_event_id(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT coalesce(max(id), 0) FROM schema_migration_events").fetchone()
    assert row is not None
    return int(row[0])


def runs_of(events: list[Event], context: str) -> dict[str, list[Event]]:
    """Events grouped by run, asserting each run's events are contiguous in the log (runs
    never interleave: they hold the lock in turn) and come from one process."""
    runs: dict[str, list[Event]] = {}
    order: list[str] = []
    for event in events:
        if not order or order[-1] != event.run_id:
            assert event.run_id not in runs, (
                f"{context}: run {event.run_id} interleaved with another: {events}"
            )
            order.append(event.run_id)
        runs.setdefault(event.run_id, []).append(event)
    for run_id, own in runs.items():
        who = {(e.os_user, e.host, e.tool_version) for e in own}
        assert len(who) == 1, f"{context}: run {run_id} has events from {who}"
        assert len({(e.version, e.action) for e in own}) == len(own), f"{context}: duplicates in {own}"
    return runs


def claimed(run: CliRun, context: str) -> tuple[str, int] | None:
    """What a successful changing process says it did: (action, count), None for nothing."""
    if NOTHING.match(run.last_out):
        return None
    found = APPLIED.match(run.last_out)
    assert found, f"{context}: {run} ended with {run.last_out!r}"
    count, verb = int(found[1]), VERB[found[2]]
    assert run.steps == count or verb == "baseline", f"{context}: {run} printed {run.steps} steps: {run.out}"
    return verb, count


def assert_ok_or_locked(run: CliRun, code: int, context: str) -> bool:
    """Exit 0, or exit 2 with the lock message as the last stderr line. True when locked out."""
    if code == 0:
        return False
    assert code == 2 and run.last_err.startswith(LOCK_MESSAGE), (
        f"{context}: {run} failed other than with the lock message (exit {code}): {run.err}"
    )
    return True


def test_eight_appliers_apply_each_migration_once(server: Sandbox, real: Corpus, figures: Figures) -> None:
    for seed, tag in seeded("eight appliers", SEEDS):
        rng = random.Random(seed)
        for round_no in range(ROUNDS):
            waits = [] if round_no % 2 == 0 else ["--lock-wait", rng.choice(["0", "0.1", "0.5"])]
            context = tag(f"round {round_no + 1} of {ROUNDS} ({' '.join(waits) or 'default lock wait'})")
            with scratch_db(server, TEMPLATE, "race") as (_, url):
                runs = [
                    CliRun(url, MIGRATIONS, "apply", "--yes", *waits, home=server.home)
                    for _ in range(APPLIERS)
                ]
                with running(*runs):
                    codes = [run.finish(timeout=180) for run in runs]
                locked = sum(
                    assert_ok_or_locked(run, code, context) for run, code in zip(runs, codes, strict=True)
                )
                claims = [claimed(run, context) for run, code in zip(runs, codes, strict=True) if code == 0]
                with psycopg.connect(url) as conn:
                    rows = tracking_rows(conn)
                assert rows == [(v, True) for v in real.versions], f"{context}: tracking rows {rows}"
                events = events_since(url, 0)
                assert {(e.action, e.outcome) for e in events} == {("apply", "success")}, (
                    f"{context}: {events}"
                )
                assert sorted(e.version for e in events if e.version) == real.versions, f"{context}: {events}"
                runs_by_id = runs_of(events, context)
                for own in runs_by_id.values():
                    versions = [e.version for e in own]
                    assert versions == sorted(versions, key=lambda v: int(v or 0)), f"{context}: {versions}"
                logged = sorted(("apply", len(own)) for own in runs_by_id.values())
                assert sorted(c for c in claims if c) == logged, (
                    f"{context}: processes claimed {claims}, the event log has runs {logged}"
                )
                assert settled(url, real, context) == real.n
            figures.add("concurrency: rounds of 8 concurrent appliers")
            figures.add("concurrency: apply processes", APPLIERS)
            figures.add("concurrency: processes refused with the lock message", locked)
            figures.add(
                "concurrency: processes that found nothing to do", sum(1 for c in claims if c is None)
            )


MIXED = [
    ["apply", "--yes"],
    ["apply", "--to", "020", "--yes"],
    ["rollback", "--to", "005", "--yes"],
    ["rollback", "--step", "2", "--yes"],
    ["baseline", "--to", "002", "--yes"],
    ["baseline", "--to", "003", "--yes"],
    ["status", "--json"],
    ["status", "--json"],
]


def test_apply_rollback_status_and_baseline_race(server: Sandbox, real: Corpus, figures: Figures) -> None:
    """From 10 applied: applies, rollbacks, baselines and status readers all at once. The
    baselines name versions that stay applied throughout (the two rollbacks together never
    go below 003), so they have nothing to record but race for the lock like the others, and
    the schema can be checked against the reference of the k the tracking table shows."""
    for seed, tag in seeded("mixed race", SEEDS):
        rng = random.Random(seed)
        for round_no in range(MIXED_ROUNDS):
            waits = [] if round_no % 2 == 0 else ["--lock-wait", "0.3"]
            context = tag(
                f"mixed round {round_no + 1} of {MIXED_ROUNDS} ({' '.join(waits) or 'default lock wait'})"
            )
            with scratch_db(server, TEMPLATE, "mixed") as (_, url):
                commands.apply(
                    target=url, project=MIGRATIONS, options=commands.RunOptions(to="010", backup=False)
                )
                start = last_event_id(url)
                mix = rng.sample(MIXED, len(MIXED))
                runs = [
                    CliRun(url, MIGRATIONS, *args, *(waits if args[0] != "status" else []), home=server.home)
                    for args in mix
                ]
                with running(*runs):
                    codes = [run.finish(timeout=180) for run in runs]
                claims: list[tuple[str, int]] = []
                locked = 0
                for args, run, code in zip(mix, runs, codes, strict=True):
                    if args[0] == "status":
                        assert code == 0, f"{context}: {run}: {run.err}"
                        states = [m["state"] for m in json.loads("".join(run.out))["migrations"]]
                        applied = states.count("applied")
                        assert states == ["applied"] * applied + ["pending"] * (real.n - applied), (
                            f"{context}: status read a state that is not the first k applied: {states}"
                        )
                        continue
                    if assert_ok_or_locked(run, code, context):
                        locked += 1
                        continue
                    claim = claimed(run, context)
                    if claim is not None:
                        claims.append(claim)
                events = events_since(url, start)
                assert {e.outcome for e in events} <= {"success"}, f"{context}: {events}"
                runs_by_id = runs_of(events, context)
                logged = sorted((own[0].action, len(own)) for own in runs_by_id.values())
                assert sorted(claims) == logged, (
                    f"{context}: processes claimed {claims}, the log has {logged}"
                )
                applied_set = set(real.versions[:10])
                for event in events:  # replaying the log gives the tracking table
                    if event.action in ("apply", "baseline"):
                        assert event.version not in applied_set, f"{context}: {event} applied twice"
                        applied_set.add(event.version or "")
                    elif event.action == "rollback":
                        assert event.version in applied_set, f"{context}: {event} rolls back a pending one"
                        applied_set.discard(event.version)
                k = settled(url, real, context)
                assert applied_set == set(real.versions[:k]), (
                    f"{context}: the log replays to {sorted(applied_set)}"
                )
            figures.add("concurrency: mixed rounds (apply, rollback, baseline, status at once)")
            figures.add("concurrency: mixed-round processes", len(MIXED))
            figures.add("concurrency: processes refused with the lock message", locked)
