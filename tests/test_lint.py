"""Lint rules (idempotency, squawk), ignore comments and [tool.bilantools]: no database needed.

Each case builds a tiny migrations directory in tmp_path. Our own rules are tested with
squawk switched off so that each case yields exactly one finding; squawk's rules are
tested with it on, asserting the rule ids squawk-cli 2.70 reports.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from bilantools.errors import InputError
from bilantools.source import lint as lint_module
from bilantools.source.config import CheckConfig, load_config, suppressed_rules
from bilantools.source.files import MigrationSet
from bilantools.source.findings import Finding
from bilantools.source.layouts.native import discover
from bilantools.source.lint import lint
from bilantools.source.lock_scope import LOCK_RULES

REPO = Path(__file__).resolve().parents[1]
NO_SQUAWK = CheckConfig(disabled=frozenset({"squawk"}))


def write(directory: Path, files: dict[str, str]) -> MigrationSet:
    """Write `files` (name -> SQL, dedented) into `directory` and discover it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return discover(directory)


def one_script(tmp_path: Path, sql: str, rollback: bool = False) -> tuple[MigrationSet, str]:
    """Migration 001 whose script (or rollback) is `sql` after a comment line; the other is inert."""
    body = "-- under test\n" + textwrap.dedent(sql).lstrip("\n")
    files = {"001_a.sql": "SELECT 1;\n", "001_a_rollback.sql": "SELECT 1;\n"}
    name = "001_a_rollback.sql" if rollback else "001_a.sql"
    files[name] = body
    return write(tmp_path / "migrations", files), str(tmp_path / "migrations" / name)


def rules_at(findings: list[Finding], file: str) -> set[tuple[str, int | None]]:
    return {(f.rule, f.line) for f in findings if f.file == file}


@pytest.fixture
def squawk() -> None:
    assert lint_module.squawk_binary(), "squawk is missing: pip install squawk-cli (a bilantools dependency)"


# --- idempotency rules -------------------------------------------------------------------

RERUN = "fails when the migration is re-run"
RB_RERUN = "fails when the rollback is re-run"
CASES = [
    (
        "CREATE TABLE users (id bigint);",
        "create-table-not-idempotent",
        f"CREATE TABLE users without IF NOT EXISTS {RERUN}",
        "write CREATE TABLE IF NOT EXISTS users",
    ),
    (
        "CREATE TABLE app.totals AS SELECT 1 AS n;",
        "create-table-not-idempotent",
        f"CREATE TABLE app.totals AS without IF NOT EXISTS {RERUN}",
        "write CREATE TABLE IF NOT EXISTS app.totals AS ...",
    ),
    (
        "CREATE UNIQUE INDEX users_email ON public.users (email);",
        "create-index-not-idempotent",
        f"CREATE UNIQUE INDEX users_email ON public.users without IF NOT EXISTS {RERUN}",
        "write CREATE UNIQUE INDEX IF NOT EXISTS users_email ON public.users",
    ),
    (
        "CREATE INDEX ON users (email);",
        "create-index-not-idempotent",
        f"CREATE INDEX (unnamed) ON users without IF NOT EXISTS {RERUN}",
        "name the index and write CREATE INDEX IF NOT EXISTS <name> ON users",
    ),
    (
        "ALTER TABLE users ADD COLUMN IF NOT EXISTS a text, ADD COLUMN cv_url text;",
        "add-column-not-idempotent",
        f"ALTER TABLE users ADD COLUMN cv_url without IF NOT EXISTS {RERUN}",
        "write ALTER TABLE users ADD COLUMN IF NOT EXISTS cv_url",
    ),
    (
        """
        DROP POLICY IF EXISTS own ON bilans;
        CREATE POLICY own ON users USING (true);
        """,
        "create-policy-without-drop",
        f"CREATE POLICY own ON users is not preceded by a DROP POLICY IF EXISTS of it and {RERUN}",
        "write DROP POLICY IF EXISTS own ON users; just before it",
    ),
    (
        "CREATE TRIGGER trg BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION set_updated_at();",
        "create-trigger-without-drop",
        f"CREATE TRIGGER trg ON users is not preceded by a DROP TRIGGER IF EXISTS of it and {RERUN}",
        "write DROP TRIGGER IF EXISTS trg ON users; just before it "
        "(or CREATE OR REPLACE TRIGGER, PostgreSQL 14+)",
    ),
    (
        "CREATE FUNCTION app.one() RETURNS int LANGUAGE sql AS 'SELECT 1';",
        "create-function-not-replace",
        f"CREATE FUNCTION app.one without OR REPLACE {RERUN}",
        "write CREATE OR REPLACE FUNCTION app.one",
    ),
    (
        "CREATE PROCEDURE tidy() LANGUAGE sql AS 'SELECT 1';",
        "create-function-not-replace",
        f"CREATE PROCEDURE tidy without OR REPLACE {RERUN}",
        "write CREATE OR REPLACE PROCEDURE tidy",
    ),
    (
        "CREATE SCHEMA app;",
        "create-object-not-idempotent",
        f"CREATE SCHEMA app without IF NOT EXISTS {RERUN}",
        "write CREATE SCHEMA IF NOT EXISTS app",
    ),
    (
        "CREATE SEQUENCE invoice_numbers;",
        "create-object-not-idempotent",
        f"CREATE SEQUENCE invoice_numbers without IF NOT EXISTS {RERUN}",
        "write CREATE SEQUENCE IF NOT EXISTS invoice_numbers",
    ),
    (
        "CREATE EXTENSION pgcrypto;",
        "create-object-not-idempotent",
        f"CREATE EXTENSION pgcrypto without IF NOT EXISTS {RERUN}",
        "write CREATE EXTENSION IF NOT EXISTS pgcrypto",
    ),
    (
        "CREATE VIEW active_users AS SELECT 1 AS id;",
        "create-object-not-idempotent",
        f"CREATE VIEW active_users without OR REPLACE {RERUN}",
        "write CREATE OR REPLACE VIEW active_users",
    ),
    (
        "CREATE MATERIALIZED VIEW totals AS SELECT 1 AS n;",
        "create-object-not-idempotent",
        f"CREATE MATERIALIZED VIEW totals AS without IF NOT EXISTS {RERUN}",
        "write CREATE MATERIALIZED VIEW IF NOT EXISTS totals AS ...",
    ),
]


