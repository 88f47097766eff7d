"""The curated runbooks (notebooks/0*.ipynb), read as files: no kernel, no database.

`make pytest-notebooks` re-executes them under nbval and compares every cell with its
stored output. That comparison is only as strong as what is stored, and a notebook can
defeat it quietly (a cell saved without output is never compared; jupysql's short errors
turn a failing query into a printout). These tests refuse such notebooks, and anything
that would leak a password or change the database through jupysql.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
CURATED = sorted(NOTEBOOKS.glob("0*.ipynb"))

# postgresql://user:secret@host, postgres://..., postgresql+psycopg://... (an empty password,
# "user:@host", and the mask "user:***@host" are no password); and libpq's password=... .
URL_WITH_PASSWORD = re.compile(r"postgres(?:ql)?(?:\+\w+)?://[^\s:/@'\"]*:(?!\*\*\*@)[^\s@/'\"]+@", re.I)
PASSWORD_KEYWORD = re.compile(r"password\s*=", re.I)
READING = {"SELECT", "WITH", "SHOW"}
# ...and no write hidden in a read: a data-modifying WITH, or SELECT ... INTO a new table.
WRITE_INSIDE = re.compile(r"\b(INSERT|UPDATE|DELETE|MERGE|INTO)\b", re.I)
# jupysql options that take a value; SQL commands that are one word (not a connection's name).
VALUED_OPTIONS = {"-a", "--alias", "-s", "--save", "-w", "--with", "-x", "--close", "-f", "--file"}
ONE_WORD_SQL = {
    "ABORT", "ANALYSE", "ANALYZE", "BEGIN", "CHECKPOINT", "CLUSTER", "COMMIT", "DISCARD", "END",
    "REINDEX", "RESET", "ROLLBACK", "START", "VACUUM",
}  # fmt: skip


def load(path: Path) -> dict[str, Any]:
    notebook: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return notebook


def source(cell: dict[str, Any]) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else str(text)


def code_cells(path: Path) -> list[dict[str, Any]]:
    return [c for c in load(path)["cells"] if c.get("cell_type") == "code"]


def texts(value: Any) -> list[str]:
    """Every string inside a notebook's JSON (sources, outputs, metadata)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in texts(v)]
    return []


def statements(sql: str) -> list[str]:
    """The statements of a SQL text, comments, literals and quoted names blanked, split on ';'."""
    sql = re.sub(r"'(?:[^']|'')*'", "''", sql)
    sql = re.sub(r'"(?:[^"]|"")*"', '""', sql)
    sql = re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.S)
    return [s.strip() for s in sql.split(";") if s.strip()]


def sql_in(cell_source: str) -> list[str]:
    """The SQL a code cell sends through jupysql: a %%sql cell's body, and %sql lines.

    The first line of a %%sql cell holds options and `name <<` (store the result), not SQL.
    A `%sql` line may assign its result (`rows = %sql SELECT ...`), start with options, or name
    a connection object (`%sql engine`) instead of SQL.
    """
    lines = cell_source.splitlines()
    if lines and lines[0].lstrip().startswith("%%sql"):
        return ["\n".join(lines[1:])]
    found = []
    for line in lines:
        match = re.match(r"\s*(?:\w+\s*=\s*)?%sql\b(.*)", line)
        if not match:
            continue
        words = match[1].split()
        while words and words[0].startswith("-"):  # options, and the value of those that take one
            option = words.pop(0)
            if option in VALUED_OPTIONS and words:
                words.pop(0)
        if len(words) == 1 and words[0].isidentifier() and words[0].upper() not in ONE_WORD_SQL:
            continue  # a connection object
        found.append(" ".join(words))
    return found


def first_word(statement: str) -> str:
    return re.sub(r"^[\s(]+", "", statement).split(None, 1)[0].upper()


def test_there_are_curated_notebooks() -> None:
    names = [p.stem for p in CURATED]
    assert len(names) >= 7, names
    assert (NOTEBOOKS / "nbval-sanitize.cfg").is_file()


@pytest.mark.parametrize("path", CURATED, ids=lambda p: p.stem)
def test_every_code_cell_was_executed_and_kept_its_output(path: Path) -> None:
    """nbval compares only what was saved: a cell without outputs would pass whatever it does."""
    bare = [
        f"cell {i}: {source(c).splitlines()[0] if source(c) else '(empty)'}"
        for i, c in enumerate(code_cells(path))
        if not c.get("outputs") or c.get("execution_count") is None
    ]
    assert not bare, f"{path.name}: code cells without stored output or execution count: {bare}"


@pytest.mark.parametrize("path", CURATED, ids=lambda p: p.stem)
def test_the_parameters_cell_comes_first_and_was_executed(path: Path) -> None:
    cells = code_cells(path)
    assert cells, f"{path.name} has no code cell"
    assert "parameters" in cells[0].get("metadata", {}).get("tags", []), (
        f"{path.name}: the first code cell must be tagged 'parameters' (papermill injects after it)"
    )
    assert cells[0].get("execution_count") is not None, f"{path.name}: the parameters cell was not executed"
    assert "://" not in source(cells[0]) and not PASSWORD_KEYWORD.search(source(cells[0])), (
        f"{path.name}: the database is never a parameter (use DATABASE_URL)"
    )


# The shared set-up (bilantools.notebook.runbook.setup) sets it: tests/test_runbook_setup.py
# proves it in a real IPython shell.
SETUP_IMPORT = re.compile(r"^from bilantools\.notebook\.runbook import [\w, ]*\bsetup\b", re.M)
SETUP_CALL = re.compile(r"^\w+ = setup\(", re.M)


