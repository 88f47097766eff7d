"""The rollout's id in every target's event log: an auditor finds, in one tenant's
database, the fleet rollout that changed it (issue 17, item 2); a single-target run
writes none; an event log made before the column gets it at the next change."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands
from bilantools.commands import RunOptions
from bilantools.db.history import tracking_sql
from bilantools.db.sandbox import Sandbox
from bilantools.errors import InputError
from bilantools.fleet.selection import from_urls
from tests.test_fleet import conflict, databases

# The event log as bilantools created it before the rollout's id (its outcome check
# already widened for 'started'): an upgrade must add the column, under the lock.
PREVIOUS_EVENTS = """
CREATE TABLE schema_migration_events (
    id          bigserial    PRIMARY KEY,
    run_id      uuid         NOT NULL,
    version     varchar(50),
    action      varchar(20)  NOT NULL
        CHECK (action IN ('apply', 'rollback', 'baseline', 'repair', 'dry-run')),
    outcome     varchar(20)  NOT NULL
        CHECK (outcome IN ('success', 'failure', 'partial', 'started')),
    actor       varchar(255) NOT NULL DEFAULT current_user,
    os_user     varchar(255),
    host        varchar(255),
    at          timestamptz  NOT NULL DEFAULT clock_timestamp(),
    duration_ms integer,
    checksum    varchar(64),
    detail      text,
    tool_version varchar(50),
    backup      text
)
"""


@pytest.fixture
def three(server: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    yield from databases(server, monkeypatch, 3)


def events(url: str, schema: str = "public") -> list[tuple[Any, ...]]:
    """(run_id, rollout_id, version, action, outcome) of every event, in order."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            f"SELECT run_id::text, rollout_id::text, version, action, outcome"
            f" FROM {schema}.schema_migration_events ORDER BY id"
        ).fetchall()
    return [tuple(r) for r in rows]


def test_fleet_apply_writes_its_rollout_id_in_every_database(cli: Any, basic: Path, three: list[str]) -> None:
    fleet = [arg for url in three for arg in ("--db", url)]
    result = cli("--migrations", str(basic), "fleet", "apply", *fleet, "--yes", "--no-backup", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    rollout = data["rollout_id"]
    runs = set()
    for url, target in zip(three, data["targets"], strict=True):
        rows = events(url)
        assert {r[1] for r in rows} == {rollout}
        assert {r[0] for r in rows} == {target["run_id"]}
        applied = [r for r in rows if r[3:] == ("apply", "success")]
        assert [r[2] for r in applied] == ["001", "002", "003"] and len(applied) == target["applied"] == 3
        runs.add(target["run_id"])
    assert len(runs) == 3


def test_a_failed_target_s_failure_event_carries_the_rollout_id(basic: Path, three: list[str]) -> None:
    conflict(three[1])
    result = commands.fleet(
        action="apply",
        stages=from_urls(three, parallel=3, on_error="continue"),
        project=basic,
        options=RunOptions(backup=False),
    )
    assert [t.outcome for t in result.targets] == ["done", "failed", "done"]
    failures = [r for r in events(three[1]) if r[4] == "failure"]
    assert [(r[1], r[2], r[3]) for r in failures] == [(result.rollout_id, "001", "apply")]


def test_a_fleet_rollback_carries_its_own(basic: Path, three: list[str]) -> None:
    stages = from_urls(three[:1], parallel=1, on_error="stop")
    forth = commands.fleet(action="apply", stages=stages, project=basic, options=RunOptions(backup=False))
    back = commands.fleet(action="rollback", stages=stages, project=basic, options=RunOptions(backup=False))
    assert forth.rollout_id != back.rollout_id
    assert [(r[1], r[2], r[3]) for r in events(three[0])] == [
        *((forth.rollout_id, v, "apply") for v in ("001", "002", "003")),
        (back.rollout_id, "003", "rollback"),
    ]


def test_a_migration_outside_a_transaction_s_started_event_carries_it(
    tmp_path: Path, three: list[str]
) -> None:
    directory = tmp_path / "nontx"
    directory.mkdir()
    (directory / "001_people.sql").write_text("CREATE TABLE people (id int, name text);\n")
    (directory / "002_index.sql").write_text(
        "-- transaction: off\nCREATE INDEX CONCURRENTLY people_name ON people (name);\n"
    )
    stages = from_urls(three[:1], parallel=1)
    result = commands.fleet(
        action="apply", stages=stages, project=directory, options=RunOptions(backup=False)
    )
    assert result.targets[0].applied == 2, result.targets[0].error
    assert [(r[1], r[2], r[4]) for r in events(three[0])] == [
        (result.rollout_id, "001", "success"),
        (result.rollout_id, "002", "started"),
        (result.rollout_id, "002", "success"),
    ]


def test_a_rollout_id_given_in_the_options_is_the_rollout_s(basic: Path, three: list[str]) -> None:
    chosen = str(uuid.uuid4())
    options = RunOptions(backup=False, rollout_id=chosen)
    result = commands.fleet(
        action="apply", stages=from_urls(three[:1], parallel=1), project=basic, options=options
    )
    assert result.rollout_id == chosen and {r[1] for r in events(three[0])} == {chosen}


def test_a_plain_apply_writes_no_rollout_id(cli: Any, basic: Path, db_url: str) -> None:
    assert cli("--db", db_url, "--migrations", str(basic), "apply", "--no-backup").code == 0
    rows = events(db_url)
    assert len(rows) == 3 and {r[1] for r in rows} == {None}


def test_a_rollout_id_must_be_a_uuid() -> None:
    """Kept as PostgreSQL prints it: the id the rollout reports is the text of its events."""
    chosen = uuid.uuid4()
    assert RunOptions(rollout_id="{" + str(chosen).upper() + "}").rollout_id == str(chosen)
    assert RunOptions(rollout_id=chosen).rollout_id == str(chosen)  # type: ignore[arg-type]
    with pytest.raises(InputError) as raised:
        RunOptions(rollout_id="tenant-17")
    assert str(raised.value) == (
        "rollout_id=tenant-17 is not a UUID; pass the rollout's id as 'bilantools fleet apply --json' "
        "prints it (e.g. 123e4567-e89b-12d3-a456-426614174000), or None"
    )


def previous_tracking(url: str, schema: str) -> None:
    """The tracking objects of a release before the rollout's id, in `schema`: the guide's
    table and functions (tracking.sql's part before the event log) and the event log of
    then, with one event."""
    guide = tracking_sql().split("-- Engine-only from here on")[0]
    with psycopg.connect(url) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        conn.execute(f"SET LOCAL search_path TO {schema}")
        conn.execute(guide)
        conn.execute(PREVIOUS_EVENTS)
        conn.execute(
            "INSERT INTO schema_migration_events (run_id, action, outcome)"
            " VALUES (gen_random_uuid(), 'repair', 'success')"
        )


def rollout_column(url: str, schema: str) -> tuple[Any, ...] | None:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = to_regclass(%s) AND attname = 'rollout_id' AND NOT attisdropped",
            (f"{schema}.schema_migration_events",),
        ).fetchone()


