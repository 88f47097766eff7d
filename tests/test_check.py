"""Static analysis: `check` on a corpus of broken directories, lines and columns, the CLI's
check/graph, apply's refusal of a directory with errors, and the project's own migrations.

Each corpus case writes a tiny migrations directory in tmp_path and asserts the exact list
of findings as (rule, severity, file name, line), and the exact message (and fix) of the
finding the case is about. The lint rules are off there (``lint_rules=False``) so squawk
and the idempotency rules add no noise; a few cases turn them on.

The last section pins behaviours that were once wrong (duplicate versions with rollbacks,
syntax errors, renames, redefinitions, extensions...), each named by its test.
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools.db.history import tracking, tracking_objects
from bilantools.errors import InputError
from bilantools.source.check import CheckReport, check
from bilantools.source.findings import Finding
from tests.conftest import tables

REPO = Path(__file__).resolve().parents[1]
Row = tuple[str, str, str, int | None]
Files = dict[str, str | bytes]

T = "CREATE TABLE t (id int);\n"
T_RB = "DROP TABLE t;\n"
NOOP = "SELECT 1;\n"
BASE: Files = {"001_t.sql": T, "001_t_rollback.sql": T_RB}
BASE_FN: Files = {
    "001_t.sql": T
    + "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;\n",
    "001_t_rollback.sql": T_RB + "DROP FUNCTION touch();\n",
}
TX_OFF_HINT = (
    "add the header line '-- transaction: off' to the file (it then runs statement by statement, "
    "outside a transaction)"
)
IDEMPOTENCY_RULES = [
    "create-table-not-idempotent",
    "create-index-not-idempotent",
    "add-column-not-idempotent",
    "create-policy-without-drop",
    "create-trigger-without-drop",
    "create-function-not-replace",
    "create-object-not-idempotent",
    "drop-without-if-exists",
]
LABEL_V2 = "CREATE OR REPLACE FUNCTION label() RETURNS text LANGUAGE sql AS 'SELECT ''v2''';\n"
NO_LINT_TOML = "[tool.bilantools]\ndisable = " + json.dumps(["squawk", *IDEMPOTENCY_RULES]) + "\n"


def write(directory: Path, files: Files) -> Path:
    """Write `files` (name -> SQL text, dedented; or raw bytes) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = directory / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
    return directory


def rows(report: CheckReport) -> list[Row]:
    return [(f.rule, f.severity, Path(f.file).name, f.line) for f in report.findings]


def first(report: CheckReport, rule: str) -> Finding:
    return next(f for f in report.findings if f.rule == rule)


def run(tmp_path: Path, files: Files, provided: frozenset[str] = frozenset()) -> tuple[Path, CheckReport]:
    directory = write(tmp_path / "migrations", files)
    return directory, check(directory, provided, lint_rules=False)


# --- the corpus ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    files: Files
    expected: list[Row]
    rule: str | None = None  # the finding the case is about (its first occurrence)
    message: str = ""  # "{dir}" stands for the migrations directory
    hint: str | None = None
    column: int | None = None
    provided: frozenset[str] = field(default_factory=frozenset)


