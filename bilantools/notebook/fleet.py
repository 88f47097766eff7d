"""The fleet runbook's faces (notebooks/07_fleet_rollout): the fleet's status as a grid of
targets x migrations, the preflight gates as a table, and `WavePanel`, which applies some
waves of the fleet after a confirmation click and shows each target live.

The stages (waves) come from `commands.fleet_select`; a rollout is `commands.fleet`, whose
`watch` hook feeds the live grid from the threads that run the targets. The hook is called
only when a target's state changes (a migration starts or ends, a gate is read), so while
a rollout runs a ticker thread also redraws the elapsed time of the targets still going;
the grid's own lock keeps the two from changing a row at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from bilantools import commands
from bilantools.commands import RunOptions
from bilantools.notebook import log
from bilantools.notebook.panel import Confirmation, Panel
from bilantools.notebook.render import esc
from bilantools.notebook.status import STATE_COLOURS

# One character per migration state in the grid, its colour from STATE_COLOURS.
SYMBOLS = {
    "applied": "●",
    "pending": "○",
    "failed": "✖",
    "changed": "≠",
    "outdated": "↻",
    "missing-file": "?",
}
# A target's state in the live grid (rollout states, then outcomes).
RUN_COLOURS = {
    "waiting": "#757575",
    "gated": "#e65100",
    "running": "#0277bd",
    "done": "#2e7d32",
    "failed": "#c62828",
    "refused": "#c62828",
    "skipped": "#e65100",
    "stopped": "#e65100",
    "not-started": "#757575",
}
# The columns of the preflight table between the target and its verdict.
READINGS = ("recovery", "replicas", "max replica lag", "long transactions", "lock waiters", "vacuums", "disk")
# The states of a target still going (then it has an outcome).
LIVE = ("waiting", "gated", "running")


def members(stages: Sequence[commands.Stage]) -> list[Any]:
    """Every target of `stages` (`Member`s: name, target), wave after wave."""
    return [member for stage in stages for member in stage.members]


def status_grid(stages: Sequence[commands.Stage], project: commands.ProjectLike) -> tuple[Any, str]:
    """The fleet's status: a styled DataFrame (one row per target, one column per
    migration version, a coloured symbol per state) and its one-line summary."""
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]  # pandas ships no types

    states = {
        m.name: {s.version: s.state for s in commands.status(target=m.target, project=project).migrations}
        for m in members(stages)
    }
    frame = pd.DataFrame.from_dict(states, orient="index").fillna("missing-file")
    frame.index.name = "target"
    counts = pd.Series(frame.to_numpy().ravel()).value_counts()
    done = sum(1 for row in states.values() if all(s == "applied" for s in row.values()))
    summary = (
        f"{len(frame)} target(s) x {len(frame.columns)} migration(s): "
        + ", ".join(f"{counts[s]} {s}" for s in SYMBOLS if s in counts)
        + f"; {done} target(s) fully applied"
    )
    legend = ", ".join(f"{symbol} {state}" for state, symbol in SYMBOLS.items())
    styled = (
        frame.style.set_uuid("fleet_grid")
        .hide(axis="index", names=True)  # the targets label the rows; no header row of its own
        .map(lambda s: f"color:{STATE_COLOURS.get(s, '#000')};font-weight:bold;text-align:center")
        .format(lambda s: SYMBOLS.get(s, s))
        .set_caption(f"migration states ({legend})")
    )
    return styled, summary


def gates_frame(preflight: commands.Preflight) -> Any:
    """The preflight gates per target (`commands.fleet_health`): what a DBA reads before
    migrating, and "ok" or the reasons it would wait (a target that could not be read
    shows only its error)."""
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

    rows = []
    for name, health in preflight.targets.items():
        cells = _readings(health.readings) if health.readings else dict.fromkeys(READINGS, "")
        rows.append({"target": name, **cells, "gates": "ok" if health.ok else "; ".join(health.reasons)})
    return pd.DataFrame(rows, columns=["target", *READINGS, "gates"])


def _readings(r: dict[str, Any]) -> dict[str, Any]:
    """One target's health readings as table cells."""
    lags = [x["replay_lag_s"] for x in r["replicas"] if x.get("replay_lag_s") is not None]
    return {
        "recovery": "standby" if r["in_recovery"] else "primary",
        "replicas": len(r["replicas"]),
        "max replica lag": f"{max(lags):.1f} s" if lags else "",
        "long transactions": len(r["long_transactions"]),
        "lock waiters": len(r["lock_waiters"]),
        "vacuums": len(r["vacuums"]),
        "disk": "checked" if r["disk"]["visible"] else "not visible",
    }


def outcomes_frame(result: commands.RolloutResult) -> Any:
    """A rollout's `RolloutResult` as a table: one row per target."""
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

    return pd.DataFrame(
        [
            {
                "target": t.name,
                "wave": t.wave,
                "outcome": t.outcome,
                "applied": t.applied,
                "failed": t.failed,
                "took": "" if t.duration_ms is None else f"{t.duration_ms} ms",
                "error": t.error or "",
            }
            for t in result.targets
        ],
        columns=["target", "wave", "outcome", "applied", "failed", "took", "error"],
    )