@pytest.mark.parametrize(
    ("sql", "rule", "message", "hint"), CASES, ids=[c[1] + ":" + c[0][:20] for c in CASES]
)
def test_each_idempotency_rule(tmp_path: Path, sql: str, rule: str, message: str, hint: str) -> None:
    migrations, file = one_script(tmp_path, sql)
    line = 2 + textwrap.dedent(sql).strip().count("\n")  # the last statement, after the comment line
    assert lint(migrations, NO_SQUAWK) == [Finding(rule, "warning", file, line, message, hint)]


DROP_CASES = [
    ("DROP TABLE users, app.bilans CASCADE;", "DROP TABLE IF EXISTS users, app.bilans CASCADE"),
    (
        "DROP FUNCTION app_can_write(uuid, integer[]);",
        "DROP FUNCTION IF EXISTS app_can_write(uuid, integer[])",
    ),
    ("DROP POLICY own ON public.users;", "DROP POLICY IF EXISTS own ON public.users"),
    ("DROP MATERIALIZED VIEW totals;", "DROP MATERIALIZED VIEW IF EXISTS totals"),
    ("DROP INDEX CONCURRENTLY users_email;", "DROP INDEX CONCURRENTLY IF EXISTS users_email"),
    ("DROP CAST (int AS text);", "DROP CAST IF EXISTS (int AS text)"),
    ("DROP TYPE bilan_status;", "DROP TYPE IF EXISTS bilan_status"),
    ("DROP EXTENSION pgcrypto;", "DROP EXTENSION IF EXISTS pgcrypto"),
    ("DROP USER app_reader;", "DROP USER IF EXISTS app_reader"),
    ("ALTER TABLE users DROP COLUMN cv_url;", "ALTER TABLE users DROP COLUMN IF EXISTS cv_url"),
    (
        "ALTER TABLE users DROP CONSTRAINT users_email_key;",
        "ALTER TABLE users DROP CONSTRAINT IF EXISTS users_email_key",
    ),
]


