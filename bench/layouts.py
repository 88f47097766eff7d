"""Does `bilantools check` stay under a second on 500 migrations, whatever the layout?

The same 500 generated migrations (bench/analysis.py's corpus: a table with a foreign key
to the previous one, an index, a trigger function and its trigger, each with its
rollback) are written in every layout bilantools reads: ours, golang-migrate, dbmate,
Flyway (dotted versions with U undo scripts) and Sqitch (a plan whose changes each
require the previous one, scripts wrapped in BEGIN/COMMIT as Sqitch's templates write
them, verify scripts). Two measures per layout, medians of N runs, interleaved so that
the machine's drift touches every layout alike:

- `check`: `commands.check` on a new `Project` with pglast's cache cleared (what a new
  process pays, without interpreter start-up);
- `CLI`: the `bilantools check` command in a subprocess.

Our layout is the baseline: each figure is also given as a ratio to ours, measured in the
same run. Goal: `check` under 1 s for every layout. Timings are printed, never asserted;
the script exits 1 when a layout does not read its 500 migrations or check finds an error.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from analysis import forward_sql, rollback_sql

from bilantools import commands
from bilantools.project import Project
from bilantools.source import parsed
from bilantools.source.layouts import LAYOUTS

CLI = Path(sys.executable).parent / "bilantools"
COUNT = 500
GOAL_SECONDS = 1.0


def ours(directory: Path, count: int) -> None:
    for n in range(1, count + 1):
        (directory / f"{n:04d}_bench_{n:04d}.sql").write_text(forward_sql(n))
        (directory / f"{n:04d}_bench_{n:04d}_rollback.sql").write_text(rollback_sql(n))


def golang_migrate(directory: Path, count: int) -> None:
    for n in range(1, count + 1):
        (directory / f"{n:04d}_bench_{n:04d}.up.sql").write_text(forward_sql(n))
        (directory / f"{n:04d}_bench_{n:04d}.down.sql").write_text(rollback_sql(n))


def dbmate(directory: Path, count: int) -> None:
    for n in range(1, count + 1):
        text = f"-- migrate:up\n{forward_sql(n)}\n-- migrate:down\n{rollback_sql(n)}"
        (directory / f"2026{n:010d}_bench_{n:04d}.sql").write_text(text)


def flyway(directory: Path, count: int) -> None:
    for n in range(1, count + 1):
        (directory / f"V1.{n}__bench_{n:04d}.sql").write_text(forward_sql(n))
        (directory / f"U1.{n}__bench_{n:04d}.sql").write_text(rollback_sql(n))


def sqitch(directory: Path, count: int) -> None:
    plan = ["%syntax-version=1.0.0", "%project=bench", ""]
    for folder in ("deploy", "revert", "verify"):
        (directory / folder).mkdir()
    for n in range(1, count + 1):
        name = f"bench_{n:04d}"
        requires = f" [bench_{n - 1:04d}]" if n > 1 else ""
        plan.append(f"{name}{requires} 2026-12-07T00:00:00Z Bench <bench@example.org> # generated {n}")
        (directory / "deploy" / f"{name}.sql").write_text(f"BEGIN;\n\n{forward_sql(n)}\nCOMMIT;\n")
        (directory / "revert" / f"{name}.sql").write_text(f"BEGIN;\n\n{rollback_sql(n)}\nCOMMIT;\n")
        (directory / "verify" / f"{name}.sql").write_text(f"SELECT id FROM {name} WHERE false;\n")
    (directory / "sqitch.plan").write_text("\n".join(plan) + "\n")


WRITERS: dict[str, Callable[[Path, int], None]] = {
    "bilantools": ours,
    "golang-migrate": golang_migrate,
    "dbmate": dbmate,
    "flyway": flyway,
    "sqitch": sqitch,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per measure (default 5)")
    parser.add_argument("--count", type=int, default=COUNT, help=f"migrations per layout (default {COUNT})")
    args = parser.parse_args()

    layouts = [name for name in WRITERS if name in LAYOUTS]
    missing = [name for name in WRITERS if name not in LAYOUTS]
    with tempfile.TemporaryDirectory(prefix="bilantools-bench-layouts-") as tmp:
        directories, files = {}, {}
        for name in layouts:
            directory = Path(tmp) / name
            directory.mkdir()
            WRITERS[name](directory, args.count)
            directories[name] = directory
            files[name] = sum(1 for p in directory.rglob("*") if p.is_file())
            project = Project.load(directory)
            errors = [f for f in project.report.findings if f.severity == "error"]
            if len(project.migrations) != args.count or errors or project.layout != name:
                print(
                    f"{name}: read {len(project.migrations)} migrations as {project.layout}, "
                    f"{len(errors)} error(s): {errors[:1]}"
                )
                return 1

        times: dict[tuple[str, str], list[float]] = {}
        for run in range(args.runs):
            order = layouts[run % len(layouts) :] + layouts[: run % len(layouts)]
            for name in order:
                directory = directories[name]
                parsed.parse_script.cache_clear()  # every run parses again, as a new process would
                started = time.perf_counter()
                commands.check(project=Project.load(directory))
                times.setdefault((name, "check"), []).append(time.perf_counter() - started)
                started = time.perf_counter()
                subprocess.run(
                    [str(CLI), "--migrations", str(directory), "check"], capture_output=True, check=True
                )
                times.setdefault((name, "CLI"), []).append(time.perf_counter() - started)

    print(f"{args.count} generated migrations per layout, {args.runs} runs, medians; ratio to our layout")
    print(
        f"{'layout':<15} {'measure':<7} {'files':>5} {'median s':>9} {'min s':>7} {'max s':>7} {'ratio':>6}"
    )
    for name in layouts:
        for measure in ("check", "CLI"):
            series = times[(name, measure)]
            median = statistics.median(series)
            base = statistics.median(times[("bilantools", measure)])
            print(
                f"{name:<15} {measure:<7} {files[name]:>5} {median:>9.3f} {min(series):>7.3f} "
                f"{max(series):>7.3f} {median / base:>6.2f}"
            )
    slowest = max(statistics.median(times[(name, "check")]) for name in layouts)
    verdict = "met" if slowest < GOAL_SECONDS else "NOT met"
    print(
        f"goal: check under {GOAL_SECONDS:.0f} s for every layout: {verdict} (slowest median {slowest:.3f} s)"
    )
    if missing:
        print(f"not measured (no such layout in this checkout): {', '.join(missing)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
