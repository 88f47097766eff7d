"""Runbooks executed from the CLI with papermill: the audit copy, its outcome record, the
password kept out of it, and a failing cell named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import psycopg
import pytest

from bilantools import commands
from bilantools.runbooks import parse_parameters

pytestmark = pytest.mark.runbooks
REPO = Path(__file__).parent.parent
PASSWORD = "Rb-s3cret_pw-19"


@pytest.fixture
def app_url(db_url: str) -> str:
    with psycopg.connect(db_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'bt_runbook'").fetchone():
            conn.execute(f"CREATE ROLE bt_runbook LOGIN PASSWORD '{PASSWORD}'")
        conn.execute(f'ALTER DATABASE "{conn.info.dbname}" OWNER TO bt_runbook')
        conn.execute("GRANT ALL ON SCHEMA public TO bt_runbook")
    return db_url.replace("postgres@", f"bt_runbook:{PASSWORD}@")


def test_verify_runbook_from_the_cli(cli: Any, app_url: str, tmp_path: Path) -> None:
    """00 applies the schema (not the sandbox, so `yes=true` as with --yes), 03 verifies it."""
    runs, notebooks = tmp_path / "runs", str(REPO / "notebooks")
    r = cli(
        "--db",
        app_url,
        "runbook",
        "run",
        "00",
        "-p",
        "yes=true",
        "-p",
        f"backup_dir={tmp_path / 'b'}",
        "--notebooks",
        notebooks,
        "--runs",
        str(runs),
    )
    assert r.code == 0, r.err
    assert commands.status(app_url, REPO / "migrations").count("applied") == 29  # it applied the schema
    r = cli("--db", app_url, "runbook", "run", "03", "--notebooks", notebooks, "--runs", str(runs))
    assert r.code == 0, r.err
    assert r.out.startswith("03_verify: succeeded in ")
    executed = next(runs.glob("*_03_verify.ipynb"))
    record = json.loads(executed.with_suffix(".json").read_text())
    assert record["outcome"] == "succeeded" and record["notebook"] == "03_verify"
    assert record["target"] == app_url.replace(PASSWORD, "***")
    notebook = nbformat.read(str(executed), as_version=4)
    outputs = json.dumps([c.get("outputs", []) for c in notebook.cells])
    assert "verify: OK, all" in outputs and "all 0 object" not in outputs  # the verification, on 29
    assert notebook.metadata["papermill"]["parameters"] == {}
    for path in runs.iterdir():
        assert PASSWORD not in path.read_text(errors="replace"), path
    assert PASSWORD not in r.out + r.err
    listed = cli("runbook", "list", "--runs", str(runs), "--json")
    assert [run["notebook"] for run in json.loads(listed.out)["runs"]] == ["03_verify", "00_quickstart"]


def test_a_failing_cell_is_named(cli: Any, db_url: str, tmp_path: Path) -> None:
    notebooks = tmp_path / "nb"
    notebooks.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    params = nbformat.v4.new_code_cell("answer = 41")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("assert answer == 42, 'the answer is wrong'")]
    nbformat.write(nb, str(notebooks / "09_broken.ipynb"))
    runs = tmp_path / "runs"
    r = cli("--db", db_url, "runbook", "run", "09", "--notebooks", str(notebooks), "--runs", str(runs))
    assert r.code == 1
    last = r.err.strip().splitlines()[-1]
    assert last.startswith("error: runbook 09_broken failed at cell 2 (AssertionError): the answer is wrong")
    assert json.loads(next(runs.glob("*.json")).read_text())["outcome"] == "failed"
    r = cli(
        "--db",
        db_url,
        "runbook",
        "run",
        "09",
        "-p",
        "answer=42",
        "--notebooks",
        str(notebooks),
        "--runs",
        str(runs),
    )
    assert r.code == 0 and "succeeded" in r.out


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["db_url=postgresql://x"], "looks like a connection or a secret"),
        (["password=x"], "looks like a connection or a secret"),
        (["to"], "is not key=value"),
    ],
)
def test_parameters_never_carry_secrets(pairs: list[str], message: str) -> None:
    from bilantools.errors import InputError

    with pytest.raises(InputError, match=message):
        parse_parameters(pairs)
    # a version stays text ("017" is not JSON), numbers and booleans are read as such
    assert parse_parameters(["to=017", "steps=3", "yes=true"]) == {"to": "017", "steps": 3, "yes": True}


def test_unknown_runbook(cli: Any, db_url: str) -> None:
    r = cli("--db", db_url, "runbook", "run", "99", "--notebooks", str(REPO / "notebooks"))
    assert r.code == 2 and "runbook '99' matches no notebook" in r.err and "02_apply_stepwise" in r.err