@pytest.mark.parametrize(("sql", "fixed"), DROP_CASES, ids=[c[0] for c in DROP_CASES])
def test_drop_without_if_exists_in_a_rollback(tmp_path: Path, sql: str, fixed: str) -> None:
    migrations, file = one_script(tmp_path, sql, rollback=True)
    subject = sql.rstrip(";")
    assert lint(migrations, NO_SQUAWK) == [
        Finding(
            "drop-without-if-exists",
            "warning",
            file,
            2,
            f"{subject} without IF EXISTS {RB_RERUN}",
            f"write {fixed}",
        )
    ]


def test_idempotent_forms_give_no_finding(tmp_path: Path) -> None:
    migrations, _ = one_script(
        tmp_path,
        """
        CREATE SCHEMA IF NOT EXISTS app;
        CREATE TEMPORARY TABLE scratch (id bigint);
        CREATE EXTENSION IF NOT EXISTS pgcrypto;
        CREATE SEQUENCE IF NOT EXISTS invoice_numbers;
        CREATE TABLE IF NOT EXISTS users (id bigint, email text);
        CREATE TABLE IF NOT EXISTS totals AS SELECT 1 AS n;
        CREATE MATERIALIZED VIEW IF NOT EXISTS mtotals AS SELECT 1 AS n;
        ALTER TABLE users ADD COLUMN IF NOT EXISTS cv_url text, DROP COLUMN IF EXISTS old;
        ALTER TABLE users DROP CONSTRAINT IF EXISTS users_email_key;
        CREATE UNIQUE INDEX IF NOT EXISTS users_email ON users (email);
        CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
        CREATE OR REPLACE VIEW active_users AS SELECT id FROM users;
        DROP POLICY IF EXISTS own ON public.users;
        CREATE POLICY own ON users USING (true);
        DROP TRIGGER IF EXISTS trg_touch ON users;
        CREATE TRIGGER trg_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch();
        CREATE OR REPLACE TRIGGER trg_again BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch();
        DROP TABLE IF EXISTS legacy;
        DROP INDEX IF EXISTS legacy_idx;
        DROP ROLE IF EXISTS legacy_role;
        """,
    )
    assert lint(migrations, NO_SQUAWK) == []


def test_a_plain_drop_before_create_trigger_is_reported_once(tmp_path: Path) -> None:
    migrations, _ = one_script(
        tmp_path,
        """
        DROP TRIGGER trg ON users;
        CREATE TRIGGER trg BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch();
        """,
    )
    assert [(f.rule, f.line) for f in lint(migrations, NO_SQUAWK)] == [("drop-without-if-exists", 2)]


def test_syntax_error_is_one_error_finding(tmp_path: Path, squawk: None) -> None:
    """PostgreSQL's parser reports it (as `check` does); squawk's own syntax errors are dropped."""
    migrations, file = one_script(tmp_path, "CREATE TABLE IF NOT EXISTS t (a bigint);\nCREATE TABLE (;")
    [finding] = lint(migrations, CheckConfig())
    assert (finding.rule, finding.severity, finding.file, finding.line, finding.column) == (
        "syntax-error",
        "error",
        file,
        3,
        14,
    )
    assert finding.message == 'syntax error: syntax error at or near "("'


# --- switching findings off ---------------------------------------------------------------


def test_ignore_comment_above_or_on_the_statement(tmp_path: Path) -> None:
    migrations, _ = one_script(
        tmp_path,
        """
        -- bilantools: ignore create-table-not-idempotent, create-index-not-idempotent
        -- (users is created by this migration)
        CREATE TABLE users (id bigint);
        CREATE INDEX users_id ON users (id); -- bilantools: ignore create-index-not-idempotent
        -- bilantools: ignore create-schema-typo

        CREATE TABLE bilans (id bigint);
        """,
    )
    assert [(f.rule, f.line) for f in lint(migrations, NO_SQUAWK)] == [("create-table-not-idempotent", 8)]


def test_suppressed_rules() -> None:
    text = (
        "-- bilantools: ignore a, squawk:b\n--  BILANTOOLS: Ignore C\n"
        "SELECT 1; -- bilantools: ignore d\n\nSELECT 2;"
    )
    assert suppressed_rules(text, 3) == frozenset({"a", "squawk:b", "c", "d"})
    assert suppressed_rules(text, 5) == frozenset()
    assert suppressed_rules("SELECT 1;", 1) == frozenset()


