"""Discovering migrations on disk: names, encodings, headers, checksums, ordering."""

from __future__ import annotations

from pathlib import Path

import pytest

from bilantools.errors import InputError
from bilantools.source.files import Script, checksum, normalise
from bilantools.source.headers import HeaderError, parse_headers
from bilantools.source.layouts.native import discover
from bilantools.source.statements import check_runnable, split


def write(directory: Path, name: str, text: str | bytes) -> Path:
    path = directory / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def rules(directory: Path) -> list[str]:
    return [f.rule for f in discover(directory).findings]


def test_discovers_basic_set_in_order(basic: Path) -> None:
    found = discover(basic)
    assert [m.label for m in found] == ["001_create_people", "002_add_email", "003_seed_people"]
    assert found.findings == []
    third = found.migrations[2]
    assert third.depends == ("001",)
    assert third.rollback is not None and third.rollback.path.name == "003_seed_people_rollback.sql"
    assert third.transactional


def test_checksum_ignores_crlf_and_bom(tmp_path: Path) -> None:
    text = "CREATE TABLE a (id int);\nSELECT 1;\n"
    crlf = ("\ufeff" + text.replace("\n", "\r\n")).encode("utf-8")
    assert normalise(crlf) == text
    assert checksum(normalise(crlf)) == checksum(text)
    write(tmp_path, "001_a.sql", text)
    lf = discover(tmp_path).migrations[0].checksum
    write(tmp_path, "001_a.sql", crlf)
    assert discover(tmp_path).migrations[0].checksum == lf
    write(tmp_path, "001_a.sql", text + "-- edited\n")
    assert discover(tmp_path).migrations[0].checksum != lf


def test_headers() -> None:
    headers = parse_headers("-- Adds things.\n--   depends: 001, 4 \n-- transaction: off\nSELECT 1;\n")
    assert headers.depends == ("001", "4")
    assert not headers.transactional
    # a directive after the first statement is documentation, not a header
    assert parse_headers("SELECT 1;\n-- transaction: off\n").transactional
    with pytest.raises(HeaderError, match="not a version number"):
        parse_headers("-- depends: 001, abc\n")
    with pytest.raises(HeaderError, match="transaction: maybe"):
        parse_headers("-- transaction: maybe\n")


def test_dependency_order_and_tie_break(tmp_path: Path) -> None:
    write(tmp_path, "001_a.sql", "SELECT 1;")
    write(tmp_path, "002_b.sql", "-- depends: 003\nSELECT 2;")
    write(tmp_path, "003_c.sql", "SELECT 3;")
    write(tmp_path, "004_d.sql", "SELECT 4;")
    assert [m.version for m in discover(tmp_path)] == ["001", "003", "002", "004"]


def test_missing_and_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist; pass project=DIR"):
        discover(tmp_path / "nope")
    with pytest.raises(InputError, match="no migrations in"):
        discover(tmp_path)


@pytest.mark.parametrize(
    ("files", "rule", "fragment"),
    [
        ({"1-a.sql": "SELECT 1;"}, "file-name", "does not match NNN_slug.sql"),
        ({"001_a.sql": "SELECT 1;", "001_b.sql": "SELECT 1;"}, "duplicate-version", "share version 001"),
        ({"001_a.sql": "SELECT 1;", "01_b.sql": "SELECT 1;"}, "duplicate-version", "share version"),
        ({"001_a.sql": "SELECT 1;", "002_b_rollback.sql": "SELECT 1;"}, "orphan-rollback", "no migration"),
        ({"001_a.sql": "SELECT 1;", "001_b_rollback.sql": "SELECT 1;"}, "orphan-rollback", "does not match"),
        ({"001_a.sql": b"SELECT '\xe9t\xe9';"}, "encoding", "is not UTF-8 (byte 0xe9"),
        ({"001_a.sql": "  \n-- only a comment\n"}, "empty-file", "contains no SQL"),
        ({"001_a.sql": "-- depends: 009\nSELECT 1;"}, "unknown-dependency", "names no migration"),
        (
            {"001_a.sql": "-- depends: 002\nSELECT 1;", "002_b.sql": "-- depends: 001\nSELECT 1;"},
            "dependency-cycle",
            "dependency cycle",
        ),
        ({"001_a.sql": "-- depends: 001\nSELECT 1;"}, "dependency-cycle", "depends on itself"),
        ({"001_a.sql": "-- transaction: sometimes\nSELECT 1;"}, "header", "is not understood"),
    ],
)
def test_bad_directories_become_errors(
    tmp_path: Path, files: dict[str, str | bytes], rule: str, fragment: str
) -> None:
    for name, text in files.items():
        write(tmp_path, name, text)
    if rule in ("file-name", "encoding", "empty-file", "header"):
        write(tmp_path, "900_keep.sql", "SELECT 1;")  # so the directory is not empty
    found = discover(tmp_path)
    matching = [f for f in found.findings if f.rule == rule]
    assert matching and fragment in matching[0].message
    assert matching[0].severity == "error"
    with pytest.raises(InputError) as err:
        found.require_valid()
    assert "\n" not in str(err.value)


def test_missing_rollback_is_a_warning(tmp_path: Path) -> None:
    write(tmp_path, "001_a.sql", "SELECT 1;")
    found = discover(tmp_path)
    assert [(f.rule, f.severity) for f in found.findings] == [("missing-rollback", "warning")]
    found.require_valid()  # warnings do not block apply


def test_resolve_versions(basic: Path) -> None:
    found = discover(basic)
    assert found.resolve("2").version == "002"
    with pytest.raises(InputError, match=r"to=099: no migration has version 099 .*versions 001\.\.003"):
        found.resolve("099")


def script(text: str) -> Script:
    return Script(Path("042_x.sql"), text, checksum(text))


def test_split_keeps_lines_and_function_bodies() -> None:
    text = (
        "-- header\nCREATE TABLE é (a int);\n\n"
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n  RETURN 1;\nEND\n$$;\n"
        "SELECT '100%';\n"
    )
    statements = split(script(text))
    assert [s.line for s in statements] == [2, 4, 9]
    assert statements[1].text.startswith("CREATE FUNCTION") and statements[1].text.endswith("$$")
    check_runnable(script(text), statements, transactional=True)


def test_syntax_error_is_located_before_any_database_work() -> None:
    with pytest.raises(InputError, match=r"042_x.sql:3:1: syntax error: syntax error at or near \"SELEC\""):
        split(script("SELECT 'été';\n\nSELEC 1;\n"))


@pytest.mark.parametrize("statement", ["BEGIN", "COMMIT", "START TRANSACTION", "ROLLBACK", "END"])
def test_transaction_control_is_refused(statement: str) -> None:
    s = script(f"CREATE TABLE a (id int);\n{statement};\n")
    with pytest.raises(InputError, match=r"042_x.sql:2: .*remove BEGIN/COMMIT"):
        check_runnable(s, split(s), transactional=True)


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE INDEX CONCURRENTLY i ON a (id)",
        "VACUUM a",
        "CREATE DATABASE x",
        "ALTER SYSTEM SET work_mem = '8MB'",
        "DROP INDEX CONCURRENTLY i",
    ],
)
def test_non_transactional_statements_need_the_header(statement: str) -> None:
    s = script(f"{statement};\n")
    with pytest.raises(InputError, match="add the header line '-- transaction: off'"):
        check_runnable(s, split(s), transactional=True)
    check_runnable(s, split(s), transactional=False)
