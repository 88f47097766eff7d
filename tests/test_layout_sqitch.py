"""Sqitch projects read as they are, against a real server: apply, status, rollback (to a
change and to a tag), verify with the project's verify scripts, plan order over
timestamps, and malformed plans and scripts refused before anything runs."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands
from bilantools.commands import Project, RunOptions
from bilantools.errors import InputError
from tests.conftest import FIXTURES

SQITCH = FIXTURES / "sqitch"
GOLANG = FIXTURES / "golang_migrate"
PLANNED = [
    "appschema",
    "app/teams",
    "app/players",
    "app.functions/team_size@v1.0",
    "seed/teams",
    "app.functions/team_size",
]
WHO = "2024-03-01T10:00:00Z Dana DBA <dana@example.com>"


def league_tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'league' ORDER BY 1")
        return [r[0] for r in rows.fetchall()]


def scalar(url: str, query: str) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
        return row[0] if row else None


def project(directory: Path, plan: str, scripts: dict[str, str]) -> Path:
    """A Sqitch project in `directory`: the plan after the pragmas, and scripts by path."""
    directory.mkdir(parents=True)
    (directory / "sqitch.plan").write_text("%syntax-version=1.0.0\n%project=t\n\n" + textwrap.dedent(plan))
    for name, text in scripts.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return directory


def test_sqitch_apply_status_verify_rollback_to_a_tag_and_to_zero(cli: Any, db_url: str) -> None:
    base = ["--db", db_url, "--migrations", str(SQITCH)]
    r = cli(*base, "apply", "--yes")
    assert r.code == 0, r.err
    assert r.err.splitlines()[1] == "layout: sqitch (detected)"
    assert [line.split()[:2] for line in r.out.splitlines()[:6]] == [[k, k.split("@")[0]] for k in PLANNED]
    assert league_tables(db_url) == ["players", "teams"]
    assert scalar(db_url, "SELECT count(*) FROM league.teams") == 2
    assert "active" in scalar(db_url, "SELECT prosrc FROM pg_proc WHERE proname = 'team_size'")
    status = json.loads(cli(*base, "status", "--json").out)
    assert status["layout"] == "sqitch"
    assert [(m["version"], m["state"]) for m in status["migrations"]] == [(k, "applied") for k in PLANNED]

    r = cli(*base, "verify", "--json")
    assert r.code == 0, r.out
    checks = json.loads(r.out)["verify_scripts"]
    assert [(c["change"], c["ok"], c["error"]) for c in checks] == [(k, True, None) for k in PLANNED]

    r = cli(*base, "rollback", "--yes", "--to", "@v1.0")
    assert r.code == 0, r.err
    states = json.loads(cli(*base, "status", "--json").out)["migrations"]
    assert [m["state"] for m in states] == ["applied"] * 4 + ["pending"] * 2
    assert scalar(db_url, "SELECT count(*) FROM league.teams") == 0
    assert "active" not in scalar(db_url, "SELECT prosrc FROM pg_proc WHERE proname = 'team_size'")

    assert cli(*base, "rollback", "--yes", "--to", "app/teams").code == 0
    assert league_tables(db_url) == ["teams"]
    assert cli(*base, "rollback", "--yes", "--to", "0").code == 0
    assert scalar(db_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'league'") == 0


def test_sqitch_apply_to_a_tag_and_to_a_change(db_url: str) -> None:
    commands.apply(target=db_url, project=SQITCH, options=RunOptions(to="@v1.0"))
    states = [(s.version, s.state) for s in commands.status(target=db_url, project=SQITCH).migrations]
    assert states == [(k, "applied") for k in PLANNED[:4]] + [(k, "pending") for k in PLANNED[4:]]
    commands.apply(target=db_url, project=SQITCH, options=RunOptions(to="seed/teams"))
    assert [s.state for s in commands.status(target=db_url, project=SQITCH).migrations][-2:] == [
        "applied",
        "pending",
    ]
    with pytest.raises(InputError, match="no migration has version @v9"):
        commands.apply(target=db_url, project=SQITCH, options=RunOptions(to="@v9"))


def test_verify_names_the_change_whose_verify_script_fails(cli: Any, db_url: str) -> None:
    base = ["--db", db_url, "--migrations", str(SQITCH)]
    assert cli(*base, "apply", "--yes").code == 0
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE league.players DROP COLUMN team_id CASCADE")
        conn.execute("CREATE TABLE league.left_alone (id int)")
    r = cli(*base, "verify")
    assert r.code == 1
    failed = [line for line in r.out.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and failed[0].split()[:2] == ["app/players", "FAILED"]
    assert "verify/app/players.sql:4" in failed[0] and "ERROR 22012: division by zero" in failed[0]
    assert r.out.splitlines()[-1] == "6 verify script(s) run: 1 failed"
    # a verify never changes the database, even one that writes: always rolled back
    assert "left_alone" in league_tables(db_url)


def test_a_verify_script_that_writes_leaves_nothing_behind(db_url: str, tmp_path: Path) -> None:
    d = project(
        tmp_path / "p",
        f"t {WHO}\n",
        {
            "deploy/t.sql": "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\n",
            "revert/t.sql": "DROP TABLE t;\n",
            "verify/t.sql": "BEGIN;\nINSERT INTO t VALUES (1);\nSELECT 1/COUNT(*) FROM t;\nCOMMIT;\n",
        },
    )
    commands.apply(target=db_url, project=d)
    result = commands.verify(target=db_url, project=d)
    assert result.ok and [s.change for s in result.scripts or []] == ["t"]
    assert scalar(db_url, "SELECT count(*) FROM t") == 0


def test_plan_order_wins_over_timestamps(db_url: str, tmp_path: Path) -> None:
    d = project(
        tmp_path / "p",
        "b 2030-01-01T00:00:00Z A <a@x>\na [b] 2001-01-01T00:00:00Z A <a@x>\n",
        {
            "deploy/b.sql": "CREATE TABLE b (id int PRIMARY KEY);\n",
            "deploy/a.sql": "CREATE TABLE a (b int REFERENCES b);\n",
        },
    )
    result = commands.apply(target=db_url, project=d)
    assert [s.version for s in result.steps] == ["b", "a"]


def test_a_malformed_plan_is_refused_naming_each_line_and_nothing_runs(
    cli: Any, db_url: str, tmp_path: Path
) -> None:
    d = project(
        tmp_path / "p",
        f"t {WHO}\nu [v] {WHO}\nno_planner 2024-03-01T10:00:00Z\nv {WHO}\n",
        {f"deploy/{n}.sql": f"CREATE TABLE {n} (id int);\n" for n in ("t", "u", "no_planner", "v")},
    )
    r = cli("--migrations", str(d), "check")
    assert r.code == 1
    plan = d / "sqitch.plan"
    assert r.out.splitlines()[:5] == [
        "error [sqitch-plan] ×2",
        f"{plan}:5: error: [sqitch-plan] change 'u' is planned 1 change(s) before its requirement 'v' "
        "(line 7); Sqitch refuses such a plan",
        "    fix: move it below line 7",
        f"{plan}:6: error: [sqitch-plan] 'no_planner' has no planner name and email",
        "    fix: write it as 'name [dependencies] YYYY-MM-DDTHH:MM:SSZ Planner Name <email> # note'",
    ]
    r = cli("--db", db_url, "--migrations", str(d), "apply", "--yes")
    assert r.code == 2
    assert r.err.splitlines()[-1].startswith(f"error: {plan}:5: change 'u' is planned")
    assert scalar(db_url, "SELECT count(*) FROM pg_tables WHERE tablename IN ('t', 'u', 'v')") == 0


def test_psql_meta_commands_missing_scripts_and_long_names_are_findings(tmp_path: Path) -> None:
    long = "x" * 51
    d = project(
        tmp_path / "p",
        f"t {WHO}\nmissing {WHO}\n{long} {WHO}\n",
        {
            "deploy/t.sql": "\\set ON_ERROR_STOP on\nCREATE TABLE t (id int);\n  \\ir other.sql\n",
            f"deploy/{long}.sql": "SELECT 1;\n",
            "deploy/stray.sql": "SELECT 1;\n",
            "verify/t.sql": "\\i checks.sql\n",
        },
    )
    found = Project.load(d).migrations
    assert [(f.rule, f.severity, f.line, f.message.split(":")[0]) for f in found.findings] == [
        ("psql-meta-command", "error", 1, "psql meta-command '\\i' in a Sqitch script"),
        ("psql-meta-command", "error", 1, "psql meta-command '\\set' in a Sqitch script"),
        ("psql-meta-command", "error", 3, "psql meta-command '\\ir' in a Sqitch script"),
        ("missing-script", "error", 5, "change 'missing' has no deploy script deploy/missing.sql"),
        (
            "version-too-long",
            "error",
            6,
            f"change '{long}' has a name of 51 characters; the tracking table stores versions of at most "
            "50 characters",
        ),
        ("unplanned-script", "warning", None, "deploy/stray.sql is not in sqitch.plan"),
    ]
    assert found.migrations == []


def test_a_cross_project_requirement_is_an_error_unless_provided(tmp_path: Path) -> None:
    d = project(tmp_path / "p", f"t [auth:users] {WHO}\n", {"deploy/t.sql": "SELECT 1;\n"})
    assert [f.rule for f in Project.load(d).migrations.errors] == ["sqitch-plan"]
    (tmp_path / "pyproject.toml").write_text('[tool.bilantools]\nprovided = ["sqitch:auth:users"]\n')
    assert Project.load(d).migrations.errors == []


def test_sqitch_conf_that_moves_the_scripts_is_refused(tmp_path: Path) -> None:
    d = shutil.copytree(SQITCH, tmp_path / "p")
    with (d / "sqitch.conf").open("a") as fh:
        fh.write("[core]\n\ttop_dir = migrations\n")
    [finding] = Project.load(d).migrations.errors
    assert finding.one_line() == (
        f"{d / 'sqitch.conf'}:12: sqitch.conf sets core.top_dir: bilantools reads sqitch.plan and "
        "deploy/, revert/, verify/ *.sql in the project directory only; move the files there and remove "
        "the setting, or pass the directory that holds them"
    )


def test_a_provided_cross_project_requirement_lets_apply_run(db_url: str, tmp_path: Path) -> None:
    d = project(tmp_path / "p", f"t [auth:users] {WHO}\n", {"deploy/t.sql": "CREATE TABLE t (id int);\n"})
    (tmp_path / "pyproject.toml").write_text('[tool.bilantools]\nprovided = ["sqitch:auth:users"]\n')
    assert [s.version for s in commands.apply(target=db_url, project=d).steps] == ["t"]
    assert commands.verify(target=db_url, project=d).ok


def test_verify_json_of_other_layouts_keeps_its_shape(cli: Any, db_url: str) -> None:
    base = ["--db", db_url, "--migrations", str(GOLANG)]
    assert cli(*base, "apply", "--yes").code == 0
    r = cli(*base, "verify", "--json")
    assert (r.code, sorted(json.loads(r.out))) == (0, ["ok", "rows", "summary", "target"])
    assert "verify script" not in cli(*base, "verify").out
