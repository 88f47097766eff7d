"""Plain-format backups altered after they were taken: psql meta-commands never run.

A real plain backup taken by bilantools gets a psql meta-command appended or inserted (a
shell command, an output pipe, another file, another database, a large object...) and
its sidecar's SHA-256 rewritten to match, as whoever can edit one file can edit the
other. `backup verify` and `restore` must refuse it with one line naming file:line and
the meta-command (exit 2), run nothing (the marker file a shell command would create
never appears), and leave the target database and the sidecar as they were. COPY data
is data: backslashes in it never trigger anything, a failed COPY's data is skipped. An
untouched plain dump still verifies and restores, tricky data and SQL function bodies
included.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands
from bilantools.db import backup as backups
from bilantools.db import plain_dump
from bilantools.db.fingerprint import fingerprint
from bilantools.db.sandbox import Sandbox
from bilantools.db.target import parse_target
from tests.conftest import TEMPLATE
from tests.faults.conftest import Figures

MIGRATIONS = Path(__file__).parent.parent.parent / "migrations"
# Values whose COPY text form starts lines with backslashes, or holds "\." and "\!".
TRICKY = ["\\! touch {marker}", "line one\n\\! touch {marker}", "\\.", "tab\there", "back\\slash;"]
EXTRA_SQL = """
CREATE FUNCTION bt_atomic(a int) RETURNS int LANGUAGE sql
BEGIN ATOMIC
    SELECT a + 1;
    SELECT CASE WHEN a > 0 THEN a ELSE 0 END;
END;
CREATE TABLE bt_notes (id int PRIMARY KEY, note text DEFAULT E'\\\\! not a command; \\\\.');
COMMENT ON TABLE bt_notes IS 'a backslash \\ here; and a $$ there';
CREATE FUNCTION bt_dollar() RETURNS text LANGUAGE plpgsql AS $body$
BEGIN
    RETURN '\\! still text; $x$';
END
$body$;
"""


@pytest.fixture(scope="module")
def source(server: Sandbox) -> Iterator[str]:
    """The 29 migrations, tricky rows and SQL bodies, in a database of the module."""
    url = server.new_db("plain_src_" + uuid.uuid4().hex[:8], template=TEMPLATE)
    commands.apply(target=url, project=MIGRATIONS, options=commands.RunOptions(backup=False))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(EXTRA_SQL)
        for i, name in enumerate(TRICKY):
            conn.execute("INSERT INTO organizations (name, slug) VALUES (%s, %s)", (name, f"tricky-{i}"))
            conn.execute("INSERT INTO bt_notes (id, note) VALUES (%s, %s)", (i, name))
    yield url
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


@pytest.fixture(scope="module")
def taken(source: str, tmp_path_factory: pytest.TempPathFactory) -> backups.Backup:
    """One full plain backup of `source`, taken by bilantools."""
    return backups.take(parse_target(source, "--db"), tmp_path_factory.mktemp("plain"), fmt="plain")


def altered(taken: backups.Backup, into: Path, edit: Callable[[list[str]], list[str]]) -> Path:
    """A copy of the backup with its lines edited and its sidecar's SHA-256 made to match."""
    file = into / taken.file.name
    lines = taken.file.read_text(encoding="utf-8").splitlines(keepends=True)
    file.write_text("".join(edit(lines)), encoding="utf-8")
    meta = dict(taken.meta)
    meta["sha256"] = hashlib.sha256(file.read_bytes()).hexdigest()
    meta["bytes"] = file.stat().st_size
    (into / taken.sidecar.name).write_text(json.dumps(meta), encoding="utf-8")
    return file


def append(*added: str) -> Callable[[list[str]], list[str]]:
    return lambda lines: [*lines, *(a + "\n" for a in added)]


