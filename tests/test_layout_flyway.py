"""The Flyway layout read as it is, against a real server: versions ordered part by part
(1.9 before 1.10), undo scripts as rollbacks, repeatable scripts run again when they
change and never rolled back, ``.sql.conf`` settings and ``${name}`` placeholders."""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands
from bilantools.commands import Project, RunOptions
from bilantools.errors import InputError
from bilantools.source.files import checksum, normalise
from bilantools.source.layouts import detect, flyway
from tests.conftest import FIXTURES, tables
from tests.test_layouts import scalar, write

FLYWAY = FIXTURES / "flyway"
VERSIONS = ["1", "1.2", "1.9", "1.10", "R__account_names", "R__order_count"]
NAMES = [
    "create_accounts",
    "index_accounts_name",
    "create_orders",
    "add_orders_total",
    "account_names",
    "order_count",
]


def copy(tmp_path: Path) -> Path:
    """The fixture in a directory of its own (with its pyproject.toml), to edit."""
    return Path(shutil.copytree(FLYWAY, tmp_path / "flyway"))


def rows(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        # A peer layout: our history is in schema bilantools.
        query = "SELECT version, checksum FROM bilantools.schema_migrations ORDER BY id"
        return conn.execute(query).fetchall()


def states(cli: Any, base: list[str]) -> list[tuple[str, str, bool]]:
    status = json.loads(cli(*base, "status", "--json").out)
    assert status["layout"] == "flyway"
    return [(m["version"], m["state"], m["repeatable"]) for m in status["migrations"]]


# --- reading the directory -------------------------------------------------------------------


def test_versions_are_ordered_part_by_part_and_repeatables_come_last() -> None:
    project = Project.load(FLYWAY)
    assert (project.layout, project.layout_source) == ("flyway", "detected")
    found = project.migrations
    assert [m.version for m in found] == VERSIONS
    assert [m.order for m in found][:4] == [(1,), (1, 2), (1, 9), (1, 10)]
    assert [m.repeatable for m in found] == [False] * 4 + [True] * 2
    assert [(Path(f.file).name, f.rule) for f in found.findings] == [
        ("V1__create_accounts.sql", "missing-rollback"),
        ("V1_2__index_accounts_name.sql", "missing-rollback"),
        ("V1_9__create_orders.sql", "missing-rollback"),
    ]  # a repeatable script has no rollback to miss
    index = found.migrations[1]
    assert not index.transactional  # executeInTransaction=false in its .sql.conf
    total = found.migrations[3]
    assert total.rollback is not None and total.rollback.path.name == "U1.10__add_orders_total.sql"
    assert "BEGIN" not in total.script.text and total.transactional  # Flyway's own pair, blanked
    assert total.script.text.count("\n") == total.path.read_text().count("\n")


def test_keys_read_flyway_spellings_as_one_version() -> None:
    assert {flyway.key_of(v) for v in ("1_1", "1.1", "1.01", "01.1", "1.1.0", "1_1_0_0")} == {"1.1"}
    assert flyway.key_of("1.0") == "1" and flyway.key_of("R__views") == "R__views"
    assert [flyway.key_of(v) for v in ("1.", "a", "R__", "1__x", "²", "")] == [None] * 6
    found = Project.load(FLYWAY).migrations
    resolved = found.resolve("1_10")
    assert resolved.version == "1.10" and found.resolve("1.9").version == "1.9"
    with pytest.raises(InputError, match=r"no migration has version 1\.3"):
        found.resolve("1.3")


def test_two_spellings_of_one_version_clash(tmp_path: Path) -> None:
    d = write(tmp_path / "m", {"V1_1__a.sql": "SELECT 1;\n", "V1.1__b.sql": "SELECT 2;\n"})
    found = Project.load(d).migrations
    [clash] = [f for f in found.findings if f.rule == "duplicate-version"]
    assert clash.message == "two migrations share version 1.1: V1.1__b.sql and V1_1__a.sql"


def test_detection_and_the_layout_option(tmp_path: Path) -> None:
    assert detect(FLYWAY) == "flyway"
    d = write(tmp_path / "m", {"V1__a.sql": "SELECT 1;\n", "notes.sql": "SELECT 2;\n"})
    found = Project.load(d, "flyway").migrations
    [misnamed] = [f for f in found.findings if f.rule == "file-name"]
    assert misnamed.message.startswith("migration file name 'notes.sql' does not match V<version>__")


def test_settings_file_with_an_unknown_key_is_an_error(tmp_path: Path) -> None:
    d = write(
        tmp_path / "m",
        {
            "V1__a.sql": "SELECT 1;\n",
            "V1__a.sql.conf": "# settings\nexecuteInTransaction=false\nencoding=ISO-8859-1\n",
            "V2__b.sql.conf": "executeInTransaction=false\n",
        },
    )
    found = Project.load(d).migrations
    assert [(Path(f.file).name, f.line, f.one_line()) for f in found.findings] == [
        (
            "V1__a.sql.conf",
            3,
            f"{d}/V1__a.sql.conf:3: V1__a.sql.conf has the setting 'encoding', which bilantools does not "
            "read; the one setting read is executeInTransaction=true|false: fix or remove the line",
        ),
        (
            "V2__b.sql.conf",
            None,
            "V2__b.sql.conf has no script V2__b.sql; rename it after its script or remove it",
        ),
    ]


def test_a_placeholder_without_a_value_is_refused_with_its_line(
    db_url: str, tmp_path: Path, cli: Any
) -> None:
    d = write(
        tmp_path / "m",
        {
            "V1__a.sql": "CREATE TABLE a (id int);\n\nCOMMENT ON TABLE a IS '${owner}';\n",
            "V2__b.sql": "CREATE TABLE b (id int);\n",
        },
    )
    r = cli("--db", db_url, "--migrations", str(d), "apply", "--yes")
    assert r.code == 2
    assert r.err.splitlines()[-1] == (
        f"error: {d}/V1__a.sql:3: V1__a.sql uses the placeholder ${{owner}}, which has no value; set it "
        'in pyproject.toml: [tool.bilantools] placeholders = {"owner" = "..."}'
    )
    with psycopg.connect(db_url) as conn:
        assert not {"a", "b"} & set(tables(conn))


def test_placeholder_values_are_checked_in_pyproject(tmp_path: Path) -> None:
    d = write(tmp_path / "m", {"V1__a.sql": "SELECT '${x}';\n"})
    (d / "pyproject.toml").write_text('[tool.bilantools]\nplaceholders = {x = "a\\nb"}\n')
    with pytest.raises(InputError, match=r"placeholders\.x must be a string of one line"):
        Project.load(d).migrations  # noqa: B018


def test_repeatable_description_longer_than_the_tracking_column_is_an_error(tmp_path: Path) -> None:
    name = "R__" + "v" * 48 + ".sql"
    d = write(tmp_path / "m", {"V1__a.sql": "SELECT 1;\n", name: "SELECT 2;\n"})
    [finding] = [f for f in Project.load(d).migrations.findings if f.rule == "version-too-long"]
    assert finding.message == (
        f"{name} is tracked as R__{'v' * 48}, 51 characters; the tracking table stores versions of at "
        "most 50 characters"
    )
    assert finding.hint == "shorten its description to at most 47 characters"


def test_flyway_checksum_is_crc32_of_the_lines_without_endings() -> None:
    # CRC-32 of "123456789" is 0xCBF43926 (the algorithm's published check value), which is
    # -873187034 as a signed 32-bit integer; the BOM and the line endings are not counted.
    assert flyway.flyway_checksum("\ufeff12345\r\n6789\r\n") == 0xCBF43926 - (1 << 32) == -873187034
    assert flyway.flyway_checksum("12345\n6789") == -873187034
    text = (FLYWAY / "V1_9__create_orders.sql").read_text()
    assert flyway.flyway_checksum(text) == zlib.crc32(text.replace("\n", "").encode())  # positive here


def test_describe_names_a_script_as_flyway_history_does() -> None:
    assert flyway.describe("V1_9__create_orders.sql") == flyway.FlywayScript(
        "versioned", "1.9", "create orders", "V1_9__create_orders.sql"
    )
    undo = flyway.describe("U1.10__add_orders_total.sql")
    assert undo is not None and (undo.kind, undo.version, undo.type) == ("undo", "1.10", "UNDO_SQL")
    repeatable = flyway.describe("R__order_count.sql")
    assert repeatable is not None and (repeatable.version, repeatable.type) == (None, "SQL")
    assert flyway.describe("001_x.sql") is None


# --- on a server -------------------------------------------------------------------------------


def test_flyway_apply_status_verify_rollback(cli: Any, db_url: str) -> None:
    base = ["--db", db_url, "--migrations", str(FLYWAY)]
    r = cli(*base, "apply", "--yes")
    assert r.code == 0, r.err
    assert r.err.splitlines()[1] == "layout: flyway (detected)"
    assert [line.split()[:3] for line in r.out.splitlines()[:6]] == [
        [version, name, "applied"]
        for version, name in zip(
            VERSIONS,
            NAMES,
            strict=True,
        )
    ]
    assert scalar(db_url, "SELECT obj_description('accounts'::regclass)") == (
        "owned by billing, created by V1__create_accounts.sql"  # the placeholders' values
    )
    assert scalar(db_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'accounts_name'::regclass")
    assert scalar(db_url, "SELECT count(*) FROM account_names") == 0
    assert scalar(db_url, "SELECT order_count(1)") == 0
    recorded = rows(db_url)
    assert [v for v, _ in recorded] == VERSIONS
    written = normalise((FLYWAY / "V1__create_accounts.sql").read_bytes())
    assert recorded[0][1] == checksum(written)  # the file as written, not as it ran
    assert states(cli, base) == [(v, "applied", v.startswith("R__")) for v in VERSIONS]
    text = cli(*base, "status").out
    assert "6 migrations: 6 applied" in text and "R__order_count" in text
    assert cli(*base, "verify").code == 0

    r = cli(*base, "rollback", "--yes")
    assert r.code == 0, r.err
    assert r.out.split()[:3] == ["1.10", "add_orders_total", "rolled"]
    assert (
        scalar(
            db_url,
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'total'",
        )
        == 0
    )  # the undo script ran
    assert [v for v, _ in rows(db_url)] == ["1", "1.2", "1.9", "R__account_names", "R__order_count"]
    r = cli(*base, "rollback", "--yes")
    assert r.code == 2
    assert r.err.splitlines()[-1] == (
        "error: no rollback script for 1.9_create_orders: add U1_9__create_orders.sql "
        "(nothing was rolled back)"
    )
    with psycopg.connect(db_url) as conn:
        assert {"accounts", "orders"} <= set(tables(conn))
    assert scalar(db_url, "SELECT to_regclass('account_names') IS NOT NULL")  # never rolled back


def test_edited_repeatable_runs_again_and_only_it(cli: Any, db_url: str, tmp_path: Path) -> None:
    d = copy(tmp_path)
    base = ["--db", db_url, "--migrations", str(d)]
    assert cli(*base, "apply", "--yes").code == 0
    view = d / "R__account_names.sql"
    view.write_text(
        "CREATE OR REPLACE VIEW account_names AS\nSELECT id, name, upper(name) AS shout FROM accounts;\n"
    )
    assert states(cli, base) == [
        (v, "outdated" if v == "R__account_names" else "applied", v.startswith("R__")) for v in VERSIONS
    ]
    assert "1 outdated" in cli(*base, "status").out
    report = commands.check(project=d)
    assert not report.errors  # not a checksum mismatch: a repeatable script may change
    r = cli(*base, "apply", "--yes", "--json")
    assert r.code == 0, r.err
    assert [(s["version"], s["outcome"]) for s in json.loads(r.out)["steps"]] == [
        ("R__account_names", "applied")
    ]
    assert (
        scalar(db_url, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'account_names'")
        == 3
    )
    assert states(cli, base) == [(v, "applied", v.startswith("R__")) for v in VERSIONS]
    assert cli(*base, "apply", "--yes", "--json").code == 0 and len(rows(db_url)) == 6


def test_a_new_placeholder_value_is_not_an_edit(cli: Any, db_url: str, tmp_path: Path) -> None:
    d = copy(tmp_path)
    base = ["--db", db_url, "--migrations", str(d)]
    assert cli(*base, "apply", "--yes").code == 0
    (d / "pyproject.toml").write_text('[tool.bilantools]\nplaceholders = {team = "sales"}\n')
    assert states(cli, base) == [(v, "applied", v.startswith("R__")) for v in VERSIONS]
    assert cli(*base, "apply", "--yes", "--json").code == 0 and len(rows(db_url)) == 6  # nothing ran
    (d / "V2__team.sql").write_text("SELECT '${team}';\n")
    plan = cli(*base, "plan", "--sql")
    assert plan.code == 0, plan.err
    assert "SELECT 'sales';" in plan.out


def test_to_and_step_count_repeatables_after_every_version(cli: Any, db_url: str) -> None:
    """--to a version runs no repeatable script (they come after every version); --step
    counts them as migrations of the plan."""
    base = ["--db", db_url, "--migrations", str(FLYWAY)]
    assert cli(*base, "apply", "--yes", "--to", "1_9").code == 0
    assert [v for v, _ in rows(db_url)] == VERSIONS[:3]
    assert cli(*base, "apply", "--yes", "--step", "2").code == 0
    assert [v for v, _ in rows(db_url)] == VERSIONS[:5]
    assert cli(*base, "apply", "--yes", "--to", "R__order_count").code == 0
    assert [v for v, _ in rows(db_url)] == VERSIONS


def test_plan_sql_prints_the_script_as_it_runs(cli: Any, db_url: str) -> None:
    r = cli("--db", db_url, "--migrations", str(FLYWAY), "plan", "--sql")
    assert r.code == 0, r.err
    assert "COMMENT ON TABLE accounts IS 'owned by billing, created by V1__create_accounts.sql';" in r.out
    assert "${team}" not in r.out


def test_front_door_reads_flyway_given_as_the_layout(db_url: str) -> None:
    result = commands.apply(target=db_url, project=Project.load(FLYWAY, "flyway"), options=RunOptions(to="1"))
    assert [s.version for s in result.steps] == ["1"]


def test_undo_script_without_its_version_is_an_error(tmp_path: Path) -> None:
    d = write(tmp_path / "m", {"V1__a.sql": "SELECT 1;\n", "U1_1__b.sql": "SELECT 2;\n"})
    [orphan] = Project.load(d).migrations.errors
    assert (orphan.rule, orphan.one_line()) == (
        "orphan-rollback",
        "rollback U1_1__b.sql has no versioned script V1_1__*.sql; add it or remove the undo script",
    )


def test_squawk_after_is_read_as_a_flyway_version(tmp_path: Path) -> None:
    """Up to 1.9 (not 1.10, which a comparison as text or as a number would put first)."""
    d = copy(tmp_path)
    (d / "pyproject.toml").write_text(
        '[tool.bilantools]\nplaceholders = {team = "x"}\nsquawk-after = "1_9"\n'
    )
    squawked = {Path(f.file).name for f in commands.check(project=d).findings if f.rule.startswith("squawk:")}
    assert "V1.10__add_orders_total.sql" in squawked
    assert not squawked & {
        "V1__create_accounts.sql",
        "V1_2__index_accounts_name.sql",
        "V1_9__create_orders.sql",
    }
    (d / "pyproject.toml").write_text('[tool.bilantools]\nplaceholders = {team = "x"}\nsquawk-after = "x1"\n')
    with pytest.raises(InputError, match="squawk-after 'x1' is not a flyway version"):
        commands.check(project=d)


def test_a_new_placeholder_value_is_checked_again_before_apply(cli: Any, db_url: str, tmp_path: Path) -> None:
    """The checksum stays (the file did not change) but the remembered check does not
    cover the new text: a value that breaks the SQL is refused before anything runs."""
    d = copy(tmp_path)
    (d / "V2__select.sql").write_text("SELECT ${team};\n")
    (d / "pyproject.toml").write_text('[tool.bilantools]\nplaceholders = {team = "1"}\n')
    base = ["--db", db_url, "--migrations", str(d)]
    assert cli(*base, "apply", "--yes", "--to", "1").code == 0  # the whole directory checked and remembered
    (d / "pyproject.toml").write_text('[tool.bilantools]\nplaceholders = {team = "1 +"}\n')
    r = cli(*base, "apply", "--yes")
    assert r.code == 2, r.err
    assert "V2__select.sql:1" in r.err.splitlines()[-1]
    assert [v for v, _ in rows(db_url)] == ["1"]


def test_two_undo_scripts_of_one_version_clash(tmp_path: Path) -> None:
    d = write(
        tmp_path / "m",
        {"V1_1__a.sql": "SELECT 1;\n", "U1_1__a.sql": "SELECT 2;\n", "U1.1__a.sql": "SELECT 3;\n"},
    )
    [clash] = Project.load(d).migrations.errors
    assert (
        clash.one_line()
        == "two undo scripts share version 1.1: U1.1__a.sql and U1_1__a.sql; remove one of them"
    )
