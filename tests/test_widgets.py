"""The notebook panels, driven headless: set values, click, then check the database and the log.

`Button.click()` runs the handlers synchronously and `Output.outputs` holds what the
panels appended, so every test asserts on the real PostgreSQL (through
`bilantools.commands` or psycopg) and on what the operator would read.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from ipywidgets import Button, Checkbox, Dropdown, Text, Widget
from psycopg.conninfo import conninfo_to_dict

from bilantools import commands
from bilantools.errors import MigrationFailed
from bilantools.notebook import (
    ApplyPanel,
    BackupPanel,
    Dashboard,
    MigrationTable,
    RollbackPanel,
    TableExplorer,
    TargetBanner,
    VerifyPanel,
    dashboard,
    log_text,
)
from tests.conftest import snapshot, tables

pytestmark = pytest.mark.pg15

RED = "#c62828"


def states(url: str, migrations: Path) -> dict[str, str]:
    return {m.version: m.state for m in commands.status(target=url, project=migrations).migrations}


def red_lines(out: Any) -> list[str]:
    """The plain text of the log's red lines (errors)."""
    return [
        item["data"]["text/plain"]
        for item in out.outputs
        if item.get("output_type") == "display_data"
        and item["data"].get("text/html", "").startswith(f'<div style="color:{RED};')
    ]


def row(html: str, version: str) -> str:
    """The status table's row for `version` (with its data-state attribute)."""
    match = re.search(rf'<tr data-version="{version}" data-state="[^"]+">.*?</tr>', html)
    assert match, f"no row for {version} in {html}"
    return match[0]


def visible(box: Any) -> bool:
    return bool(box.layout.display != "none")


def walk(*roots: Any) -> list[Any]:
    """`roots` and every widget below them (children, layouts, tabs...)."""
    seen: dict[int, Any] = {}
    stack = list(roots)
    while stack:
        widget = stack.pop()
        if id(widget) in seen:
            continue
        seen[id(widget)] = widget
        for name in widget.keys:
            value = getattr(widget, name)
            stack.extend(
                item
                for item in (value if isinstance(value, list | tuple) else [value])
                if isinstance(item, Widget)
            )
    return list(seen.values())


def widget_state(widgets: list[Any]) -> str:
    """Every synced value of `widgets` (values, labels, HTML, tooltips, dropdown labels,
    tab titles, Output contents), as one JSON text."""
    return "\n".join(json.dumps(w.get_state(), default=str, ensure_ascii=False) for w in widgets)


def write_failing(migrations: Path) -> None:
    (migrations / "004_bad.sql").write_text("SELECT * FROM missing_table;\n")
    (migrations / "004_bad_rollback.sql").write_text("SELECT 1;\n")


# -- status table ------------------------------------------------------------------------------
def test_table_colours_every_state(db_url: str, basic: Path) -> None:
    write_failing(basic)
    (basic / "005_later.sql").write_text("CREATE TABLE later (id int);\n")
    (basic / "005_later_rollback.sql").write_text("DROP TABLE later;\n")
    with pytest.raises(MigrationFailed):
        commands.apply(target=db_url, project=basic, options=commands.RunOptions(to="004"))
    (basic / "002_add_email.sql").write_text("-- edited after it was applied\nSELECT 1;\n")
    (basic / "003_seed_people.sql").unlink()
    (basic / "003_seed_people_rollback.sql").unlink()
    table = MigrationTable(db_url, basic)
    html = table.html.value
    expected = {
        "001": ("applied", "#2e7d32"),
        "002": ("changed", "#c2185b"),
        "003": ("missing-file", RED),
        "004": ("failed", RED),
        "005": ("pending", "#757575"),
    }
    for version, (state, colour) in expected.items():
        found = row(html, version)
        assert f'data-state="{state}"' in found
        assert f'color:{colour};font-weight:bold">{state}</td>' in found
    assert "5 migrations: 1 applied, 1 pending, 1 failed, 1 changed, 1 missing-file" in html
    assert [v for _, v in table.versions.options] == ["001", "002", "003", "004", "005"]
    assert table.options(["pending", "failed"]) == [
        ("004 bad (failed)", "004"),
        ("005 later (pending)", "005"),
    ]
    table.versions.value = "004"
    assert "missing_table" in table.detail.value

    commands.repair(target=db_url, project=basic)  # clears 004's failed row and realigns 002
    seen: list[str] = []
    table.on_refresh(lambda status: seen.append(status.summary()))
    table.refresh_button.click()
    assert 'data-state="pending"' in row(table.html.value, "004")
    assert 'data-state="applied"' in row(table.html.value, "002")
    assert seen[-1] == "5 migrations: 2 applied, 2 pending, 1 missing-file"
    assert red_lines(table.log) == []