def test_disable_in_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.bilantools]\ndisable = ["create-table-not-idempotent", "squawk"]\n'
        'provided = ["schema:auth", "function:auth.uid", "function:f(integer, text)"]\n'
    )
    migrations, _ = one_script(tmp_path, "CREATE TABLE users (id int);\nCREATE SCHEMA app;")
    config = load_config(migrations.directory)
    assert config == CheckConfig(
        disabled=frozenset({"create-table-not-idempotent", "squawk"}),
        provided=frozenset({"schema:auth", "function:auth.uid", "function:f(integer, text)"}),
    )
    assert [f.rule for f in lint(migrations, config)] == ["create-object-not-idempotent"]


def test_config_defaults_and_nearest_pyproject(tmp_path: Path) -> None:
    assert load_config(tmp_path) == CheckConfig()  # no pyproject.toml anywhere above tmp_path
    (tmp_path / "pyproject.toml").write_text('[tool.bilantools]\ndisable = ["x"]\n')
    (tmp_path / "sub").mkdir()
    assert load_config(tmp_path / "sub") == CheckConfig(disabled=frozenset({"x"}))
    (tmp_path / "sub" / "pyproject.toml").write_text('[project]\nname = "other"\n')
    assert load_config(tmp_path / "sub") == CheckConfig()  # the nearest file has no table


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[tool.bilantools]\ndisable = "squawk"\n', "disable must be a list of non-empty strings"),
        ("[tool.bilantools]\ndisable = [1]\n", "disable must be a list of non-empty strings"),
        ('[tool.bilantools]\nprovided = ["auth"]\n', "provided entry 'auth' is not 'kind:name'"),
        ('[tool.bilantools]\ndisabled = ["x"]\n', "unknown key(s) disabled; the keys are disable, provided"),
        ("[tool]\nbilantools = 3\n", "tool.bilantools must be a table"),
        ("[tool.bilantools\n", "cannot be read as TOML"),
    ],
)
def test_config_errors_name_file_key_and_fix(tmp_path: Path, toml: str, expected: str) -> None:
    (tmp_path / "pyproject.toml").write_text(toml)
    with pytest.raises(InputError) as caught:
        load_config(tmp_path)
    assert caught.value.message.startswith(str(tmp_path / "pyproject.toml"))
    assert expected in caught.value.message
    assert "\n" not in caught.value.message


# --- squawk --------------------------------------------------------------------------------

EXISTING_TABLE = {
    "001_users.sql": """
        -- users
        CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, email text);
        """,
    "001_users_rollback.sql": "SELECT 1;\n",
    "002_required.sql": """
        -- a required column and an index on the existing table
        ALTER TABLE users ADD COLUMN IF NOT EXISTS x bigint NOT NULL;
        CREATE INDEX IF NOT EXISTS users_x ON users (x);
        """,
    "002_required_rollback.sql": "SELECT 1;\n",
}


def test_squawk_lock_rules_on_an_existing_table(tmp_path: Path, squawk: None) -> None:
    """Also: squawk's 0-based line and byte column become the file's 1-based line and character column."""
    migrations = write(tmp_path / "m", EXISTING_TABLE)
    findings = lint(migrations, CheckConfig())
    file = str(tmp_path / "m" / "002_required.sql")
    assert rules_at(findings, file) == {  # no require-lock-timeout: the engine sets lock_timeout
        ("squawk:adding-required-field", 2),
        ("squawk:require-statement-timeout", 2),
        ("squawk:require-concurrent-index-creation", 3),
    }
    # 001 creates its table inside the migration's transaction: nothing to lock, no finding.
    assert rules_at(findings, str(tmp_path / "m" / "001_users.sql")) == set()
    assert all(f.severity == "warning" and f.message for f in findings)
    [required] = [f for f in findings if f.rule == "squawk:adding-required-field"]
    assert required.hint == "Make the field nullable or add a non-VOLATILE DEFAULT"
    assert required.column == 19  # "ADD COLUMN ..." in "ALTER TABLE users ADD COLUMN ..."
    assert findings == sorted(findings, key=lambda f: (f.file, f.line or 0, f.rule, f.message, f.hint))
    assert lint(migrations, CheckConfig()) == findings