def after(anchor: str, *added: str) -> Callable[[list[str]], list[str]]:
    """Insert lines after the first line starting with `anchor`."""

    def edit(lines: list[str]) -> list[str]:
        at = next(i for i, line in enumerate(lines) if line.startswith(anchor)) + 1
        return [*lines[:at], *(a + "\n" for a in added), *lines[at:]]

    return edit


@dataclass(frozen=True)
class Case:
    id: str
    edit: Callable[[list[str]], list[str]]
    shown: str  # the meta-command as the message names it
    anchor: str | None = None  # the refused line is the one after this; None: the last line


def cases(marker: Path, evil: Path) -> list[Case]:
    shell = f"touch {marker}"
    return [
        Case("shell-appended", append(f"\\! {shell}"), "\\!"),
        Case("shell-after-unrestrict", after("\\unrestrict ", f"\\! {shell}"), "\\!", "\\unrestrict "),
        Case("shell-at-the-top", after("\\restrict ", f"\\! {shell}"), "\\!", "\\restrict "),
        Case(
            "output-pipe", after("SET row_security", f"\\o |{shell}", "SELECT 1;"), "\\o", "SET row_security"
        ),
        Case("query-pipe-mid-line", append(f"SELECT 1 \\g |{shell}"), "\\g"),
        Case("copy-to-program", append(f"\\copy (SELECT 1) TO PROGRAM '{shell}'"), "\\copy"),
        Case(
            "setenv", after("SET row_security", f"\\setenv PAGER '{shell}'"), "\\setenv", "SET row_security"
        ),
        Case("include-absolute", append(f"\\i {evil}"), "\\i"),
        Case("include-relative", append(f"\\ir {evil.name}"), "\\ir"),
        Case("large-object-import", append(f"\\lo_import {evil}"), "\\lo_import"),
        Case("connect-elsewhere", append("\\connect postgres", "CREATE TABLE pwned ();"), "\\connect"),
        Case(
            "set-variable", after("SET row_security", "\\set ON_ERROR_STOP on"), "\\set", "SET row_security"
        ),
        Case(
            "inside-a-statement",
            after("CREATE TABLE public.users (", f"\\! {shell}"),
            "\\!",
            "CREATE TABLE public.users (",
        ),
        Case("after-copy-data", after("\\.", f"\\! {shell}"), "\\!", "\\."),
        Case("copy-end-outside-copy", append("\\."), "\\."),
        Case("semicolon-escape", append("SELECT 1 \\; SELECT 2;"), "\\;"),
    ]


CASE_IDS = [c.id for c in cases(Path("m"), Path("e"))]


def refused_line(file: Path, case: Case) -> int:
    lines = file.read_text(encoding="utf-8").splitlines()
    if case.anchor is None:
        return len(lines) - (1 if case.id == "connect-elsewhere" else 0)
    return next(i for i, line in enumerate(lines) if line.startswith(case.anchor)) + 2


def relations(url: str) -> tuple[object, ...]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')),"
            " (SELECT count(*) FROM pg_largeobject_metadata)"
        ).fetchone()
        assert rows is not None
        return (*rows, fingerprint(conn).digest)


