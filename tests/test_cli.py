"""The CLI: output, --json shapes of the Interfaces contract, exit codes, confirmation,
password masking."""

from __future__ import annotations

import io
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools.db.sandbox import Sandbox
from tests.conftest import tables

pytestmark = pytest.mark.pg15
PASSWORD = "S3cr3t-Pw_42"


def test_status_table_and_target_first(cli: Any, db_url: str, basic: Path) -> None:
    r = cli("--db", db_url, "--migrations", str(basic), "status")
    assert r.code == 0
    assert r.err.splitlines()[0].startswith(f"target: {db_url} (sandbox, from --db)")
    lines = r.out.splitlines()
    assert lines[0].split() == ["VERSION", "NAME", "STATE", "APPLIED", "AT", "MS", "BY"]
    assert lines[1].split()[:3] == ["001", "create_people", "pending"]
    assert lines[-1] == "3 migrations: 3 pending"


def test_json_shapes(cli: Any, db_url: str, basic: Path) -> None:
    base = ["--db", db_url, "--migrations", str(basic)]
    plan = json.loads(cli(*base, "plan", "--json").out)
    assert [m["version"] for m in plan["migrations"]] == ["001", "002", "003"]
    assert plan["migrations"][2] == {
        "version": "003",
        "name": "seed_people",
        "depends": ["001"],
        "transaction": True,
        "file": str(basic / "003_seed_people.sql"),
    }
    applied = cli(*base, "apply", "--to", "002", "--json")
    assert applied.code == 0
    data = json.loads(applied.out)
    assert data["ok"] is True and [s["version"] for s in data["steps"]] == ["001", "002"]
    status = json.loads(cli(*base, "status", "--json").out)
    assert status["target"] == db_url
    first = status["migrations"][0]
    assert {"version", "name", "state", "applied_at", "execution_time_ms"} <= set(first)
    assert (first["version"], first["name"], first["state"]) == ("001", "create_people", "applied")
    assert isinstance(first["execution_time_ms"], int) and first["applied_at"].startswith("20")
    assert status["migrations"][2]["state"] == "pending" and status["migrations"][2]["applied_at"] is None
    valid = cli(*base, "validate", "--json")
    assert valid.code == 0 and json.loads(valid.out) == {"findings": []}


def test_failed_migration_exit_1_and_json(cli: Any, db_url: str, basic: Path) -> None:
    (basic / "004_bad.sql").write_text("SELECT * FROM missing_table;\n")
    r = cli("--db", db_url, "--migrations", str(basic), "apply", "--json")
    assert r.code == 1
    data = json.loads(r.out)
    assert data["ok"] is False and data["version"] == "004" and data["line"] == 1
    assert r.err.strip().splitlines()[-1].startswith("error: migration 004_bad failed at 004_bad.sql:1:")
    r = cli("--db", db_url, "--migrations", str(basic), "status")
    assert "004      bad            failed" in r.out and "004 failed: ERROR 42P01" in r.out
    r = cli("--db", db_url, "--migrations", str(basic), "validate")
    assert r.code == 1 and "[failed-migration]" in r.out


def test_json_on_a_refused_run(cli: Any, db_url: str, basic: Path) -> None:
    """A run that does not start prints the failure object too, nothing changed."""
    base = ["--db", db_url, "--migrations", str(basic)]
    assert cli(*base, "apply", "--to", "002").code == 0
    (basic / "002_add_email.sql").write_text("ALTER TABLE people ADD COLUMN email text;\n")
    r = cli(*base, "apply", "--json")
    error = (
        "migration(s) 002 changed since they were applied (checksum differs): restore the file(s), or run "
        "'bilantools repair' if the edit is intentional"
    )
    assert (r.code, r.err.splitlines()[-1]) == (2, f"error: {error}")
    assert json.loads(r.out) == {
        "ok": False,
        "error": error,
        "failure": "refused",
        "version": None,
        "file": None,
        "line": None,
        "partial": False,
        "retryable": False,
        "target": db_url,
        "action": "apply",
        "dry_run": False,
        "run_id": None,
        "backup": None,
        "steps": [],
    }
    (basic / "001_create_people_rollback.sql").unlink()
    r = cli(*base, "rollback", "--to", "0", "--json")
    error = (
        "no rollback script for 001_create_people: add 001_create_people_rollback.sql (nothing was rolled "
        "back)"
    )
    assert (r.code, r.err.splitlines()[-1]) == (2, f"error: {error}")
    data = json.loads(r.out)
    assert (data["ok"], data["failure"], data["error"], data["action"], data["steps"]) == (
        False,
        "refused",
        error,
        "rollback",
        [],
    )


