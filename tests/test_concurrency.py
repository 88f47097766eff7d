"""Two `bilantools apply` processes started together on one database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.pg15
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


def test_second_runner_waits_then_finds_nothing(db_url: str, tmp_path: Path) -> None:
    migrations = slow_migrations(tmp_path / "m")
    runs = [start(db_url, migrations) for _ in range(2)]
    results = [(p.wait(timeout=60), *p.communicate()) for p in runs]
    assert [code for code, _, _ in results] == [0, 0], results
    outputs = sorted(out.splitlines()[-1] for _, out, _ in results)
    assert outputs == ["4 migration(s) applied", "nothing to do: no migration applied"]
    assert applied_events(db_url) == [("001", 1), ("002", 1), ("003", 1), ("004", 1)]


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
