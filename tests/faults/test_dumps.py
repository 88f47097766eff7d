"""pg_dump, pg_restore and psql under faults: passwords given every way libpq knows, a
signal in the middle of a dump, a full disk.

The real CLI runs as a subprocess against a role that logs in with its password (the
test server trusts only ``postgres`` on loopback), with TMPDIR and HOME in the test's
temporary directory, so that every file it leaves behind is seen.

* every way of giving the password (in the URL, PGPASSWORD, PGPASSFILE, ~/.pgpass)
  works for every command that runs a client program: backup in the three formats,
  apply's and rollback's automatic backup, backup verify, restore (pg_restore and psql);
* SIGTERM, SIGINT or SIGHUP while pg_dump waits on a lock: the CLI exits in bounded time
  with the signal's exit code; no passfile, no partial dump, the password in no file,
  and pg_dump does not outlive it;
* a backup directory on a full disk (a small tmpfs): the CLI fails in bounded time with
  one line naming the directory and the fix, exit 2; no partial file, no passfile, no
  session left idle in transaction, and the migration lock is free for the next apply.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from bilantools import commands
from bilantools.db.sandbox import Sandbox
from tests.conftest import FIXTURES
from tests.faults.conftest import Figures, Role
from tests.faults.harness import as_from_a_terminal

CLI = str(Path(sys.executable).with_name("bilantools"))
# ':' and '\' must be escaped in a passfile, '@', '%' and ' ' percent-encoded in a URL
PASSWORD = "Dump:pw\\9@x y%Secret"
WAYS = ["url", "PGPASSWORD", "PGPASSFILE", "~/.pgpass"]


class Work:
    """One test's directories, its role and the CLI runs."""

    def __init__(self, server: Sandbox, root: Path, role: Role, dbname: str) -> None:
        self.server = server
        self.root = root
        self.role = role
        self.dbname = dbname
        self.tmp = root / "tmp"  # TMPDIR of every run: the passfiles land here
        self.home = root / "home"  # HOME of every run: ~/.pgpass
        self.outside = root / "outside"  # a BILANTOOLS_HOME without a sandbox: a "real" server
        self.migrations = root / "migrations"
        for directory in (self.tmp, self.home, self.outside):
            directory.mkdir(parents=True)
        shutil.copytree(FIXTURES / "basic", self.migrations)
        running = server.running()
        assert running is not None
        self.port = running.port
        self.env: dict[str, str] = {
            k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"
        }
        self.env.update(TMPDIR=str(self.tmp), HOME=str(self.home), TQDM_DISABLE="1")
        self.way = "url"

    def give_password(self, way: str) -> None:
        """Make the password reachable the `way` libpq looks for it."""
        self.way = way
        line = f"127.0.0.1:{self.port}:*:{self.role.name}:"
        line += self.role.password.replace("\\", "\\\\").replace(":", "\\:") + "\n"
        if way == "PGPASSWORD":
            self.env["PGPASSWORD"] = self.role.password
        elif way in ("PGPASSFILE", "~/.pgpass"):
            secrets = self.root / "secrets"
            secrets.mkdir(mode=0o700)
            passfile = secrets / "passfile" if way == "PGPASSFILE" else self.home / ".pgpass"
            passfile.write_text(line)
            passfile.chmod(0o600)
            if way == "PGPASSFILE":
                self.env["PGPASSFILE"] = str(passfile)

    def url(self, dbname: str | None = None) -> str:
        """The database's URL, with the password only when that is the way it is given."""
        name = dbname or self.dbname
        if self.way == "url":
            return self.role.url(name)
        return f"postgresql://{self.role.name}@127.0.0.1:{self.port}/{name}"

    def command(self, *args: str, url: str | None = None, outside: bool = False) -> list[str]:
        self.env["BILANTOOLS_HOME"] = str(self.outside if outside else self.server.home)
        return [CLI, "--db", url or self.url(), "--migrations", str(self.migrations), *args]

    def run(
        self, *args: str, url: str | None = None, outside: bool = False, expect: int = 0, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the CLI to its end; `outside`: as for a database that is not the sandbox."""
        done = subprocess.run(
            self.command(*args, url=url, outside=outside),
            env=dict(self.env),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        where = f"bilantools {' '.join(args)} (password by {self.way})"
        assert done.returncode == expect, f"{where}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, f"{where}:\n{done.stderr}"
        assert not leaks(done.stdout + done.stderr), f"{where} printed the password"
        return done

    def leftovers(self) -> list[Path]:
        """What the runs left in TMPDIR."""
        return sorted(self.tmp.rglob("*"))

    def sessions(self, where: str = "true") -> list[tuple[Any, ...]]:
        """The role's sessions on the server (pg_dump's and bilantools'), as (application,
        state, wait event type) rows."""
        with psycopg.connect(self.server.url("postgres"), autocommit=True) as conn:
            query = sql.SQL(
                "SELECT application_name, state, wait_event_type FROM pg_stat_activity"
                " WHERE usename = %s AND pid <> pg_backend_pid() AND {}"
            ).format(sql.SQL(where))
            return conn.execute(query, (self.role.name,)).fetchall()

    def no_sessions_left(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while self.sessions() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not self.sessions(), self.sessions()


def spellings(secret: str) -> set[str]:
    from urllib.parse import quote

    escaped = secret.replace("\\", "\\\\")
    return {secret, quote(secret, safe=""), escaped, escaped.replace(":", "\\:"), json.dumps(secret)[1:-1]}


def leaks(text: str) -> bool:
    return any(form in text for form in spellings(PASSWORD))


def password_in_files(root: Path, given: tuple[Path, ...] = ()) -> list[Path]:
    """The files under `root` that hold the password, but the passfiles the test `given`."""
    found = []
    for path in root.rglob("*"):
        if path not in given and path.is_file() and leaks(path.read_bytes().decode("latin-1")):
            found.append(path)
    return found


@pytest.fixture
def work(server: Sandbox, db_url: str, make_role: Any, tmp_path: Path) -> Work:
    role: Role = make_role(PASSWORD)
    return Work(server, tmp_path / "work", role, db_url.rsplit("/", 1)[1])


# -- every way of giving the password, every client program ---------------------------------------
@pytest.mark.parametrize("way", WAYS)
def test_every_way_of_giving_the_password(way: str, work: Work, figures: Figures) -> None:
    """backup (custom, plain, directory), apply's and rollback's automatic backups, backup
    verify of a custom and a plain dump, restore with pg_restore and with psql, --clean:
    each run of pg_dump, pg_restore and psql finds the password where libpq finds it for
    bilantools itself."""
    work.give_password(way)
    restore_custom, restore_plain = work.role.new_db(), work.role.new_db()
    assert "3 pending" in work.run("status").stdout
    applied = json.loads(work.run("apply", "--yes", "--to", "002", "--json", outside=True).stdout)
    assert applied["ok"] and applied["backup"] and Path(applied["backup"]).exists()
    runs = 1
    taken = {}
    for fmt in ("custom", "plain", "directory"):
        done = work.run("backup", "--out", "bk", "--format", fmt, "--json")
        taken[fmt] = json.loads(done.stdout)["file"]
        runs += 1
    for fmt in ("custom", "plain"):
        assert work.run("backup", "verify", taken[fmt]).stdout.strip().endswith(": OK")
    restored = work.run("restore", taken["custom"], "--yes", url=work.url(restore_custom), outside=True)
    assert "restored" in restored.stdout
    work.run("restore", taken["custom"], "--clean", "--yes", url=work.url(restore_custom), outside=True)
    assert (
        "restored"
        in work.run("restore", taken["plain"], "--yes", url=work.url(restore_plain), outside=True).stdout
    )
    for dbname in (restore_custom, restore_plain):
        assert "people" in work.run("inspect", "tables", url=work.url(dbname)).stdout
    rolled = json.loads(work.run("rollback", "--yes", "--json", outside=True).stdout)
    assert rolled["ok"] and rolled["backup"] and Path(rolled["backup"]).exists()
    assert work.leftovers() == [], "a temporary file was left behind"
    assert (
        password_in_files(work.root, given=(work.root / "secrets" / "passfile", work.home / ".pgpass")) == []
    )
    figures.add("client programs: password ways x commands checked", 11)


# -- a signal in the middle of a dump -----------------------------------------------------------------
EXPECTED = {
    signal.SIGTERM: (143, "error: stopped by SIGTERM"),
    signal.SIGHUP: (129, "error: stopped by SIGHUP"),
    signal.SIGINT: (130, "aborted"),
}
APPLY_INTERRUPTED = "error: interrupted (Ctrl-C) before any change: nothing was changed; run apply again"
SIGNAL_CASES = [
    *[pytest.param("backup", s, False, id=s.name) for s in EXPECTED],
    # `make test &` in a script: the test run ignores SIGINT; nohup: SIGHUP. The CLI is
    # still started as from a terminal, and still stops.
    *[
        pytest.param("backup", s, True, id=f"{s.name}-test-run-ignoring-it")
        for s in (signal.SIGINT, signal.SIGHUP)
    ],
    pytest.param("apply", signal.SIGINT, False, id="apply-automatic-backup-SIGINT"),
    pytest.param("apply", signal.SIGTERM, False, id="apply-automatic-backup-SIGTERM"),
]


@contextmanager
def ignoring(*signums: signal.Signals) -> Iterator[None]:
    """This process ignores `signums` meanwhile, as a job started by `cmd &` in a script
    ignores SIGINT, or by nohup SIGHUP; children inherit that."""
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def start_dump_on_a_locked_table(
    work: Work, server: Sandbox, args: list[str], outside: bool = False
) -> tuple[subprocess.Popen[str], psycopg.Connection, Path]:
    """`bilantools ARGS` started while another session holds `people` locked, once pg_dump
    waits on it with the passfile and the partial dump in place: (process, the locking
    session, the backup directory). Start it inside `as_from_a_terminal` for a CLI that
    gets the signals of a terminal."""
    bk = work.root / "bk"
    locker = psycopg.connect(server.url(work.dbname), autocommit=True)
    locker.execute("BEGIN")
    locker.execute("LOCK TABLE people IN ACCESS EXCLUSIVE MODE")
    process = subprocess.Popen(
        work.command(*args, outside=outside),
        env=dict(work.env),
        cwd=work.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        waiting = work.sessions("application_name = 'pg_dump' AND wait_event_type = 'Lock'")
        passfiles = [p for p in work.tmp.rglob("*") if "pgpass" in p.name]
        partials = [p for p in bk.glob(".*.partial")] if bk.exists() else []
        if waiting and passfiles and partials:
            return process, locker, bk
        time.sleep(0.1)
    locker.close()
    raise AssertionError(f"pg_dump never waited on the lock: {process.communicate(timeout=10)}")


@pytest.mark.parametrize(("command", "signum", "test_run_ignores_it"), SIGNAL_CASES)
def test_signal_during_a_dump_leaves_nothing(
    command: str,
    signum: signal.Signals,
    test_run_ignores_it: bool,
    work: Work,
    server: Sandbox,
    figures: Figures,
) -> None:
    """pg_dump waits on a table another session holds locked; the CLI gets the signal
    then: no passfile, no partial dump, the password in no file, and neither pg_dump nor
    bilantools' own session outlives the run. With apply, during its automatic backup
    (a database other than the sandbox): nothing was changed either."""
    if command == "apply":
        commands.apply(
            target=work.url(), project=work.migrations, options=commands.RunOptions(to="002", backup=False)
        )
        args = ["apply", "--yes", "--backup-dir", str(work.root / "bk"), "--lock-timeout", "60s"]
    else:
        commands.apply(target=work.url(), project=work.migrations, options=commands.RunOptions(backup=False))
        args = ["backup", "--out", str(work.root / "bk")]
    process: subprocess.Popen[str] | None = None
    locker: psycopg.Connection | None = None
    try:
        with ignoring(signum) if test_run_ignores_it else nullcontext(), as_from_a_terminal():
            process, locker, bk = start_dump_on_a_locked_table(work, server, args, outside=command == "apply")
        passfiles = [p for p in work.tmp.rglob("*") if "pgpass" in p.name]
        assert password_in_files(work.tmp), "the passfile holds the password (or the test sees nothing)"
        (passfile,) = passfiles
        assert passfile.parent != work.tmp and passfile.parent.parent == work.tmp, passfile
        assert (passfile.parent.stat().st_mode & 0o777, passfile.stat().st_mode & 0o777) == (0o700, 0o600)
        started = time.monotonic()
        process.send_signal(signum)
        out, err = process.communicate(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        if locker is not None:
            locker.execute("ROLLBACK")
            locker.close()
    code, line = EXPECTED[signum]
    if command == "apply" and signum == signal.SIGINT:
        line = APPLY_INTERRUPTED
    assert process.returncode == code, (process.returncode, out, err)
    assert err.strip().splitlines()[-1] == line, err
    assert work.leftovers() == [], "a passfile (or its directory) was left in TMPDIR"
    assert sorted(p.name for p in bk.iterdir()) == [], "a partial dump was left"
    assert password_in_files(work.root) == []
    work.no_sessions_left()  # the lock is free now: a session still alive would dump on
    assert elapsed < 10, f"the CLI took {elapsed:.1f} s to stop"
    if command == "apply":
        with psycopg.connect(server.url(work.dbname)) as conn:
            rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
        assert [str(v) for (v,) in rows] == ["001", "002"], "the apply changed something"
    figures.add("dumps: signals mid-dump", 1)


@pytest.mark.parametrize("command", ["backup", "apply"])
def test_signals_the_cli_was_started_ignoring_stay_ignored(
    command: str, work: Work, server: Sandbox, figures: Figures
) -> None:
    """`bilantools backup &` in a script ignores SIGINT, `nohup bilantools apply` SIGHUP,
    as POSIX programs do: a Ctrl-C at the terminal of the script, or the terminal hanging
    up, leaves the run going; it finishes with its backup and exit 0."""
    if command == "apply":
        commands.apply(
            target=work.url(), project=work.migrations, options=commands.RunOptions(to="002", backup=False)
        )
        args = ["apply", "--yes", "--backup-dir", str(work.root / "bk"), "--lock-timeout", "60s"]
    else:
        commands.apply(target=work.url(), project=work.migrations, options=commands.RunOptions(backup=False))
        args = ["backup", "--out", str(work.root / "bk")]
    process: subprocess.Popen[str] | None = None
    locker: psycopg.Connection | None = None
    try:
        with ignoring(signal.SIGINT, signal.SIGHUP):
            process, locker, bk = start_dump_on_a_locked_table(work, server, args, outside=command == "apply")
        process.send_signal(signal.SIGINT)
        process.send_signal(signal.SIGHUP)
        time.sleep(1)
        still_running = process.poll() is None
        locker.execute("ROLLBACK")
        out, err = process.communicate(timeout=60)
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        if locker is not None:
            locker.close()
    assert still_running and process.returncode == 0, (process.returncode, out, err)
    dumps = [p for p in bk.iterdir() if p.suffix == ".dump"]
    assert len(dumps) == 1 and (bk / f"{dumps[0].name}.json").exists(), sorted(bk.iterdir())
    assert work.leftovers() == [], "a passfile (or its directory) was left in TMPDIR"
    figures.add("dumps: runs started ignoring SIGINT and SIGHUP, signalled, finished", 1)


# -- a full disk -----------------------------------------------------------------------------------
@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs, unmounted afterwards (the test suite runs as root, like make test)."""
    mount = tmp_path / "full-disk"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    assert mounted.returncode == 0, f"cannot mount a tmpfs (run as root): {mounted.stderr}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)


