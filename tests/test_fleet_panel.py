"""The fleet runbook's panels (bilantools.notebook.fleet), driven headless on real databases:
the status grid, the gates table, and a wave applied only after Confirm, its live grid fed
by the rollout (and its elapsed time ticking while a target runs); and runbook 07 as saved,
which shows each log line once."""

from __future__ import annotations

import ast
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bilantools import commands
from bilantools.commands import Selection, TargetRun
from bilantools.db.sandbox import Sandbox
from bilantools.notebook import log_text
from bilantools.notebook.fleet import WavePanel, gates_frame, status_grid
from tests.test_architecture import imported, within

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "07_fleet_rollout.ipynb"


@pytest.fixture
def fleet(server: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Three fresh databases of the test server (the sandbox here), dropped afterwards."""
    monkeypatch.setenv("BILANTOOLS_HOME", str(server.home))
    prefix = "f_" + uuid.uuid4().hex[:8]
    urls = server.new_dbs(3, prefix=prefix)
    yield urls
    for url in urls:
        server.drop_db(url.rsplit("/", 1)[1])


def applied(url: str, basic: Path) -> int:
    return commands.status(target=url, project=basic).count("applied")


def grid_states(panel: WavePanel) -> dict[str, str]:
    return {name: row[2].value.split(">")[1].split("<")[0] for name, row in panel.grid.rows.items()}


def test_a_wave_applies_only_after_confirm_and_shows_each_target(fleet: list[str], basic: Path) -> None:
    stages = commands.fleet_select(project=basic, selection=Selection(db=fleet))
    panel = WavePanel(stages, basic, commands.RunOptions())
    assert panel.apply_button.description == "Apply to wave adhoc (3 target(s))"
    assert set(grid_states(panel).values()) == {"waiting"}

    panel.apply_button.click()
    assert panel.confirmation.armed and all(applied(url, basic) == 0 for url in fleet)
    panel.confirmation.cancel.click()
    assert "cancelled: nothing was changed" in log_text(panel.log) and panel.result is None

    panel.apply_button.click()
    assert panel.confirmation.confirm.description.startswith(
        "Confirm: apply the pending migrations to wave adhoc"
    )
    panel.confirmation.confirm.click()
    assert all(applied(url, basic) == 3 for url in fleet)
    assert panel.result is not None and panel.result.exit_code == 0
    assert set(grid_states(panel).values()) == {"done"}
    assert all(row[4].value.endswith(" s") for row in panel.grid.rows.values())
    lines = log_text(panel.log).splitlines()  # one line per event, each once
    assert lines[:4] == [
        "waiting for confirmation: Confirm: apply the pending migrations to wave adhoc: "
        + ", ".join(m.name for m in stages[0].members),
        "cancelled: nothing was changed",
        lines[0],
        "applying to wave adhoc",
    ]
    assert len(lines) == 5 and lines[4].endswith("3 target(s): 3 done; 9 migration(s) applied")

    styled, summary = status_grid(stages, basic)
    assert summary == "3 target(s) x 3 migration(s): 9 applied; 3 target(s) fully applied"
    assert (styled.data == "applied").all().all() and "●" in styled.to_html()
    assert 'class="index_name' not in styled.to_html()  # no header row of its own for "target"


def test_a_failed_target_is_shown_failed_and_logged(fleet: list[str], basic: Path) -> None:
    with psycopg.connect(fleet[1], autocommit=True) as conn:  # 001 creates people: a conflict
        conn.execute("CREATE TABLE people (id int)")
    stages = commands.fleet_select(project=basic, selection=Selection(db=fleet, parallel=1))
    panel = WavePanel(stages, basic, commands.RunOptions())
    panel.apply_button.click()
    panel.confirmation.confirm.click()
    states = grid_states(panel)
    name = stages[0].members[1].name
    assert states[name] == "failed" and panel.result is not None and panel.result.exit_code == 1
    text = log_text(panel.log)
    assert f"error: {name}: failed: " in text and "already exists" in text
    _, summary = status_grid(stages, basic)
    assert "1 failed" in summary


def test_the_gates_table_names_what_blocks(fleet: list[str], basic: Path) -> None:
    """A session holding a transaction open past the project's limit gates the target: its
    row says why; a target that cannot be read is blocked with its error."""
    (basic.parent / "pyproject.toml").write_text("[tool.bilantools.gates]\nmax-transaction-age-s = 0\n")
    gone = fleet[2].rsplit("/", 1)[0] + "/no_such_database"
    stages = commands.fleet_select(project=basic, selection=Selection(db=[fleet[0], fleet[1], gone]))
    busy, quiet, missing = (m.name for m in stages[0].members)
    with psycopg.connect(fleet[0]) as holder:
        holder.execute("SELECT 1")  # a transaction left open
        preflight = commands.fleet_health(stages=stages, project=basic)
    assert preflight.settings.max_transaction_age_s == 0 and preflight.blocked == [busy, missing]
    frame = gates_frame(preflight).set_index("target")
    assert frame.loc[quiet, "gates"] == "ok" and frame.loc[quiet, "recovery"] == "primary"
    assert frame.loc[busy, "long transactions"] == 1
    assert "transaction open" in frame.loc[busy, "gates"]
    assert "no_such_database" in frame.loc[missing, "gates"] and frame.loc[missing, "recovery"] == ""


def test_the_live_grid_shows_a_gated_target_and_its_reason(fleet: list[str], basic: Path) -> None:
    """What the rollout's hook reports for a target held by its gates, then done."""
    stages = commands.fleet_select(project=basic, selection=Selection(db=fleet[:1]))
    panel = WavePanel(stages, basic, commands.RunOptions())
    name = stages[0].members[0].name
    run = TargetRun(name, "masked", "adhoc", state="gated", gate="1 lock waiter(s) > max_lock_waiters 0")
    run.started = time.monotonic()
    panel.grid.watch(run)
    row = panel.grid.rows[name]
    assert ">gated<" in row[2].value and row[3].value == "1 lock waiter(s) > max_lock_waiters 0"
    run.state, run.gate, run.duration_ms = "done", None, 1234
    panel.grid.watch(run)
    assert ">done<" in row[2].value and row[3].value == "" and row[4].value == "1.2 s"


def test_elapsed_grows_while_a_target_runs(fleet: list[str], basic: Path) -> None:
    """Between two events (a migration that sleeps) the running target's elapsed time still
    grows: the grid ticks, it does not wait for the next event."""
    slow = basic / "002_add_email.sql"
    slow.write_text("SELECT pg_sleep(3);\n" + slow.read_text())
    stages = commands.fleet_select(project=basic, selection=Selection(db=fleet[:1]))
    panel = WavePanel(stages, basic, commands.RunOptions())
    name = stages[0].members[0].name
    row = panel.grid.rows[name]
    panel.apply_button.click()
    rollout = threading.Thread(target=panel.confirmation.confirm.click)
    rollout.start()
    try:
        deadline = time.monotonic() + 30
        while not row[3].value and time.monotonic() < deadline:  # a migration in flight
            time.sleep(0.05)
        assert ">running<" in row[2].value, "no migration started within 30 s"
        time.sleep(0.5)  # the quick migrations' events are over: the sleeping one runs
        migration, first = row[3].value, row[4].value
        time.sleep(1.0)
        second = row[4].value
        assert row[3].value == migration, "the sleeping migration ended between the two reads"
        assert second != first, f"elapsed stood still at {first} while {name} ran {migration}"
        assert float(second.removesuffix(" s")) >= float(first.removesuffix(" s")) + 0.5
    finally:
        rollout.join()
    assert ">done<" in row[2].value and applied(fleet[0], basic) == 3


def test_runbook_07_shows_each_log_line_once() -> None:
    """A panel's log is in its widget; a cell that printed it too showed every line twice."""
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    state = notebook["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    logs = [
        line
        for model in state.values()
        if model["model_name"] == "OutputModel"
        for output in model["state"]["outputs"]
        for line in (output.get("text") or output.get("data", {}).get("text/plain", "")).splitlines()
    ]
    assert any(line.startswith("applying to wave") for line in logs)
    printed = [
        line
        for cell in notebook["cells"]
        if cell["cell_type"] == "code"
        for output in cell["outputs"]
        if output["output_type"] == "stream"
        for line in "".join(output["text"]).splitlines()
    ]
    assert not set(logs) & set(printed)


def test_runbook_07_is_a_face() -> None:
    """The runbook reaches the package through the front door (and the notebook panels)."""
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    allowed = ("bilantools.commands", "bilantools.errors", "bilantools.notebook", "bilantools.render")
    names = [
        name
        for cell in notebook["cells"]
        if cell["cell_type"] == "code"
        for _, name in imported(ast.parse("".join(cell["source"])), "notebook")
        if within(name, "bilantools")
    ]
    assert "bilantools.commands" in names
    assert [n for n in names if not any(within(n, a) for a in allowed)] == []
