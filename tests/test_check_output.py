"""A check that leads with what matters: `check` groups its findings by severity and rule,
`--severity`, `--rule` and `--ignore` choose what it shows, `apply --check-only` lists
every blocking problem at once, and `graph` and `status` name the files they could not read.

tests/fixtures/guide_like is a directory like the guide's own: files written to be run by
hand (BEGIN/COMMIT), two migrations numbered 004, a syntax error, Supabase's auth.uid()
without `provided`, a table used before the migration that creates it. It is copied out
of the repository so that the repository's [tool.bilantools] settings do not apply.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands
from bilantools.errors import InputError
from bilantools.options import RunOptions
from tests.conftest import FIXTURES, tables
from tests.test_check import FORWARD, NOOP, T_RB, T, cli_dir, write

NOWHERE = "postgresql://nobody@127.0.0.1:1/nothing"  # nothing listens: a command that connects fails
HEADER = re.compile(r"^(error|warning|info) \[([\w:.-]+)\] ×(\d+)$")
GUIDE_ERRORS = ["duplicate-version", "forward-reference", "syntax-error", "transaction-control"]


def guide_like(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURES / "guide_like", tmp_path / "migrations"))


def groups(out: str) -> list[tuple[str, str, int, list[str]]]:
    """(severity, rule, count, its finding lines) of each group in check's text output."""
    found: list[tuple[str, str, int, list[str]]] = []
    for line in out.splitlines()[:-1]:
        header = HEADER.match(line)
        if header:
            found.append((header[1], header[2], int(header[3]), []))
        elif not line.startswith("    fix: "):
            found[-1][3].append(line)
    return found


# --- check: grouped, errors first ----------------------------------------------------------


def test_check_prints_the_errors_before_anything_else(cli: Any, tmp_path: Path) -> None:
    d = guide_like(tmp_path)
    r = cli("--migrations", str(d), "check")
    assert r.code == 1
    found = groups(r.out)
    severities = [severity for severity, *_ in found]
    assert severities == sorted(severities, key=["error", "warning", "info"].index)
    assert [rule for severity, rule, *_ in found if severity == "error"] == GUIDE_ERRORS
    assert r.out.splitlines()[0] == "error [duplicate-version] ×1"
    for severity, rule, count, lines in found:
        assert len(lines) == count
        assert all(f": {severity}: [{rule}] " in line for line in lines)
    squawk = [i for i, (severity, rule, *_) in enumerate(found) if rule.startswith("squawk:")]
    ours = [i for i, (severity, rule, *_) in enumerate(found) if severity == "warning" and ":" not in rule]
    assert max(ours) < min(squawk)  # within warnings, our rules before squawk's advice
    total = sum(count for *_, count, _ in found)
    assert re.fullmatch(
        rf"6 migration\(s\) checked: 5 error\(s\), {total - 5} warning\(s\), 0 note\(s\)",
        r.out.splitlines()[-1],
    )
    # what the guide's files must not be told: squawk's lock advice on tables they create,
    # a lock timeout the engine sets, a missing SERIAL sequence or renamed index
    assert "require-lock-timeout" not in r.out
    assert "squawk:require-concurrent-index-creation] ×1" in r.out  # 006, on 004's table
    assert "bilans_id_seq" not in r.out and "idx_versions_document" not in r.out
    assert "unresolved-reference" not in r.out  # 004's syntax error hides none of its tables


def test_check_severity_error_fits_a_screen(cli: Any, tmp_path: Path) -> None:
    d = guide_like(tmp_path)
    everything = cli("--migrations", str(d), "check")
    r = cli("--migrations", str(d), "check", "--severity", "error")
    assert r.code == 1
    lines = r.out.splitlines()
    assert len(lines) <= 40
    assert [rule for _, rule, *_ in groups(r.out)] == GUIDE_ERRORS
    warnings = int(re.search(r"(\d+) warning\(s\)", everything.out)[1])  # type: ignore[index]
    assert lines[-1] == (
        f"6 migration(s) checked: 5 error(s), {warnings} warning(s), 0 note(s) "
        f"({warnings} below --severity error not shown)"
    )
    assert lines[:-1] == everything.out.splitlines()[: len(lines) - 1]
    r = cli("--migrations", str(d), "check", "--severity", "warning")
    assert {severity for severity, *_ in groups(r.out)} == {"error", "warning"}


