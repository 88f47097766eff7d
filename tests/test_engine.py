"""The migration engine against a real PostgreSQL: apply, dry run, failures, rollback,
baseline, repair, validate, the guide's tracking functions and the event log."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from bilantools import commands
from bilantools.db.lock import LOCK_KEYS
from bilantools.errors import InputError, LockTimeoutError, MigrationFailed, RefusedError
from tests.conftest import snapshot, tables

pytestmark = pytest.mark.pg15


def events(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    return conn.execute("SELECT version, action, outcome FROM schema_migration_events ORDER BY id").fetchall()


def states(db_url: str, migrations: Path) -> dict[str, str]:
    return {m.version: m.state for m in commands.status(target=db_url, project=migrations).migrations}


def test_status_on_a_fresh_database_creates_nothing(
    db_url: str, basic: Path, conn: psycopg.Connection
) -> None:
    status = commands.status(target=db_url, project=basic)
    assert [m.state for m in status.migrations] == ["pending"] * 3
    assert not status.tracking
    assert status.summary() == "3 migrations: 3 pending"
    assert tables(conn) == []


def test_apply_all_records_each_migration(db_url: str, basic: Path, conn: psycopg.Connection) -> None:
    result = commands.apply(target=db_url, project=basic)
    assert [(s.version, s.outcome) for s in result.steps] == [
        ("001", "applied"),
        ("002", "applied"),
        ("003", "applied"),
    ]
    assert tables(conn) == ["people", "schema_migration_events", "schema_migrations"]
    assert conn.execute("SELECT people_count()").fetchone() == (2,)
    rows = conn.execute(
        "SELECT version, description, checksum, success, applied_by FROM schema_migrations ORDER BY version"
    ).fetchall()
    from bilantools.source.layouts.native import discover

    expected = [(m.version, m.name, m.checksum, True, "postgres") for m in discover(basic)]
    assert rows == expected
    assert events(conn) == [(v, "apply", "success") for v in ("001", "002", "003")]
    run_ids = conn.execute("SELECT DISTINCT run_id, host, os_user FROM schema_migration_events").fetchall()
    assert len(run_ids) == 1 and all(run_ids[0])
    # nothing left to do: a second apply is a no-op
    assert commands.apply(target=db_url, project=basic).steps == []
    assert set(states(db_url, basic).values()) == {"applied"}


def test_guide_tracking_functions(db_url: str, basic: Path, conn: psycopg.Connection) -> None:
    commands.apply(target=db_url, project=basic, options=commands.RunOptions(to="001"))
    assert conn.execute("SELECT migration_applied('001'), migration_applied('002')").fetchone() == (
        True,
        False,
    )
    # the guide's manual recording, with its exact call
    conn.execute("SELECT record_migration('030', 'Add new feature', NULL, CURRENT_USER, 1500)")
    conn.execute("SELECT record_migration_failure('031', 'broken', 'relation x does not exist')")
    row = conn.execute("SELECT * FROM get_migration_status()").fetchone()
    assert row is not None
    assert row[:4] == (3, 2, 1, "030")
    assert conn.execute("SELECT error_message FROM schema_migrations WHERE success = FALSE").fetchall() == [
        ("relation x does not exist",)
    ]


def test_apply_to_and_step(db_url: str, basic: Path) -> None:
    assert [
        s.version
        for s in commands.apply(target=db_url, project=basic, options=commands.RunOptions(step=1)).steps
    ] == ["001"]
    assert [
        s.version
        for s in commands.apply(target=db_url, project=basic, options=commands.RunOptions(to="2")).steps
    ] == ["002"]
    assert states(db_url, basic) == {"001": "applied", "002": "applied", "003": "pending"}
    with pytest.raises(InputError, match="to=007: no migration has version 007"):
        commands.apply(target=db_url, project=basic, options=commands.RunOptions(to="007"))
    with pytest.raises(InputError, match="cannot be used together"):
        commands.apply(target=db_url, project=basic, options=commands.RunOptions(to="003", step=1))


def test_percent_signs_reach_the_server_untouched(db_url: str, basic: Path, conn: psycopg.Connection) -> None:
    commands.apply(target=db_url, project=basic)
    check = conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'people_email_check'"
    ).fetchone()
    assert check is not None and "'%@%'" in check[0]


def test_dry_run_changes_nothing(db_url: str, basic: Path, conn: psycopg.Connection) -> None:
    before = snapshot(conn)
    result = commands.apply(target=db_url, project=basic, options=commands.RunOptions(dry_run=True))
    assert result.dry_run and [s.outcome for s in result.steps] == ["would apply"] * 3
    assert snapshot(conn) == before and tables(conn) == []
    commands.apply(target=db_url, project=basic)
    before = snapshot(conn)
    result = commands.rollback(
        target=db_url, project=basic, options=commands.RunOptions(to="0", dry_run=True)
    )
    assert [s.outcome for s in result.steps] == ["would roll back"] * 3
    assert snapshot(conn) == before


def test_dry_run_reports_the_failure(db_url: str, basic: Path, conn: psycopg.Connection) -> None:
    (basic / "004_broken.sql").write_text("CREATE TABLE ok_table (id int);\nSELECT * FROM nowhere;\n")
    result = commands.apply(target=db_url, project=basic, options=commands.RunOptions(dry_run=True))
    last = result.steps[-1]
    assert last.outcome == "failed" and last.version == "004"
    assert last.detail is not None and "004_broken.sql:2" in last.detail and "nowhere" in last.detail
    assert tables(conn) == []


def test_failure_half_way_leaves_no_trace_and_retry_succeeds(
    db_url: str, basic: Path, conn: psycopg.Connection
) -> None:
    commands.apply(target=db_url, project=basic)
    broken = basic / "004_add_profiles.sql"
    broken.write_text(
        "-- two statements, the second one fails\n"
        "CREATE TABLE profiles (id int PRIMARY KEY);\n"
        "INSERT INTO profiles (id)\n  VALUES (1), (1);\n"
    )
    with pytest.raises(MigrationFailed) as failure:
        commands.apply(target=db_url, project=basic)
    exc = failure.value
    assert exc.version == "004" and exc.line == 3 and not exc.partial
    assert exc.statement is not None and exc.statement.startswith("INSERT INTO profiles")
    assert "23505" in exc.server_message and "duplicate key" in exc.server_message
    assert "004_add_profiles.sql:3" in str(exc) and "fix the file and run apply again" in str(exc)
    assert "profiles" not in tables(conn)  # the first statement was rolled back too
    row = conn.execute(
        "SELECT success, error_message FROM schema_migrations WHERE version = '004'"
    ).fetchone()
    assert row is not None and row[0] is False
    assert (
        "duplicate key" in row[1] and "004_add_profiles.sql:3" in row[1] and "INSERT INTO profiles" in row[1]
    )
    status = commands.status(target=db_url, project=basic).migrations[-1]
    assert status.state == "failed" and not status.partial
    assert events(conn)[-1] == ("004", "apply", "failure")

    broken.write_text("CREATE TABLE profiles (id int PRIMARY KEY);\nINSERT INTO profiles VALUES (1);\n")
    assert [s.version for s in commands.apply(target=db_url, project=basic).steps] == ["004"]
    assert states(db_url, basic)["004"] == "applied"
    assert conn.execute("SELECT error_message FROM schema_migrations WHERE version = '004'").fetchone() == (
        None,
    )


def test_non_transactional_migration(db_url: str, basic: Path, conn: psycopg.Connection) -> None:
    (basic / "004_index_concurrently.sql").write_text(
        "-- transaction: off\nCREATE INDEX CONCURRENTLY IF NOT EXISTS people_email_idx ON people (email);\n"
    )
    commands.apply(target=db_url, project=basic)
    assert conn.execute(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'people_email_idx'::regclass"
    ).fetchone() == (True,)
    dry = commands.apply(target=db_url, project=basic, options=commands.RunOptions(dry_run=True))
    assert dry.steps == []


def test_non_transactional_failure_is_reported_half_way(
    db_url: str, basic: Path, conn: psycopg.Connection
) -> None:
    (basic / "004_two_steps.sql").write_text(
        "-- transaction: off\nCREATE TABLE step_one (id int);\nCREATE TABLE people (id int);\n"
    )
    with pytest.raises(MigrationFailed) as failure:
        commands.apply(target=db_url, project=basic)
    assert failure.value.partial
    assert "1 of 2 statements had committed" in str(failure.value)
    assert "step_one" in tables(conn)  # committed: no transaction around it
    status = commands.status(target=db_url, project=basic).migrations[-1]
    assert status.state == "failed" and status.partial
    assert events(conn)[-1] == ("004", "apply", "partial")
    dry = commands.apply(target=db_url, project=basic, options=commands.RunOptions(dry_run=True))
    assert dry.steps[-1].outcome == "skipped" and "cannot be dry-run" in (dry.steps[-1].detail or "")


def test_rollback_steps(db_url: str, basic: Path, conn: psycopg.Connection) -> None:
    commands.apply(target=db_url, project=basic)
    assert [s.version for s in commands.rollback(target=db_url, project=basic).steps] == ["003"]
    assert conn.execute("SELECT to_regprocedure('people_count()')").fetchone() == (None,)
    commands.apply(target=db_url, project=basic)
    assert [
        s.version
        for s in commands.rollback(target=db_url, project=basic, options=commands.RunOptions(step=2)).steps
    ] == ["003", "002"]
    commands.apply(target=db_url, project=basic)
    assert [
        s.version
        for s in commands.rollback(target=db_url, project=basic, options=commands.RunOptions(to="001")).steps
    ] == ["003", "002"]
    assert states(db_url, basic) == {"001": "applied", "002": "pending", "003": "pending"}
    assert [
        s.version
        for s in commands.rollback(target=db_url, project=basic, options=commands.RunOptions(to="0")).steps
    ] == ["001"]
    assert tables(conn) == ["schema_migration_events", "schema_migrations"]
    assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (0,)
    assert [e for e in events(conn) if e[1] == "rollback"][-1] == ("001", "rollback", "success")


def test_rollback_refuses_without_script(db_url: str, basic: Path, conn: psycopg.Connection) -> None:
    commands.apply(target=db_url, project=basic)
    (basic / "002_add_email_rollback.sql").unlink()
    before = snapshot(conn)
    with pytest.raises(RefusedError, match="no rollback script for 002_add_email"):
        commands.rollback(target=db_url, project=basic, options=commands.RunOptions(to="001"))
    assert snapshot(conn) == before  # 003 was not rolled back either


def test_failing_rollback_keeps_migration_applied(db_url: str, basic: Path, conn: psycopg.Connection) -> None:
    commands.apply(target=db_url, project=basic)
    (basic / "003_seed_people_rollback.sql").write_text("DROP FUNCTION people_count();\nDROP TABLE nope;\n")
    with pytest.raises(
        MigrationFailed, match=r"rollback of 003_seed_people failed at 003_seed_people_rollback.sql:2"
    ):
        commands.rollback(target=db_url, project=basic)
    assert conn.execute("SELECT people_count()").fetchone() == (2,)
    assert states(db_url, basic)["003"] == "applied"


def test_changed_file_blocks_apply_until_repair(db_url: str, basic: Path, conn: psycopg.Connection) -> None:
    commands.apply(target=db_url, project=basic, options=commands.RunOptions(to="002"))
    edited = basic / "001_create_people.sql"
    edited.write_text(edited.read_text() + "-- reviewed\n")
    assert states(db_url, basic)["001"] == "changed"
    with pytest.raises(RefusedError, match="001 changed since they were applied"):
        commands.apply(target=db_url, project=basic)
    findings = commands.validate(target=db_url, project=basic)
    assert [f.rule for f in findings] == ["checksum-mismatch"]
    result = commands.repair(target=db_url, project=basic)
    assert [(s.version, s.outcome) for s in result.steps] == [("001", "checksum realigned")]
    assert commands.validate(target=db_url, project=basic) == []
    assert events(conn)[-1] == ("001", "repair", "success")
    assert [s.version for s in commands.apply(target=db_url, project=basic).steps] == ["003"]


def test_repair_clears_failed_rows(db_url: str, basic: Path, conn: psycopg.Connection) -> None:
    (basic / "002_add_email.sql").write_text("ALTER TABLE nowhere ADD COLUMN x int;\n")
    with pytest.raises(MigrationFailed):
        commands.apply(target=db_url, project=basic)
    assert [f.rule for f in commands.validate(target=db_url, project=basic)] == ["failed-migration"]
    result = commands.repair(target=db_url, project=basic)
    assert [(s.version, s.outcome) for s in result.steps] == [("002", "cleared failed row")]
    assert states(db_url, basic) == {"001": "applied", "002": "pending", "003": "pending"}
    detail = conn.execute("SELECT detail FROM schema_migration_events WHERE action = 'repair'").fetchone()
    assert detail is not None and "nowhere" in detail[0]


def test_missing_file_is_reported(db_url: str, basic: Path) -> None:
    commands.apply(target=db_url, project=basic)
    for name in ("003_seed_people.sql", "003_seed_people_rollback.sql"):
        (basic / name).unlink()
    assert states(db_url, basic)["003"] == "missing-file"
    assert [f.rule for f in commands.validate(target=db_url, project=basic)] == ["missing-file"]
    with pytest.raises(RefusedError, match="003 are applied but their files are missing"):
        commands.rollback(target=db_url, project=basic, options=commands.RunOptions(to="001"))


def test_baseline_records_without_running(db_url: str, basic: Path, conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL, email text)")
    result = commands.baseline(target=db_url, project=basic, options=commands.RunOptions(to="002"))
    assert [(s.version, s.outcome) for s in result.steps] == [("001", "baselined"), ("002", "baselined")]
    assert conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname = 'people_name_idx'").fetchone() == (
        0,
    )
    assert states(db_url, basic) == {"001": "applied", "002": "applied", "003": "pending"}
    assert [e[1] for e in events(conn)] == ["baseline", "baseline"]
    assert [s.version for s in commands.apply(target=db_url, project=basic).steps] == ["003"]


def test_lock_held_by_another_session(db_url: str, basic: Path) -> None:
    with psycopg.connect(db_url, autocommit=True, application_name="other runner") as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", LOCK_KEYS)
        pid = holder.info.backend_pid
        with pytest.raises(LockTimeoutError) as err:
            commands.apply(target=db_url, project=basic, options=commands.RunOptions(lock_wait=0.3))
    message = str(err.value)
    assert f"pid {pid}" in message and "application 'other runner'" in message
    assert f"pg_terminate_backend({pid})" in message
    assert commands.status(target=db_url, project=basic).count("pending") == 3


def test_unreachable_and_missing_database(db_url: str, basic: Path, server: object) -> None:
    from bilantools.errors import ConnectError

    missing = db_url.rsplit("/", 1)[0] + "/no_such_db"
    with pytest.raises(ConnectError, match='database "no_such_db" does not exist; create the database'):
        commands.status(target=missing, project=basic)
    with pytest.raises(ConnectError, match="check the host and port"):
        commands.status(target="postgresql://postgres@127.0.0.1:1/x", project=basic)


def test_progress_hook_sees_each_migration(db_url: str, basic: Path) -> None:
    """Each migration starts, then is reported done once its commit is on disk: fast ones
    are reported together at the next synchronous commit (here the run's last)."""
    seen: list[tuple[str, str, int, int, str | None]] = []
    commands.apply(
        target=db_url,
        project=basic,
        progress=lambda p: seen.append(
            (p.event, p.migration.version, p.index, p.total, p.step.outcome if p.step else None)
        ),
    )
    assert seen == [
        ("start", "001", 0, 3, None),
        ("start", "002", 1, 3, None),
        ("start", "003", 2, 3, None),
        ("done", "001", 0, 3, "applied"),
        ("done", "002", 1, 3, "applied"),
        ("done", "003", 2, 3, "applied"),
    ]


def test_a_slow_migration_is_reported_as_soon_as_it_is_durable(db_url: str, basic: Path) -> None:
    """Past DURABLE_EVERY seconds since the last flush a migration commits synchronously,
    so a run of slow migrations streams one line per migration."""
    for name in ("001_create_people", "002_add_email"):
        path = basic / f"{name}.sql"
        path.write_text(path.read_text() + "SELECT pg_sleep(0.25);\n")
    seen: list[tuple[str, str]] = []
    commands.apply(
        target=db_url, project=basic, progress=lambda p: seen.append((p.event, p.migration.version))
    )
    assert seen == [
        ("start", "001"),
        ("start", "002"),
        ("done", "001"),
        ("done", "002"),
        ("start", "003"),
        ("done", "003"),
    ]


def test_migrations_before_a_failure_are_reported_done(db_url: str, basic: Path) -> None:
    """A run that stops on a failure still reports the migrations it committed before it
    (their commits flushed first), so the CLI prints what stands."""
    (basic / "004_broken.sql").write_text("SELECT * FROM missing_table;\n")
    (basic / "004_broken_rollback.sql").write_text("SELECT 1;\n")
    done: list[str] = []
    with pytest.raises(MigrationFailed):
        commands.apply(
            target=db_url,
            project=basic,
            progress=lambda p: done.append(p.migration.version) if p.event == "done" else None,
        )
    assert done == ["001", "002", "003"]


def _many(
    directory: Path, count: int, failing: int | None = None, failing_rollback: int | None = None
) -> None:
    """`count` fast migrations (a table each); `failing` breaks at its second statement."""
    directory.mkdir()
    for n in range(1, count + 1):
        second = "SELECT * FROM no_such_table;" if n == failing else f"CREATE INDEX ON t{n} (id);"
        (directory / f"{n:03d}_t{n}.sql").write_text(f"CREATE TABLE t{n} (id int);\n{second}\n")
        undo = "SELECT * FROM no_such_table;" if n == failing_rollback else f"DROP TABLE t{n};"
        (directory / f"{n:03d}_t{n}_rollback.sql").write_text(undo + "\n")


def test_a_failure_inside_a_batch_stops_the_run_there(
    db_url: str, tmp_path: Path, conn: psycopg.Connection
) -> None:
    """Fast migrations are sent in batches (1, 2, 4, 8, 16...: 025 falls in the middle of
    one): those before the failure commit and are reported, the failing one is recorded
    with its own file and line, and none after it runs."""
    directory = tmp_path / "many"
    _many(directory, 40, failing=25)
    done: list[str] = []
    with pytest.raises(MigrationFailed) as failed:
        commands.apply(
            target=db_url,
            project=directory,
            progress=lambda p: done.append(p.migration.version) if p.event == "done" else None,
        )
    assert failed.value.version == "025" and failed.value.line == 2
    assert "025_t25.sql:2" in str(failed.value) and "no_such_table" in str(failed.value)
    assert done == [f"{n:03d}" for n in range(1, 25)]
    rows = conn.execute("SELECT version, success FROM schema_migrations ORDER BY version").fetchall()
    assert rows == [(f"{n:03d}", True) for n in range(1, 25)] + [("025", False)]
    assert [t for t in tables(conn) if t.startswith("t")] == sorted(f"t{n}" for n in range(1, 25))
    durations = conn.execute("SELECT count(*) FROM schema_migration_events WHERE duration_ms >= 0").fetchone()
    assert durations == (25,)  # 24 successes and the failure, each with its duration


def test_a_failing_rollback_inside_a_batch_leaves_the_later_ones_applied(
    db_url: str, tmp_path: Path, conn: psycopg.Connection
) -> None:
    directory = tmp_path / "many"
    _many(directory, 40, failing_rollback=12)
    commands.apply(target=db_url, project=directory)
    with pytest.raises(MigrationFailed) as failed:
        commands.rollback(target=db_url, project=directory, options=commands.RunOptions(to="0"))
    assert failed.value.version == "012" and "012_t12_rollback.sql:1" in str(failed.value)
    rows = conn.execute("SELECT version FROM schema_migrations WHERE success ORDER BY version").fetchall()
    assert rows == [(f"{n:03d}",) for n in range(1, 13)]
    assert [t for t in tables(conn) if t.startswith("t")] == sorted(f"t{n}" for n in range(1, 13))
    result = commands.status(target=db_url, project=directory)
    assert result.summary() == "40 migrations: 12 applied, 28 pending"
