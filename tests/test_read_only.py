"""Read-only commands start nothing they would leave behind (issue 18, item 5).

A command checks its migrations directory before it resolves its target, so a directory
without `migrations/` fails with one line and no `.bilantools/`, no server. A read-only
command given no --db and no DATABASE_URL uses the sandbox only if it runs, and the
scratch server verify and drift build their reference on is stopped again when they
started it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from bilantools.db.sandbox import Sandbox

READ_ONLY = ("status", "plan", "validate", "verify", "drift", "detect")
NO_DATABASE = (
    "error: no database to read: pass --db URL (or set DATABASE_URL), or start the sandbox with "
    "'bilantools sandbox start' (a read-only command starts no server it would leave running)"
)


@pytest.fixture
def empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory without migrations/, whose sandbox would be ./.bilantools."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("BILANTOOLS_HOME", raising=False)
    return work


def assert_nothing_started(work: Path) -> None:
    """No .bilantools/ in the directory, hence no server (its pid file would be there)."""
    assert not (work / ".bilantools").exists()
    assert Sandbox(work / ".bilantools").running() is None


@pytest.mark.parametrize(
    "command", [*([c] for c in READ_ONLY), ["apply"], ["rollback"], ["baseline", "--to", "1"], ["repair"]]
)
def test_no_migrations_directory_fails_before_anything_starts(
    cli: Any, empty_dir: Path, command: list[str]
) -> None:
    r = cli(*command)
    assert r.code == 2
    assert r.err.strip() == (
        "error: migrations directory migrations does not exist; pass --migrations DIR (default ./migrations)"
    )
    assert_nothing_started(empty_dir)


@pytest.mark.parametrize("command", [["status"], ["plan"], ["inspect", "tables"], ["stats"], ["fingerprint"]])
def test_read_only_command_never_starts_the_sandbox(
    cli: Any, empty_dir: Path, basic: Path, command: list[str]
) -> None:
    r = cli("--migrations", str(basic), *command)
    assert (r.code, r.out, r.err.strip()) == (2, "", NO_DATABASE)
    assert_nothing_started(empty_dir)


def test_read_only_command_uses_a_running_sandbox(
    cli: Any, db_url: str, basic: Path, server: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sandbox that runs (this session's server, its BILANTOOLS_HOME) is the target."""
    monkeypatch.setenv("BILANTOOLS_HOME", str(server.home))
    r = cli("--migrations", str(basic), "status")
    assert r.code == 0 and "(sandbox, from sandbox)" in r.err.splitlines()[0]


def test_verify_stops_the_scratch_server_it_started(
    cli: Any, db_url: str, basic: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify of another database builds its reference on the sandbox: started for it,
    stopped after it. Its home is not under tmp_path, which pytest runs of other
    checkouts may delete while the server runs (as the session server's is not)."""
    assert cli("--db", db_url, "--migrations", str(basic), "apply", "--yes").code == 0
    home = Path(tempfile.mkdtemp(prefix="bilantools-test-scratch-"))
    monkeypatch.setenv("BILANTOOLS_HOME", str(home))
    try:
        r = cli("--db", db_url, "--migrations", str(basic), "verify")
        assert r.code == 0, r.err
        assert (home / f"pg{Sandbox(home).major()}" / "data" / "PG_VERSION").is_file()  # it did start
        assert Sandbox(home).running() is None
    finally:
        Sandbox(home).stop()
        shutil.rmtree(home, ignore_errors=True)
