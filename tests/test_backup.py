"""Backups on a real PostgreSQL: take, verify by restore, diff, restore, list, prune, the
automatic backup before changes, file modes, and the password kept out of every argv."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands
from bilantools.db import backup as backups
from bilantools.db import dump_process
from bilantools.db.sandbox import Sandbox
from bilantools.db.target import parse_target
from bilantools.errors import InputError, RefusedError

pytestmark = pytest.mark.pg15
MIGRATIONS = Path(__file__).parent.parent / "migrations"
PASSWORD = "Bk-s3cret-pw_77"


@pytest.fixture
def migrated(db_url: str) -> str:
    """A fresh database with the 29 migrations and a few rows of our own."""
    commands.apply(target=db_url, project=MIGRATIONS)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO organizations (name, slug) VALUES ('Centre Bilan Lyon', 'cb-lyon'),"
            " ('Centre Bilan Nantes', 'cb-nantes')"
        )
    return db_url


def test_backup_then_verify_is_ok(migrated: str, server: Sandbox, tmp_path: Path) -> None:
    taken = backups.take(parse_target(migrated, "--db"), tmp_path)
    assert taken.file.name.endswith("_full.dump") and taken.file.parent == tmp_path
    meta = json.loads(taken.sidecar.read_text())
    assert meta["kind"] == "full" and meta["format"] == "custom" and meta["migration_version"] == "029"
    assert meta["row_counts"]["organizations"] == 2 and meta["row_counts"]["qualiopi_indicators"] == 32
    assert meta["bytes"] == taken.file.stat().st_size and len(meta["sha256"]) == 64
    assert meta["server_version"] and meta["pg_dump_version"] and meta["duration_ms"] >= 0
    assert stat.S_IMODE(taken.file.stat().st_mode) == 0o600
    assert stat.S_IMODE(taken.sidecar.stat().st_mode) == 0o600
    result = backups.verify(taken.file, server)
    assert (result.ok, result.differences, result.missing) == (True, [], [])
    assert json.loads(taken.sidecar.read_text())["verified"]["ok"] is True
    listed = backups.listing(tmp_path)
    assert [b.file for b in listed] == [taken.file] and listed[0].meta["verified"]["ok"]


@pytest.mark.parametrize("fmt", ["plain", "directory"])
def test_schema_only_and_other_formats_verify(
    migrated: str, server: Sandbox, tmp_path: Path, fmt: str
) -> None:
    taken = backups.take(parse_target(migrated, "--db"), tmp_path, schema_only=True, fmt=fmt)  # type: ignore[arg-type]
    assert taken.meta["kind"] == "schema" and taken.meta["row_counts"] == {}
    if fmt == "directory":
        assert taken.file.is_dir() and stat.S_IMODE(taken.file.stat().st_mode) == 0o700
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in taken.file.iterdir())
    assert backups.verify(taken.file, server).ok


def test_diff_reports_what_changed_after_the_backup(migrated: str, tmp_path: Path) -> None:
    taken = backups.take(parse_target(migrated, "--db"), tmp_path)
    assert commands.backup_diff(file=taken.file, target=migrated) == []
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("ALTER TABLE users ADD COLUMN nickname text")
        conn.execute("DROP INDEX idx_messages_conversation_id")
        conn.execute("DELETE FROM organizations WHERE slug = 'cb-nantes'")
    assert commands.backup_diff(file=taken.file, target=migrated) == [
        "column users.nickname: in the database, not in the backup",
        "index idx_messages_conversation_id: in the backup, not in the database",
        "table audit_logs: 2 row(s) in the backup, 3 now",  # the audit trigger logged the delete
        "table organizations: 2 row(s) in the backup, 1 now",
    ]


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_damaged_dump_fails_verify(migrated: str, server: Sandbox, tmp_path: Path, damage: str) -> None:
    taken = backups.take(parse_target(migrated, "--db"), tmp_path)
    data = taken.file.read_bytes()
    if damage == "truncate":
        taken.file.write_bytes(data[: len(data) // 2])
    else:
        taken.file.write_bytes(data[:1000] + bytes(b ^ 0xFF for b in data[1000:1100]) + data[1100:])
    result = backups.verify(taken.file, server)
    assert not result.ok
    assert len(result.differences) == 1
    assert result.differences[0].startswith(f"{taken.file.name} changed since it was taken: SHA-256 ")
    assert result.differences[0].endswith("(truncated or corrupted); it cannot be trusted")
    with pytest.raises(RefusedError, match="does not match its recorded SHA-256"):
        backups.restore(taken.file, parse_target(migrated, "--db"), clean=True)


def test_dump_without_sidecar_or_file(tmp_path: Path, server: Sandbox) -> None:
    lonely = tmp_path / "x_full.dump"
    lonely.write_bytes(b"PGDMP")
    with pytest.raises(InputError, match=r"has no sidecar x_full\.dump\.json: verify compares against it"):
        backups.verify(lonely, server)
    with pytest.raises(InputError, match="does not exist; pass a backup file"):
        backups.verify(tmp_path / "missing.dump", server)


def test_unwritable_directory_fails_before_pg_dump(
    migrated: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_process(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("pg_dump must not start")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a directory")
    with pytest.raises(InputError, match=r"backup directory .*a-file is not writable \(.*\); pass out=DIR"):
        backups.take(parse_target(migrated, "--db"), in_the_way)
    with pytest.raises(InputError, match="is not writable"):
        backups.take(parse_target(migrated, "--db"), Path("/proc/bilantools-backups"))
    assert in_the_way.read_text() == "not a directory"


def test_failed_dump_leaves_nothing(migrated: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = dump_process.run

    def broken(target: Any, args: list[str], partial: Path, progress: Any, during: Any) -> str | None:
        return real(
            target, [*args, "--table", "no_such_table_anywhere", "--strict-names"], partial, progress, during
        )

    monkeypatch.setattr(dump_process, "run", broken)
    with pytest.raises(
        dump_process.BackupError, match=r"pg_dump failed: .*no_such_table_anywhere.*nothing was kept"
    ):
        backups.take(parse_target(migrated, "--db"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_restore_refuses_a_non_empty_target_unless_clean(
    migrated: str, server: Sandbox, tmp_path: Path
) -> None:
    taken = backups.take(parse_target(migrated, "--db"), tmp_path)
    empty = parse_target(server.new_db("restore_" + os.urandom(3).hex()), "--db")
    assert backups.restore(taken.file, empty) == []
    with empty.connect() as conn:
        assert backups.compare(taken, conn) == []
    with pytest.raises(RefusedError, match=r"is not empty .* pass clean=True to drop and replace"):
        backups.restore(taken.file, empty)
    with psycopg.connect(empty.conninfo, autocommit=True) as conn:
        conn.execute("DELETE FROM organizations")
    backups.restore(taken.file, empty, clean=True)
    with empty.connect() as conn:
        assert backups.compare(taken, conn) == []


def test_list_and_prune(migrated: str, tmp_path: Path) -> None:
    target = parse_target(migrated, "--db")
    taken = []
    for _ in range(3):
        taken.append(backups.take(target, tmp_path, schema_only=True))
        time.sleep(1.1)  # file names carry the second
    assert [b.file for b in backups.listing(tmp_path)] == [t.file for t in reversed(taken)]
    removed = backups.prune(tmp_path, keep=1)
    assert removed == [taken[1].file, taken[0].file]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([taken[2].file.name, taken[2].sidecar.name])


def test_cli_backup_commands(cli: Any, migrated: str, tmp_path: Path) -> None:
    out = str(tmp_path / "b")
    r = cli("--db", migrated, "backup", "--out", out, "--json")
    assert r.code == 0
    data = json.loads(r.out)
    assert {"file", "sidecar", "sha256", "bytes"} <= set(data) and Path(data["file"]).exists()
    r = cli("backup", "--out", out, "list")
    assert r.code == 0 and "full  manual" in r.out and r.out.strip().endswith(f"1 backup(s) in {out}")
    r = cli("--db", migrated, "backup", "diff", data["file"])
    assert (r.code, r.out.strip()) == (0, "no difference")
    r = cli("backup", "--out", out, "prune", "--keep", "1")
    assert r.code == 0 and r.out.strip() == "0 backup(s) removed, 1 kept"
    r = cli("backup", "--out", out, "prune", "--keep", "0")
    assert r.code == 2


@pytest.fixture
def app_url(db_url: str) -> str:
    """The test database owned by a role that logs in with a password."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'bt_backup'").fetchone():
            conn.execute(f"CREATE ROLE bt_backup LOGIN PASSWORD '{PASSWORD}'")
        conn.execute(f'ALTER DATABASE "{conn.info.dbname}" OWNER TO bt_backup')
        conn.execute("GRANT ALL ON SCHEMA public TO bt_backup")
    url = db_url.replace("postgres@", f"bt_backup:{PASSWORD}@")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE guarded (id int)")
    return url