NEW_TABLE = """
    -- a table and, in the same migration, what squawk says locks a table others use
    CREATE TABLE IF NOT EXISTS s.orders (id bigint, ref bigint, name varchar(10));
    ALTER TABLE s.orders ADD COLUMN IF NOT EXISTS total bigint NOT NULL;
    ALTER TABLE s.orders ADD COLUMN IF NOT EXISTS n bigint NOT NULL DEFAULT 0;
    ALTER TABLE s.orders ALTER COLUMN name TYPE text;
    ALTER TABLE s.orders ALTER COLUMN ref SET NOT NULL;
    ALTER TABLE s.orders RENAME COLUMN ref TO ref_id;
    CREATE INDEX IF NOT EXISTS orders_ref ON s.orders (ref_id);
    ALTER TABLE s.orders RENAME TO purchases;
    ALTER TABLE s.purchases ADD COLUMN IF NOT EXISTS paid bigint NOT NULL;
    DROP INDEX IF EXISTS s.orders_ref;
    """


def test_squawk_lock_rules_are_off_on_a_table_of_the_same_migration(tmp_path: Path, squawk: None) -> None:
    """Nobody else can hold a lock on, or rows in, a table the migration has just created;
    the same statements on a table of an earlier migration keep their findings."""
    existing = NEW_TABLE.replace(
        "CREATE TABLE IF NOT EXISTS s.orders (id bigint, ref bigint, name varchar(10));", "SELECT 1;"
    ).replace("DROP INDEX IF EXISTS s.orders_ref", "DROP INDEX IF EXISTS s.orders_name")  # not its own
    files = {
        "001_orders.sql": "CREATE SCHEMA IF NOT EXISTS s;\n" + NEW_TABLE,
        "001_orders_rollback.sql": "SELECT 1;\n",
        "002_orders.sql": existing,
        "002_orders_rollback.sql": "SELECT 1;\n",
    }
    findings = lint(write(tmp_path / "m", files), CheckConfig())
    locks = {
        rule.removeprefix("squawk:") for rule, _ in rules_at(findings, str(tmp_path / "m" / "002_orders.sql"))
    }
    assert locks >= {
        "adding-required-field",
        "changing-column-type",
        "adding-not-nullable-field",
        "renaming-column",
        "renaming-table",
        "require-concurrent-index-creation",
        "require-concurrent-index-deletion",
    }
    kept = {rule for rule, _ in rules_at(findings, str(tmp_path / "m" / "001_orders.sql"))}
    assert kept & {f"squawk:{rule}" for rule in LOCK_RULES} == set()
    assert "squawk:prefer-text-field" in kept  # advice on the new table's design stays


@pytest.mark.parametrize(
    ("header", "lock", "statement"),
    [("", False, True), ("-- lock-timeout: 0\n", True, True), ("-- statement-timeout: 1min\n", False, False)],
    ids=["run-default", "lock-timeout-off", "statement-timeout-set"],
)
def test_squawk_timeout_rules_follow_the_engine(
    tmp_path: Path, squawk: None, header: str, lock: bool, statement: bool
) -> None:
    """apply sets lock_timeout itself (5s, or the header's): squawk's require-lock-timeout
    comes back only when the header turns the limit off."""
    files = dict(EXISTING_TABLE)
    files["002_required.sql"] = header + "CREATE INDEX IF NOT EXISTS users_x ON users (email);\n"
    findings = lint(write(tmp_path / "m", files), CheckConfig())
    rules = {rule for rule, _ in rules_at(findings, str(tmp_path / "m" / "002_required.sql"))}
    assert ("squawk:require-lock-timeout" in rules, "squawk:require-statement-timeout" in rules) == (
        lock,
        statement,
    )


def test_squawk_column_counts_characters(tmp_path: Path, squawk: None) -> None:
    migrations, file = one_script(tmp_path, 'CREATE TABLE IF NOT EXISTS t ("é" bigint, b varchar(3));')
    [finding] = [f for f in lint(migrations, CheckConfig()) if f.rule == "squawk:prefer-text-field"]
    assert (finding.file, finding.line, finding.column) == (file, 2, 45)