def test_table_error_is_one_red_line(db_url: str, tmp_path: Path) -> None:
    table = MigrationTable(db_url, tmp_path / "nowhere")  # no exception escapes the constructor
    assert table.status is None
    [line] = red_lines(table.log)
    assert line.startswith("error: migrations directory") and "does not exist" in line
    table.refresh_button.click()
    assert len(red_lines(table.log)) == 2


# -- apply -----------------------------------------------------------------------------------
def test_apply_next_applies_exactly_one(db_url: str, basic: Path) -> None:
    panel = ApplyPanel(db_url, basic)
    assert [v for _, v in panel.selected.options] == ["001", "002", "003"]
    panel.next_button.click()
    assert states(db_url, basic) == {"001": "applied", "002": "pending", "003": "pending"}
    text = log_text(panel.log)
    assert re.search(r"^001 create_people: applied in \d+ ms \(2 statements\)$", text, re.M)
    assert not re.search(r"^002 ", text, re.M)  # no line about 002 (the URL may hold the digits)
    assert (panel.progress.value, panel.progress.max, panel.progress.bar_style) == (1, 1, "success")
    assert 'data-state="applied"' in row(panel.table.html.value, "001")
    assert [v for _, v in panel.selected.options] == ["002", "003"]

    panel.next_button.click()
    assert states(db_url, basic) == {"001": "applied", "002": "applied", "003": "pending"}
    assert red_lines(panel.log) == []


def test_apply_to_selected(db_url: str, basic: Path) -> None:
    panel = ApplyPanel(db_url, basic)
    panel.selected.value = "002"
    panel.to_button.click()
    assert states(db_url, basic) == {"001": "applied", "002": "applied", "003": "pending"}
    lines = [line for line in log_text(panel.log).splitlines() if ": applied in " in line]
    assert [line.split()[0] for line in lines] == ["001", "002"]
    assert "applied 2 migration(s)" in log_text(panel.log)
    assert (panel.progress.value, panel.progress.max) == (2, 2)
    assert [v for _, v in panel.selected.options] == ["003"]


class RecordingComm:
    """Stands for the browser's end of a widget: records every state update sent to it."""

    kernel = object()
    comm_id = "recording"

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, data: dict[str, Any], buffers: Any = None) -> None:
        self.sent.append(data["state"])

    def on_msg(self, callback: Any) -> None:
        """The browser sends nothing here."""


def test_up_to_keeps_the_choice_after_a_run(db_url: str, basic: Path) -> None:
    """The choice stays while it is still pending, in the kernel AND in what the browser is
    sent: one update with the kept index, never the reset to the first option between."""
    panel = ApplyPanel(db_url, basic)
    panel.selected.value = "003"
    comm = RecordingComm()
    panel.selected.comm = comm
    panel.next_button.click()
    assert states(db_url, basic)["001"] == "applied"
    assert panel.selected.value == "003" and panel.selected.index == 1
    assert [state.get("index") for state in comm.sent if "index" in state] == [1]
    panel.selected.value = "002"
    panel.to_button.click()  # 002 applied: the choice is gone, the last pending one is offered
    assert [v for _, v in panel.selected.options] == ["003"] and panel.selected.value == "003"


def test_labels_read_in_full(db_url: str, basic: Path, tmp_path: Path) -> None:
    """No "Apply to select..." or "--dry-run (roll back at the e...": buttons as wide as
    their label, descriptions at their own width, and a tooltip says what each does."""
    commands.apply(target=db_url, project=basic, options=commands.RunOptions(to="002"))
    apply = ApplyPanel(db_url, basic)
    rollback = RollbackPanel(db_url, basic)
    found = walk(apply.widget, rollback.widget, BackupPanel(db_url, basic, out=tmp_path).widget)
    buttons = [w for w in found if isinstance(w, Button)]
    assert {b.description for b in buttons} >= {
        "Apply next",
        "Apply up to",
        "Preview SQL",
        "Roll back",
        "Back up",
    }
    for b in buttons:
        assert b.layout.width == "auto", b.description
        assert b.tooltip or b.description in ("Confirm", "Cancel"), b.description
    described = [w for w in found if isinstance(w, Checkbox | Dropdown | Text) and w.description]
    assert {w.description for w in described} >= {
        "Up to",
        "--dry-run",
        "Keep up to",
        "schema only",
        "Directory",
    }
    for w in described:
        assert w.style.description_width == "initial", w.description
    assert apply.dry_run.tooltip == "rehearse: run in one transaction, then roll everything back"


