"""The fleet runbook's panels (bilantools.notebook.fleet), driven headless on real databases:
the status grid, the gates table, and a wave applied only after Confirm, its live grid fed
by the rollout."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bilantools import commands
from bilantools.commands import Selection, TargetRun
from bilantools.db.health import GateSettings, read_health
from bilantools.db.sandbox import Sandbox
from bilantools.notebook import log_text
from bilantools.notebook.fleet import WavePanel, gates_frame, status_grid


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
    assert all(row[4].value.endswith(" ms") for row in panel.grid.rows.values())
    assert "3 target(s): 3 done; 9 migration(s) applied" in log_text(panel.log)

    styled, summary = status_grid(stages, basic)
    assert summary == "3 target(s) x 3 migration(s): 9 applied; 3 target(s) fully applied"
    assert (styled.data == "applied").all().all() and "●" in styled.to_html()


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
    """A session holding a transaction open past the limit gates the target: its row says why."""
    settings = GateSettings(max_transaction_age_s=0.0)
    readings: dict[str, Any] = {}
    with psycopg.connect(fleet[0]) as holder:
        holder.execute("SELECT 1")  # a transaction left open
        for name, url in (("busy", fleet[0]), ("quiet", fleet[1])):
            with psycopg.connect(url) as conn:
                readings[name] = read_health(conn, settings, frozenset())
    frame = gates_frame(readings).set_index("target")
    assert frame.loc["quiet", "gates"] == "ok" and frame.loc["quiet", "recovery"] == "primary"
    assert frame.loc["busy", "long transactions"] == 1
    assert "transaction open" in frame.loc["busy", "gates"]


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
    assert ">done<" in row[2].value and row[3].value == "" and row[4].value == "1234 ms"