def test_squawk_rules_switched_off(tmp_path: Path, squawk: None) -> None:
    files = dict(EXISTING_TABLE)
    files["002_required.sql"] = """
        -- bilantools: ignore squawk:adding-required-field
        ALTER TABLE users
            ADD COLUMN IF NOT EXISTS x bigint NOT NULL;
        CREATE INDEX IF NOT EXISTS users_x ON users (x);
        """
    migrations = write(tmp_path / "m", files)
    config = CheckConfig(
        disabled=frozenset({"squawk:require-lock-timeout", "squawk:require-statement-timeout"})
    )
    findings = lint(migrations, config)
    assert rules_at(findings, str(tmp_path / "m" / "002_required.sql")) == {
        ("squawk:require-concurrent-index-creation", 4)
    }


def test_squawk_knows_which_files_run_in_a_transaction(tmp_path: Path, squawk: None) -> None:
    concurrently = "CREATE INDEX CONCURRENTLY IF NOT EXISTS users_email ON users (email);\n"
    migrations = write(
        tmp_path / "m",
        {
            **EXISTING_TABLE,
            "003_off.sql": "-- transaction: off\n" + concurrently,
            "003_off_rollback.sql": "SELECT 1;\n",
            "004_on.sql": "SELECT 1;\n" + concurrently,
            "004_on_rollback.sql": "SELECT 1;\n",
        },
    )
    findings = lint(migrations, CheckConfig())
    ban = "squawk:ban-concurrent-index-creation-in-transaction"
    assert (ban, 2) not in rules_at(findings, str(tmp_path / "m" / "003_off.sql"))
    assert (ban, 2) in rules_at(findings, str(tmp_path / "m" / "004_on.sql"))


def test_squawk_missing_is_one_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lint_module, "squawk_binary", lambda: None)
    migrations, _ = one_script(tmp_path, "CREATE TABLE IF NOT EXISTS users (id bigint);")
    [finding] = lint(migrations, CheckConfig())
    assert (finding.rule, finding.severity, finding.file) == (
        "squawk-missing",
        "warning",
        str(migrations.directory),
    )
    assert "pip install squawk-cli" in finding.hint
    assert lint(migrations, NO_SQUAWK) == []


@pytest.mark.parametrize("binary", [shutil.which("false"), "/nonexistent/squawk"])
def test_squawk_failing_is_one_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, binary: str) -> None:
    monkeypatch.setattr(lint_module, "squawk_binary", lambda: binary)
    migrations, _ = one_script(tmp_path, "CREATE TABLE IF NOT EXISTS users (id bigint);")
    assert [f.rule for f in lint(migrations, CheckConfig())] == ["squawk-failed"]


def test_the_projects_migrations_lint(squawk: None) -> None:
    """The report, not a count: which rules to disable is the project's decision."""
    migrations = discover(REPO / "migrations")
    findings = lint(migrations, load_config(REPO / "migrations"))
    assert all(f.severity == "warning" and f.line and f.file.startswith(str(REPO)) for f in findings)


def test_squawk_after_keeps_lock_advice_for_new_migrations_only(tmp_path: Path, squawk: None) -> None:
    from bilantools.source.check import check

    directory = tmp_path / "m"
    write(directory, EXISTING_TABLE)
    (tmp_path / "pyproject.toml").write_text('[tool.bilantools]\nsquawk-after = "001"\n')
    report = check(directory)
    squawked = {(Path(f.file).name, f.rule) for f in report.findings if f.rule.startswith("squawk:")}
    assert ("002_required.sql", "squawk:adding-required-field") in squawked
    (tmp_path / "pyproject.toml").write_text('[tool.bilantools]\nsquawk-after = "002"\n')
    assert [f for f in check(directory).findings if f.rule.startswith("squawk:")] == []


def test_rollbacks_may_drop_what_their_migration_made(tmp_path: Path, squawk: None) -> None:
    migrations = write(
        tmp_path / "m",
        {
            "001_t.sql": "CREATE TABLE IF NOT EXISTS t (id bigint, c text);\n",
            "001_t_rollback.sql": "ALTER TABLE t DROP COLUMN IF EXISTS c;\nDROP TABLE IF EXISTS t;\n",
        },
    )
    rollback = str(tmp_path / "m" / "001_t_rollback.sql")
    rules = {f.rule for f in lint(migrations, CheckConfig()) if f.file == rollback}
    assert not {"squawk:ban-drop-table", "squawk:ban-drop-column"} & rules