def test_check_rule_and_ignore(cli: Any, tmp_path: Path) -> None:
    d = cli_dir(tmp_path, {**FORWARD, "005_c.sql": NOOP, "005_c_rollback.sql": NOOP})
    r = cli("--migrations", str(d), "check", "--rule", "numbering-gap")
    assert r.code == 0  # the forward reference is not asked for
    assert [rule for _, rule, *_ in groups(r.out)] == ["numbering-gap"]
    assert r.out.splitlines()[-1] == "4 migration(s) checked: 0 error(s), 0 warning(s), 1 note(s)"
    r = cli("--migrations", str(d), "check", "--rule", "numbering-gap", "--rule", "forward-reference")
    assert (r.code, [rule for _, rule, *_ in groups(r.out)]) == (1, ["forward-reference", "numbering-gap"])
    r = cli("--migrations", str(d), "check", "--ignore", "forward-reference", "--ignore", "numbering-gap")
    assert (r.code, r.out) == (0, "4 migration(s) checked: 0 error(s), 0 warning(s), 0 note(s)\n")
    r = cli("--migrations", str(d), "check", "--ignore", "numbering-gap", "--json")
    assert r.code == 1
    assert [f["rule"] for f in json.loads(r.out)["findings"]] == ["forward-reference"]
    assert list(json.loads(r.out)) == ["findings", "layout"]


def test_check_rule_squawk_names_all_of_squawks_rules(cli: Any, tmp_path: Path) -> None:
    d = guide_like(tmp_path)
    r = cli("--migrations", str(d), "check", "--rule", "squawk")
    assert r.code == 0
    rules = [rule for _, rule, *_ in groups(r.out)]
    assert rules and all(rule.startswith("squawk:") for rule in rules)
    r = cli("--migrations", str(d), "check", "--ignore", "squawk", "--severity", "warning", "--json")
    assert not any(f["rule"].startswith("squawk:") for f in json.loads(r.out)["findings"])


def test_check_rejects_an_unknown_severity(cli: Any, tmp_path: Path) -> None:
    r = cli("--migrations", str(guide_like(tmp_path)), "check", "--severity", "fatal")
    assert r.code == 2 and "'fatal' is not one of 'error', 'warning', 'info'" in r.err


def test_the_same_for_python_callers(tmp_path: Path) -> None:
    d = guide_like(tmp_path)
    report = commands.check(project=d)
    errors = report.only("error")
    assert [f.rule for f in errors.findings] == [f.rule for f in report.errors]
    assert [rule for _, rule, _ in errors.by_rule()] == GUIDE_ERRORS
    assert errors.counts() == {"error": 5, "warning": 0, "info": 0}
    assert report.only(rules=frozenset({"squawk"}), ignore=frozenset({"squawk:prefer-text-field"})).findings
    with pytest.raises(InputError) as caught:
        report.only("fatal")
    assert caught.value.message == "severity=fatal is not a severity; choose error, warning or info"
    assert commands.apply_check(project=d) == sorted(report.errors, key=lambda f: (f.file, f.line or 0))
    forced = commands.apply_check(project=d, options=RunOptions(force=True))
    assert [f.rule for f in forced] == [
        "transaction-control",
        "transaction-control",
        "syntax-error",
        "duplicate-version",
    ]


# --- apply --check-only ---------------------------------------------------------------------


def test_apply_check_only_names_every_blocking_problem_without_a_database(cli: Any, tmp_path: Path) -> None:
    d = guide_like(tmp_path)
    r = cli("--db", NOWHERE, "--migrations", str(d), "apply", "--check-only")
    assert r.code == 1 and r.err == ""  # no target announced: no database touched
    lines = r.out.splitlines()
    assert [line.split(": ")[0].removeprefix(f"{d}/") for line in lines[:-1:2]] == [
        "001_extensions.sql:3",
        "001_extensions.sql:6",
        "003_create_bilans.sql:2",
        "004_create_documents.sql:6",
        "004_create_sessions.sql",
    ]
    assert all(line.startswith("    fix: ") for line in lines[1:-1:2])
    assert lines[-1] == "5 blocking problem(s): apply refuses to run until they are fixed"
    forced = cli("--db", NOWHERE, "--migrations", str(d), "apply", "--check-only", "--force", "--json")
    assert forced.code == 1
    assert [f["rule"] for f in json.loads(forced.out)["findings"]] == [
        "transaction-control",
        "transaction-control",
        "syntax-error",
        "duplicate-version",
    ]


def test_apply_check_only_on_a_clean_directory(cli: Any, tmp_path: Path) -> None:
    d = write(tmp_path / "migrations", {"001_t.sql": T, "001_t_rollback.sql": T_RB})
    r = cli("--db", NOWHERE, "--migrations", str(d), "apply", "--check-only")
    assert (r.code, r.out, r.err) == (0, "no blocking problem: apply would run\n", "")
    r = cli("--db", NOWHERE, "--migrations", str(d), "apply", "--check-only", "--json")
    assert (r.code, json.loads(r.out)) == (0, {"findings": [], "layout": "bilantools"})
    forward = write(tmp_path / "forward", FORWARD)
    r = cli("--db", NOWHERE, "--migrations", str(forward), "apply", "--check-only", "--force")
    assert (r.code, r.out) == (0, "no blocking problem: apply would run\n")


