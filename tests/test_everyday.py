"""The everyday commands against a real server: history (the event log), rollback --sql,
inspect table NAME and erd."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands
from bilantools.commands import RunOptions

pytestmark = pytest.mark.pg15

# A table with every kind of thing `inspect table` shows: an identity, defaults, a check,
# a foreign key out (to people) and one in (from note_links), an index, RLS with a
# policy, and a trigger.
NOTES = """
CREATE TABLE notes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    person_id integer NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    body text NOT NULL DEFAULT '' CHECK (length(body) < 1000),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notes_person_idx ON notes (person_id);
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY notes_visible ON notes FOR SELECT TO PUBLIC USING (person_id > 0);
CREATE FUNCTION notes_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.created_at := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER notes_touched BEFORE UPDATE ON notes FOR EACH ROW EXECUTE FUNCTION notes_touch();
CREATE TABLE note_links (note_id bigint REFERENCES notes (id), url text);
"""


@pytest.fixture
def richer(basic: Path) -> Path:
    (basic / "004_notes.sql").write_text(NOTES)
    (basic / "004_notes_rollback.sql").write_text(
        "DROP TABLE note_links;\nDROP TABLE notes;\nDROP FUNCTION notes_touch();\n"
    )
    (basic / "categories.toml").write_text('[categories]\n"People" = ["people"]\n"Notes" = ["notes"]\n')
    return basic


def test_history_newest_first_with_who_what_and_the_backup(
    cli: Any, db_url: str, basic: Path, conn: psycopg.Connection, tmp_path: Path
) -> None:
    base = ["--db", db_url, "--migrations", str(basic)]
    empty = cli(*base, "history")
    assert empty.code == 0
    assert empty.out == "no event: nothing was applied, rolled back, baselined or repaired yet\n"
    log = conn.execute("SELECT to_regclass('schema_migration_events')").fetchone()
    assert log == (None,), "history created nothing"
    options = RunOptions(backup=True, backup_dir=str(tmp_path / "bk"), yes=True)
    applied = commands.apply(target=db_url, project=basic, options=options)
    assert cli(*base, "rollback", "--yes").code == 0
    listed = json.loads(cli(*base, "history", "--json").out)
    assert listed["target"] == db_url
    events = listed["events"]
    assert [(e["action"], e["version"], e["outcome"]) for e in events] == [
        ("rollback", "003", "success"),
        ("apply", "003", "success"),
        ("apply", "002", "success"),
        ("apply", "001", "success"),
    ]
    user = conn.info.user
    assert all(e["actor"] == user and e["os_user"] and e["host"] for e in events)
    assert {e["backup"] for e in events[1:]} == {applied.backup} and events[0]["backup"] is None
    assert {e["run_id"] for e in events[1:]} == {applied.run_id} and events[0]["run_id"] != applied.run_id
    assert all(isinstance(e["duration_ms"], int) for e in events)
    text = cli(*base, "history").out.splitlines()
    assert text[0].split() == ["WHEN", "WHO", "ACTION", "VERSION", "OUTCOME", "MS", "BACKUP", "RUN"]
    who = f"({events[0]['os_user']}@{events[0]['host']})"
    assert text[1].split()[3:7] == [who, "rollback", "003", "success"]
    assert Path(applied.backup or "").name in text[2] and (applied.run_id or "")[:8] in text[2]
    assert text[-1] == "4 event(s), newest first"
    # one version (written without its zeros), the newest N
    only = json.loads(cli(*base, "history", "--version", "3", "--json").out)["events"]
    assert [(e["action"], e["version"]) for e in only] == [("rollback", "003"), ("apply", "003")]
    assert len(json.loads(cli(*base, "history", "--limit", "1", "--json").out)["events"]) == 1
    assert "no event of version 9" in cli(*base, "history", "--version", "9").out


def test_history_says_what_went_wrong(cli: Any, db_url: str, basic: Path) -> None:
    (basic / "004_broken.sql").write_text("SELECT * FROM nowhere;\n")
    (basic / "004_broken_rollback.sql").write_text("SELECT 1;\n")
    base = ["--db", db_url, "--migrations", str(basic)]
    assert cli(*base, "apply").code == 1
    lines = cli(*base, "history").out.splitlines()
    assert lines[1].split()[4:7] == ["apply", "004", "FAILURE"]
    failed = [line for line in lines if line.startswith("004 apply failure (")]
    assert len(failed) == 1 and 'relation "nowhere" does not exist' in failed[0]


def test_rollback_sql_prints_what_rollback_runs_and_changes_nothing(
    cli: Any, db_url: str, basic: Path, conn: psycopg.Connection
) -> None:
    base = ["--db", db_url, "--migrations", str(basic)]
    assert cli(*base, "apply").code == 0
    r = cli(*base, "rollback", "--sql", "--step", "2")
    assert r.code == 0, r.err
    assert r.out.startswith(f"-- bilantools rollback on {db_url}: 2 migration(s)\n")
    assert r.out.index("003_seed_people_rollback.sql") < r.out.index("002_add_email_rollback.sql")
    assert "DROP FUNCTION IF EXISTS people_count();" in r.out and "001_create_people" not in r.out
    assert "3 applied" in cli(*base, "status").out, "nothing was rolled back"
    # the script, run by hand, is the rollback: history and schema move together
    conn.execute(r.out)
    status = commands.status(target=db_url, project=basic)
    assert [m.state for m in status.migrations] == ["applied", "pending", "pending"]
    assert conn.execute("SELECT to_regprocedure('people_count()')").fetchone() == (None,)
    to = cli(*base, "rollback", "--sql", "--to", "0")
    assert "001_create_people_rollback.sql" in to.out and "002_add_email" not in to.out
    nothing = cli(*base, "rollback", "--sql", "--to", "1")
    assert nothing.out == f"-- bilantools rollback on {db_url}: 0 migration(s)\n"


def test_inspect_table_script_recreates_the_table(
    cli: Any, db_url: str, richer: Path, conn: psycopg.Connection
) -> None:
    base = ["--db", db_url, "--migrations", str(richer)]
    assert cli(*base, "apply").code == 0
    r = cli(*base, "inspect", "table", "notes")
    assert r.code == 0, r.err
    first = r.out.splitlines()[0]
    assert first.startswith("table notes: ") and "row level security on, 1 policy(ies), 1 trigger(s)" in first
    assert "    id bigint GENERATED ALWAYS AS IDENTITY NOT NULL," in r.out
    assert "    body text DEFAULT ''::text NOT NULL," in r.out
    assert "_not_null" not in r.out, "NOT NULL is said once, on its column (PostgreSQL 18 catalogs it too)"
    fkey = "FOREIGN KEY (person_id) REFERENCES people(id) ON DELETE CASCADE"
    assert f"CONSTRAINT notes_person_id_fkey {fkey}" in r.out
    assert "CREATE INDEX notes_person_idx ON public.notes USING btree (person_id);" in r.out
    policy = "CREATE POLICY notes_visible ON notes AS PERMISSIVE FOR SELECT TO PUBLIC"
    assert f"{policy} USING ((person_id > 0));" in r.out
    assert "CREATE TRIGGER notes_touched BEFORE UPDATE ON public.notes" in r.out
    assert "note_links.note_links_note_id_fkey  FOREIGN KEY (note_id) REFERENCES notes(id)" in r.out
    found = json.loads(cli(*base, "inspect", "table", "notes", "--json").out)
    assert found["kind"] == "table" and found["name"] == "notes" and found["rls"] is True
    assert [k["name"] for k in found["foreign_keys"]] == ["notes_person_id_fkey"]
    assert [k["table"] for k in found["referenced_by"]] == ["note_links"]
    assert found["estimated_rows"] is None and found["total_bytes"] > 0
    # the script is the table: dropped and re-created from it, it reads back the same
    conn.execute("DROP TABLE note_links; DROP TABLE notes")
    conn.execute(found["create_sql"])
    again = commands.inspect_table(name="notes", target=db_url)
    assert again.create_sql() == found["create_sql"]


def test_inspect_table_refuses_what_is_not_a_table(cli: Any, db_url: str, basic: Path) -> None:
    base = ["--db", db_url, "--migrations", str(basic)]
    missing = cli(*base, "inspect", "table", "nobody")
    assert missing.code == 2 and "error: no table nobody: see `bilantools inspect tables`" in missing.err
    assert "error: inspect table needs the table's name" in cli(*base, "inspect", "table").err
    other = cli(*base, "inspect", "tables", "people")
    assert other.code == 2
    assert "inspect tables takes no name; to see one table: bilantools inspect table people" in other.err


def test_erd_of_all_tables_and_of_one_category(cli: Any, db_url: str, richer: Path, tmp_path: Path) -> None:
    base = ["--db", db_url, "--migrations", str(richer)]
    assert cli(*base, "apply").code == 0
    whole = cli(*base, "erd", "--format", "dot")
    assert whole.code == 0, whole.err
    assert '"notes":"person_id" -> "people"' in whole.out and '"note_links":"note_id" -> "notes"' in whole.out
    assert (
        '<td align="left">PK</td><td align="left">id</td>' in whole.out
        and '"schema_migrations" [label=<' in whole.out
    )
    notes = cli(*base, "erd", "--category", "Notes", "--format", "dot").out
    assert '"notes" [label=<' in notes
    assert '"people" [shape=box' in notes and '"note_links" [shape=box' in notes
    assert "schema_migrations" not in notes and 'label="Notes: 1 table(s)"' in notes
    model = json.loads(cli(*base, "erd", "--category", "Notes", "--json").out)
    assert [t["name"] for t in model["tables"]] == ["notes"] and model["outside"] == ["note_links", "people"]
    svg = tmp_path / "notes.svg"
    assert cli(*base, "erd", "--category", "Notes", "--out", str(svg)).code == 0
    assert "<svg" in svg.read_text() and "person_id" in svg.read_text()
    png = tmp_path / "all.png"
    assert cli(*base, "erd", "--format", "png", "--out", str(png)).code == 0
    assert png.read_bytes().startswith(b"\x89PNG")
    unknown = cli(*base, "erd", "--category", "Nope")
    assert unknown.code == 2
    known = "choose one of People, Notes, Uncategorized (--category NAME)"
    assert f"error: unknown category 'Nope': {known}" in unknown.err


def test_history_names_the_fleet_rollout_of_a_run(cli: Any, db_url: str, basic: Path) -> None:
    """A run a fleet made is shown with its rollout; a plain apply's events have none."""
    from bilantools.fleet.selection import from_urls

    commands.apply(target=db_url, project=basic, options=RunOptions(step=1, backup=False))
    result = commands.fleet(action="apply", stages=from_urls([db_url]), project=basic)
    assert result.exit_code == 0
    events = commands.history(target=db_url, project=basic)
    assert [e.rollout_id for e in events] == [result.rollout_id] * 2 + [None]
    text = cli("--db", db_url, "--migrations", str(basic), "history").out.splitlines()
    assert text[0].split()[-1] == "ROLLOUT"
    assert text[1].split()[-1] == result.rollout_id[:8] and text[3].split()[-1] == "-"
    listed = json.loads(cli("--db", db_url, "--migrations", str(basic), "history", "--json").out)["events"]
    assert [e["rollout_id"] for e in listed] == [result.rollout_id] * 2 + [None]