def test_json_on_a_failed_run_lists_what_committed(cli: Any, db_url: str, basic: Path) -> None:
    base = ["--db", db_url, "--migrations", str(basic)]
    (basic / "004_bad.sql").write_text("SELECT * FROM missing_table;\n")
    r = cli(*base, "apply", "--json")
    assert r.code == 1
    data = json.loads(r.out)
    assert r.err.splitlines()[-1] == f"error: {data['error']}"
    assert (data["ok"], data["failure"], data["version"], data["line"], data["partial"]) == (
        False,
        "failed",
        "004",
        1,
        False,
    )
    assert data["file"] == str(basic / "004_bad.sql") and data["action"] == "apply" and data["run_id"]
    assert [(s["version"], s["outcome"]) for s in data["steps"]] == [
        ("001", "applied"),
        ("002", "applied"),
        ("003", "applied"),
    ]
    (basic / "002_add_email_rollback.sql").write_text("SELECT * FROM missing_table;\n")
    r = cli(*base, "rollback", "--to", "0", "--json")
    assert r.code == 1
    data = json.loads(r.out)
    assert (data["failure"], data["version"], data["action"]) == ("failed", "002", "rollback")
    assert [(s["version"], s["outcome"]) for s in data["steps"]] == [("003", "rolled back")]


def test_apply_and_rollback_text_output(cli: Any, db_url: str, basic: Path) -> None:
    base = ["--db", db_url, "--migrations", str(basic)]
    r = cli(*base, "apply", "--dry-run")
    assert r.code == 0 and r.out.splitlines()[-1] == "dry run: 3 migration(s) checked, nothing was changed"
    r = cli(*base, "apply")
    assert r.code == 0 and r.out.splitlines()[-1] == "3 migration(s) applied"
    r = cli(*base, "apply")
    assert r.out.strip() == "nothing to do: no migration applied"
    r = cli(*base, "rollback", "--step", "2")
    assert r.code == 0 and r.out.splitlines()[-1] == "2 migration(s) rolled back"
    r = cli(*base, "baseline", "--to", "003")
    assert r.out.splitlines()[-1] == "2 migration(s) baselined"
    r = cli(*base, "repair")
    assert r.out.strip() == "nothing to do: no migration repaired"