@pytest.mark.parametrize("schema", ["public", "bilantools"])
def test_an_event_log_of_the_previous_shape_gets_the_column(basic: Path, db_url: str, schema: str) -> None:
    """Reading leaves it as it is; the next change adds the column (under the migration
    lock) and fills it. Schema bilantools: where a configured tracking-schema (and a peer's
    layout) keeps it, tracking.sql rendered there."""
    if schema != "public":
        (basic.parent / "pyproject.toml").write_text(f'[tool.bilantools]\ntracking-schema = "{schema}"\n')
    previous_tracking(db_url, schema)
    assert commands.status(target=db_url, project=basic).count("pending") == 3
    assert rollout_column(db_url, schema) is None
    result = commands.fleet(
        action="apply",
        stages=from_urls([db_url], parallel=1),
        project=basic,
        options=RunOptions(backup=False),
    )
    assert result.targets[0].applied == 3, result.targets[0].error
    assert rollout_column(db_url, schema) == ("uuid",)
    rows = events(db_url, schema)
    assert rows[0][1] is None and [r[1] for r in rows[1:]] == [result.rollout_id] * 3


def test_an_upgrade_by_a_role_that_does_not_own_them_is_refused(cli: Any, basic: Path, db_url: str) -> None:
    """A role that may write the history but not alter it: one line naming the fix, nothing changed."""
    previous_tracking(db_url, "public")
    role = "bt_rollout_" + uuid.uuid4().hex[:8]
    grants = ("SCHEMA public", "ALL TABLES IN SCHEMA public", "ALL SEQUENCES IN SCHEMA public")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'Rollout-pw'")
        for grant in grants:
            conn.execute(f"GRANT ALL ON {grant} TO {role}")
    try:
        r = cli(
            "--db",
            db_url.replace("postgres@", f"{role}:Rollout-pw@", 1),
            "--migrations",
            str(basic),
            "apply",
            "--no-backup",
        )
        assert r.code == 2
        assert r.err.strip().splitlines()[-1] == (
            "error: cannot upgrade the tracking objects in schema public to this bilantools release's shape "
            "(must be owner of function migration_applied); nothing was changed: run the same command once "
            "as their owner (it upgrades them first), then go on as this user"
        )
        assert rollout_column(db_url, "public") is None
        with psycopg.connect(db_url, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM schema_migration_events").fetchone() == (1,)
        assert commands.status(target=db_url, project=basic).count("pending") == 3
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