def databases(server: Sandbox) -> list[str]:
    """No scratch database left behind by a refused verify."""
    with psycopg.connect(server.url("postgres")) as conn:
        return [r[0] for r in conn.execute("SELECT datname FROM pg_database ORDER BY 1").fetchall()]


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_meta_command_is_refused_and_never_run(
    case_id: str,
    taken: backups.Backup,
    server: Sandbox,
    db_url: str,
    cli: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    figures: Figures,
) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.sql"
    evil.write_text(f"\\! touch {marker}\nCREATE TABLE pwned_by_include ();\n")
    case = next(c for c in cases(marker, evil) if c.id == case_id)
    file = altered(taken, tmp_path, case.edit)
    sidecar = file.with_name(file.name + ".json").read_bytes()
    monkeypatch.chdir(tmp_path)  # where \ir would look
    before = relations(db_url), relations(server.url("postgres")), databases(server)
    line = refused_line(file, case)
    for action, argv in (
        ("verify", ["backup", "verify", str(file)]),
        ("restore", ["--db", db_url, "restore", str(file), "--yes"]),
    ):
        r = cli(*argv)
        assert (r.code, r.out) == (2, ""), (action, r.err)
        expected = (
            f"error: {file}:{line}: psql meta-command {case.shown} in a plain dump: pg_dump never "
            f"writes it and psql would run it; refusing to {action} {file.name}, nothing was run: "
            "use a backup that was not altered, or take a new one"
        )
        assert r.err.splitlines()[-1] == expected
        assert not marker.exists(), f"{case_id}: {action} ran a shell command"
    assert (relations(db_url), relations(server.url("postgres")), databases(server)) == before
    assert file.with_name(file.name + ".json").read_bytes() == sidecar  # no verdict recorded
    figures.add("plain dumps: meta-commands refused")