def test_other_targets_need_yes_without_a_terminal(
    cli: Any, db_url: str, basic: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BILANTOOLS_HOME", str(tmp_path / "elsewhere"))  # not this server's sandbox
    base = ["--db", db_url, "--migrations", str(basic)]
    r = cli(*base, "apply")
    assert r.code == 2
    assert r.err.splitlines()[0] == f"target: {db_url} (database, from --db)"
    assert (
        r.err.splitlines()[-1]
        == f"error: refusing to apply migrations to {db_url} without confirmation: pass --yes"
    )
    with psycopg.connect(db_url) as conn:
        assert tables(conn) == []
    for command in (["rollback"], ["baseline", "--to", "001"], ["repair"]):
        assert cli(*base, *command).code == 2
    assert cli(*base, "apply", "--dry-run").code == 0  # a dry run changes nothing: no confirmation
    assert cli(*base, "apply", "--yes").code == 0


class Terminal(io.StringIO):
    """Standard input as a terminal that types `text`."""

    def isatty(self) -> bool:
        return True


def test_apply_prints_the_plan_asks_with_count_and_versions_then_names_the_backup(
    cli: Any, db_url: str, basic: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BILANTOOLS_HOME", str(tmp_path / "elsewhere"))  # not this server's sandbox
    base = ["--db", db_url, "--migrations", str(basic)]
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    r = cli(*base, "apply")
    assert r.code == 2
    err = r.err.splitlines()
    assert err[0] == f"target: {db_url} (database, from --db)"
    assert err[1] == "plan: apply 3 migrations"
    assert err[2].split() == ["VERSION", "NAME", "TRANSACTION", "LOCK", "(ESTIMATED)"]
    assert " ".join(err[3].split()) == "001 create_people one transaction no lock on an existing table"
    assert err[4].split()[-5:] == ["transaction", "ACCESS", "EXCLUSIVE", "on", "people"]  # ADD COLUMN
    assert err[5].split()[-5:] == ["transaction", "ROW", "EXCLUSIVE", "on", "people"]  # INSERT
    # the typed answer is not echoed here: the refusal follows the question on its line
    assert (
        err[6]
        == f"Apply 3 migrations (001, 002, 003) to {db_url}? [y/N]: error: cancelled: nothing was changed"
    )
    with psycopg.connect(db_url) as conn:
        assert tables(conn) == []

    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    backups = tmp_path / "auto"
    r = cli(*base, "apply", "--backup-dir", str(backups))
    assert r.code == 0 and r.out.splitlines()[-1] == "3 migration(s) applied"
    [dump] = backups.glob("*.dump")
    assert re.search(rf"backup: {re.escape(str(dump))} \(\d+(\.\d)? k?B\)$", r.err.splitlines()[-1])

    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    r = cli(*base, "rollback", "--to", "0")
    assert r.err.splitlines()[1] == "plan: roll back 3 migrations"
    assert f"Roll back 3 migrations (003, 002, 001) on {db_url}? [y/N]: error: cancelled" in r.err
    assert r.code == 2
    r = cli(*base, "apply", "--json", "--yes")  # --json: the object alone, no plan, no backup line
    assert json.loads(r.out)["steps"] == [] and "plan:" not in r.err and "backup:" not in r.err


def test_database_url_from_environment(
    cli: Any, db_url: str, basic: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    r = cli("--migrations", str(basic), "status")
    assert r.code == 0 and "from DATABASE_URL" in r.err.splitlines()[0]


@pytest.fixture
def app_role(db_url: str) -> str:
    """A password-authenticated owner of the test database; returns its URL (with password)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        role_exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'bt_app'").fetchone()
        if not role_exists:
            conn.execute(f"CREATE ROLE bt_app LOGIN PASSWORD '{PASSWORD}'")
        dbname = conn.info.dbname
        conn.execute(f'ALTER DATABASE "{dbname}" OWNER TO bt_app')
        conn.execute("GRANT ALL ON SCHEMA public TO bt_app")
    return db_url.replace("postgres@", f"bt_app:{PASSWORD}@")


def test_password_never_shown(cli: Any, app_role: str, basic: Path, tmp_path: Path) -> None:
    masked = app_role.replace(PASSWORD, "***")
    base = ["--db", app_role, "--migrations", str(basic)]
    (basic / "004_bad.sql").write_text("SELECT * FROM missing_table;\n")
    outputs = []
    for command in (
        ["status"],
        ["status", "--json"],
        ["plan", "--json"],
        ["apply", "--dry-run"],
        ["apply", "--yes"],
        ["apply", "--yes", "--json"],
        ["validate"],
        ["repair", "--yes"],
        ["rollback", "--yes", "--to", "0"],
        ["baseline", "--to", "002", "--yes"],
    ):
        r = cli(*base, *command)
        outputs.append(r.out + r.err)
        assert masked in r.err.splitlines()[0]
    wrong = app_role.replace(PASSWORD, "wrong-" + PASSWORD)
    r = cli("--db", wrong, "--migrations", str(basic), "status")
    assert r.code == 2
    assert r.err.splitlines()[-1].startswith("error: cannot connect to postgresql://bt_app:***@")
    assert 'password authentication failed for user "bt_app"; check the user name and password' in r.err
    outputs.append(r.out + r.err)
    for text in outputs:
        assert PASSWORD not in text
    with psycopg.connect(app_role) as conn:
        logged = conn.execute(
            "SELECT string_agg(coalesce(detail, ''), ' ') FROM schema_migration_events"
        ).fetchone()
        assert logged is not None and PASSWORD not in (logged[0] or "")
        errors = conn.execute(
            "SELECT string_agg(coalesce(error_message, ''), ' ') FROM schema_migrations"
        ).fetchone()
        assert errors is not None and PASSWORD not in (errors[0] or "")


def test_sandbox_commands(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    home = Path(tempfile.mkdtemp(prefix="bilantools-test-home-"))  # outside pytest's rotating tmp
    monkeypatch.setenv("BILANTOOLS_HOME", str(home))
    pg_bin = os.environ.get("BILANTOOLS_TEST_PG_BIN")
    flags = ["--pg-bin", pg_bin] if pg_bin else []
    r = cli(*flags, "sandbox", "status")
    assert r.code == 0 and r.out.startswith("not running")
    try:
        r = cli(*flags, "sandbox", "start")
        url = r.out.strip()
        assert (
            r.code == 0
            and url.startswith("postgresql://postgres@127.0.0.1:")
            and url.endswith("/bilancompetence")
        )
        assert cli(*flags, "sandbox", "url").out.strip() == url
        status = json.loads(cli(*flags, "sandbox", "status", "--json").out)
        assert status["running"] and status["url"] == url
        r = cli(*flags, "sandbox", "new-db", "scratch_1")
        assert r.out == url.replace("/bilancompetence", "/scratch_1") + "\n"  # only the URL on stdout
        with psycopg.connect(r.out.strip()) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("scratch_1",)
        r = cli(*flags, "sandbox", "new-db", "scratch_1")
        assert r.code == 2 and "already exists in the sandbox; choose another name" in r.err
        r = cli(*flags, "sandbox", "new-db", "bad name;")
        assert r.code == 2 and "invalid database name 'bad name;'" in r.err
        generated = cli(*flags, "sandbox", "new-db").out.strip()
        assert generated.rsplit("/", 1)[1].startswith("db_")
        # the default target is the sandbox when neither --db nor DATABASE_URL is given
        r = cli("--migrations", str(Path(__file__).parent / "fixtures" / "basic"), *flags, "apply")
        assert r.code == 0 and "(sandbox, from sandbox)" in r.err
        r = cli(*flags, "sandbox", "reset")
        assert r.code == 0
        with psycopg.connect(r.out.strip()) as conn:
            assert tables(conn) == []
            assert conn.execute(
                "SELECT count(*) FROM pg_database WHERE datname = 'scratch_1'"
            ).fetchone() == (0,)
        assert cli(*flags, "sandbox", "stop").out.strip() == "stopped"
        assert cli(*flags, "sandbox", "stop").out.strip() == "the sandbox was not running"
        assert cli(*flags, "sandbox", "url").code == 2
    finally:
        Sandbox(home).stop()
        shutil.rmtree(home, ignore_errors=True)


def test_version_and_help(cli: Any) -> None:
    r = cli("--version")
    assert r.code == 0 and r.out.startswith("bilantools, version ")
    r = cli("--help")
    for command in ("apply", "baseline", "plan", "repair", "rollback", "sandbox", "status", "validate"):
        assert f"  {command} " in r.out


def test_errors_name_the_cli_flags(cli: Any, db_url: str, basic: Path) -> None:
    """An error names an option by its front-door parameter; the CLI prints its flag, in
    the error line and in the --json failure object, never the Python spelling."""
    r = cli("--db", db_url, "--migrations", str(basic), "apply", "--to", "099", "--json")
    message = "--to 099: no migration has version 099"
    assert r.code == 2 and message in json.loads(r.out)["error"] and "to=099" not in r.out
    assert r.err.strip().splitlines()[-1].startswith(f"error: {message}")
    r = cli("--migrations", str(basic / "nope"), "check")
    assert r.err.strip().endswith("pass --migrations DIR (default ./migrations)")


def test_every_option_an_error_can_name_is_a_flag() -> None:
    """Each parameter a front-door message may name is spelled as a flag the CLI has."""
    import click

    from bilantools.cli.flags import spell
    from bilantools.cli.main import cli as group
    from bilantools.commands import RunOptions

    def flags(command: click.Command) -> set[str]:
        found = {opt for p in command.params for opt in p.opts if opt.startswith("--")}
        for sub in getattr(command, "commands", {}).values():
            found |= flags(sub)
        return found

    # rollout_id: set by the fleet for each target's run (cli/fleet.py makes it), never a flag
    names = {f for f in RunOptions.__dataclass_fields__ if f not in ("backup", "rollout_id")}
    names |= {"target", "project", "pg_bin", "out", "keep", "clean", "fmt", "exact_rows"}
    assert {spell(name, None) for name in names} <= flags(group)
    assert spell("lock_wait", "60") == "--lock-wait 60" and spell("target", None) == "--db"
