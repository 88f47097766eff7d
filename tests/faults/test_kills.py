"""SIGKILL the runner at random moments: the history never lies about the schema.

Three situations, scale(10, 60) kills in all:

* `apply --yes` of the real 29 migrations, killed before the first one, inside one's
  transaction or between two;
* `rollback --to 0 --yes` of the same 29 from the fully migrated state;
* `apply --yes` of a small corpus whose third migration is `-- transaction: off`: several
  idempotent statements with `SELECT pg_sleep(...)` between them, so kills land inside it.

After each kill (once the killed client's server session has ended: a pipelined migration
may still commit after its client died) the database is in the state after some k
migrations (fingerprint = reference k, tracking = exactly the first k, all successful), or
the `transaction: off` migration is recorded as failed half-way. A following `apply`
then finishes the job: every migration applied, fingerprint = the full reference.

Kill moments: the test waits for the CLI to print its m-th migration line (m drawn at
random), then sleeps a random fraction of the gap a calibration run measured before the
next line. Each kill is classified by where it landed, from the state it left. The random
choices come from the seeds of SEEDS under `make test`, from a new printed seed under
`make faults` (see harness.seeded).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import pytest

from bilantools import commands
from bilantools.db.sandbox import Sandbox
from bilantools.source.layouts.native import discover
from tests.conftest import TEMPLATE
from tests.faults.conftest import FULL, Figures, scale
from tests.faults.harness import (
    MIGRATIONS,
    CliRun,
    Corpus,
    Timing,
    Watch,
    assert_complete,
    build_references,
    calibrate,
    running,
    scratch_db,
    seeded,
    settled,
    tracking_rows,
    wait_runner_gone,
)

TOTAL_KILLS = scale(10, 60)  # per seed
# The seeds `make test` replays (see harness.seeded); every seed that ever failed goes here.
SEEDS = (20240611,)
APPLY_KILLS = scale(4, 22)
ROLLBACK_KILLS = scale(3, 18)
TXOFF_KILLS = TOTAL_KILLS - APPLY_KILLS - ROLLBACK_KILLS
NON_TRANSACTIONAL = "003"

BEFORE_FIRST = "before the first migration (k = 0)"
BETWEEN = "between or inside transactional migrations (0 < k < n)"
AFTER_LAST = "after the last migration committed (k = n)"
PARTIAL = "inside the transaction: off migration (failed half-way)"
ROLLBACK_CLASSES = {
    "before": "before the first rollback (k = n)",
    "between": "between or inside rollbacks (0 < k < n)",
    "after": "after the last rollback committed (k = 0)",
}

SYNTHETIC = {
    "001_accounts.sql": (
        "-- Accounts.\n"
        "CREATE TABLE accounts (id int PRIMARY KEY, email text NOT NULL);\n"
        "SELECT pg_sleep(0.05);\n"
        "INSERT INTO accounts VALUES (1, 'a@example.org'), (2, 'b@example.org');\n"
    ),
    "001_accounts_rollback.sql": "DROP TABLE accounts;\n",
    "002_sessions.sql": (
        "-- Sessions.\n"
        "CREATE TABLE sessions (id int PRIMARY KEY, account_id int REFERENCES accounts (id));\n"
        "SELECT pg_sleep(0.05);\n"
        "CREATE INDEX sessions_account_id ON sessions (account_id);\n"
    ),
    "002_sessions_rollback.sql": "DROP TABLE sessions;\n",
    "003_concurrent_indexes.sql": (
        "-- Indexes built without blocking writes, and a new table: several idempotent\n"
        "-- statements, each committing on its own.\n"
        "-- transaction: off\n"
        "CREATE TABLE IF NOT EXISTS audit (id int PRIMARY KEY, account_id int, note text);\n"
        "SELECT pg_sleep(0.12);\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS accounts_email ON accounts (email);\n"
        "SELECT pg_sleep(0.12);\n"
        "INSERT INTO audit VALUES (1, 1, 'created') ON CONFLICT (id) DO NOTHING;\n"
        "SELECT pg_sleep(0.12);\n"
        "ALTER TABLE audit ADD COLUMN IF NOT EXISTS at timestamptz;\n"
        "SELECT pg_sleep(0.12);\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_account_id ON audit (account_id);\n"
    ),
    "003_concurrent_indexes_rollback.sql": "DROP TABLE audit;\nDROP INDEX accounts_email;\n",
    "004_sessions_audit.sql": (
        "-- Sessions are audited.\n"
        "ALTER TABLE sessions ADD COLUMN audit_id int REFERENCES audit (id);\n"
        "SELECT pg_sleep(0.05);\n"
        "CREATE INDEX sessions_audit_id ON sessions (audit_id);\n"
    ),
    "004_sessions_audit_rollback.sql": "ALTER TABLE sessions DROP COLUMN audit_id;\n",
}


@pytest.fixture(scope="module")
def real(server: Sandbox) -> Corpus:
    corpus = build_references(server, MIGRATIONS, TEMPLATE)
    calibrate(server, corpus, "apply", server.home)
    calibrate(server, corpus, "rollback", server.home)
    return corpus


@pytest.fixture(scope="module")
def synthetic(server: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    directory = tmp_path_factory.mktemp("kills") / "migrations"
    directory.mkdir()
    for name, text in SYNTHETIC.items():
        (directory / name).write_text(text)
    corpus = build_references(server, directory, TEMPLATE)
    assert corpus.versions == ["001", "002", "003", "004"]
    calibrate(server, corpus, "apply", server.home)
    return corpus


@dataclass(frozen=True)
class Moment:
    """When to kill: `delay` seconds after the start of the process (`from_start`), or after
    the run has committed `after` migrations (seen from a session of the test's own)."""

    after: int
    delay: float
    from_start: bool = False

    def __str__(self) -> str:
        if self.from_start:
            return f"killed {self.delay:.3f}s after the process started"
        return f"killed {self.delay:.3f}s after {self.after} migration(s) committed"


def choose(rng: random.Random, timing: Timing, after: int) -> Moment:
    """A random moment within what the calibration run took after `after` commits; half
    the moments before the first commit count from the start of the process instead (they
    land in Python's start-up, the checks, the lock, the tracking set-up or migration 1)."""
    if after == 0 and rng.random() < 0.5:
        return Moment(0, rng.uniform(0, timing.startup + timing.gaps[0]), from_start=True)
    return Moment(after, rng.uniform(0, timing.gaps[after]))


def kill_at(server: Sandbox, dbname: str, watch: Watch, run: CliRun, moment: Moment) -> tuple[bool, bool]:
    """SIGKILL the run at `moment`. Returns (the kill landed in a live run, the runner's
    session was inside a write transaction just before the signal)."""
    if moment.from_start:
        time.sleep(max(0.0, run.started + moment.delay - time.monotonic()))
        reached = run.proc.poll() is None
    else:
        reached = watch.wait_connected(run) and watch.wait_progress(run, moment.after)
        if reached:
            time.sleep(moment.delay)
    if not reached or run.proc.poll() is not None:
        code = run.finish(timeout=60)
        assert code == 0, f"{run} failed before the kill (exit {code}): {run.err}"
        return False, False
    in_transaction = watch.in_write_transaction()
    run.kill()
    code = run.finish(timeout=60)
    if code == 0:  # it finished between the last look and the signal
        return False, False
    assert code == -9, f"{run} failed before the kill (exit {code}): {run.err}"
    wait_runner_gone(server, dbname)
    return True, in_transaction


def resume(server: Sandbox, url: str, corpus: Corpus, context: str) -> None:
    """A following `apply` finishes the job."""
    run = CliRun(url, corpus.directory, "apply", "--yes", home=server.home)
    with running(run):
        code = run.finish(timeout=120)
    assert code == 0, f"{context}: the resuming apply failed: {run.err}"
    assert_complete(url, corpus, f"{context}, after the resuming apply")


@contextmanager
def killed(
    server: Sandbox, corpus: Corpus, template: str, args: list[str], moment: Moment, figures: Figures
) -> Iterator[tuple[str, CliRun, bool] | None]:
    """A fresh copy of `template`, `bilantools ARGS` run on it and SIGKILLed at `moment`.
    Yields (URL, the run, whether it was inside a write transaction), or None when the run
    finished before the kill. The database is dropped afterwards."""
    rollback_from = corpus.n if args[0] == "rollback" else None
    with scratch_db(server, template, "kill") as (name, url):
        watch = Watch(url, rollback_from)
        run = CliRun(url, corpus.directory, *args, home=server.home)
        try:
            with running(run):
                landed, in_transaction = kill_at(server, name, watch, run, moment)
        finally:
            watch.close()
        if not landed:
            figures.add("kills: missed (the run finished first)")
            yield None
            return
        if in_transaction:
            figures.add("kills: the runner's session was inside a write transaction")
        yield url, run, in_transaction
        resume(server, url, corpus, f"{run} {moment}")
        figures.add("kills: resumed by a following apply")


def test_kill_apply_real_migrations(server: Sandbox, real: Corpus, figures: Figures) -> None:
    for seed, tag in seeded("kill apply", SEEDS):
        rng = random.Random(seed)
        timing = real.timings["apply"]
        classes: Counter[str] = Counter()
        kills = attempts = 0
        while kills < APPLY_KILLS:
            attempts += 1
            assert attempts <= 3 * APPLY_KILLS, tag(f"only {kills} kills landed in {attempts} attempts")
            # one kill in five aims before or at the first migration, the others at any later one
            moment = choose(rng, timing, 0 if kills % 5 == 0 else rng.randrange(1, real.n))
            with killed(server, real, TEMPLATE, ["apply", "--yes"], moment, figures) as found:
                if found is None:
                    continue
                url, run, _ = found
                context = tag(f"apply {moment} (printed {run.steps})")
                k = settled(url, real, context)
                assert k >= run.steps, f"{context}: {run.steps} printed as applied but only {k} are"
                where = BEFORE_FIRST if k == 0 else AFTER_LAST if k == real.n else BETWEEN
                classes[where] += 1
                figures.add(f"kills: apply (29 migrations), {where}")
                kills += 1
        figures.add("kills: total", kills)
        if FULL:
            for where in (BEFORE_FIRST, BETWEEN):
                assert classes[where] > 0, tag(f"no kill landed {where}: {dict(classes)}")


def test_kill_rollback_real_migrations(server: Sandbox, real: Corpus, figures: Figures) -> None:
    for seed, tag in seeded("kill rollback", SEEDS):
        rng = random.Random(seed)
        timing = real.timings["rollback"]
        classes: Counter[str] = Counter()
        kills = attempts = 0
        while kills < ROLLBACK_KILLS:
            attempts += 1
            assert attempts <= 3 * ROLLBACK_KILLS, tag(f"only {kills} kills landed in {attempts} attempts")
            moment = choose(rng, timing, 0 if kills % 6 == 0 else rng.randrange(1, real.n))
            args = ["rollback", "--to", "0", "--yes"]
            with killed(server, real, real.template, args, moment, figures) as found:
                if found is None:
                    continue
                url, run, _ = found
                context = tag(f"rollback {moment} (printed {run.steps})")
                k = settled(url, real, context)
                assert k <= real.n - run.steps, f"{context}: {run.steps} printed as rolled back, {k} left"
                key = "before" if k == real.n else "after" if k == 0 else "between"
                classes[key] += 1
                figures.add(f"kills: rollback (29 migrations), {ROLLBACK_CLASSES[key]}")
                kills += 1
        figures.add("kills: total", kills)
        if FULL:
            assert classes["between"] > 0, tag(f"no rollback kill landed between migrations: {dict(classes)}")


def test_kill_inside_transaction_off_migration(server: Sandbox, synthetic: Corpus, figures: Figures) -> None:
    for seed, tag in seeded("kill transaction: off", SEEDS):
        rng = random.Random(seed)
        timing = synthetic.timings["apply"]
        position = synthetic.versions.index(NON_TRANSACTIONAL)
        classes: Counter[str] = Counter()
        kills = attempts = 0
        while kills < TXOFF_KILLS:
            attempts += 1
            assert attempts <= 3 * TXOFF_KILLS, tag(f"only {kills} kills landed in {attempts} attempts")
            # every other kill aims inside the `transaction: off` migration, the rest anywhere
            moment = choose(rng, timing, position if kills % 2 == 0 else rng.randrange(0, synthetic.n))
            with killed(server, synthetic, TEMPLATE, ["apply", "--yes"], moment, figures) as found:
                if found is None:
                    continue
                url, run, _ = found
                context = tag(f"apply {moment} (printed {run.steps})")
                status = commands.status(target=url, project=synthetic.directory)
                states = {m.version: m for m in status.migrations}
                interrupted = states[NON_TRANSACTIONAL]
                if interrupted.state == "failed":
                    assert interrupted.partial, f"{context}: {NON_TRANSACTIONAL} failed but not half-way"
                    with psycopg.connect(url, autocommit=True) as conn:
                        rows = tracking_rows(conn)
                    expected = [(v, True) for v in synthetic.versions[:position]] + [
                        (NON_TRANSACTIONAL, False)
                    ]
                    assert rows == expected, f"{context}: tracking rows {rows}, expected {expected}"
                    later = [states[v].state for v in synthetic.versions[position + 1 :]]
                    assert later == ["pending"], f"{context}: {status.migrations}"
                    where = PARTIAL
                else:
                    # no trace of 003: it must not have started (its first statement creates
                    # `audit`, which `settled` would find in a schema tracked as k <= 2)
                    k = settled(url, synthetic, context)
                    assert k >= run.steps, f"{context}: {run.steps} printed as applied but only {k} are"
                    where = BEFORE_FIRST if k == 0 else AFTER_LAST if k == synthetic.n else BETWEEN
                classes[where] += 1
                figures.add(f"kills: transaction: off corpus, {where}")
                kills += 1
        figures.add("kills: total", kills)
        if FULL:
            assert classes[PARTIAL] > 0, tag(
                f"no kill landed inside the transaction: off migration: {classes}"
            )


def test_synthetic_corpus_is_what_the_kills_assume(synthetic: Corpus) -> None:
    """The kills inside 003 rely on it running outside a transaction, statement by statement,
    and on the corpus passing the checks `apply` runs first."""
    report = commands.check(project=synthetic.directory)
    assert not report.errors, report.errors
    modes = {m.version: m.transactional for m in discover(synthetic.directory)}
    assert modes == {"001": True, "002": True, NON_TRANSACTIONAL: False, "004": True}
    assert synthetic.timings["apply"].gaps[synthetic.versions.index(NON_TRANSACTIONAL)] > 0.4
