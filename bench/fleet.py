"""How long does a fleet take: the 29 migrations on 10, 50 and 100 databases at once?

One run, one dedicated PostgreSQL server made durable like production (as
`apply_overhead.py` does), the project's 29 migrations, and three ways to bring N fresh
databases up to date:

1. ``bilantools fleet apply --db URL ... --parallel P --yes``: one process, the targets
   in P threads, the project read and checked once;
2. a shell loop of ``bilantools --db URL apply --yes``, one database after another (what
   a DBA writes today);
3. a shell loop of ``psql -1 -f FILE`` over the files, database after database: the
   per-database lower bound, run one after another.

The tools are interleaved (each repetition runs every tool once, in a rotating order), on
fresh databases made before the timer starts and dropped after each size; every run is
checked (each database has the 29 migrations' tables; bilantools' have 29 tracking rows).
Goal: 100 databases in at most 0.6x the time of the psql loop (a fleet run must use
both cores and overlap round trips). Also printed: the cost per extra database, from
the medians at the smallest and largest size. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from apply_overhead import (
    PSQL_FLAGS,
    Corpus,
    Server,
    clean_env,
    compile_bytecode,
    find_psql,
    machine,
    snapshot_real,
    start_durable,
)

from bilantools.db.sandbox import Sandbox

SIZES = (10, 50, 100)
GOAL_RATIO = 0.6


@dataclass(frozen=True)
class Way:
    key: str
    label: str
    run: Callable[[Server, list[str], Corpus, int], None]
    tracks: bool


def _check(proc: subprocess.CompletedProcess[str], what: str) -> None:
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise SystemExit(f"{what} exited {proc.returncode}: {tail}")


def _run(server: Server, argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, env=server.env, stdin=subprocess.DEVNULL)
    _check(proc, " ".join(argv[:3]))


def fleet(server: Server, urls: list[str], corpus: Corpus, parallel: int) -> None:
    dbs = [arg for url in urls for arg in ("--db", url)]
    argv = [str(server.cli), "--migrations", str(corpus.directory), "fleet", "apply", *dbs]
    _run(server, [*argv, "--parallel", str(parallel), "--yes"])


def cli_loop(server: Server, urls: list[str], corpus: Corpus, parallel: int) -> None:
    for url in urls:
        _run(server, [str(server.cli), "--db", url, "--migrations", str(corpus.directory), "apply", "--yes"])


def psql_loop(server: Server, urls: list[str], corpus: Corpus, parallel: int) -> None:
    for url in urls:
        for path in corpus.files:
            _run(server, [str(server.psql), *PSQL_FLAGS, "-1", "-d", url, "-f", str(path)])


WAYS = (
    Way("fleet", "bilantools fleet apply", fleet, True),
    Way("loop", "shell loop of bilantools apply", cli_loop, True),
    Way("psql", "shell loop of psql -1 -f per file", psql_loop, False),
)


def verified(server: Server, urls: list[str], way: Way, expected: set[str]) -> None:
    """Every database has the corpus' tables, and bilantools' its 29 tracking rows."""
    for url in urls:
        with psycopg.connect(url) as conn:
            tables = {
                r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            }
            rows = (
                conn.execute("SELECT count(*) FROM schema_migrations WHERE success").fetchone()
                if way.tracks
                else None
            )
        if not expected <= tables or (rows is not None and rows[0] != 29):
            raise SystemExit(f"{way.label} left {url.rsplit('/', 1)[-1]} incomplete")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per way and size (default 3)")
    parser.add_argument(
        "--sizes", default=",".join(map(str, SIZES)), help="database counts (default 10,50,100)"
    )
    parser.add_argument("--parallel", type=int, default=8, help="fleet apply's threads (default 8)")
    parser.add_argument("--pg-bin", type=Path, help="server binaries (default: the embedded ones)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    print(compile_bytecode())
    with tempfile.TemporaryDirectory(prefix="bilantools-bench-fleet-") as tmp:
        home = Path(tmp)
        corpus, missing = snapshot_real(home / "migrations")
        if corpus is None:
            raise SystemExit(missing)
        box = Sandbox(home / "sandbox", args.pg_bin)
        shown = start_durable(box)
        try:
            with psycopg.connect(box.url("postgres"), autocommit=True) as admin:
                server = Server(
                    box,
                    admin,
                    find_psql(box.bin_dir),
                    Path(sys.executable).parent / "bilantools",
                    clean_env(home),
                )
                reference = server.fresh_db("reference")
                psql_loop(server, [reference], corpus, 1)
                with psycopg.connect(reference) as conn:
                    expected = {
                        r[0]
                        for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                    }
                times: dict[tuple[int, str], list[float]] = {}
                for size in sizes:
                    for run in range(args.runs):
                        order = WAYS[run % len(WAYS) :] + WAYS[: run % len(WAYS)]
                        for way in order:
                            urls = [server.fresh_db(f"{way.key}{size}r{run}") for _ in range(size)]
                            server.settle()
                            started = time.perf_counter()
                            way.run(server, urls, corpus, args.parallel)
                            times.setdefault((size, way.key), []).append(time.perf_counter() - started)
                            verified(server, urls, way, expected)
                            print(
                                f"  {size:>4} databases  {way.label:<36} {times[(size, way.key)][-1]:8.2f} s"
                            )
                    server.drop_all()
                    server.settle()
        finally:
            box.stop()

    print(
        f"\nserver {shown['server_version']}, fsync={shown['fsync']}; {machine()['nproc']} cores; "
        f"fleet --parallel {args.parallel}; medians of {args.runs}"
    )
    print(f"{'databases':>9}  {'way':<36} {'median s':>9} {'min s':>7} {'x psql loop':>11}")
    for size in sizes:
        base = statistics.median(times[(size, "psql")])
        for way in WAYS:
            series = times[(size, way.key)]
            median = statistics.median(series)
            print(f"{size:>9}  {way.label:<36} {median:>9.2f} {min(series):>7.2f} {median / base:>11.2f}")
    low, high = min(sizes), max(sizes)
    if high > low:
        for way in WAYS:
            slope = (statistics.median(times[(high, way.key)]) - statistics.median(times[(low, way.key)])) / (
                high - low
            )
            print(f"cost per extra database, {way.label}: {slope * 1000:.0f} ms")
    ratio = statistics.median(times[(high, "fleet")]) / statistics.median(times[(high, "psql")])
    verdict = "met" if ratio <= GOAL_RATIO else "NOT met"
    print(f"goal: {high} databases in at most {GOAL_RATIO}x the psql loop: {verdict} ({ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