def test_password_is_in_no_argv_and_no_output(cli: Any, app_url: str, db_url: str, tmp_path: Path) -> None:
    """Hold a lock pg_dump needs, look at every process's argv while it waits, then let it go.

    Schema-only: its fingerprint reads only the catalog, so the dump itself is what waits."""
    seen: list[str] = []
    found_dump = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not found_dump.is_set():
            for proc in Path("/proc").iterdir():
                try:
                    argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                seen.append(argv)
                if "pg_dump" in argv and "--snapshot" in argv:
                    found_dump.set()
            time.sleep(0.05)

    with psycopg.connect(db_url) as locker:
        locker.execute("LOCK TABLE guarded IN ACCESS EXCLUSIVE MODE")
        watcher = threading.Thread(target=watch)
        watcher.start()
        result: dict[str, Any] = {}
        runner = threading.Thread(
            target=lambda: result.update(
                r=cli("--db", app_url, "backup", "--schema-only", "--out", str(tmp_path))
            )
        )
        runner.start()
        watcher.join()
        locker.rollback()
    runner.join(timeout=60)
    assert found_dump.is_set(), "pg_dump was never seen running"
    assert not [argv for argv in seen if PASSWORD in argv]
    r = result["r"]
    assert r.code == 0 and PASSWORD not in r.out + r.err
    for path in tmp_path.iterdir():
        if path.suffix == ".json":
            assert PASSWORD not in path.read_text()


