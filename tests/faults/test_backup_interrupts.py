"""Ctrl-C at every moment of a backup, in process and deterministically.

Python raises the KeyboardInterrupt of a SIGINT at whatever bytecode the main thread runs
next, so every moment of `backup.take` where it would skip a cleanup leaves something:
pg_dump running (and the CLI, which waits for its reader threads at exit, never ends
while pg_dump waits on a lock), a passfile, a partial dump, a dump without its sidecar.
Each case sends a real SIGINT at one moment (`signal.raise_signal` from a wrapper around
the step, or `pthread_kill` of the main thread while it waits on the server), with a
table locked so that a pg_dump left running waits for ever; then: KeyboardInterrupt out
of `take` within seconds, no pg_dump process, no thread of the backup alive, nothing in
TMPDIR or in the backup directory, no session of the role left once the lock is free.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands
from bilantools.db import dump_files, dump_process
from bilantools.db.sandbox import Sandbox
from bilantools.db.scratch import HELD, Stopped, held, stop_on_signals
from tests.conftest import FIXTURES
from tests.faults.conftest import Figures, Role

PASSWORD = "Ctrl:c\\pw@ %x"


@dataclass(frozen=True)
class Moment:
    locked: str | None  # the table another session holds: pg_dump (and maybe we) wait on it
    password_in_url: bool = True  # else PGPASSWORD: pg_dump does not need the passfile
    schema_only: bool = False  # no row counts, which would wait on the lock too


MOMENTS = {
    "making the passfile's directory": Moment("people"),
    # the password from PGPASSWORD: a pg_dump left running would not fail for want of
    # the passfile the unwinding removes, it would wait on the lock for ever
    "starting pg_dump": Moment("people", password_in_url=False),
    "starting the copier": Moment("people", password_in_url=False),
    "reading in the dump's snapshot": Moment("people"),  # the moment of the CLI test
    "waiting for pg_dump": Moment("quiet", schema_only=True),  # our reading is done
    "removing the passfile": Moment(None),
    "naming the finished dump": Moment(None),
}


def ctrl_c() -> None:
    """A real SIGINT to this process, handled by the main thread at its next bytecode."""
    signal.raise_signal(signal.SIGINT)


@pytest.fixture
def interruptible() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt here, even when the test run itself ignores it
    (a `make test &` of a script)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def sessions(server: Sandbox, role: Role) -> list[tuple[Any, ...]]:
    """The role's sessions as (application, state, wait event type)."""
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        return conn.execute(
            "SELECT application_name, state, wait_event_type FROM pg_stat_activity WHERE usename = %s",
            (role.name,),
        ).fetchall()


