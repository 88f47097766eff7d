"""How long does `bilantools check` take, and what does it cost per file?

Static analysis runs before every `apply` (errors only) and in CI (`bilantools check`),
so it must stay fast. Corpora: the project's 29 migrations, and 500 generated
migrations (each creates a table with a foreign key to the previous one, an index, a
trigger function and a policy, with its rollback). Three measures, medians of N runs:

- `analyse`: discovery, parsing (pglast) and the dependency graph, in process;
- `check`: everything `bilantools check` reports, squawk's lint included, in process;
- `CLI`: the `bilantools check` command in a subprocess (interpreter start-up included).

The first in-process run pays pglast's import and is reported apart. Timings are printed,
never asserted. Goal: the CLI under 0.5 s on the 29 migrations.
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

REPO = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "bilantools"


def generate(directory: Path, count: int) -> Path:
    """`count` small but realistic migrations that depend on each other."""
    directory.mkdir(parents=True, exist_ok=True)
    for n in range(1, count + 1):
        parent = f"REFERENCES bench_{n - 1:04d} (id)" if n > 1 else ""
        (directory / f"{n:04d}_bench_{n:04d}.sql").write_text(
            f"-- generated migration {n}\n"
            f"CREATE TABLE IF NOT EXISTS bench_{n:04d} (\n"
            f"    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
            f"    parent_id bigint {parent},\n"
            f"    label text NOT NULL CHECK (length(label) > 0),\n"
            f"    updated_at timestamptz NOT NULL DEFAULT now()\n);\n"
            f"CREATE INDEX IF NOT EXISTS bench_{n:04d}_parent_idx ON bench_{n:04d} (parent_id);\n"
            f"CREATE OR REPLACE FUNCTION bench_{n:04d}_touch() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN\n    NEW.updated_at := now();\n    RETURN NEW;\nEND\n$$;\n"
            f"DROP TRIGGER IF EXISTS bench_{n:04d}_touch ON bench_{n:04d};\n"
            f"CREATE TRIGGER bench_{n:04d}_touch BEFORE UPDATE ON bench_{n:04d}\n"
            f"    FOR EACH ROW EXECUTE FUNCTION bench_{n:04d}_touch();\n"
        )
        (directory / f"{n:04d}_bench_{n:04d}_rollback.sql").write_text(
            f"DROP TABLE IF EXISTS bench_{n:04d};\nDROP FUNCTION IF EXISTS bench_{n:04d}_touch();\n"
        )
    return directory


def timed(call: Callable[[], object], runs: int) -> list[float]:
    results = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        results.append(time.perf_counter() - started)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per measure (default 5)")
    args = parser.parse_args()

    started = time.perf_counter()
    from bilantools.db.history import tracking_objects
    from bilantools.source import parsed
    from bilantools.source.check import check
    from bilantools.source.graph import analyse
    from bilantools.source.layouts.native import discover

    provided = tracking_objects()
    first = time.perf_counter() - started

    with tempfile.TemporaryDirectory(prefix="bilantools-bench-") as tmp:
        corpora = {"29 migrations": REPO / "migrations", "500 generated": generate(Path(tmp) / "m", 500)}
        print(f"imports and first parse (pglast): {first:.3f} s")
        print(f"{'corpus':<15} {'measure':<9} {'files':>5} {'median s':>9} {'min s':>7} {'ms/file':>8}")
        for name, directory in corpora.items():
            files = len(list(directory.glob("*.sql")))

            def cold_analyse(d: Path = directory) -> object:
                parsed.parse_script.cache_clear()  # every run parses again, as a new process would
                return analyse(discover(d), provided)

            def cold_check(d: Path = directory) -> object:
                parsed.parse_script.cache_clear()
                return check(d, provided)

            def cli(d: Path = directory) -> object:
                return subprocess.run([str(CLI), "--migrations", str(d), "check"], capture_output=True)

            for label, call in (("analyse", cold_analyse), ("check", cold_check), ("CLI", cli)):
                times = timed(call, args.runs)
                median = statistics.median(times)
                print(
                    f"{name:<15} {label:<9} {files:>5} {median:>9.3f} {min(times):>7.3f} "
                    f"{median / files * 1000:>8.2f}"
                )


if __name__ == "__main__":
    main()