def test_dry_run_changes_nothing(db_url: str, basic: Path, conn: psycopg.Connection) -> None:
    commands.apply(target=db_url, project=basic, options=commands.RunOptions(to="001"))
    before = snapshot(conn)
    panel = ApplyPanel(db_url, basic)
    panel.dry_run.value = True
    panel.selected.value = "003"
    panel.to_button.click()
    assert snapshot(conn) == before
    assert states(db_url, basic) == {"001": "applied", "002": "pending", "003": "pending"}
    text = log_text(panel.log)
    assert "002 add_email: would apply" in text and "003 seed_people: would apply" in text
    assert "dry run: 2 migration(s) would apply; everything was rolled back" in text
    assert not visible(panel.confirm_box)


def test_failing_migration_is_one_red_line_and_failed_in_the_table(db_url: str, basic: Path) -> None:
    write_failing(basic)
    panel = ApplyPanel(db_url, basic)
    panel.selected.value = "004"
    panel.to_button.click()  # must not raise
    [line] = red_lines(panel.log)
    assert "\n" not in line
    assert line.startswith("error: migration 004_bad failed at 004_bad.sql:1")
    assert 'relation "missing_table" does not exist' in line
    assert states(db_url, basic) == {"001": "applied", "002": "applied", "003": "applied", "004": "failed"}
    failed_row = row(panel.table.html.value, "004")
    assert 'data-state="failed"' in failed_row and f"color:{RED}" in failed_row
    assert panel.progress.bar_style == "danger"
    assert [v for _, v in panel.selected.options] == ["004"]  # still to be applied once fixed


