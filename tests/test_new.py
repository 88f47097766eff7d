"""`bilantools new`: the next migration's files in each layout, as that layout's tool makes
them, read back by the layout's own discovery; a bad name and an existing file refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bilantools.source.layouts import discover
from bilantools.source.layouts.sqitch_plan import parse_plan
from bilantools.source.scaffold import new_migration, slug

NOW = datetime(2026, 12, 8, 1, 2, 3, tzinfo=UTC)


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*") if p.is_file())


def written(paths: list[Path]) -> list[Path]:
    """The new files with SQL written into them (an empty migration is refused by discovery)."""
    for path in paths:
        text = path.read_text()
        path.write_text(text.replace("-- migrate:down", "SELECT 1;\n-- migrate:down") + "SELECT 1;\n")
    return paths


def test_ours_is_numbered_after_the_highest_with_our_headers(cli: Any, basic: Path) -> None:
    r = cli("--migrations", str(basic), "new", "Add phone numbers!")
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        str(basic / "004_add_phone_numbers.sql"),
        str(basic / "004_add_phone_numbers_rollback.sql"),
    ]
    text = (basic / "004_add_phone_numbers.sql").read_text()
    assert text.startswith("-- Migration 004: Add phone numbers!\n--\n")
    rollback = (basic / "004_add_phone_numbers_rollback.sql").read_text()
    assert rollback.startswith("-- Rollback of migration 004")
    # recognised by name; refused by apply until its SQL is written
    found = discover(basic, "bilantools")
    assert [(Path(f.file).name, f.rule) for f in found.findings] == [
        ("004_add_phone_numbers.sql", "empty-file"),
        ("004_add_phone_numbers_rollback.sql", "empty-file"),
    ]
    again = json.loads(cli("--migrations", str(basic), "new", "x", "--json").out)
    assert again == {"files": [str(basic / "005_x.sql"), str(basic / "005_x_rollback.sql")]}


@pytest.mark.parametrize("name", ["", " ", "!!!", "_.~", "…"])
def test_a_name_without_letters_or_digits_is_refused(cli: Any, basic: Path, name: str) -> None:
    before = names(basic)
    r = cli("--migrations", str(basic), "new", name)
    assert r.code == 2
    assert f"error: cannot name a migration {name!r}: it has no letter or digit; give a name such as" in r.err
    assert names(basic) == before


def test_slug() -> None:
    assert slug("Créer la table élèves") == "creer_la_table_eleves"
    assert slug("add-user.email") == "add_user_email"


def test_golang_migrate_sequence(tmp_path: Path) -> None:
    (tmp_path / "000009_a.up.sql").write_text("SELECT 1;\n")
    (tmp_path / "000009_a.down.sql").write_text("SELECT 1;\n")
    made = written(new_migration(tmp_path, "golang-migrate", "add phone", NOW))
    assert [p.name for p in made] == ["000010_add_phone.up.sql", "000010_add_phone.down.sql"]
    assert [m.key for m in discover(tmp_path, "golang-migrate")] == ["9", "10"]


def test_golang_migrate_timestamps_stay_timestamps(tmp_path: Path) -> None:
    (tmp_path / "20250101000000_a.up.sql").write_text("SELECT 1;\n")
    made = new_migration(tmp_path, "golang-migrate", "b", NOW)
    assert made[0].name == "20261208010203_b.up.sql"


def test_dbmate_timestamp_with_its_sections(tmp_path: Path) -> None:
    later = "-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 1;\n"
    (tmp_path / "20991231000000_later.sql").write_text(later)
    made = new_migration(tmp_path, "dbmate", "add phone", NOW)
    # never at or below the highest, even one dated in the future
    assert [p.name for p in made] == ["20991231000001_add_phone.sql"]
    assert made[0].read_text() == "-- migrate:up\n\n\n-- migrate:down\n\n"
    written(made)
    found = discover(tmp_path, "dbmate")
    assert len(found) == 2 and found.migrations[-1].rollback is not None
    empty = tmp_path / "empty"
    assert new_migration(empty, "dbmate", "first", NOW)[0].name == "20261208010203_first.sql"


def test_flyway_versioned_and_undo(tmp_path: Path) -> None:
    (tmp_path / "V1__a.sql").write_text("SELECT 1;\n")
    (tmp_path / "V1_1__b.sql").write_text("SELECT 1;\n")
    (tmp_path / "R__views.sql").write_text("SELECT 1;\n")
    made = written(new_migration(tmp_path, "flyway", "add phone", NOW))
    assert [p.name for p in made] == ["V2__add_phone.sql", "U2__add_phone.sql"]
    found = discover(tmp_path, "flyway")
    assert "2" in [m.key for m in found] and all(m.rollback for m in found if m.key == "2")


def test_sqitch_add(cli: Any, tmp_path: Path) -> None:
    project = tmp_path / "sq"
    project.mkdir()
    (project / "sqitch.plan").write_text(
        "%syntax-version=1.0.0\n%project=demo\n\npeople 2026-01-01T00:00:00Z Ann <ann@example.org> # people"
    )  # no newline at the end: the new line still starts a line of its own
    for folder in ("deploy", "revert", "verify"):
        (project / folder).mkdir()
        (project / folder / "people.sql").write_text("BEGIN;\nSELECT 1;\nCOMMIT;\n")
    r = cli("--migrations", str(project), "new", "add phone")
    assert r.code == 0, r.err
    assert [Path(line).relative_to(project).as_posix() for line in r.out.splitlines()] == [
        "deploy/add_phone.sql",
        "revert/add_phone.sql",
        "verify/add_phone.sql",
        "sqitch.plan",
    ]
    plan = parse_plan(project / "sqitch.plan", (project / "sqitch.plan").read_text())
    assert plan.changes[-1].name == "add_phone" and plan.changes[-1].note == "add phone" and not plan.findings
    deploy = (project / "deploy" / "add_phone.sql").read_text()
    assert deploy.startswith(f"-- Deploy {plan.project}:add_phone to pg\n") and "COMMIT;" in deploy
    assert (project / "verify" / "add_phone.sql").read_text().rstrip().endswith("ROLLBACK;")
    assert discover(project, "sqitch").migrations[-1].key == "add_phone"
    # the same change again: refused, nothing written
    before = (project / "sqitch.plan").read_text()
    again = cli("--migrations", str(project), "new", "add phone")
    assert again.code == 2 and "has a change add_phone already: nothing was written" in again.err
    assert (project / "sqitch.plan").read_text() == before


def test_an_existing_file_is_never_overwritten(cli: Any, tmp_path: Path) -> None:
    project = tmp_path / "sq"
    project.mkdir()
    (project / "sqitch.plan").write_text("%syntax-version=1.0.0\n%project=demo\n\n")
    (project / "revert").mkdir()
    (project / "revert" / "x.sql").write_text("-- mine\n")
    r = cli("--migrations", str(project), "new", "x")
    assert r.code == 2
    existing = project / "revert" / "x.sql"
    assert f"error: {existing} exists already: nothing was written; choose another name" in r.err
    assert names(project) == ["sqitch.plan", "x.sql"]
    assert (project / "revert" / "x.sql").read_text() == "-- mine\n"
    assert (project / "sqitch.plan").read_text() == "%syntax-version=1.0.0\n%project=demo\n\n"


def test_the_layout_flag_makes_another_layouts_files(cli: Any, tmp_path: Path) -> None:
    r = cli("--migrations", str(tmp_path / "m"), "new", "first", "--layout", "flyway")
    assert r.code == 0, r.err
    assert names(tmp_path / "m") == ["U1__first.sql", "V1__first.sql"]