def sessions_after(server: Sandbox, role: Role, timeout: float = 10) -> list[tuple[Any, ...]]:
    """The role's sessions still there after up to `timeout` s (a backend ends a moment
    after its client)."""
    deadline = time.monotonic() + timeout
    while (left := sessions(server, role)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def our_pg_dumps() -> list[int]:
    """The pg_dump processes this process started that still run. (A killed pg_dump's
    session waits on the lock until the lock is free: a backend waiting on a lock does
    not look at its client. The process tells.)"""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
        except OSError:
            continue
        command, fields = rest.rsplit(") ", 1)
        state, parent = fields.split()[:2]
        if command == "pg_dump" and int(parent) == os.getpid() and state != "Z":
            found.append(int(pid))
    return found


class Watcher:
    """Sends SIGINT to the main thread once bilantools' own session (reading in the dump's
    snapshot) and pg_dump's both wait on the locked table. Should the main thread not
    raise within `patience` s (or that moment never come), it frees the lock: the test
    then fails instead of hanging."""

    def __init__(self, server: Sandbox, role: Role, locker: psycopg.Connection, patience: float = 20) -> None:
        self.server, self.role, self.locker, self.patience = server, role, locker, patience
        self.sent: float | None = None
        self.raised = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        deadline = time.monotonic() + 30
        main = threading.main_thread().ident
        assert main is not None
        while time.monotonic() < deadline and self.sent is None and not self.raised.is_set():
            waiting = {s[0] for s in sessions(self.server, self.role) if s[2] == "Lock"}
            if {"bilantools backup", "pg_dump"} <= waiting:
                self.sent = time.monotonic()
                signal.pthread_kill(main, signal.SIGINT)
            else:
                time.sleep(0.05)
        if not self.raised.wait(self.patience):
            with contextlib.suppress(psycopg.Error):
                self.locker.execute("ROLLBACK")


def trigger(
    moment: str, monkeypatch: pytest.MonkeyPatch, scratch: Path, pg_dump_waits: Callable[[], None]
) -> Callable[[int], None] | None:
    """Arrange the SIGINT of `moment`; the progress hook of the backup when it is the one.
    Right after pg_dump started, the SIGINT waits until pg_dump waits on the lock: else
    the unwinding would close the exported snapshot before pg_dump took it, and pg_dump
    would fail on its own (a main thread slowed down there by a busy machine does not
    have that luck)."""
    if moment == "making the passfile's directory":  # made, not yet known to the caller
        mkdtemp = tempfile.mkdtemp

        def made(*args: Any, **kwargs: Any) -> Any:
            path = mkdtemp(*args, **kwargs)
            ctrl_c()
            return path

        monkeypatch.setattr(tempfile, "mkdtemp", made)
    elif moment == "starting pg_dump":  # started, not yet known to the caller
        popen = subprocess.Popen

        def started(*args: Any, **kwargs: Any) -> Any:
            process = popen(*args, **kwargs)
            if "--snapshot" in args[0]:
                pg_dump_waits()
                ctrl_c()
            return process

        monkeypatch.setattr(subprocess, "Popen", started)
    elif moment == "starting the copier":
        start = threading.Thread.start

        def starting(thread: threading.Thread) -> None:
            start(thread)
            if getattr(thread, "_target", None) is dump_process.copy:
                pg_dump_waits()
                ctrl_c()

        monkeypatch.setattr(threading.Thread, "start", starting)
    elif moment == "waiting for pg_dump":
        return lambda written: ctrl_c()
    elif moment == "removing the passfile":  # at the very end of a backup that went well
        rmtree = shutil.rmtree

        def removing(path: Any, *args: Any, **kwargs: Any) -> None:
            if Path(path).parent == scratch:
                ctrl_c()
            rmtree(path, *args, **kwargs)

        monkeypatch.setattr(shutil, "rmtree", removing)
    elif moment == "naming the finished dump":
        sync = dump_files.sync_directory

        def syncing(directory: Path) -> None:
            ctrl_c()
            sync(directory)

        monkeypatch.setattr(dump_files, "sync_directory", syncing)
    return None


@pytest.mark.usefixtures("interruptible")
@pytest.mark.parametrize("moment", list(MOMENTS))
def test_ctrl_c_at_any_moment_of_a_backup_leaves_nothing(
    moment: str,
    server: Sandbox,
    db_url: str,
    make_role: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    figures: Figures,
) -> None:
    case = MOMENTS[moment]
    role: Role = make_role(PASSWORD)
    dbname = db_url.rsplit("/", 1)[1]
    url = role.url(dbname)  # the role owns the tables: pg_dump may read them
    commands.apply(
        target=url,
        project=shutil.copytree(FIXTURES / "basic", tmp_path / "migrations"),
        options=commands.RunOptions(backup=False),
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE quiet (x int)")  # pg_dump locks it, our reading does not
    if not case.password_in_url:
        monkeypatch.setenv("PGPASSWORD", PASSWORD)
        running = server.running()
        assert running is not None
        url = f"postgresql://{role.name}@127.0.0.1:{running.port}/{dbname}"
    scratch, out = tmp_path / "tmp", tmp_path / "bk"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    locker = psycopg.connect(server.url(dbname), autocommit=True)
    watcher = Watcher(server, role, locker)
    if moment == "reading in the dump's snapshot":
        watcher.thread.start()
    baseline = set(threading.enumerate())

    def pg_dump_waits() -> None:
        deadline = time.monotonic() + 30
        while ("pg_dump", "active", "Lock") not in sessions(server, role) and time.monotonic() < deadline:
            time.sleep(0.05)

    progress = trigger(moment, monkeypatch, scratch, pg_dump_waits)
    try:
        if case.locked:  # a pg_dump left running waits for ever
            locker.execute("BEGIN")
            locker.execute(f"LOCK TABLE {case.locked} IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            commands.backup(target=url, out=out, schema_only=case.schema_only, progress=progress)
        elapsed = time.monotonic() - (watcher.sent or started)
        watcher.raised.set()
        monkeypatch.undo()  # the real rmtree, Popen... from here on
        time.sleep(0.2)  # a thread whose pg_dump was killed but that was not joined ends meanwhile
        threads = [t.name for t in threading.enumerate() if t not in baseline and t.is_alive()]
        dumping = our_pg_dumps()
        files = sorted(p.relative_to(tmp_path).as_posix() for p in [*scratch.rglob("*"), *out.rglob("*")])
    finally:
        watcher.raised.set()
        with contextlib.suppress(psycopg.Error):
            locker.execute("ROLLBACK")
        locker.close()
    assert dumping == [], f"pg_dump still runs after Ctrl-C while {moment}"
    assert threads == [], f"the backup's threads still run after Ctrl-C while {moment}"
    assert files == [], f"Ctrl-C while {moment} left {files}"
    assert elapsed < 10, f"take() raised {elapsed:.1f} s after Ctrl-C while {moment}"
    assert sessions_after(server, role) == [], "a session of the backup outlived it"
    figures.add("interrupts: moments of a backup Ctrl-C was sent at (in process)", 1)


# -- held: the steps a signal must not cut in two ------------------------------------------------------
@pytest.mark.usefixtures("interruptible")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_inside_held_is_raised_once_the_block_is_done(signum: signal.Signals) -> None:
    before = {s: signal.getsignal(s) for s in HELD}
    done = []
    expected = KeyboardInterrupt if signum == signal.SIGINT else Stopped
    with stop_on_signals(), pytest.raises(expected) as raised, held():
        signal.raise_signal(signum)
        done.append("the rest of the block")
    assert done == ["the rest of the block"]
    if isinstance(raised.value, Stopped):
        assert raised.value.signum == signum
    assert {s: signal.getsignal(s) for s in HELD} == before


@pytest.mark.usefixtures("interruptible")
def test_held_leaves_an_ignored_signal_ignored() -> None:
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with stop_on_signals(), held():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN  # nohup: the run goes on
            signal.raise_signal(signal.SIGHUP)
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)