def fill(work: Work) -> None:
    """About 2.5 MB of rows that do not compress much: more than the full disk takes."""
    with psycopg.connect(work.role.url(work.dbname), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE filler AS SELECT g, md5(random()::text) || md5(random()::text)"
            " || md5(random()::text) || md5(random()::text) AS junk FROM generate_series(1, 20000) g"
        )


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["apply", "--yes", "--backup-dir", "{full}"], id="apply-automatic-backup"),
        pytest.param(["backup", "--out", "{full}"], id="backup-custom"),
        pytest.param(["backup", "--out", "{full}", "--format", "directory"], id="backup-directory"),
    ],
)
def test_full_disk_fails_fast_and_releases_everything(
    args: list[str], work: Work, full_disk: Path, figures: Figures
) -> None:
    fill(work)
    argv = [a.format(full=full_disk) for a in args]
    started = time.monotonic()
    try:
        done = work.run(*argv, outside=True, expect=2, timeout=90)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"bilantools {' '.join(argv)} still running after 90 s on a full disk") from None
    elapsed = time.monotonic() - started
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: backup directory {full_disk} is full (No space left on "), lines
    assert lines[-1].endswith(
        ": pg_dump was stopped and nothing was kept; free space there or pass --out DIR "
        "(--backup-dir DIR with apply and rollback) elsewhere"
    ), lines[-1]
    # before the error: the target, and for apply its plan (the target is not the sandbox)
    assert all(line.startswith(("target: ", "plan: ", "  ")) for line in lines[:-1]), lines
    assert sorted(p.name for p in full_disk.iterdir()) == [], "a partial file was left"
    assert work.leftovers() == [], "a passfile was left in TMPDIR"
    work.no_sessions_left(timeout=10)  # pg_dump's, and the snapshot's idle in transaction
    # the migration lock is free: the next apply takes it (and its backup, elsewhere)
    again = work.run("apply", "--yes", "--backup-dir", "roomy", "--json", outside=True)
    assert json.loads(again.stdout)["ok"]
    figures.add("dumps: full disks", 1)
    assert elapsed < 90