CASES = [
    Case(
        "clean",
        {
            "001_people.sql": """
                -- The people and what the application needs around them.
                CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL);
                CREATE INDEX people_name ON people (name);
                ALTER TABLE people ENABLE ROW LEVEL SECURITY;
                CREATE POLICY people_read ON people USING (true);
                CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    RETURN NEW;
                END
                $$;
                CREATE TRIGGER people_touch BEFORE UPDATE ON people FOR EACH ROW EXECUTE FUNCTION touch();
                CREATE FUNCTION label() RETURNS text LANGUAGE sql AS 'SELECT ''v1''';
            """,
            "001_people_rollback.sql": "DROP TABLE people;\nDROP FUNCTION touch();\nDROP FUNCTION label();\n",
            "002_notes.sql": """
                -- depends: 001
                ALTER TABLE people ADD COLUMN note text;
                INSERT INTO people (id, name) VALUES (1, 'Émilie Durand'), (2, 'Loïc Martin');
                CREATE OR REPLACE FUNCTION label() RETURNS text LANGUAGE sql AS 'SELECT ''v2''';
            """,
            "002_notes_rollback.sql": """
                CREATE OR REPLACE FUNCTION label() RETURNS text LANGUAGE sql AS 'SELECT ''v1''';
                DELETE FROM people WHERE id IN (1, 2);
                ALTER TABLE people DROP COLUMN note;
            """,
        },
        [],
    ),
    Case(
        "file-name",
        {**BASE, "notes.sql": NOOP},
        [("file-name", "error", "notes.sql", None)],
        "file-name",
        "migration file name 'notes.sql' does not match NNN_slug.sql",
        "rename it (name migrations NNN_slug.sql and their rollbacks NNN_slug_rollback.sql) or move it out "
        "of {dir}",
    ),
    Case(
        "file-name-bad-slug",
        {**BASE, "002_-oops.sql": NOOP},
        [("file-name", "error", "002_-oops.sql", None)],
        "file-name",
        "migration file name '002_-oops.sql' does not match NNN_slug.sql",
    ),
    Case(
        "duplicate-version",
        {**BASE, "1_other.sql": NOOP},
        [("duplicate-version", "error", "1_other.sql", None)],
        "duplicate-version",
        "two migrations share version 001: 001_t.sql and 1_other.sql",
        "renumber one of them",
    ),
    Case(
        "orphan-rollback",
        {**BASE, "002_b_rollback.sql": NOOP},
        [("orphan-rollback", "error", "002_b_rollback.sql", None)],
        "orphan-rollback",
        "rollback 002_b_rollback.sql has no migration 002_b.sql",
        "add the migration or remove it",
    ),
    Case(
        "orphan-rollback-other-slug",
        {"001_t.sql": T, "001_table_rollback.sql": T_RB},
        [
            ("missing-rollback", "warning", "001_t.sql", None),
            ("orphan-rollback", "error", "001_table_rollback.sql", None),
        ],
        "orphan-rollback",
        "rollback 001_table_rollback.sql does not match migration 001_t.sql",
        "rename it 001_t_rollback.sql",
    ),
    Case(
        "missing-rollback",
        {"001_t.sql": T},
        [("missing-rollback", "warning", "001_t.sql", None)],
        "missing-rollback",
        "migration 001_t.sql has no rollback script",
        "add 001_t_rollback.sql",
    ),
    Case(
        "encoding",
        {**BASE, "002_b.sql": "-- Café au lait\nSELECT 1;\n".encode("latin-1")},
        [("encoding", "error", "002_b.sql", None)],
        "encoding",
        "002_b.sql is not UTF-8 (byte 0xe9 at offset 6)",
        "save the file as UTF-8",
    ),
    Case(
        "empty-file",
        {**BASE, "002_b.sql": "-- TODO: write the migration\n\n"},
        [("empty-file", "error", "002_b.sql", None)],
        "empty-file",
        "002_b.sql contains no SQL",
        "write its SQL or remove the file",
    ),
    Case(
        "header-transaction",
        {**BASE, "002_b.sql": "-- Adds b.\n-- transaction: maybe\nSELECT 1;\n"},
        [("header", "error", "002_b.sql", 2)],
        "header",
        "'-- transaction: maybe' is not understood",
        "write '-- transaction: off' (or 'on', the default)",
    ),
    Case(
        "header-depends",
        {**BASE, "002_b.sql": "-- depends: 001, 1a\nSELECT 1;\n"},
        [("header", "error", "002_b.sql", 1)],
        "header",
        "'-- depends:' names '1a', which is not a version number",
        "list versions such as '-- depends: 001, 004'",
    ),
    Case(
        "unknown-dependency",
        {**BASE, "002_b.sql": "-- depends: 007\nSELECT 1;\n", "002_b_rollback.sql": NOOP},
        [("unknown-dependency", "error", "002_b.sql", None)],
        "unknown-dependency",
        "'-- depends: 007' names no migration in {dir}",
        "fix the '-- depends:' line",
    ),
    Case(
        "dependency-cycle-self",
        {"001_t.sql": "-- depends: 1\n" + T, "001_t_rollback.sql": T_RB},
        [("dependency-cycle", "error", "001_t.sql", None)],
        "dependency-cycle",
        "001_t.sql depends on itself",
        "fix the '-- depends:' line",
    ),
    Case(
        "dependency-cycle",
        {
            "001_t.sql": "-- depends: 002\n" + T,
            "001_t_rollback.sql": T_RB,
            "002_b.sql": "-- depends: 001\nSELECT 1;\n",
            "002_b_rollback.sql": NOOP,
        },
        [
            ("dependency-cycle", "error", "001_t.sql", None),
            ("declared-dependency-order", "warning", "001_t.sql", None),
        ],
        "dependency-cycle",
        "dependency cycle 001 -> 002 -> 001",
        "fix the '-- depends:' lines",
    ),
    Case(
        "syntax-error",
        {
            "001_t.sql": "-- Creates t.\n\nCREATE TABLE t (id int);\n"
            "CREATE INDEX t_id ON t (id)\nSELECT 1;\n",
            "001_t_rollback.sql": NOOP,
        },
        [("syntax-error", "error", "001_t.sql", 5)],
        "syntax-error",
        'syntax error: syntax error at or near "SELECT"',
        "fix the SQL; the server would reject the whole file",
        column=1,
    ),
    Case(
        "syntax-error-in-rollback",
        {"001_t.sql": "SELECT 1;\n", "001_t_rollback.sql": "SELECT 1;\nDROP TABLEE t;\n"},
        [("syntax-error", "error", "001_t_rollback.sql", 2)],
        "syntax-error",
        'syntax error: syntax error at or near "TABLEE"',
        column=6,
    ),
    Case(
        "transaction-control",
        {"001_t.sql": "BEGIN;\n" + T + "COMMIT;\n", "001_t_rollback.sql": T_RB},
        [
            ("transaction-control", "error", "001_t.sql", 1),
            ("transaction-control", "error", "001_t.sql", 3),
        ],
        "transaction-control",
        "'BEGIN' controls the transaction, which bilantools owns (one transaction per migration)",
        "remove BEGIN/COMMIT from the file",
    ),
    Case(
        "transaction-control-in-rollback",
        {**BASE, "001_t_rollback.sql": "START TRANSACTION;\n" + T_RB + "END;\n"},
        [
            ("transaction-control", "error", "001_t_rollback.sql", 1),
            ("transaction-control", "error", "001_t_rollback.sql", 3),
        ],
        "transaction-control",
        "'START TRANSACTION' controls the transaction, which bilantools owns (one transaction per migration)",
    ),
    Case(
        "needs-transaction-off-concurrently",
        {
            **BASE,
            "002_b.sql": "CREATE INDEX CONCURRENTLY t_id ON t (id);\n",
            "002_b_rollback.sql": "DROP INDEX t_id;\n",
        },
        [("needs-transaction-off", "error", "002_b.sql", 1)],
        "needs-transaction-off",
        "'CREATE INDEX CONCURRENTLY t_id ON t' cannot run inside a transaction",
        TX_OFF_HINT,
    ),
    Case(
        "needs-transaction-off-vacuum",
        {**BASE, "002_b.sql": "-- Statistics.\nvacuum analyze t;\n", "002_b_rollback.sql": NOOP},
        [("needs-transaction-off", "error", "002_b.sql", 2)],
        "needs-transaction-off",
        "'vacuum analyze t' cannot run inside a transaction",
        TX_OFF_HINT,
    ),
    Case(  # allowed in a transaction since PostgreSQL 12 (only using the value there is not)
        "enum-value-in-a-transaction",
        {
            "001_mood.sql": "CREATE TYPE mood AS ENUM ('calm');\n",
            "001_mood_rollback.sql": "DROP TYPE mood;\n",
            "002_tense.sql": "ALTER TYPE mood ADD VALUE IF NOT EXISTS 'tense';\n",
            "002_tense_rollback.sql": NOOP,
        },
        [],
    ),
    Case(
        "transaction-off-header",
        {
            **BASE,
            "002_b.sql": "-- Index without blocking writes.\n-- transaction: off\n"
            "CREATE INDEX CONCURRENTLY t_id ON t (id);\n",
            "002_b_rollback.sql": "DROP INDEX t_id;\n",
        },
        [],
    ),
    Case(
        "forward-reference",
        {
            "001_a.sql": "CREATE TABLE a (id int);\n",
            "001_a_rollback.sql": "DROP TABLE a;\n",
            "002_b.sql": "-- A view of t.\nCREATE VIEW v AS SELECT * FROM t;\n",
            "002_b_rollback.sql": "DROP VIEW v;\n",
            "005_t.sql": T,
            "005_t_rollback.sql": T_RB,
        },
        [
            ("forward-reference", "error", "002_b.sql", 2),
            ("numbering-gap", "info", "005_t.sql", None),
        ],
        "forward-reference",
        "002_b.sql uses table t, first created by 005_t.sql: it cannot apply in order "
        "(statement: CREATE VIEW v AS SELECT * FROM t)",
        "move the statement to 005_t.sql or after it, or create table t earlier",
    ),
    Case(
        "forward-reference-in-do-block",
        {
            "001_a.sql": "DO $$\nBEGIN\n    PERFORM 1 FROM t;\nEND\n$$;\n",
            "001_a_rollback.sql": NOOP,
            "002_t.sql": T,
            "002_t_rollback.sql": T_RB,
        },
        [("forward-reference", "error", "001_a.sql", 1)],
        "forward-reference",
        "001_a.sql uses table t, first created by 002_t.sql: it cannot apply in order "
        "(statement: DO $$ BEGIN PERFORM 1 FROM t; END $$)",
    ),
    Case(
        "forward-reference-in-body",
        {
            "001_count.sql": """
                -- Counts the rows of t, created by 002.
                CREATE FUNCTION t_count() RETURNS bigint LANGUAGE plpgsql AS $$
                BEGIN
                    RETURN (SELECT count(*) FROM t);
                END
                $$;
            """,
            "001_count_rollback.sql": "DROP FUNCTION t_count();\n",
            "002_t.sql": T,
            "002_t_rollback.sql": T_RB,
        },
        [("forward-reference-in-body", "warning", "001_count.sql", 2)],
        "forward-reference-in-body",
        "a function body in 001_count.sql uses table t, first created by 002_t.sql: calling it fails "
        "until that migration is applied",
        "move the function to that migration or later",
    ),
    Case(
        "unresolved-table",
        {
            "001_ghost.sql": "CREATE INDEX ghost_id ON ghost (id);\n",
            "001_ghost_rollback.sql": "DROP INDEX ghost_id;\n",
        },
        [("unresolved-reference", "warning", "001_ghost.sql", 1)],
        "unresolved-reference",
        "table ghost is used but no migration creates it and PostgreSQL does not provide it "
        "(statement: CREATE INDEX ghost_id ON ghost (id))",
        'create it in an earlier migration, or if it exists outside the migrations add "table:ghost" to '
        "provided in [tool.bilantools]",
    ),
    Case(
        "unresolved-function",
        {**BASE, "002_code.sql": "ALTER TABLE t ADD COLUMN code text DEFAULT make_code();\n"},
        [
            ("missing-rollback", "warning", "002_code.sql", None),
            ("unresolved-reference", "warning", "002_code.sql", 1),
        ],
        "unresolved-reference",
        "function make_code is used but no migration creates it and PostgreSQL does not provide it "
        "(statement: ALTER TABLE t ADD COLUMN code text DEFAULT make_code())",
        'create it in an earlier migration, or if it exists outside the migrations add "function:make_code" '
        "to provided in [tool.bilantools]",
    ),
    Case(
        "unresolved-column",
        {
            **BASE,
            "002_b.sql": "CREATE INDEX t_name ON t (name);\n",
            "002_b_rollback.sql": "DROP INDEX t_name;\n",
        },
        [("unresolved-reference", "warning", "002_b.sql", 1)],
        "unresolved-reference",
        "column t.name is used but no migration creates it and PostgreSQL does not provide it "
        "(statement: CREATE INDEX t_name ON t (name))",
    ),
    Case(
        "unresolved-supabase-auth",
        {
            "001_notes.sql": """
                CREATE TABLE notes (id int, owner uuid);
                ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
                CREATE POLICY own_notes ON notes USING (owner = auth.uid());
            """,
            "001_notes_rollback.sql": "DROP TABLE notes;\n",
        },
        [("unresolved-reference", "warning", "001_notes.sql", 3)],
        "unresolved-reference",
        "function auth.uid is used but no migration creates it and PostgreSQL does not provide it "
        "(statement: CREATE POLICY own_notes ON notes USING (owner = auth.uid()))",
        "no migration creates schema auth: if the database provides it (a hosting provider's schema), "
        'add "schema:auth" to provided in [tool.bilantools]',
    ),
    Case(
        "provided-argument",
        {
            "001_ghost.sql": "CREATE INDEX ghost_id ON ghost (id);\n",
            "001_ghost_rollback.sql": "DROP INDEX ghost_id;\n",
        },
        [],
        provided=frozenset({"table:ghost"}),
    ),
    Case(
        "declared-dependency-order",
        {
            "001_a.sql": "-- depends: 002\nSELECT 1;\n",
            "001_a_rollback.sql": NOOP,
            "002_t.sql": T,
            "002_t_rollback.sql": T_RB,
        },
        [("declared-dependency-order", "warning", "001_a.sql", None)],
        "declared-dependency-order",
        "001_a.sql declares a dependency on 002, a later number: it runs out of numbering order",
        "renumber 001_a.sql after 002, or drop the declaration",
    ),
    Case(
        "numbering-gap",
        {**BASE, "004_b.sql": NOOP, "004_b_rollback.sql": NOOP},
        [("numbering-gap", "info", "004_b.sql", None)],
        "numbering-gap",
        "no migration numbered 002, 003 before 004_b.sql",
        "nothing to do if the numbers were skipped on purpose",
    ),
    Case(
        "numbering-gap-long",
        {**BASE, "010_b.sql": NOOP, "010_b_rollback.sql": NOOP},
        [("numbering-gap", "info", "010_b.sql", None)],
        "numbering-gap",
        "no migration numbered 002, 003, 004, ... before 010_b.sql",
    ),
    Case(
        "rollback-keeps-table",
        {
            **BASE,
            "002_totals.sql": "CREATE TABLE totals AS SELECT count(*) AS n FROM t;\n",
            "002_totals_rollback.sql": NOOP,
        },
        [("rollback-incomplete", "warning", "002_totals_rollback.sql", None)],
        "rollback-incomplete",
        "002_totals.sql creates table totals (line 1) but its rollback does not drop it",
        "add DROP TABLE IF EXISTS totals; to 002_totals_rollback.sql",
    ),
    Case(
        "rollback-keeps-column",
        {
            **BASE,
            "002_note.sql": "-- A note.\nALTER TABLE t ADD COLUMN note text;\n",
            "002_note_rollback.sql": NOOP,
        },
        [("rollback-incomplete", "warning", "002_note_rollback.sql", None)],
        "rollback-incomplete",
        "002_note.sql creates column t.note (line 2) but its rollback does not drop it",
        "add ALTER TABLE t DROP COLUMN IF EXISTS note; to 002_note_rollback.sql",
    ),
    Case(
        "rollback-keeps-index",
        {**BASE, "002_idx.sql": "CREATE INDEX t_id ON t (id);\n", "002_idx_rollback.sql": NOOP},
        [("rollback-incomplete", "warning", "002_idx_rollback.sql", None)],
        "rollback-incomplete",
        "002_idx.sql creates index t_id (line 1) but its rollback does not drop it",
        "add DROP INDEX IF EXISTS t_id; to 002_idx_rollback.sql",
    ),
    Case(
        "rollback-keeps-policy",
        {**BASE, "002_pol.sql": "CREATE POLICY t_all ON t USING (true);\n", "002_pol_rollback.sql": NOOP},
        [("rollback-incomplete", "warning", "002_pol_rollback.sql", None)],
        "rollback-incomplete",
        "002_pol.sql creates policy t.t_all (line 1) but its rollback does not drop it",
        "add DROP POLICY IF EXISTS t_all ON t; to 002_pol_rollback.sql",
    ),
    Case(
        "rollback-keeps-trigger",
        {
            **BASE_FN,
            "002_trg.sql": "CREATE TRIGGER t_touch BEFORE UPDATE ON t\n"
            "FOR EACH ROW EXECUTE FUNCTION touch();\n",
            "002_trg_rollback.sql": NOOP,
        },
        [("rollback-incomplete", "warning", "002_trg_rollback.sql", None)],
        "rollback-incomplete",
        "002_trg.sql creates trigger t.t_touch (line 1) but its rollback does not drop it",
        "add DROP TRIGGER IF EXISTS t_touch ON t; to 002_trg_rollback.sql",
    ),
    Case(
        "rollback-keeps-function",
        {
            **BASE,
            "002_fn.sql": "CREATE FUNCTION t_count() RETURNS bigint\n"
            "LANGUAGE sql AS 'SELECT count(*) FROM t';\n",
            "002_fn_rollback.sql": NOOP,
        },
        [("rollback-incomplete", "warning", "002_fn_rollback.sql", None)],
        "rollback-incomplete",
        "002_fn.sql creates function t_count (line 1) but its rollback does not drop it",
        "add DROP FUNCTION IF EXISTS t_count; to 002_fn_rollback.sql",
    ),
    Case(
        "rollback-keeps-seeded-rows",
        {
            **BASE,
            "002_seed.sql": "INSERT INTO t (id) VALUES (1), (2);\nINSERT INTO t (id) VALUES (3);\n",
            "002_seed_rollback.sql": NOOP,
        },
        [("rollback-incomplete", "warning", "002_seed_rollback.sql", None)],
        "rollback-incomplete",
        "002_seed.sql inserts 3 row(s) into t but its rollback neither deletes them nor drops the table",
        "delete the seeded rows of t in 002_seed_rollback.sql",
    ),
    Case(
        "rollback-keeps-rows-of-a-select",
        {
            **BASE,
            "002_seed.sql": "INSERT INTO t SELECT generate_series(1, 3);\n",
            "002_seed_rollback.sql": NOOP,
        },
        [("rollback-incomplete", "warning", "002_seed_rollback.sql", None)],
        "rollback-incomplete",
        "002_seed.sql inserts rows into t but its rollback neither deletes them nor drops the table",
    ),
    Case(
        "rollback-drops-foreign",
        {
            **BASE,
            "002_u.sql": "CREATE TABLE u (id int);\n",
            "002_u_rollback.sql": "DROP TABLE u;\nDROP TABLE t;\n",
        },
        [("rollback-drops-foreign", "warning", "002_u_rollback.sql", 2)],
        "rollback-drops-foreign",
        "the rollback drops table t, which 002_u.sql does not create",
        "drop table t in the rollback of the migration that creates it",
    ),
    Case(
        "rollback-does-not-restore-redefined-function",
        {
            "001_label.sql": "CREATE FUNCTION label() RETURNS text LANGUAGE sql AS 'SELECT ''v1''';\n",
            "001_label_rollback.sql": "DROP FUNCTION label();\n",
            "002_label_v2.sql": "-- v2\n" + LABEL_V2,
            "002_label_v2_rollback.sql": NOOP,
        },
        [("rollback-incomplete", "warning", "002_label_v2_rollback.sql", None)],
        "rollback-incomplete",
        "002_label_v2.sql redefines function label (line 2) but its rollback does not restore the "
        "previous definition from 001",
        "re-create the previous definition of function label in 002_label_v2_rollback.sql",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corpus(tmp_path: Path, case: Case) -> None:
    directory, report = run(tmp_path, case.files, case.provided)
    assert rows(report) == case.expected
    assert report.errors == [f for f in report.findings if f.severity == "error"]
    if case.rule is None:
        return
    about = first(report, case.rule)
    assert about.message == case.message.replace("{dir}", str(directory))
    if case.hint is not None:
        assert about.hint == case.hint.replace("{dir}", str(directory))
    assert about.column == case.column
    assert Path(about.file).parent == directory


def test_corpus_covers_every_rule() -> None:
    covered = {row[0] for case in CASES for row in case.expected}
    assert covered == {
        "file-name",
        "duplicate-version",
        "orphan-rollback",
        "missing-rollback",
        "encoding",
        "empty-file",
        "header",
        "unknown-dependency",
        "dependency-cycle",
        "syntax-error",
        "transaction-control",
        "needs-transaction-off",
        "forward-reference",
        "forward-reference-in-body",
        "unresolved-reference",
        "declared-dependency-order",
        "numbering-gap",
        "rollback-incomplete",
        "rollback-drops-foreign",
    }
    assert len(CASES) >= 25


# --- the provided allowlist ---------------------------------------------------------------

AUTH: Files = {
    "001_notes.sql": "CREATE TABLE notes (id int, owner uuid);\n"
    "CREATE POLICY own_notes ON notes USING (owner = auth.uid());\n",
    "001_notes_rollback.sql": "DROP TABLE notes;\n",
}


@pytest.mark.parametrize("entry", ["schema:auth", "function:auth.uid"])
def test_provided_in_pyproject_next_to_the_directory(tmp_path: Path, entry: str) -> None:
    directory, report = run(tmp_path, AUTH)
    assert rows(report) == [("unresolved-reference", "warning", "001_notes.sql", 2)]
    (tmp_path / "pyproject.toml").write_text(f'[tool.bilantools]\nprovided = ["{entry}"]\n')
    assert check(directory, lint_rules=False).findings == []


@pytest.mark.parametrize("entry", ["schema:auth", "function:auth.uid"])
def test_provided_argument(tmp_path: Path, entry: str) -> None:
    directory, _ = run(tmp_path, AUTH)
    assert check(directory, frozenset({entry}), lint_rules=False).findings == []
    other = check(directory, frozenset({"schema:storage", "function:uid"}), lint_rules=False)
    assert rows(other) == [("unresolved-reference", "warning", "001_notes.sql", 2)]


def test_provided_objects_are_not_the_rollbacks_to_drop(tmp_path: Path) -> None:
    """A migration may declare what the database provides (029 re-declares the tracking table)."""
    files: Files = {
        "001_tracking.sql": "CREATE TABLE IF NOT EXISTS schema_migrations (id int);\n",
        "001_tracking_rollback.sql": NOOP,
    }
    directory, report = run(tmp_path, files)
    assert [r[0] for r in rows(report)] == ["rollback-incomplete"]  # the table (its column goes with it)
    assert check(directory, tracking_objects(), lint_rules=False).findings == []


# --- with the lint rules ---------------------------------------------------------------------


def test_lint_rules_add_the_idempotency_rules(tmp_path: Path) -> None:
    directory = write(
        tmp_path / "migrations",
        {
            **BASE_FN,
            "002_b.sql": """
                CREATE TABLE u (id int);
                CREATE INDEX u_id ON u (id);
                ALTER TABLE t ADD COLUMN note text;
                CREATE POLICY u_all ON u USING (true);
                CREATE TRIGGER u_touch BEFORE UPDATE ON u FOR EACH ROW EXECUTE FUNCTION touch();
                CREATE FUNCTION u_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM u';
                CREATE VIEW u_v AS SELECT * FROM u;
            """,
            "002_b_rollback.sql": """
                DROP VIEW u_v;
                DROP FUNCTION u_count();
                ALTER TABLE t DROP COLUMN note;
                DROP TABLE u;
            """,
        },
    )
    report = check(directory)
    ours = {(f.rule, Path(f.file).name, f.line) for f in report.findings if not f.rule.startswith("squawk:")}
    assert ours >= {
        ("create-table-not-idempotent", "002_b.sql", 1),
        ("create-index-not-idempotent", "002_b.sql", 2),
        ("add-column-not-idempotent", "002_b.sql", 3),
        ("create-policy-without-drop", "002_b.sql", 4),
        ("create-trigger-without-drop", "002_b.sql", 5),
        ("create-function-not-replace", "002_b.sql", 6),
        ("create-object-not-idempotent", "002_b.sql", 7),
        ("drop-without-if-exists", "002_b_rollback.sql", 1),
    }
    assert all(f.severity == "warning" for f in report.findings)
    assert check(directory, lint_rules=False).findings == []


def test_lint_rules_keep_the_analysis_findings(tmp_path: Path) -> None:
    directory = write(
        tmp_path / "migrations",
        {
            "001_a.sql": "CREATE INDEX IF NOT EXISTS t_id ON t (id);\n",
            "001_a_rollback.sql": "DROP INDEX IF EXISTS t_id;\n",
            "002_t.sql": "CREATE TABLE IF NOT EXISTS t (id int);\n",
            "002_t_rollback.sql": "DROP TABLE IF EXISTS t;\n",
        },
    )
    report = check(directory)
    rules = {f.rule for f in report.findings}
    assert "forward-reference" in rules and not rules & set(IDEMPOTENCY_RULES)
    assert [f.rule for f in report.errors] == ["forward-reference"]  # the table, not also its column


def test_lint_rules_switched_off_by_comment_and_pyproject(tmp_path: Path) -> None:
    directory = write(
        tmp_path / "migrations",
        {
            "001_t.sql": "-- created empty here:\n-- bilantools: ignore create-table-not-idempotent\n" + T,
            "001_t_rollback.sql": T_RB,
        },
    )
    rules = {f.rule for f in check(directory).findings}
    assert "create-table-not-idempotent" not in rules and "drop-without-if-exists" in rules
    (tmp_path / "pyproject.toml").write_text(NO_LINT_TOML)
    assert check(directory).findings == []


# --- statement lines and columns ------------------------------------------------------------

LINES = """\
-- Migration 002: suivi des évaluations (élèves, bénéficiaires).
--
/* Un commentaire
   sur plusieurs lignes */

-- la colonne par défaut
ALTER TABLE t ADD COLUMN code text DEFAULT make_code();


  -- indentation and a trailing comment
    CREATE INDEX CONCURRENTLY t_code ON t (code); -- à revoir
SELECT 'une chaîne
sur deux lignes'; COMMIT;
"""


LINES_RB = "DROP INDEX t_code;\nALTER TABLE t DROP COLUMN code;\n"


def test_lines_after_comments_and_blank_lines(tmp_path: Path) -> None:
    _, report = run(tmp_path, {**BASE, "002_b.sql": LINES, "002_b_rollback.sql": LINES_RB})
    assert rows(report) == [
        ("unresolved-reference", "warning", "002_b.sql", 7),
        ("needs-transaction-off", "error", "002_b.sql", 11),
        ("transaction-control", "error", "002_b.sql", 13),
    ]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("bom", ["", "\ufeff"])
def test_syntax_error_column_counts_characters(tmp_path: Path, newline: str, bom: str) -> None:
    bad = "INSERT INTO t (nom) VALUES ('Hélène Château'), ('Loïc Œuvré'); SELEC 1;"
    text = "-- Élèves : évaluation réussie\n\n" + T + bad + "\n"
    path = tmp_path / "migrations" / "001_t.sql"
    write(tmp_path / "migrations", {"001_t_rollback.sql": NOOP})
    path.write_bytes((bom + text.replace("\n", newline)).encode("utf-8"))
    report = check(tmp_path / "migrations", lint_rules=False)
    column = bad.index("SELEC") + 1
    assert column != len(bad[: bad.index("SELEC")].encode("utf-8")) + 1  # bytes would differ
    assert [(f.rule, f.line, f.column, f.message) for f in report.findings] == [
        ("syntax-error", 4, column, 'syntax error: syntax error at or near "SELEC"')
    ]
    assert report.findings[0].one_line().startswith(f"{path}:4:{column}: syntax error:")


def test_syntax_error_on_a_later_line_after_accents(tmp_path: Path) -> None:
    text = "SELECT 'été, où, ça';\n\n  CREATE TABLE é (a int) WHERE;\n"
    _, report = run(tmp_path, {"001_t.sql": text, "001_t_rollback.sql": NOOP})
    (finding,) = report.findings
    assert (finding.line, finding.column) == (3, text.split("\n")[2].index("WHERE") + 1)


# --- the CLI: check -----------------------------------------------------------------------

FORWARD: Files = {
    "001_a.sql": "CREATE TABLE a (id int);\n",
    "001_a_rollback.sql": "DROP TABLE a;\n",
    "002_b.sql": "CREATE VIEW v AS SELECT * FROM t;\n",
    "002_b_rollback.sql": "DROP VIEW v;\n",
    "003_t.sql": T,
    "003_t_rollback.sql": T_RB,
}


def cli_dir(tmp_path: Path, files: Files) -> Path:
    """A directory with a pyproject.toml beside it that switches the lint rules off."""
    directory = write(tmp_path / "migrations", files)
    (tmp_path / "pyproject.toml").write_text(NO_LINT_TOML)
    return directory


def test_cli_check_exit_1_on_errors(cli: Any, tmp_path: Path) -> None:
    d = cli_dir(tmp_path, {**FORWARD, "005_c.sql": NOOP, "005_c_rollback.sql": NOOP})
    r = cli("--migrations", str(d), "check")
    assert r.code == 1
    assert r.out.splitlines() == [
        "error [forward-reference] ×1",
        f"{d}/002_b.sql:1: error: [forward-reference] 002_b.sql uses table t, first created by 003_t.sql: "
        "it cannot apply in order (statement: CREATE VIEW v AS SELECT * FROM t)",
        "    fix: move the statement to 003_t.sql or after it, or create table t earlier",
        "info [numbering-gap] ×1",
        f"{d}/005_c.sql: info: [numbering-gap] no migration numbered 004 before 005_c.sql",
        "    fix: nothing to do if the numbers were skipped on purpose",
        "4 migration(s) checked: 1 error(s), 0 warning(s), 1 note(s)",
    ]
    assert r.err == ""


def test_cli_check_exit_0_with_warnings_only(cli: Any, tmp_path: Path) -> None:
    d = cli_dir(tmp_path, {"001_t.sql": T, "002_u.sql": "CREATE INDEX t_id ON t (id);\n"})
    r = cli("--migrations", str(d), "check")
    assert r.code == 0
    assert r.out.splitlines()[-1] == "2 migration(s) checked: 0 error(s), 2 warning(s), 0 note(s)"
    clean = cli_dir(tmp_path / "clean", BASE)
    r = cli("--migrations", str(clean), "check")
    assert (r.code, r.out) == (0, "1 migration(s) checked: 0 error(s), 0 warning(s), 0 note(s)\n")


def test_cli_check_json(cli: Any, tmp_path: Path) -> None:
    d = cli_dir(tmp_path, {**FORWARD, "004_x.sql": "SELECT 1;\nSELEC 2;\n"})
    r = cli("--migrations", str(d), "check", "--json")
    assert r.code == 1
    assert json.loads(r.out) == {
        "findings": [
            {
                "rule": "forward-reference",
                "severity": "error",
                "file": f"{d}/002_b.sql",
                "line": 1,
                "message": "002_b.sql uses table t, first created by 003_t.sql: it cannot apply in order "
                "(statement: CREATE VIEW v AS SELECT * FROM t)",
                "hint": "move the statement to 003_t.sql or after it, or create table t earlier",
                "column": None,
            },
            {
                "rule": "missing-rollback",
                "severity": "warning",
                "file": f"{d}/004_x.sql",
                "line": None,
                "message": "migration 004_x.sql has no rollback script",
                "hint": "add 004_x_rollback.sql",
                "column": None,
            },
            {
                "rule": "syntax-error",
                "severity": "error",
                "file": f"{d}/004_x.sql",
                "line": 2,
                "message": 'syntax error: syntax error at or near "SELEC"',
                "hint": "fix the SQL; the server would reject the whole file",
                "column": 1,
            },
        ]
    }
    assert r.out.count("\n") == 1  # one JSON object on one line


# --- the CLI: graph -----------------------------------------------------------------------

GRAPH: Files = {
    "001_people.sql": "CREATE TABLE people (id int PRIMARY KEY);\n",
    "001_people_rollback.sql": "DROP TABLE people;\n",
    "002_notes.sql": "-- depends: 001\nCREATE TABLE notes (id int, person int REFERENCES people (id));\n",
    "002_notes_rollback.sql": "DROP TABLE notes;\n",
    "003_stats.sql": "-- depends: 002\nSELECT 1;\n",
    "003_stats_rollback.sql": NOOP,
    "004_teams_view.sql": "CREATE VIEW teams_v AS SELECT * FROM teams;\n",
    "004_teams_view_rollback.sql": "DROP VIEW teams_v;\n",
    "005_teams.sql": "CREATE TABLE teams (id int);\nALTER TABLE notes ADD COLUMN team int;\n",
    "005_teams_rollback.sql": "ALTER TABLE notes DROP COLUMN team;\nDROP TABLE teams;\n",
}


def test_cli_graph_text(cli: Any, tmp_path: Path) -> None:
    d = write(tmp_path / "migrations", GRAPH)
    r = cli("--migrations", str(d), "graph", "--format", "text")
    assert r.code == 0
    assert r.out == (
        "001 people: needs nothing\n"
        "002 notes: needs 001 (inferred+declared)\n"
        "003 stats: needs 002 (declared)\n"
        "004 teams_view: needs nothing  FORWARD REFERENCE to 005\n"
        "005 teams: needs 002 (inferred)\n"
    )
    assert cli("--migrations", str(d), "graph").out == r.out  # text is the default


def test_cli_graph_dot(cli: Any, tmp_path: Path) -> None:
    d = write(tmp_path / "migrations", GRAPH)
    out = tmp_path / "graph.dot"
    r = cli("--migrations", str(d), "graph", "--format", "dot")
    assert r.code == 0
    assert r.out == textwrap.dedent(
        """\
        digraph migrations {
          rankdir=LR;
          node [shape=box, fontname="Helvetica"];
          "001" [label="001\\npeople"];
          "002" [label="002\\nnotes"];
          "003" [label="003\\nstats"];
          "004" [label="004\\nteams_view"];
          "005" [label="005\\nteams"];
          "001" -> "002";
          "002" -> "003" [style=dashed, color="gray40"];
          "002" -> "005";
          "005" -> "004" [color=red, fontcolor=red, label="forward reference"];
        }
        """
    )
    r2 = cli("--migrations", str(d), "graph", "--format", "dot", "-o", str(out))
    assert (r2.code, r2.out, r2.err) == (0, "", f"written: {out}\n")
    assert out.read_text() == r.out


def test_cli_graph_svg_of_the_29_migrations(cli: Any, tmp_path: Path) -> None:
    """Graphviz is always there under make test: the real rendering, one node per migration."""
    import xml.etree.ElementTree as ET

    assert shutil.which("dot"), "Graphviz is needed: make test installs it (apt-get install graphviz)"
    out = tmp_path / "graph.svg"
    r = cli("--migrations", str(REPO / "migrations"), "graph", "--format", "svg", "-o", str(out))
    assert (r.code, r.out, r.err) == (0, "", f"written: {out}\n")
    root = ET.fromstring(out.read_bytes())  # well-formed XML, or this raises
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    groups: dict[str | None, list[str]] = {"node": [], "edge": []}
    for g in root.iter(f"{ns}g"):
        groups.setdefault(g.get("class"), []).append(g.findtext(f"{ns}title") or "")
    files = (REPO / "migrations").glob("[0-9][0-9][0-9]_*.sql")
    versions = sorted(p.name[:3] for p in files if not p.name.endswith("_rollback.sql"))
    assert sorted(groups["node"]) == versions and len(versions) == 29
    dot = cli("--migrations", str(REPO / "migrations"), "graph", "--format", "dot").out
    edges = re.findall(r'^  "(\d+)" -> "(\d+)"', dot, flags=re.M)
    assert len(edges) > 28  # every migration after 001 needs an earlier one
    assert sorted(groups["edge"]) == sorted(f"{a}->{b}" for a, b in edges)
    # a forward reference is drawn in red
    d = write(tmp_path / "forward", GRAPH)
    r = cli("--migrations", str(d), "graph", "--format", "svg", "-o", str(out))
    svg = out.read_text()
    assert r.code == 0 and ">teams_view</text>" in svg
    assert "forward reference" in svg and 'stroke="red"' in svg


def test_cli_graph_png_of_the_29_migrations(cli: Any, tmp_path: Path) -> None:
    from PIL import Image

    assert shutil.which("dot"), "Graphviz is needed: make test installs it (apt-get install graphviz)"
    out = tmp_path / "graph.png"
    r = cli("--migrations", str(REPO / "migrations"), "graph", "--format", "png", "-o", str(out))
    assert (r.code, r.out, r.err) == (0, "", f"written: {out}\n")
    with Image.open(out) as image:
        assert image.format == "PNG"
        image.load()  # decodes every pixel: a truncated or corrupt file raises
        width, height = image.size
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert width > 29 * 50 and height > 50  # 29 boxes left to right
    assert colours is None or len(colours) > 2  # text and edges drawn, not a blank canvas


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_cli_graph_image_without_graphviz(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    bare = tmp_path / "bin-without-dot"
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))  # this test alone: no dot on PATH
    d = write(tmp_path / "migrations", GRAPH)
    out = tmp_path / f"graph.{fmt}"
    r = cli("--migrations", str(d), "graph", "--format", fmt, "-o", str(out))
    assert (r.code, r.out) == (2, "")
    assert r.err == (
        f"error: --format {fmt} needs Graphviz's dot program: install graphviz (apt-get install graphviz), "
        "or use --format dot\n"
    )
    assert not out.exists()


# --- apply refuses a directory with errors -----------------------------------------------

REFUSE_TAIL = "; run 'bilantools check' to list every problem, fix them"


@pytest.mark.pg15
def test_apply_refuses_a_forward_reference(cli: Any, db_url: str, tmp_path: Path) -> None:
    d = write(tmp_path / "migrations", FORWARD)
    r = cli("--db", db_url, "--migrations", str(d), "apply")
    assert r.code == 2 and r.out == ""
    assert r.err.splitlines() == [
        f"target: {db_url} (sandbox, from --db)",
        f"error: refusing to apply: {d}/002_b.sql:1: 002_b.sql uses table t, first created by 003_t.sql: "
        "it cannot apply in order (statement: CREATE VIEW v AS SELECT * FROM t); move the statement to "
        f"003_t.sql or after it, or create table t earlier{REFUSE_TAIL} or pass --force",
    ]
    with psycopg.connect(db_url) as conn:
        assert tables(conn) == []


@pytest.mark.pg15
def test_apply_force_lets_a_forward_reference_through(cli: Any, db_url: str, tmp_path: Path) -> None:
    d = write(tmp_path / "migrations", FORWARD)
    r = cli("--db", db_url, "--migrations", str(d), "apply", "--force")
    assert r.code == 1
    assert r.out.splitlines()[0].split()[:3] == ["001", "a", "applied"]
    assert r.err.splitlines()[-1].startswith(
        'error: migration 002_b failed at 002_b.sql:1: ERROR 42P01: relation "t" does not exist'
    )
    with psycopg.connect(db_url) as conn:
        assert tables(conn) == ["a", "schema_migration_events", "schema_migrations"]
        recorded = conn.execute(
            "SELECT version, success, error_message LIKE '%relation \"t\" does not exist%'"
            " FROM schema_migrations ORDER BY version"
        ).fetchall()
        assert recorded == [("001", True, None), ("002", False, True)]
        assert conn.execute("SELECT to_regclass('v')").fetchone() == (None,)


@pytest.mark.pg15
def test_apply_refuses_a_syntax_error_even_with_force(cli: Any, db_url: str, tmp_path: Path) -> None:
    d = write(tmp_path / "migrations", {**FORWARD, "002_b.sql": "-- broken\nCREATE TABLE b (id int;\n"})
    for extra in ([], ["--force"]):
        r = cli("--db", db_url, "--migrations", str(d), "apply", *extra)
        assert r.code == 2
        assert r.err.splitlines()[-1] == (
            f'error: refusing to apply: {d}/002_b.sql:2:23: syntax error: syntax error at or near ";"; '
            f"fix the SQL; the server would reject the whole file{REFUSE_TAIL}"
        )
    with psycopg.connect(db_url) as conn:
        assert tables(conn) == []


# --- the project's own migrations ----------------------------------------------------------


def test_project_migrations_have_no_error_and_no_warning() -> None:
    report = check(REPO / "migrations", lint_rules=False, tracking=tracking())
    assert len(report.migrations) == 29
    assert [f.one_line() for f in report.findings if f.severity != "info"] == []
    assert report.analysis.forward == set()


@pytest.mark.pg15
def test_plan_sql_on_a_fresh_database(cli: Any, db_url: str) -> None:
    """What the engine sends (see tests/test_plan_sql.py), with the tracking objects created
    first: each migration in its transaction, its limits, its statements, the session reset,
    the limits again, its tracking write and (the tracking objects' oids being unknown yet)
    where the proof goes; every commit but the run's last without waiting for the disk."""
    from bilantools.db.engine.recording import NO_PROOF

    migrations = REPO / "migrations"
    r = cli("--db", db_url, "--migrations", str(migrations), "plan", "--sql")
    assert r.code == 0
    head, *parts = re.split(r"\n\n-- (\d{3}_\w+\.sql) \(checksum [0-9a-f]{12}\)\n", r.out)
    assert head.startswith(f"-- bilantools apply on {db_url}: 29 migration(s)\n\n-- the tracking objects")
    assert "CREATE TABLE IF NOT EXISTS schema_migrations" in head and head.endswith("COMMIT;")
    names, blocks = parts[0::2], [b.splitlines() for b in parts[1::2]]
    assert names == sorted(p.name for p in migrations.glob("[0-9]*.sql") if "_rollback" not in p.name)
    flush = "SELECT set_config('lock_timeout', '5s', true), set_config('synchronous_commit', 'off', true);"
    limit = "SELECT set_config('lock_timeout', '5s', true);"
    for index, (name, block) in enumerate(zip(names, blocks, strict=True)):
        last = index == len(blocks) - 1
        if not last:
            assert block.pop(0).startswith(
                "-- its commit does not wait for the disk (synchronous_commit off)"
            )
        assert block[0] == "BEGIN;"
        assert block[1] == (limit if last else flush)
        assert block[-1] == "COMMIT;"
        assert block[-2] == NO_PROOF
        assert block[-3].startswith("WITH d AS (SELECT coalesce(NULL::int,")
        assert (
            "record_migration(coalesce((SELECT version FROM schema_migrations WHERE "
            f"ltrim(version, '0') = ltrim('{name[:3]}', '0')" in block[-3]
        )
        reset = block.index("SET SESSION AUTHORIZATION DEFAULT;")
        assert block[reset + 1 : reset + 3] == ["RESET ALL;", "DISCARD TEMP;"]
        assert block[reset + 3] == block[1]  # the run's settings again
        assert block.count("BEGIN;") == 1 and block.count("COMMIT;") == 1
        statements = "\n".join(block[2:reset])
        assert statements.endswith(";") and statements.splitlines()[0] in (migrations / name).read_text()
    assert r.out.count(flush) == 56
    assert "CREATE OR REPLACE FUNCTION set_updated_at()" in "\n".join(blocks[0])
    with psycopg.connect(db_url) as conn:
        assert tables(conn) == []  # plan only reads


# --- behaviours that were once wrong -------------------------------------------------------


def test_duplicate_versions_with_their_rollbacks(tmp_path: Path) -> None:
    files: Files = {**BASE, "1_other.sql": NOOP, "1_other_rollback.sql": NOOP}
    _, report = run(tmp_path, files)
    assert rows(report) == [("duplicate-version", "error", "1_other.sql", None)]


@pytest.mark.parametrize(
    "content",
    [b"-- Caf\xe9\nSELECT 1;\n", b"-- nothing yet\n", b"-- transaction: maybe\nSELECT 1;\n"],
    ids=["encoding", "empty-file", "header"],
)
def test_unreadable_migration_does_not_orphan_its_rollback(tmp_path: Path, content: bytes) -> None:
    _, report = run(tmp_path, {**BASE, "002_b.sql": content, "002_b_rollback.sql": NOOP})
    assert [r[2] for r in rows(report)] == ["002_b.sql"]


@pytest.mark.parametrize(
    "files",
    [
        {"001_t.sql": "CREATE TABLE t (id int);\nSELEC 1;\n", "001_t_rollback.sql": T_RB},
        {"001_t.sql": T, "001_t_rollback.sql": "DROP TABLE t;\nSELEC 1;\n"},
    ],
    ids=["in-migration", "in-rollback"],
)
def test_syntax_error_gives_no_rollback_findings(tmp_path: Path, files: Files) -> None:
    _, report = run(tmp_path, files)
    assert [r[0] for r in rows(report)] == ["syntax-error"]


def test_forward_index_on_a_later_table_is_one_finding(tmp_path: Path) -> None:
    files: Files = {
        "001_a.sql": "CREATE TABLE a (id int);\n",
        "001_a_rollback.sql": "DROP TABLE a;\n",
        "002_b.sql": "CREATE INDEX t_id ON t (id);\n",
        "002_b_rollback.sql": "DROP INDEX t_id;\n",
        "005_t.sql": T,
        "005_t_rollback.sql": T_RB,
    }
    _, report = run(tmp_path, files)
    assert rows(report) == [
        ("forward-reference", "error", "002_b.sql", 1),
        ("numbering-gap", "info", "005_t.sql", None),
    ]
    assert first(report, "forward-reference").message == (
        "002_b.sql uses table t, first created by 005_t.sql: it cannot apply in order "
        "(statement: CREATE INDEX t_id ON t (id))"
    )


def test_kept_table_is_one_finding(tmp_path: Path) -> None:
    _, report = run(
        tmp_path, {"001_t.sql": "CREATE TABLE t (id int, name text);\n", "001_t_rollback.sql": NOOP}
    )
    assert rows(report) == [("rollback-incomplete", "warning", "001_t_rollback.sql", None)]


@pytest.mark.parametrize(
    ("rename", "undo", "use"),
    [
        ("ALTER TABLE t RENAME COLUMN id TO ref;", "ALTER TABLE t RENAME COLUMN ref TO id;", "t (ref)"),
        ("ALTER TABLE t RENAME TO u;", "ALTER TABLE u RENAME TO t;", "u (id)"),
    ],
    ids=["column", "table"],
)
def test_renamed_objects_resolve(tmp_path: Path, rename: str, undo: str, use: str) -> None:
    files: Files = {
        **BASE,
        "002_rename.sql": rename + "\n",
        "002_rename_rollback.sql": undo + "\n",
        "003_idx.sql": f"CREATE INDEX idx ON {use};\n",
        "003_idx_rollback.sql": "DROP INDEX idx;\n",
    }
    _, report = run(tmp_path, files)
    assert rows(report) == []


def test_rollback_dropping_a_redefined_function(tmp_path: Path) -> None:
    files: Files = {
        "001_label.sql": "CREATE FUNCTION label() RETURNS text LANGUAGE sql AS 'SELECT ''v1''';\n",
        "001_label_rollback.sql": "DROP FUNCTION label();\n",
        "002_label_v2.sql": LABEL_V2,
        "002_label_v2_rollback.sql": "DROP FUNCTION label();\n",
    }
    _, report = run(tmp_path, files)
    assert [r[:3] for r in rows(report)] == [("rollback-incomplete", "warning", "002_label_v2_rollback.sql")]


def test_if_not_exists_on_an_existing_table_redefines_nothing(tmp_path: Path) -> None:
    files: Files = {
        **BASE,
        "002_b.sql": "CREATE TABLE IF NOT EXISTS t (id int);\n",
        "002_b_rollback.sql": NOOP,
    }
    _, report = run(tmp_path, files)
    assert rows(report) == []


def test_extension_functions_resolve(tmp_path: Path) -> None:
    files: Files = {
        "001_t.sql": 'CREATE EXTENSION IF NOT EXISTS "uuid-ossp";\n'
        "CREATE TABLE t (id uuid DEFAULT uuid_generate_v4());\n",
        "001_t_rollback.sql": 'DROP TABLE t;\nDROP EXTENSION "uuid-ossp";\n',
    }
    _, report = run(tmp_path, files)
    assert rows(report) == []


def test_row_level_security_kept_by_the_rollback_is_named_plainly(tmp_path: Path) -> None:
    files: Files = {
        **BASE,
        "002_rls.sql": "-- RLS\nALTER TABLE t ENABLE ROW LEVEL SECURITY;\n",
        "002_rls_rollback.sql": NOOP,
    }
    _, report = run(tmp_path, files)
    (finding,) = report.findings
    assert finding.rule == "rollback-incomplete"
    assert "rls t.rls" not in finding.message + finding.hint
    assert "row level security" in finding.message and "DISABLE ROW LEVEL SECURITY" in finding.hint


def test_header_finding_has_a_hint(tmp_path: Path) -> None:
    _, report = run(tmp_path, {**BASE, "002_b.sql": "-- transaction: maybe\nSELECT 1;\n"})
    (finding,) = report.findings
    assert finding.message == "'-- transaction: maybe' is not understood"
    assert finding.hint == "write '-- transaction: off' (or 'on', the default)"


def _seed_rows(count: int, row: str = "({i}, 'Compétence n°{i}', {i}.5, true, NULL, 'x''y'::text)") -> str:
    return ",\n".join(row.format(i=i) for i in range(1, count + 1))


def test_seed_inserts_are_analysed_from_their_first_row() -> None:
    """A data-only INSERT keeps its first row and its tail (ON CONFLICT) for the parse; the
    rows from the first one with an expression on are kept."""
    from bilantools.source.parsed import _without_data_rows

    head = "INSERT INTO q (id, label, score, active, note, raw) VALUES"
    data = f"{head}\n{_seed_rows(500)}\nON CONFLICT DO NOTHING"
    first_row = "(1, 'Compétence n°1', 1.5, true, NULL, 'x''y'::text)"
    assert _without_data_rows(data) == (f"{head}\n{first_row}\nON CONFLICT DO NOTHING", 499)
    with_call = data.replace("(250, ", "(now(), ", 1)
    reduced, left_out = _without_data_rows(with_call)  # the literal rows 2-249 go, the rest stays
    assert left_out == 248
    assert reduced.startswith(
        f"INSERT INTO q (id, label, score, active, note, raw) VALUES\n{first_row},\n(now(), "
    )
    assert reduced.endswith(with_call[with_call.index("(now(), ") :])
    assert _without_data_rows("INSERT INTO q VALUES (1), (2)") == ("INSERT INTO q VALUES (1), (2)", 0)


def test_seed_data_findings_are_those_of_the_whole_statement(tmp_path: Path) -> None:
    """Rows of constants name no object, so dropping them from the parse loses nothing: the
    target table is still a forward reference, and a subquery in a later row still is."""
    seed = f"INSERT INTO t (id) VALUES\n{_seed_rows(800, '({i})')};\n"
    files: Files = {
        "001_seed.sql": seed,
        "001_seed_rollback.sql": "DELETE FROM t;\n",
        "002_u.sql": "CREATE TABLE u (id int);\n",
        "002_u_rollback.sql": "DROP TABLE u;\n",
        "003_more.sql": seed.replace("(700)", "((SELECT max(id) FROM u))"),
        "003_more_rollback.sql": "DELETE FROM t;\n",
        "004_t.sql": T,
        "004_t_rollback.sql": T_RB,
    }
    _, report = run(tmp_path, files)
    assert rows(report) == [
        ("forward-reference", "error", "001_seed.sql", 1),
        ("forward-reference", "error", "003_more.sql", 1),
    ]
    files["003_more.sql"] = seed.replace("(700)", "((SELECT max(id) FROM missing_table))")
    _, report = run(tmp_path / "again", files)
    assert ("unresolved-reference", "warning", "003_more.sql", 1) in rows(report)
    files["001_seed_rollback.sql"] = "SELECT 1;\n"  # the rows counted are all 800, not the one parsed
    _, report = run(tmp_path / "third", files)
    assert first(report, "rollback-incomplete").message.startswith("001_seed.sql inserts 800 row(s) into t")


def _checks(home: Path) -> list[Path]:
    return sorted((home / "cache" / "checks").glob("*.json"))


def test_a_passed_check_is_remembered_and_never_hides_an_edit(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """apply remembers a clean pre-run check (with each script's statement slices) and
    reuses it for identical files only: a new file with an error is refused all the same."""
    from bilantools import commands

    home = tmp_path / "home"
    monkeypatch.setenv("BILANTOOLS_HOME", str(home))
    d = write(tmp_path / "migrations", {**BASE, "002_u.sql": "CREATE TABLE u (id int);\nSELECT 1;\n"})
    (d / "002_u_rollback.sql").write_text("DROP TABLE u;\n")
    commands.apply(target=db_url, project=d, options=commands.RunOptions(to="001", backup=False))
    (record,) = _checks(home)
    slices = json.loads(record.read_text())
    assert sorted(len(s) for s in slices.values()) == [1, 2]  # 001: one statement, 002: two
    (d / "003_v.sql").write_text("CREATE VIEW v AS SELECT * FROM later;\n")
    (d / "003_v_rollback.sql").write_text("DROP VIEW v;\n")
    (d / "004_later.sql").write_text("CREATE TABLE later (id int);\n")
    (d / "004_later_rollback.sql").write_text("DROP TABLE later;\n")
    with pytest.raises(InputError, match=re.escape("003_v.sql uses table later, first created by 004_later")):
        commands.apply(target=db_url, project=d, options=commands.RunOptions(backup=False))
    assert _checks(home) == [record]  # a refused directory is not remembered
    with psycopg.connect(db_url) as conn:
        assert tables(conn) == ["schema_migration_events", "schema_migrations", "t"]


def test_a_remembered_check_that_does_not_fit_its_files_is_ignored(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A damaged record (slices beyond the text, garbage) means checking again, and the
    statements run are the file's own."""
    from bilantools import commands

    home = tmp_path / "home"
    monkeypatch.setenv("BILANTOOLS_HOME", str(home))
    d = write(
        tmp_path / "migrations", {**BASE, "002_u.sql": "CREATE TABLE u (id int);\nCREATE TABLE w (id int);\n"}
    )
    (d / "002_u_rollback.sql").write_text("DROP TABLE w;\nDROP TABLE u;\n")
    commands.apply(target=db_url, project=d, options=commands.RunOptions(to="001", backup=False))
    (record,) = _checks(home)
    wrong = {k: [[0, 10_000]] if len(v) == 2 else v for k, v in json.loads(record.read_text()).items()}
    record.write_text(json.dumps(wrong))
    result = commands.apply(target=db_url, project=d, options=commands.RunOptions(backup=False))
    assert [(s.version, s.statements) for s in result.steps] == [("002", 2)]
    record.write_text("{not json")
    commands.rollback(target=db_url, project=d, options=commands.RunOptions(to="001"))
    assert (
        commands.apply(target=db_url, project=d, options=commands.RunOptions(backup=False))
        .steps[0]
        .statements
        == 2
    )
    with psycopg.connect(db_url) as conn:
        assert tables(conn) == ["schema_migration_events", "schema_migrations", "t", "u", "w"]


def test_apply_works_when_the_check_cannot_be_remembered(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bilantools import commands

    home = tmp_path / "home-is-a-file"
    home.write_text("not a directory\n")
    monkeypatch.setenv("BILANTOOLS_HOME", str(home))
    d = write(tmp_path / "migrations", BASE)
    assert [
        s.outcome
        for s in commands.apply(target=db_url, project=d, options=commands.RunOptions(backup=False)).steps
    ] == ["applied"]
    assert home.read_text() == "not a directory\n"


@pytest.mark.parametrize(
    "column",
    ["id serial", "id bigserial PRIMARY KEY", "id int GENERATED ALWAYS AS IDENTITY", "id smallserial"],
)
def test_implicit_sequences_are_created_with_their_table(tmp_path: Path, column: str) -> None:
    files: Files = {
        "001_t.sql": f"CREATE TABLE t ({column});\n",
        "001_t_rollback.sql": T_RB,
        "002_seq.sql": "ALTER SEQUENCE t_id_seq RESTART 10;\nSELECT nextval('t_id_seq'::regclass);\n",
        "002_seq_rollback.sql": "ALTER SEQUENCE t_id_seq RESTART 1;\n",
    }
    _, report = run(tmp_path, files)
    assert rows(report) == []


def test_an_implicit_sequence_of_a_schema_table_is_in_its_schema(tmp_path: Path) -> None:
    files: Files = {
        "001_s.sql": "CREATE SCHEMA s;\nCREATE TABLE s.t (id serial);\n"
        "ALTER TABLE s.t ADD COLUMN n bigserial;\n",
        "001_s_rollback.sql": "DROP TABLE s.t;\nDROP SCHEMA s;\n",
        "002_seq.sql": "ALTER SEQUENCE s.t_id_seq RESTART 10;\nALTER SEQUENCE s.t_n_seq RESTART 10;\n",
        "002_seq_rollback.sql": "ALTER SEQUENCE s.t_id_seq RESTART 1;\nALTER SEQUENCE s.t_n_seq RESTART 1;\n",
    }
    _, report = run(tmp_path, files)
    assert rows(report) == []


def test_schema_qualified_index_names_resolve(tmp_path: Path) -> None:
    files: Files = {
        "001_s.sql": "CREATE SCHEMA s;\nCREATE TABLE s.t (id int);\nCREATE INDEX t_id ON s.t (id);\n",
        "001_s_rollback.sql": "DROP INDEX s.t_id;\nDROP TABLE s.t;\nDROP SCHEMA s;\n",
        "002_idx.sql": "ALTER INDEX s.t_id SET (fillfactor = 80);\n",
        "002_idx_rollback.sql": "ALTER INDEX s.t_id RESET (fillfactor);\n",
    }
    _, report = run(tmp_path, files)
    assert rows(report) == []


@pytest.mark.parametrize(
    ("create", "rename", "use", "drop"),
    [
        (
            "CREATE INDEX old ON t (id);",
            "ALTER INDEX old RENAME TO new;",
            "ALTER INDEX new SET (fillfactor = 80);",
            "DROP INDEX new;",
        ),
        (
            "CREATE SEQUENCE old;",
            "ALTER SEQUENCE old RENAME TO new;",
            "SELECT nextval('new'::regclass);",
            "DROP SEQUENCE new;",
        ),
        (
            "CREATE VIEW old AS SELECT id FROM t;",
            "ALTER VIEW old RENAME TO new;",
            "SELECT * FROM new;",
            "DROP VIEW new;",
        ),
        (
            "CREATE VIEW old AS SELECT id FROM t;",
            "ALTER TABLE old RENAME TO new;",
            "SELECT * FROM new;",
            "DROP VIEW new;",
        ),
    ],
    ids=["index", "sequence", "view", "view-as-table"],
)
def test_rename_to_creates_the_new_name(
    tmp_path: Path, create: str, rename: str, use: str, drop: str
) -> None:
    undo = rename.replace("RENAME TO new", "RENAME TO old").replace(" old ", " new ", 1)
    files: Files = {
        **BASE,
        "002_old.sql": create + "\n",
        "002_old_rollback.sql": drop.replace("new", "old") + "\n",
        "003_rename.sql": rename + "\n",
        "003_rename_rollback.sql": undo + "\n",
        "004_use.sql": use + "\n",
        "004_use_rollback.sql": NOOP,
        "005_drop.sql": drop + "\n",
        "005_drop_rollback.sql": create.replace("old", "new") + "\n",
    }
    _, report = run(tmp_path, files)
    assert rows(report) == []


def test_an_object_renamed_by_its_own_migration_is_undone_by_its_new_name(tmp_path: Path) -> None:
    files: Files = {
        **BASE,
        "002_idx.sql": "CREATE INDEX t_i ON t (id);\nALTER INDEX t_i RENAME TO t_id;\n"
        "CREATE TABLE a (id int);\nALTER TABLE a RENAME TO b;\n",
        "002_idx_rollback.sql": "DROP INDEX t_id;\nDROP TABLE b;\n",
    }
    _, report = run(tmp_path, files)
    assert rows(report) == []


def test_a_syntax_error_keeps_what_the_other_statements_create(tmp_path: Path) -> None:
    """A later file's table stays a forward reference, an earlier one an edge, even though
    the file that creates them has a broken statement between them."""
    files: Files = {
        "001_v.sql": "CREATE VIEW v AS SELECT * FROM t;\n",
        "001_v_rollback.sql": "DROP VIEW v;\n",
        "002_t.sql": "CREATE TABLE t (id int);\nCREATE TABLE x (id int;\n"
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;\n"
        "CREATE TABLE u (x text DEFAULT 'a;b'); -- c;d\n",
        "002_t_rollback.sql": "DROP TABLE u;\nDROP FUNCTION f();\nDROP TABLE t;\n",
        "003_w.sql": "CREATE VIEW w AS SELECT f(), u.x FROM u;\n",
        "003_w_rollback.sql": "DROP VIEW w;\n",
    }
    _, report = run(tmp_path, files)
    assert rows(report) == [
        ("forward-reference", "error", "001_v.sql", 1),
        ("syntax-error", "error", "002_t.sql", 2),
    ]
    assert report.analysis.inferred["003"] == {"002"}
    assert [Path(f.file).name for f in report.unread()] == ["002_t.sql"]