def test_apply_backs_up_other_targets_first(
    migrated: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, basic: Path
) -> None:
    """A target that is not the sandbox gets a full backup before the first change."""
    monkeypatch.setenv("BILANTOOLS_HOME", str(tmp_path / "elsewhere"))
    fresh = migrated.rsplit("/", 1)[0] + "/" + _clone_empty(migrated)
    result = commands.apply(
        target=fresh, project=basic, options=commands.RunOptions(backup_dir=tmp_path / "auto")
    )
    assert result.backup is not None and Path(result.backup).exists()
    with psycopg.connect(fresh) as conn:
        rows = conn.execute("SELECT DISTINCT backup FROM schema_migration_events").fetchall()
    assert rows == [(result.backup,)]
    nothing = commands.rollback(target=fresh, project=basic, options=commands.RunOptions(backup=False))
    assert nothing.backup is None


def _clone_empty(url: str) -> str:
    name = "auto_" + os.urandom(3).hex()
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


@pytest.fixture(scope="module")
def pg15() -> Iterator[Sandbox]:
    """A PostgreSQL 15 server from Debian's binaries, next to the PostgreSQL 18 test server."""
    home = Path(tempfile.mkdtemp(prefix="bilantools-test-pg15-"))
    box = Sandbox(home, pg_bin="/usr/lib/postgresql/15/bin")
    try:
        box.start()
        yield box
    finally:
        box.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.needs_system_pg15
def test_backup_of_pg15_restores_into_pg18(pg15: Sandbox, server: Sandbox, tmp_path: Path) -> None:
    source = pg15.new_db("cross_version")
    commands.apply(
        target=source, project=MIGRATIONS, options=commands.RunOptions(backup=False)
    )  # not into ./backups of the checkout
    with psycopg.connect(source, autocommit=True) as conn:
        assert conn.info.server_version // 10000 == 15
        conn.execute("INSERT INTO organizations (name, slug) VALUES ('Centre 15', 'c15')")
    taken = backups.take(parse_target(source, "--db"), tmp_path)
    assert taken.meta["server_version"].startswith("15")
    with psycopg.connect(server.url("postgres")) as conn:
        target_major = conn.info.server_version // 10000
    result = backups.verify(taken.file, server)
    assert result.ok, result.differences
    assert target_major >= 15


def test_cli_restore_and_verify(cli: Any, migrated: str, server: Sandbox, tmp_path: Path) -> None:
    taken = backups.take(parse_target(migrated, "--db"), tmp_path)
    empty = server.new_db("cli_restore_" + os.urandom(3).hex())
    r = cli("--db", empty, "restore", str(taken.file), "--yes")
    assert r.code == 0 and r.err.splitlines()[0].startswith(f"target: {empty}")
    assert r.out.strip() == f"restored {taken.file} into {empty}"
    r = cli("--db", empty, "restore", str(taken.file), "--yes")
    assert r.code == 2 and "is not empty" in r.err and "pass --clean" in r.err
    r = cli("backup", "verify", str(taken.file), "--json")
    assert r.code == 0 and json.loads(r.out) == {
        "file": str(taken.file),
        "ok": True,
        "differences": [],
        "missing": [],
    }
