"""The lock a migration is expected to take on tables that already exist (the plan the
CLI prints before asking to apply), read from PostgreSQL's parse trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from bilantools.source.files import Script, checksum
from bilantools.source.lock_levels import estimate


def lock(text: str) -> str:
    return str(estimate(Script(Path("042_x.sql"), text, checksum(text))))


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("CREATE TABLE t (id int PRIMARY KEY);\nCREATE INDEX t_i ON t (id);", "no lock on an existing table"),
        ("CREATE TABLE t (u int REFERENCES users (id));", "SHARE ROW EXCLUSIVE on users"),
        ("CREATE INDEX i ON users (email);", "SHARE on users"),
        ("CREATE INDEX CONCURRENTLY i ON users (email);", "SHARE UPDATE EXCLUSIVE on users"),
        ("ALTER TABLE users ADD COLUMN note text;", "ACCESS EXCLUSIVE on users"),
        ("ALTER TABLE users VALIDATE CONSTRAINT users_email_check;", "SHARE UPDATE EXCLUSIVE on users"),
        ("INSERT INTO users (id) VALUES (1);\nUPDATE bilans SET x = 1;", "ROW EXCLUSIVE on users"),
        ("CREATE POLICY p ON bilans USING (true);", "ACCESS EXCLUSIVE on bilans"),
        ("DROP POLICY IF EXISTS p ON bilans;", "ACCESS EXCLUSIVE on bilans"),
        (
            "CREATE TRIGGER t BEFORE UPDATE ON bilans FOR EACH ROW EXECUTE FUNCTION f();",
            "SHARE ROW EXCLUSIVE on bilans",
        ),
        ("INSERT INTO a VALUES (1);\nDROP TABLE b;", "ACCESS EXCLUSIVE on b"),  # the strongest wins
        ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';", "no lock on an existing table"),
    ],
)
def test_the_strongest_lock_on_an_existing_table(sql: str, expected: str) -> None:
    assert lock(sql) == expected