def test_apply_refusal_counts_the_other_problems(cli: Any, db_url: str, tmp_path: Path) -> None:
    d = write(
        tmp_path / "migrations",
        {
            **FORWARD,
            "004_x.sql": "CREATE VIEW x AS SELECT * FROM y;\n",
            "005_y.sql": "CREATE TABLE y (id int);\n",
        },
    )
    r = cli("--db", db_url, "--migrations", str(d), "apply")
    assert r.code == 2 and r.out == ""
    assert r.err.splitlines()[-1] == (
        f"error: refusing to apply: {d}/002_b.sql:1: 002_b.sql uses table t, first created by 003_t.sql: "
        "it cannot apply in order (statement: CREATE VIEW v AS SELECT * FROM t); move the statement to "
        "003_t.sql or after it, or create table t earlier (and 1 more: run 'bilantools apply --check-only' "
        "to list them); fix them or pass --force"
    )
    with psycopg.connect(db_url) as conn:
        assert tables(conn) == []
    listed = cli("--db", db_url, "--migrations", str(d), "apply", "--check-only")
    assert listed.out.count(": error: [forward-reference] ") == 2


# --- graph and status name the files they could not read -----------------------------------


def test_graph_names_the_files_it_could_not_read(cli: Any, tmp_path: Path) -> None:
    d = write(
        tmp_path / "migrations",
        {
            "001_t.sql": "CREATE TABLE t (id int);\nCREATE TABLE x (id int;\nCREATE TABLE u (id int);\n",
            "002_u.sql": "CREATE VIEW v AS SELECT * FROM u;\n",
            "003_latin1.sql": "-- café\nSELECT 1;\n".encode("latin-1"),
        },
    )
    r = cli("--migrations", str(d), "graph")
    assert r.code == 1  # for the syntax error: a file left out is named, as status does, with exit 0
    assert r.out == "001 t: needs nothing\n002 u: needs 001 (inferred)\n"
    assert r.err.splitlines() == [
        f'read in part: {d}/001_t.sql:2:23: syntax error: syntax error at or near ";"; fix the SQL; '
        "the server would reject the whole file",
        f"not read: {d}/003_latin1.sql: 003_latin1.sql is not UTF-8 (byte 0xe9 at offset 6); "
        "save the file as UTF-8",
    ]
    (d / "001_t.sql").write_text("CREATE TABLE t (id int);\n")
    r = cli("--migrations", str(d), "graph")
    assert (r.code, r.err) == (
        0,
        f"not read: {d}/003_latin1.sql: 003_latin1.sql is not UTF-8 (byte 0xe9 at offset 6); "
        "save the file as UTF-8\n",
    )


def test_status_names_the_files_it_could_not_read(cli: Any, db_url: str, tmp_path: Path) -> None:
    d = write(
        tmp_path / "migrations",
        {"001_t.sql": T, "001_t_rollback.sql": T_RB, "002-bad name.sql": NOOP, "003_x.sql": b"\xff\xfeS\x00"},
    )
    r = cli("--db", db_url, "--migrations", str(d), "status")
    assert r.code == 0
    assert [line for line in r.err.splitlines() if not line.startswith("target: ")] == [
        f"not read: {d}/002-bad name.sql: migration file name '002-bad name.sql' does not match "
        "NNN_slug.sql; rename it (name migrations NNN_slug.sql and their rollbacks "
        f"NNN_slug_rollback.sql) or move it out of {d}",
        f"not read: {d}/003_x.sql: 003_x.sql is not UTF-8 (byte 0xff at offset 0); save the file as UTF-8",
    ]
    assert "001" in r.out


def test_apply_force_names_every_problem_it_lets_through(cli: Any, db_url: str, tmp_path: Path) -> None:
    d = write(
        tmp_path / "migrations",
        {
            **FORWARD,
            "004_x.sql": "CREATE VIEW x AS SELECT * FROM y;\n",
            "005_y.sql": "CREATE TABLE y (id int);\n",
        },
    )
    r = cli("--db", db_url, "--migrations", str(d), "apply", "--force")
    assert r.code == 1  # 002 fails on the server, as forced
    assert [line for line in r.err.splitlines() if line.startswith("forced: ")] == [
        f"forced: {d}/002_b.sql:1: 002_b.sql uses table t, first created by 003_t.sql: "
        "it cannot apply in order (statement: CREATE VIEW v AS SELECT * FROM t); "
        "move the statement to 003_t.sql or after it, "
        "or create table t earlier",
        f"forced: {d}/004_x.sql:1: 004_x.sql uses table y, first created by 005_y.sql: "
        "it cannot apply in order (statement: CREATE VIEW x AS SELECT * FROM y); "
        "move the statement to 005_y.sql or after it, "
        "or create table y earlier",
    ]
    assert r.err.index("forced: ") < r.err.index("target: ")