@pytest.mark.parametrize("path", CURATED, ids=lambda p: p.stem)
def test_jupysql_errors_raise(path: Path) -> None:
    """Without it a failing %sql prints a short message and the cell 'succeeds'."""
    assert any(
        re.search(r"^\s*%config SqlMagic\.short_errors = False\s*$", source(c), re.M)
        or (SETUP_IMPORT.search(source(c)) and SETUP_CALL.search(source(c)))
        for c in code_cells(path)
    ), f"{path.name} lacks '%config SqlMagic.short_errors = False' (or the runbook set-up that sets it)"


@pytest.mark.parametrize("path", CURATED, ids=lambda p: p.stem)
def test_no_password_anywhere(path: Path) -> None:
    """Sources, outputs and metadata: no URL with a password, no password= keyword."""
    for text in texts(load(path)):
        assert not URL_WITH_PASSWORD.search(text), f"{path.name}: a URL with a password: {text[:200]!r}"
        assert not PASSWORD_KEYWORD.search(text), f"{path.name}: 'password=' in {text[:200]!r}"


@pytest.mark.parametrize("path", CURATED, ids=lambda p: p.stem)
def test_jupysql_only_reads(path: Path) -> None:
    """Changes go through bilantools.commands (transactions, lock, history), never %sql."""
    for cell in code_cells(path):
        for sql in sql_in(source(cell)):
            for statement in statements(sql):
                verb = first_word(statement)
                assert verb in READING, f"{path.name}: jupysql runs {verb}, not a read: {statement[:120]!r}"
                hidden = WRITE_INSIDE.search(statement)
                assert not hidden, (
                    f"{path.name}: {hidden[0]} inside a {verb}, not a read: {statement[:120]!r}"
                )


# The checks above, proven on notebooks that break them.


def fake_notebook(tmp_path: Path, cells: list[dict[str, Any]]) -> Path:
    path = tmp_path / "09_fake.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def cell(
    text: str, outputs: list[Any] | None = None, count: int | None = 1, tags: list[str] | None = None
) -> Any:
    return {
        "cell_type": "code",
        "source": text,
        "metadata": {"tags": tags or []},
        "outputs": outputs
        if outputs is not None
        else [{"output_type": "stream", "name": "stdout", "text": "x"}],
        "execution_count": count,
    }


PARAMS = cell('migrations = "../migrations"\nprint(migrations)', tags=["parameters"])
CONFIG = cell("%config SqlMagic.short_errors = False", outputs=[{"output_type": "stream", "text": ""}])


def test_the_checks_catch_broken_notebooks(tmp_path: Path) -> None:
    stripped = fake_notebook(tmp_path, [PARAMS, CONFIG, cell("print(1)", outputs=[], count=None)])
    with pytest.raises(AssertionError, match="without stored output"):
        test_every_code_cell_was_executed_and_kept_its_output(stripped)

    untagged = fake_notebook(tmp_path, [cell('migrations = "../migrations"'), CONFIG])
    with pytest.raises(AssertionError, match="tagged 'parameters'"):
        test_the_parameters_cell_comes_first_and_was_executed(untagged)

    short = fake_notebook(tmp_path, [PARAMS, cell("%config SqlMagic.short_errors = True")])
    with pytest.raises(AssertionError, match="short_errors"):
        test_jupysql_errors_raise(short)
    imported_only = fake_notebook(tmp_path, [PARAMS, cell("from bilantools.notebook.runbook import setup")])
    with pytest.raises(AssertionError, match="short_errors"):
        test_jupysql_errors_raise(imported_only)
    set_up = "from bilantools.notebook.runbook import setup\n\nrunbook = setup('09_fake')"
    test_jupysql_errors_raise(fake_notebook(tmp_path, [PARAMS, cell(set_up)]))

    for leak in ("print('postgresql://app:s3cret@db:5432/bilan')", "conninfo = 'host=db password=s3cret'"):
        leaking = fake_notebook(tmp_path, [PARAMS, CONFIG, cell(leak)])
        with pytest.raises(AssertionError, match="password"):
            test_no_password_anywhere(leaking)
    masked = fake_notebook(tmp_path, [PARAMS, CONFIG, cell("print('postgresql://app:***@db/bilan')")])
    test_no_password_anywhere(masked)  # what target.masked prints

    for write in (
        "%%sql\nSELECT 1;\nDROP TABLE bilans",
        "%%sql rows <<\nUPDATE users SET role = 'admin'",
        "n = %sql DELETE FROM users",
        "%sql --save last VACUUM",
        "%sql commit",
        "%%sql\n-- SELECT only, says the comment\nINSERT INTO users VALUES ('a;b')",
        "%%sql\nWITH gone AS (DELETE FROM users RETURNING id) SELECT count(*) FROM gone",
        "%sql SELECT * INTO users_copy FROM users",
    ):
        writing = fake_notebook(tmp_path, [PARAMS, CONFIG, cell(write)])
        with pytest.raises(AssertionError, match="not a read"):
            test_jupysql_only_reads(writing)
    reading = fake_notebook(
        tmp_path,
        [
            PARAMS,
            CONFIG,
            cell("%%sql x <<\nWITH t AS (SELECT 1) SELECT * FROM t; SHOW server_version"),
            cell("rows = %sql SELECT 'DROP TABLE x' AS text, 1 AS \"update\""),
            cell("%sql engine\n%sql --alias ro engine"),
        ],
    )
    test_jupysql_only_reads(reading)