def test_non_sandbox_target_needs_the_confirm_click(
    db_url: str, basic: Path, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BILANTOOLS_HOME", str(tmp_path / "another-home"))  # the server is no sandbox now
    backups = tmp_path / "auto-backups"
    banner = TargetBanner(db_url, basic)
    assert "PRODUCTION?" in banner.html.value and "#c62828" in banner.html.value
    panel = ApplyPanel(db_url, basic, backup_dir=backups)
    assert not panel.target.is_sandbox
    before = snapshot(conn)

    panel.next_button.click()
    assert snapshot(conn) == before and "schema_migrations" not in tables(conn)
    assert visible(panel.confirm_box)
    assert panel.confirm.description == f"Confirm: apply 1 migration(s) (001) to {panel.target.masked}"
    panel.cancel.click()
    assert not visible(panel.confirm_box)
    assert "cancelled: nothing was changed" in log_text(panel.log)
    panel.confirm.click()  # disarmed: does nothing
    assert snapshot(conn) == before

    panel.selected.value = "003"
    panel.to_button.click()
    assert (
        panel.confirm.description == f"Confirm: apply 3 migration(s) (001, 002, 003) to {panel.target.masked}"
    )
    assert snapshot(conn) == before and not backups.exists()
    panel.confirm.click()
    assert states(db_url, basic) == {"001": "applied", "002": "applied", "003": "applied"}
    assert not visible(panel.confirm_box)
    [taken] = commands.backup_list(out=backups)  # commands.apply backed up first
    assert f"backup taken before the first change: {taken.file}" in log_text(panel.log)
    assert red_lines(panel.log) == []


def test_confirmation_refused_when_the_plan_changed(
    db_url: str, basic: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BILANTOOLS_HOME", str(tmp_path / "another-home"))
    panel = ApplyPanel(db_url, basic, backup_dir=tmp_path / "b")
    panel.next_button.click()
    commands.apply(
        target=db_url, project=basic, options=commands.RunOptions(step=1, backup=False)
    )  # a colleague applied 001 meanwhile
    panel.confirm.click()
    [line] = red_lines(panel.log)
    assert "the plan changed since confirmation was asked (001 -> 002)" in line
    assert states(db_url, basic) == {"001": "applied", "002": "pending", "003": "pending"}


# -- rollback -------------------------------------------------------------------------------
def test_rollback_preview_then_confirmed_rollback(db_url: str, basic: Path, conn: psycopg.Connection) -> None:
    commands.apply(target=db_url, project=basic)
    panel = RollbackPanel(db_url, basic)
    assert [v for _, v in panel.to.options] == ["0", "001", "002", "003"]
    assert panel.to.value == "002"  # default: the last migration only
    panel.to.value = "001"
    before = snapshot(conn)

    panel.preview_button.click()
    text = log_text(panel.log)
    third = text.index(
        "-- 003_seed_people_rollback.sql (would roll back)\nDROP FUNCTION IF EXISTS people_count();"
    )
    second = text.index("-- 002_add_email_rollback.sql (would roll back)\nALTER TABLE people DROP COLUMN")
    assert third < second
    assert "DROP TABLE IF EXISTS people" not in text  # 001 stays
    assert snapshot(conn) == before

    panel.rollback_button.click()  # the sandbox too asks first
    assert snapshot(conn) == before
    assert visible(panel.confirm_box)
    assert (
        panel.confirm.description == f"Confirm: roll back 2 migration(s) (003, 002) on {panel.target.masked}"
    )
    panel.confirm.click()
    assert states(db_url, basic) == {"001": "applied", "002": "pending", "003": "pending"}
    text = log_text(panel.log)
    assert re.search(r"^003 seed_people: rolled back in \d+ ms", text, re.M)
    assert text.index("003 seed_people: rolled back") < text.index("002 add_email: rolled back")
    assert [v for _, v in panel.to.options] == ["0", "001"]
    assert panel.to.value == "0"

    panel.rollback_button.click()
    panel.cancel.click()
    assert states(db_url, basic)["001"] == "applied"
    panel.rollback_button.click()
    assert panel.confirm.description.startswith("Confirm: roll back 1 migration(s) (001)")
    panel.confirm.click()
    assert set(states(db_url, basic).values()) == {"pending"}
    assert "people" not in tables(conn)
    assert red_lines(panel.log) == []


def test_rollback_confirmation_refused_when_the_database_changed(db_url: str, basic: Path) -> None:
    commands.apply(target=db_url, project=basic)
    panel = RollbackPanel(db_url, basic)
    panel.to.value = "001"
    panel.rollback_button.click()
    commands.rollback(target=db_url, project=basic)  # a colleague rolled back 003 meanwhile
    panel.confirm.click()
    [line] = red_lines(panel.log)
    assert "the database changed since confirmation was asked: nothing was rolled back" in line
    assert states(db_url, basic) == {"001": "applied", "002": "applied", "003": "pending"}


def test_rollback_that_would_fail_is_not_offered(db_url: str, basic: Path) -> None:
    commands.apply(target=db_url, project=basic)
    (basic / "003_seed_people_rollback.sql").write_text("DROP FUNCTION no_such_function();\n")
    panel = RollbackPanel(db_url, basic)
    panel.rollback_button.click()
    [line] = red_lines(panel.log)
    assert line.startswith("error: the rollback would fail, nothing was changed: 003 seed_people: failed")
    assert "no_such_function" in line
    assert not visible(panel.confirm_box)
    assert states(db_url, basic)["003"] == "applied"


# -- backups --------------------------------------------------------------------------------
def test_backup_then_verify(db_url: str, basic: Path, tmp_path: Path) -> None:
    commands.apply(target=db_url, project=basic)
    out = tmp_path / "bk"
    panel = BackupPanel(db_url, basic, out=out)
    assert panel.backups.options == ()
    panel.schema_only.value = False
    panel.format.value = "custom"
    panel.backup_button.click()
    [taken] = commands.backup_list(out=out)
    assert taken.file.is_file() and taken.meta["kind"] == "full"
    text = log_text(panel.log)
    assert f"backup written: {taken.file}" in text and f"sha256 {taken.sha256[:16]}..." in text
    assert panel.backups.value == str(taken.file)
    assert "not verified" in panel.backups.options[0][0]

    panel.verify_button.click()
    assert f"OK: {taken.file.name} restores and matches its sidecar" in log_text(panel.log)
    assert commands.backup_list(out=out)[0].meta["verified"]["ok"] is True
    assert "verified OK" in panel.backups.options[0][0]
    assert red_lines(panel.log) == []

    with taken.file.open("ab") as handle:  # a damaged file must not verify
        handle.write(b"garbage")
    panel.verify_button.click()
    [line] = red_lines(panel.log)
    assert "changed since it was taken" in line
    assert "verification FAILED" in panel.backups.options[0][0]


def test_schema_only_plain_backup(db_url: str, basic: Path, tmp_path: Path) -> None:
    commands.apply(target=db_url, project=basic)
    panel = BackupPanel(db_url, basic, out=tmp_path / "x")
    panel.out.value = str(tmp_path / "schema")
    panel.schema_only.value = True
    panel.format.value = "plain"
    panel.backup_button.click()
    [taken] = commands.backup_list(out=tmp_path / "schema")
    assert taken.file.suffix == ".sql" and taken.meta["kind"] == "schema"
    assert "CREATE TABLE public.people" in taken.file.read_text()


# -- verify and drift ------------------------------------------------------------------------
def test_verify_and_drift_then_a_dropped_index(db_url: str, basic: Path, conn: psycopg.Connection) -> None:
    commands.apply(target=db_url, project=basic)
    panel = VerifyPanel(db_url, basic)
    panel.verify_button.click()
    for version in ("001", "002", "003"):
        assert f'data-migration="{version}"' in panel.summary.value
    assert "no problem" in panel.problems.value and "<tr" not in panel.problems.value
    assert re.search(r"verify: OK, all \d+ object\(s\) as the applied", log_text(panel.log))
    panel.drift_button.click()
    assert "drift: none" in log_text(panel.log)
    assert "no drift" in panel.drift_html.value

    conn.execute("DROP INDEX people_name_idx")
    panel.verify_button.click()
    assert "people_name_idx" in panel.problems.value and "missing" in panel.problems.value
    [line] = red_lines(panel.log)
    assert line == "error: verify: 1 problem(s) among " + line.split(" among ")[1]
    assert re.search(r"001\s+index\s+people_name_idx\s+missing", log_text(panel.log))
    panel.drift_button.click()
    assert "absent: index people_name_idx" in log_text(panel.log)
    assert "people_name_idx" in panel.drift_html.value

    conn.execute("ALTER TABLE people ALTER COLUMN name SET DEFAULT 'nobody'")
    panel.verify_button.click()  # both sides, cut to the difference
    assert "default &#x27;nobody&#x27;" in panel.problems.value, panel.problems.value
    panel.drift_button.click()
    assert "changed: column people.name" in log_text(panel.log)
    assert re.search(r"\+ [^<]*default &#x27;nobody&#x27;", panel.drift_html.value), panel.drift_html.value


# -- table explorer --------------------------------------------------------------------------
def test_explorer_shows_people(db_url: str, basic: Path, conn: psycopg.Connection) -> None:
    commands.apply(target=db_url, project=basic)
    explorer = TableExplorer(db_url, basic)
    names = [v for _, v in explorer.tables.options]
    assert "people" in names and "schema_migrations" in names
    explorer.tables.value = "people"
    columns = explorer.columns.value
    for cell in ("<td", ">id<", ">name<", ">email<", ">integer<", ">text<", "nextval("):
        assert cell in columns
    assert columns.index(">id<") < columns.index(">name<") < columns.index(">email<")
    assert "people_name_idx" in explorer.indexes.value and "people_pkey" in explorer.indexes.value
    assert "row level security off" in explorer.policies.value
    assert "(none)" in explorer.triggers.value

    conn.execute("ALTER TABLE people ENABLE ROW LEVEL SECURITY")
    conn.execute("CREATE POLICY people_self ON people FOR SELECT USING (name = current_user)")
    conn.execute(
        "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;"
        "CREATE TRIGGER people_touch BEFORE UPDATE ON people FOR EACH ROW EXECUTE FUNCTION touch()"
    )
    explorer.refresh_button.click()
    assert "row level security on" in explorer.policies.value and "people_self" in explorer.policies.value
    assert "people_touch" in explorer.triggers.value and "BEFORE UPDATE" in explorer.triggers.value
    assert red_lines(explorer.log) == []

    conn.execute("DROP TABLE people CASCADE")
    explorer.refresh_button.click()
    assert "people" not in [v for _, v in explorer.tables.options]
    assert "people_name_idx" not in explorer.indexes.value


# -- banner, dashboard and the password ------------------------------------------------------
def test_no_password_in_any_widget(
    db_url: str, basic: Path, conn: psycopg.Connection, tmp_path: Path
) -> None:
    role = "bt_app_" + uuid.uuid4().hex[:8]
    password = "Zq9-" + uuid.uuid4().hex[:12]
    params = conninfo_to_dict(db_url)
    conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    conn.execute(f'ALTER DATABASE "{params["dbname"]}" OWNER TO {role}')
    url = f"postgresql://{role}:{password}@127.0.0.1:{params['port']}/{params['dbname']}"
    masked = f"postgresql://{role}:***@127.0.0.1:{params['port']}/{params['dbname']}"
    version = conn.execute("SHOW server_version").fetchone()
    assert version is not None

    board = Dashboard(url, basic, backup_dir=tmp_path / "bk")
    assert masked in board.banner.html.value and f"PostgreSQL {version[0]}" in board.banner.html.value
    assert "#2e7d32" in board.banner.html.value  # same server and port as the sandbox: green
    board.apply.selected.value = "003"
    board.apply.to_button.click()
    assert states(url, basic) == {"001": "applied", "002": "applied", "003": "applied"}
    assert commands.status(target=url, project=basic).migrations[0].applied_by == role
    board.rollback.preview_button.click()
    board.rollback.rollback_button.click()
    assert masked in board.rollback.confirm.description
    board.backups.backup_button.click()
    board.explorer.tables.value = "people"
    board.verify.drift_button.click()
    assert "people" in [v for _, v in board.explorer.tables.options]  # refreshed after apply
    wrong = TargetBanner(url.rsplit("/", 1)[0] + "/no_such_db", basic)  # an error quoting the target
    assert "no_such_db" in wrong.html.value and "does not exist" in wrong.html.value
    assert red_lines(wrong.log)

    every = walk(board.widget, wrong.widget, wrong.log)
    assert len(every) > 100 and board.apply.confirm in every and board.explorer.columns in every
    texts = widget_state(every)
    assert masked in texts and role in texts
    assert password not in texts
    for panel in (board.apply, board.rollback, board.backups, board.verify, board.explorer, wrong):
        assert password not in log_text(panel.log)
        assert not any("unexpected" in line for line in red_lines(panel.log))


def test_production_banner_names_server_database_role_version_and_writability(
    db_url: str, basic: Path, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BILANTOOLS_HOME", str(tmp_path / "another-home"))  # the server is no sandbox now
    params = conninfo_to_dict(db_url)
    version = conn.execute("SHOW server_version").fetchone()
    assert version is not None
    server = f"server 127.0.0.1:{params['port']} · database {params['dbname']} · role postgres"
    banner = TargetBanner(db_url, basic)
    assert banner.text.splitlines() == [
        f"⚠️ PRODUCTION? not the sandbox · {server} · PostgreSQL {version[0]} · read-write (superuser)",
        f"{db_url} (from --db) · migrations: {basic}",
        "every change asks for confirmation and takes a backup first",
    ]
    assert "font-size:16px" in banner.html.value and "border:4px solid #c62828" in banner.html.value

    role = "bt_reader_" + uuid.uuid4().hex[:8]
    conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'Rd-{role}'")
    conn.execute(f'GRANT CONNECT ON DATABASE "{params["dbname"]}" TO {role}')
    reader = db_url.replace("postgres@", f"{role}:Rd-{role}@")
    first = TargetBanner(reader, basic).text.splitlines()[0]
    no_create = f"no CREATE on schema public for role {role} (its privileges)"
    assert first.endswith(f"· role {role} · PostgreSQL {version[0]} · {no_create}")
    conn.execute(f"ALTER ROLE {role} SET default_transaction_read_only = on")
    first = TargetBanner(reader, basic).text.splitlines()[0]
    assert first.endswith("· READ-ONLY by default (default_transaction_read_only = on)")


def test_dashboard_has_every_panel(db_url: str, basic: Path, tmp_path: Path) -> None:
    box = dashboard(db_url, basic, backup_dir=tmp_path / "bk")
    banner, tabs = box.children
    assert "sandbox" in banner.value and "font-size:12px" in banner.value  # quiet
    assert tabs.titles == ("Status", "Apply", "Rollback", "Backups", "Verify", "Tables")
    assert "3 migrations: 3 pending" in tabs.children[0].children[1].value
