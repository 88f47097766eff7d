"""Shared helpers of the harsh fault tests (concurrency, killed runners, server crashes).

* `CliRun`: a real `bilantools` subprocess whose stdout and stderr lines are collected as
  they arrive, so a test can act (SIGKILL it, stop the server) after the N-th migration
  the CLI printed, and knows exactly what the CLI claimed before the fault.
* `as_from_a_terminal`: children get SIGINT, SIGTERM and SIGHUP as from a terminal,
  though the test run may have been started ignoring them.
* `build_references`: the schema fingerprint after each k = 0..n migrations, taken once
  per server and corpus while one in-process `apply` runs (its progress hook fires after
  each migration has committed).
* `settled`: after a fault, the database must be in the state of some k: tracking rows
  are exactly the first k migrations, all successful, and the fingerprint is reference k.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from bilantools import commands
from bilantools.db import history
from bilantools.db.fingerprint import Fingerprint, fingerprint
from bilantools.db.sandbox import Sandbox
from bilantools.errors import SandboxError
from bilantools.source.layouts.native import discover
from tests.faults.conftest import FULL

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = REPO / "migrations"
CLI = str(Path(sys.executable).parent / "bilantools")
LOCK_MESSAGE = "error: another run holds the migration lock on "
# One line per migration, printed by the CLI once the migration (or its rollback) committed.
STEP_LINE = re.compile(r"^(\d+)  \S+ +(applied|rolled back)( |$)")  # not "29 migration(s) applied"
RUNNER_SESSIONS = "application_name LIKE 'bilantools %%'"


TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _ignore(signum: int, frame: object) -> None:
    """Ignored here; unlike SIG_IGN, not handed down: exec resets a handled signal to its default."""


@contextmanager
def as_from_a_terminal() -> Iterator[None]:
    """The children started inside get SIGINT, SIGTERM and SIGHUP at their defaults, as a
    shell at a terminal starts a command, even when this test run ignores them: a shell
    without job control ignores SIGINT for the ``&`` jobs of a script (``make test &``),
    nohup ignores SIGHUP, and a child inherits what is ignored; bilantools, as POSIX
    programs do, keeps ignoring it, and a test signalling it would wait in vain. This
    process keeps ignoring them meanwhile (a handler that does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    ignored = [signum for signum in TERMINAL_SIGNALS if signal.getsignal(signum) == signal.SIG_IGN]
    for signum in ignored:
        signal.signal(signum, _ignore)
    try:
        yield
    finally:
        for signum in ignored:
            signal.signal(signum, signal.SIG_IGN)


def cli_env(home: Path) -> dict[str, str]:
    """The environment of a CLI subprocess: `home` is the sandbox of the server under test,
    so a --db URL on it counts as the sandbox (no confirmation, no automatic backup)."""
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1", "BILANTOOLS_HOME": str(home)}
    for name in ("DATABASE_URL", "BILANTOOLS_PG_BIN", "BILANTOOLS_FAULTS_SEED"):
        env.pop(name, None)
    return env


class CliRun:
    """`bilantools --db URL --migrations DIR ARGS...` running in the background."""

    def __init__(self, url: str, migrations: Path, *args: str, home: Path) -> None:
        self.args = ["--db", url, "--migrations", str(migrations), *args]
        self.started = time.monotonic()
        self.out: list[str] = []
        self.err: list[str] = []
        self.step_times: list[float] = []  # seconds after the start, one per step line
        self._changed = threading.Condition()
        self._open = 2
        with as_from_a_terminal():  # tests SIGINT it
            self.proc = subprocess.Popen(
                [CLI, *self.args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                env=cli_env(home),
            )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out, True), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: object, lines: list[str], steps: bool) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._changed:
                lines.append(line.rstrip("\n"))
                if steps and STEP_LINE.match(line):
                    self.step_times.append(time.monotonic() - self.started)
                self._changed.notify_all()
        with self._changed:
            self._open -= 1
            self._changed.notify_all()

    @property
    def steps(self) -> int:
        """How many migrations the CLI has printed as applied (or rolled back) so far."""
        with self._changed:
            return len(self.step_times)

    def step_versions(self) -> list[str]:
        with self._changed:
            return [m[1] for line in self.out if (m := STEP_LINE.match(line))]

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)

    def finish(self, timeout: float = 120) -> int:
        """Wait for the process and its output; returns the exit code (-9 when killed)."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait(timeout=10)
            raise AssertionError(f"{self} still running after {timeout:g}s; stdout {self.out}") from None
        for reader in self._readers:
            reader.join(timeout=10)
        return code

    def close(self) -> None:
        """Kill and reap it if still running (a test's finally)."""
        self.kill()
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    @property
    def last_err(self) -> str:
        lines = [line for line in self.err if line.strip()]
        return lines[-1] if lines else ""

    @property
    def last_out(self) -> str:
        lines = [line for line in self.out if line.strip()]
        return lines[-1] if lines else ""

    def __str__(self) -> str:
        return "bilantools " + " ".join(a if "://" not in a else "URL" for a in self.args)


@contextmanager
def running(*runs: CliRun) -> Iterator[None]:
    try:
        yield
    finally:
        for run in runs:
            run.close()


@contextmanager
def scratch_db(box: Sandbox, template: str | None, prefix: str = "f") -> Iterator[tuple[str, str]]:
    """A fresh database (a copy of `template`); dropped afterwards. Yields (name, URL)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    url = box.new_db(name, template=template)
    try:
        yield name, url
    finally:
        # the server may be down (a crash test failing): its data directory goes anyway
        with suppress(psycopg.OperationalError, SandboxError):
            box.drop_db(name)


def wait_runner_gone(box: Sandbox, dbname: str, timeout: float = 30) -> None:
    """Wait until no bilantools session is left on `dbname`. A killed client's backend goes
    on with what it had already received (a pipelined migration may still commit), so the
    state is read only once it has ended."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(box.url("postgres"), autocommit=True) as conn:
        while True:
            row = conn.execute(
                f"SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND {RUNNER_SESSIONS}",
                (dbname,),
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the runner's session on {dbname} is still there after {timeout}s")
            time.sleep(0.02)


class Watch:
    """A session of the test's own on the database a CLI run changes: how far the run has
    committed (success rows of schema_migrations, whatever the CLI has printed yet), and
    what the runner's session is doing. Fault moments are chosen from this."""

    def __init__(self, url: str, rollback_from: int | None = None) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.rollback_from = rollback_from  # progress counts rolled back versions from here
        self._tracked = False

    def committed(self) -> int:
        if not self._tracked:
            row = self.conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
            self._tracked = bool(row and row[0])
            if not self._tracked:
                return 0
        row = self.conn.execute("SELECT count(*) FROM schema_migrations WHERE success").fetchone()
        return int(row[0]) if row else 0

    def progress(self) -> int:
        """Migrations applied (or, for a rollback, rolled back) and committed so far."""
        done = self.committed()
        return done if self.rollback_from is None else self.rollback_from - done

    def runner_sessions(self) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            f" AND pid <> pg_backend_pid() AND {RUNNER_SESSIONS}"
        ).fetchone()
        return int(row[0]) if row else 0

    def in_write_transaction(self) -> bool:
        """Whether the runner's session is inside a transaction that has written something."""
        row = self.conn.execute(
            "SELECT coalesce(bool_or(backend_xid IS NOT NULL), false) FROM pg_stat_activity"
            f" WHERE datname = current_database() AND pid <> pg_backend_pid() AND {RUNNER_SESSIONS}"
        ).fetchone()
        return bool(row and row[0])

    def wait_connected(self, run: CliRun, timeout: float = 60) -> bool:
        """Wait until the CLI has a session on the database; False if it ended first."""
        return self._wait(run, lambda: self.runner_sessions() > 0, timeout, "a session")

    def wait_progress(self, run: CliRun, at_least: int, timeout: float = 60) -> bool:
        """Wait until `at_least` migrations are committed; False if the run ended first."""
        return self._wait(run, lambda: self.progress() >= at_least, timeout, f"{at_least} committed")

    def _wait(self, run: CliRun, done: Callable[[], bool], timeout: float, what: str) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            if run.proc.poll() is not None:
                return done()
            if time.monotonic() > deadline:
                raise AssertionError(f"{run}: not {what} after {timeout:g}s: {run.err}")
            time.sleep(0.002)
        return True

    def close(self) -> None:
        with suppress(psycopg.Error):
            self.conn.close()


@dataclass
class Corpus:
    """A migrations directory with its reference fingerprints after each k = 0..n."""

    directory: Path
    versions: list[str]
    references: list[Fingerprint]
    template: str  # a database with every migration applied (the state to roll back from)
    timings: dict[str, Timing] = field(default_factory=dict)  # per CLI action, see calibrate

    @property
    def n(self) -> int:
        return len(self.versions)


_CORPORA: dict[tuple[str, str], Corpus] = {}


def build_references(box: Sandbox, directory: Path, empty_template: str | None = None) -> Corpus:
    """Apply `directory` in-process on a fresh database one migration at a time
    (``step=1``), fingerprinting it from a session of the test's own before the first and
    after each: the reference state after every k. (A single run cannot give them: it
    sends fast migrations in batches.) The database is kept, fully applied, as the
    template of rollback rounds. Cached per server and directory."""
    key = (str(box.home), str(directory))
    if key in _CORPORA:
        return _CORPORA[key]
    versions = [m.version for m in discover(directory)]
    name = f"ref_{uuid.uuid4().hex[:12]}"
    url = box.new_db(name, template=empty_template)
    references: list[Fingerprint] = []
    applied: list[str] = []
    watch = Watch(url)
    try:
        history.ensure_tracking(watch.conn)  # as `settled` compares: tracking tables on both sides
        references.append(fingerprint(watch.conn))
        for k in range(1, len(versions) + 1):
            result = commands.apply(
                target=url, project=directory, options=commands.RunOptions(step=1, backup=False)
            )
            applied += [s.version for s in result.steps]
            assert watch.committed() == k, f"{watch.committed()} committed after step {k}"
            references.append(fingerprint(watch.conn))
    finally:
        watch.close()
    assert applied == versions, applied
    assert len(references) == len(versions) + 1
    corpus = Corpus(directory, versions, references, name)
    _CORPORA[key] = corpus
    return corpus


@dataclass(frozen=True)
class Timing:
    """How an uninterrupted run went: seconds from the start of the process to the runner's
    connection, then from the connection to the first committed migration (gaps[0]) and
    from each committed migration to the next (gaps[m])."""

    startup: float
    gaps: list[float]


def calibrate(box: Sandbox, corpus: Corpus, action: str, home: Path) -> Timing:
    """One uninterrupted CLI run (`apply`, or `rollback --to 0` from the full state), watched
    from a session of the test's own. Fault moments are drawn within its timings (timings
    choose moments, nothing asserts them)."""
    if action in corpus.timings:
        return corpus.timings[action]
    template = corpus.template if action == "rollback" else None
    args = ["apply", "--yes"] if action == "apply" else ["rollback", "--to", "0", "--yes"]
    with scratch_db(box, template, "cal") as (_, url):
        watch = Watch(url, corpus.n if action == "rollback" else None)
        run = CliRun(url, corpus.directory, *args, home=home)
        reached: dict[int, float] = {}
        with running(run):
            try:
                assert watch.wait_connected(run), run.err
                connected = time.monotonic()
                while len(reached) <= corpus.n:
                    ended = run.proc.poll() is not None
                    now, done = time.monotonic(), watch.progress()
                    for m in range(done + 1):
                        reached.setdefault(m, now)
                    if ended:
                        break
                    time.sleep(0.002)
            finally:
                watch.close()
            code = run.finish()
        assert code == 0, (run.out, run.err)
        assert run.steps == corpus.n and len(reached) == corpus.n + 1, (run.out, reached)
    times = [connected, *(reached[m] for m in range(1, corpus.n + 1))]
    gaps = [max(b - a, 0.005) for a, b in itertools.pairwise(times)]
    timing = Timing(connected - run.started, gaps)
    corpus.timings[action] = timing
    return timing


def tracking_rows(conn: psycopg.Connection) -> list[tuple[str, bool]]:
    """(version, success) of every schema_migrations row, by version number."""
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not (row and row[0]):
        return []
    rows = conn.execute("SELECT version, success FROM schema_migrations").fetchall()
    return sorted(((str(v), bool(s)) for v, s in rows), key=lambda r: (int(r[0]), r[0]))


def describe_diff(reference: Fingerprint, found: Fingerprint, limit: int = 12) -> str:
    changes = reference.diff(found)
    shown = ", ".join(f"{kind} {name} {change}" for kind, name, change in changes[:limit])
    more = f" and {len(changes) - limit} more" if len(changes) > limit else ""
    return f"{len(changes)} difference(s): {shown}{more}"


def matching_k(corpus: Corpus, found: Fingerprint) -> list[int]:
    return [k for k, ref in enumerate(corpus.references) if ref.digest == found.digest]


def settled(url: str, corpus: Corpus, context: str) -> int:
    """Assert the database is exactly in the state after some k migrations and return k:
    tracking rows are the first k migrations, all successful, nothing else, and the schema
    fingerprint (tracking tables created on both sides) is reference k."""
    with psycopg.connect(url, autocommit=True) as conn:
        history.ensure_tracking(conn)
        rows = tracking_rows(conn)
        found = fingerprint(conn)
    k = sum(1 for _, success in rows if success)
    expected = [(v, True) for v in corpus.versions[:k]]
    assert rows == expected, f"{context}: tracking rows {rows} are not the first {k} migrations"
    reference = corpus.references[k]
    assert found.digest == reference.digest, (
        f"{context}: tracking says {k} applied but the schema is not the one after {k} migrations "
        f"(it matches k = {matching_k(corpus, found)}): {describe_diff(reference, found)}"
    )
    return k


def assert_complete(url: str, corpus: Corpus, context: str) -> None:
    """Status: every migration applied; fingerprint: the full reference."""
    status = commands.status(target=url, project=corpus.directory)
    states = [(m.version, m.state) for m in status.migrations]
    assert states == [(v, "applied") for v in corpus.versions], f"{context}: status {states}"
    assert settled(url, corpus, context) == corpus.n


def immediate_stop(box: Sandbox, timeout: float = 60) -> None:
    """`pg_ctl stop -m immediate` on the sandbox's data directory, as the directory's owner
    (the server's user when we are root): every backend dies at once, no checkpoint."""
    found = box.running()
    assert found is not None, "the crash server is not running"
    bin_dir = Path((found.data_dir.parent / "bin").read_text().strip())
    owner = found.data_dir.stat()
    as_owner = os.geteuid() == 0 and owner.st_uid != 0
    result = subprocess.run(
        [str(bin_dir / "pg_ctl"), "-D", str(found.data_dir), "-m", "immediate", "-w", "-t", "60", "stop"],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        user=owner.st_uid if as_owner else None,
        group=owner.st_gid if as_owner else None,
        extra_groups=[] if as_owner else None,
        cwd="/" if as_owner else None,
    )
    assert result.returncode == 0, f"pg_ctl stop -m immediate failed: {result.stderr.strip()}"


def seeded(name: str, fixed: Sequence[int]) -> list[tuple[int, Callable[[str], str]]]:
    """The seeds of a random fault test, each with a function that tags messages with it.

    `BILANTOOLS_FAULTS_SEED=N` replays one run's choices, at either scale. Otherwise `make
    test` (the fast scale) uses `fixed`, the seeds committed in the test module (every seed
    that ever failed is added there), so it makes the same choices on every run; only
    `make faults` (BILANTOOLS_FAULTS=full) draws a new random seed. Each is printed.
    (A seed fixes the choices, not the timing: the engine must be right wherever a fault
    lands.)"""
    given = os.environ.get("BILANTOOLS_FAULTS_SEED")
    if given:
        chosen = [int(given)]
    elif FULL:
        chosen = [int.from_bytes(os.urandom(4), "big")]
    else:
        chosen = list(fixed)
    found = []
    for seed in chosen:
        print(f"{name}: seed {seed} (BILANTOOLS_FAULTS_SEED={seed} replays the same choices)")
        found.append((seed, _tagger(name, seed)))
    return found


def _tagger(name: str, seed: int) -> Callable[[str], str]:
    def tag(message: str) -> str:
        return f"[{name}, seed {seed}] {message}"

    return tag


# What a lost-connection error claims (bilantools/db/failures.py): "whether A committed is
# unknown" or "whether A to B (n migrations) committed is unknown"; "X and the N after it
# did not commit"; nothing of the run committed when it was lost before its first migration.
UNKNOWN = re.compile(
    r"whether (?:the rollback of )?(\S+?)(?: to (\S+) \(\d+ migrations\))? committed is unknown"
)
NOT_COMMITTED = re.compile(r"; (?:the rollback of )?(\S+?)(?: and the \d+ after it)? did not commit")
REPORTED = "every migration reported applied is committed"
NONE_OF_THE_RUN = "none of the migrations of this run committed"


def claimed(error: str, labels: Sequence[str]) -> tuple[int, int]:
    """(fewest, most) of `labels` (a run's migrations, in order, from an empty history)
    that the error allows to have committed."""
    unknown = UNKNOWN.search(error)
    gone = NOT_COMMITTED.search(error)
    if NONE_OF_THE_RUN in error:
        return 0, 0
    assert unknown or REPORTED in error, f"the error claims nothing about what committed: {error}"
    if unknown:
        low, high = labels.index(unknown[1]), labels.index(unknown[2] or unknown[1]) + 1
    else:
        low = high = labels.index(gone[1]) if gone else len(labels)
    assert not gone or labels.index(gone[1]) == high, f"the error's two claims do not meet: {error}"
    return low, high