def test_text_after_copy_statement_is_refused(
    taken: backups.Backup, db_url: str, cli: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"

    def edit(lines: list[str]) -> list[str]:
        at = next(i for i, line in enumerate(lines) if line.startswith("COPY public.users "))
        return [*lines[:at], lines[at].rstrip("\n") + f" \\! touch {marker}\n", *lines[at + 1 :]]

    file = altered(taken, tmp_path, edit)
    line = next(
        i for i, x in enumerate(file.read_text().splitlines(), 1) if x.startswith("COPY public.users ")
    )
    r = cli("--db", db_url, "restore", str(file), "--yes")
    assert r.code == 2 and r.err.splitlines()[-1].startswith(
        f"error: {file}:{line}: text after 'COPY ... FROM stdin;' on the same line in a plain dump:"
    )
    assert not marker.exists() and relations(db_url)[0] == 0


def test_failed_copy_data_is_skipped_never_run(
    taken: backups.Backup, db_url: str, cli: Any, tmp_path: Path, figures: Figures
) -> None:
    """psql reads the data of a COPY that failed as commands; here it is skipped."""
    marker = tmp_path / "pwned"

    def edit(lines: list[str]) -> list[str]:
        at = next(i for i, line in enumerate(lines) if line.startswith("COPY public.users "))
        copy = lines[at].replace("COPY public.users ", "COPY public.no_such_table ")
        return [*lines[:at], copy, f"\\! touch {marker}\n", *lines[at + 1 :]]

    file = altered(taken, tmp_path, edit)
    line = next(i for i, x in enumerate(file.read_text().splitlines(), 1) if "no_such_table" in x)
    r = cli("backup", "verify", str(file))
    assert (
        r.code == 1
        and f'DIFFERENT: {file.name}:{line}: ERROR 42P01: relation "public.no_such_table" does not exist'
        in r.out
    )
    r = cli("--db", db_url, "restore", str(file), "--yes")
    assert r.code == 2 and f"failed: {file.name}:{line}: ERROR 42P01: relation" in r.err
    assert not marker.exists()
    figures.add("plain dumps: failed COPY data skipped")


def test_untouched_plain_dump_verifies_and_restores(
    taken: backups.Backup, source: str, server: Sandbox, db_url: str, cli: Any, tmp_path: Path
) -> None:
    file = tmp_path / taken.file.name
    shutil.copy(taken.file, file)
    shutil.copy(taken.sidecar, tmp_path / taken.sidecar.name)
    assert any(line.startswith("\\restrict ") for line in file.read_text().splitlines())  # pg_dump 18
    r = cli("backup", "verify", str(file))
    assert (r.code, r.out.strip()) == (0, f"{file}: OK")
    r = cli("--db", db_url, "restore", str(file), "--yes")
    assert r.code == 0, r.err
    with psycopg.connect(db_url) as conn:
        assert backups.compare(taken, conn) == []
        names = conn.execute(
            "SELECT name FROM organizations WHERE slug LIKE 'tricky-%' ORDER BY slug"
        ).fetchall()
        notes = conn.execute("SELECT note FROM bt_notes ORDER BY id").fetchall()
        assert conn.execute("SELECT bt_atomic(2), bt_dollar()").fetchone() == (2, "\\! still text; $x$")
    assert [n for (n,) in names] == [n for (n,) in notes] == TRICKY


ATOMIC = (
    "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n"
    " SELECT CASE WHEN true THEN 1 END;\n SELECT 2;\nEND;\n"
)


# -- the splitter alone -------------------------------------------------------------------------
def split(tmp_path: Path, text: str) -> list[object]:
    file = tmp_path / "x.sql"
    file.write_bytes(text.encode())
    out: list[object] = []
    for item in plain_dump.read(file):
        if isinstance(item, plain_dump.Statement):
            out.append((item.line, item.sql.decode(), item.copy_from_stdin))
        elif isinstance(item, plain_dump.CopyData):
            out.append(item.rows.decode())
        else:
            out.append("END")
    return out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT '\\! no';\n", [(1, "SELECT '\\! no';", False)]),
        ("SELECT E'it\\'s \\\\! no; still';\n", [(1, "SELECT E'it\\'s \\\\! no; still';", False)]),
        ("SELECT 'a''b \\o |x';\n", [(1, "SELECT 'a''b \\o |x';", False)]),
        ('SELECT 1 AS "x\\!;";\n', [(1, 'SELECT 1 AS "x\\!;";', False)]),
        ("-- \\! a comment\nSELECT 1; -- \\! too\n", [(2, "SELECT 1;", False)]),
        ("/* \\! /* nested \\! */ still */ SELECT 1;\n", [(1, "SELECT 1;", False)]),
        (
            "SELECT $$\n\\! text; $$, $a$ $$ ; \\g $a$;\n",
            [(1, "SELECT $$\n\\! text; $$, $a$ $$ ; \\g $a$;", False)],
        ),
        ("SELECT (1;\n2);\n", [(1, "SELECT (1;\n2);", False)]),
        (
            ATOMIC + "SELECT 3;\n",
            [(1, ATOMIC.rstrip("\n"), False), (6, "SELECT 3;", False)],
        ),
        ("BEGIN;\nSELECT 1;\nEND;\n", [(1, "BEGIN;", False), (2, "SELECT 1;", False), (3, "END;", False)]),
        (
            "copy public.t (a) FROM STDIN;\n\\\\! data\n\\.\nSELECT 1;\n",
            [(1, "copy public.t (a) FROM STDIN;", True), "\\\\! data\n", "END", (4, "SELECT 1;", False)],
        ),
        ("COPY (SELECT 1 FROM stdin) TO STDOUT;\n", [(1, "COPY (SELECT 1 FROM stdin) TO STDOUT;", False)]),
        ("COPY t FROM stdin;\n\\! data\n", [(1, "COPY t FROM stdin;", True), "\\! data\n", "END"]),
        (
            "SET standard_conforming_strings = off;\nSELECT 'a\\'; \\!';\n",
            [(1, "SET standard_conforming_strings = off;", False), (2, "SELECT 'a\\'; \\!';", False)],
        ),
        ("\\restrict abc123\nSELECT 1\n\\unrestrict abc123\n", None),
        ("\\restrict abc123\nSELECT 1;\n\\unrestrict abc123\n", [(2, "SELECT 1;", False)]),
        ("SELECT 1", [(1, "SELECT 1", False)]),
    ],
)
def test_splits_like_psql(tmp_path: Path, text: str, expected: list[object] | None) -> None:
    if expected is None:  # \unrestrict inside a statement: refused
        with pytest.raises(plain_dump.UnsafeDump, match=r"x\.sql:3: psql meta-command \\unrestrict in"):
            split(tmp_path, text)
        return
    assert split(tmp_path, text) == expected
