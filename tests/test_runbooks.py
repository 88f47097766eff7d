"""Runbooks executed from the CLI with papermill: a failing cell named, parameters that
never carry secrets. The eight runbooks run end to end from the CLI, with a password in
DATABASE_URL that must stay out of every kept file, in tests/faults/test_secrets.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import psycopg
import pytest

from bilantools.db.sandbox import Sandbox
from bilantools.runbooks import parse_parameters

pytestmark = pytest.mark.runbooks
REPO = Path(__file__).parent.parent


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


def test_a_change_that_did_not_run_is_recorded_skipped_not_succeeded(
    cli: Any, db_url: str, tmp_path: Path
) -> None:
    """As `runbook run 00` on production without yes=True: every cell runs, the apply cell
    says "not run", and the record (and the exit code, as for a refusal) says so."""
    notebooks = tmp_path / "nb"
    notebooks.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    params = nbformat.v4.new_code_cell("yes = False")
    params.metadata["tags"] = ["parameters"]
    change = (
        "from bilantools import commands\n"
        "from bilantools.notebook.runbook import Runbook\n"
        "target = commands.resolve_target(target='postgresql://app:s3cret@db.example:5432/prod')\n"
        "runbook = Runbook(target, own_database=False, engine=None, yes=yes)\n"
        "if runbook.may_change('apply every pending migration'):\n"
        "    print('applied')"
    )
    nb.cells = [params, nbformat.v4.new_code_cell(change)]
    nbformat.write(nb, str(notebooks / "09_change.ipynb"))
    runs = tmp_path / "runs"
    base = ["--db", db_url, "runbook", "run", "09", "--notebooks", str(notebooks), "--runs", str(runs)]
    r = cli(*base)
    assert r.code == 2
    assert (
        r.err.strip()
        .splitlines()[-1]
        .startswith(
            "error: runbook 09_change ran, but 1 change(s) did not: apply every pending migration on "
            "postgresql://app:***@db.example:5432/prod needs the parameter yes=True, or a panel's Confirm; "
            "executed copy: "
        )
    )
    [record] = [json.loads(p.read_text()) for p in runs.glob("*.json")]
    assert record["outcome"] == "skipped" and len(record["skipped"]) == 1
    r = cli(*base, "-p", "yes=true")
    assert r.code == 0 and "09_change: succeeded" in r.out


def test_without_a_named_database_the_runbook_gets_no_database_url(
    cli: Any, server: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rule of JupyterLab for `runbook run` too: no --db, no DATABASE_URL, so the
    runbook's setup makes its scratch database, instead of changing the sandbox's own."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("BILANTOOLS_HOME", str(server.home))
    notebooks = tmp_path / "nb"
    notebooks.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    params = nbformat.v4.new_code_cell("x = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("import os\nassert 'DATABASE_URL' not in os.environ")]
    nbformat.write(nb, str(notebooks / "09_where.ipynb"))
    runs = tmp_path / "runs"
    r = cli("runbook", "run", "09", "--notebooks", str(notebooks), "--runs", str(runs))
    assert r.code == 0, r.err
    assert r.err.splitlines()[0] == (
        "target: a scratch database in the sandbox, dropped at the end (no --db, no DATABASE_URL)"
    )
    [record] = [json.loads(p.read_text()) for p in runs.glob("*.json")]
    assert record["target"] == "scratch database in the sandbox (dropped at the end)"


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


def test_the_kernels_own_stderr_is_kept_masked_not_shown(
    capfd: pytest.CaptureFixture[str], server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel process inherits bilantools' standard error: what it writes there (warnings,
    ipykernel's shutdown tracebacks) goes to <run>.kernel.log, masked, not to the terminal."""
    from bilantools import commands

    monkeypatch.setenv("BILANTOOLS_HOME", str(server.home))
    password = "Kern3l-Noise-pw"
    role = "bt_kernel_" + tmp_path.name[-6:].lower().replace("-", "_")
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
    try:
        notebooks = tmp_path / "nb"
        notebooks.mkdir()
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        params = nbformat.v4.new_code_cell("pass")
        params.metadata["tags"] = ["parameters"]
        noisy = "import os\nos.write(2, ('kernel noise: ' + os.environ['DATABASE_URL'] + '\\n').encode())"
        nb.cells = [params, nbformat.v4.new_code_cell(noisy)]
        nbformat.write(nb, str(notebooks / "09_noisy.ipynb"))
        url = server.url("postgres").replace("postgres@", f"{role}:{password}@")
        target = commands.resolve_target(target=url)
        capfd.readouterr()
        from bilantools.runbooks import run

        record = run("09", target, notebooks=notebooks, runs=tmp_path / "runs")
        shown = capfd.readouterr()
        assert "kernel noise" not in shown.err and password not in shown.err + shown.out
        log = record.executed.with_suffix(".kernel.log")
        kept = log.read_text()
        assert f"kernel noise: postgresql://{role}:***@" in kept and password not in kept
        assert record.meta["kernel_log"] == log.name
    finally:
        with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')
