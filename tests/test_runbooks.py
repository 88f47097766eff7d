"""Runbooks executed from the CLI with papermill: a failing cell named, parameters that
never carry secrets. The seven runbooks run end to end from the CLI, with a password in
DATABASE_URL that must stay out of every kept file, in tests/faults/test_secrets.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest

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