class LiveGrid:
    """One row per target (name, wave, state, current migration, elapsed), redrawn by
    `watch`, the rollout's hook, and, while `ticking`, every `TICK_S` for the elapsed time
    of the targets still waiting on a gate or running."""

    HEADERS = ("target", "wave", "state", "migration", "elapsed")
    TICK_S = 0.5

    def __init__(self, stages: Sequence[commands.Stage]) -> None:
        self.rows: dict[str, list[Any]] = {}
        self.runs: dict[str, commands.TargetRun] = {}  # each target seen so far, as the rollout has it
        self._lock = threading.Lock()
        cells: list[Any] = [widgets.HTML(f"<b>{h}</b>") for h in self.HEADERS]
        for stage in stages:
            for member in stage.members:
                row = [widgets.Label(member.name), widgets.Label(stage.name), widgets.HTML()]
                row += [widgets.Label(""), widgets.Label("")]
                self.rows[member.name] = row
                self._state(member.name, "waiting")
                cells += row
        self.widget = widgets.GridBox(
            cells, layout=widgets.Layout(grid_template_columns="repeat(5, max-content)", grid_gap="2px 16px")
        )

    def _state(self, name: str, state: str) -> None:
        colour = RUN_COLOURS.get(state, "#000")
        self.rows[name][2].value = f'<span style="color:{colour};font-weight:bold">{esc(state)}</span>'

    def watch(self, run: commands.TargetRun) -> None:
        """A target changed state: its row now (its outcome once it ended)."""
        with self._lock:
            self.runs[run.name] = run
            live = run.state in LIVE
            self._state(run.name, run.state if live else run.outcome)
            gate = run.gate if run.state == "gated" else None
            self.rows[run.name][3].value = run.current or gate or ""
            self._elapsed(run)

    def _elapsed(self, run: commands.TargetRun) -> None:
        if run.duration_ms is not None and run.state not in LIVE:
            self.rows[run.name][4].value = f"{run.duration_ms / 1000:.1f} s"
        elif run.started is not None:
            self.rows[run.name][4].value = f"{time.monotonic() - run.started:.1f} s"

    def tick(self) -> None:
        """Redraw the elapsed time of the targets still going."""
        with self._lock:
            for run in self.runs.values():
                if run.state in LIVE:
                    self._elapsed(run)

    @contextmanager
    def ticking(self) -> Iterator[None]:
        """`tick` every `TICK_S` in a thread of its own while the block (a rollout) runs."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(self.TICK_S):
                self.tick()

        ticker = threading.Thread(target=loop, name="fleet-grid-ticker", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()


class WavePanel(Panel):
    """Applies `stages` (one wave or several) to their targets after a confirmation: the
    button names the waves and how many targets; Confirm runs `commands.fleet` with the
    live grid as its hook. `result` holds the last rollout's `RolloutResult`."""

    def __init__(self, stages: Sequence[commands.Stage], migrations: Path | str, options: RunOptions) -> None:
        # A panel has one target, shown in its errors: here the first of the waves.
        super().__init__(stages[0].members[0].target, migrations)
        self.stages = list(stages)
        self.options = options
        self.result: commands.RolloutResult | None = None
        names = ", ".join(s.name for s in self.stages)
        count = len(members(self.stages))
        self.apply_button = widgets.Button(
            description=f"Apply to wave {names} ({count} target(s))",
            button_style="primary",
            icon="forward",
            layout=widgets.Layout(width="auto"),
        )
        self.confirmation = Confirmation(self)
        self.grid = LiveGrid(self.stages)
        self.on_click(self.apply_button, self.request)
        self.widget = self.stack([self.apply_button], self.confirmation.box, self.grid.widget)

    def request(self) -> None:
        """The button: name what will happen and wait for Confirm."""
        targets = ", ".join(m.name for m in members(self.stages))
        waves = ", ".join(s.name for s in self.stages)
        self.confirmation.ask(
            f"Confirm: apply the pending migrations to wave {waves}: {targets}", self.perform
        )

    def perform(self) -> None:
        """Run the waves (what Confirm does): one rollout, its summary and failures logged."""
        log.info(self.log, f"applying to wave {', '.join(s.name for s in self.stages)}")
        with self.grid.ticking():
            self.result = commands.fleet(
                action="apply",
                stages=self.stages,
                project=self.migrations,
                options=self.options,
                watch=self.grid.watch,
            )
        for run in self.result.targets:
            if run.outcome != "done":
                log.error(self.log, f"{run.name}: {run.outcome}: {run.error or ''}")
        summary = self.result.summary_line() + f"; {self.result.summary()['applied']} migration(s) applied"
        (log.success if self.result.exit_code == 0 else log.warning)(self.log, summary)
