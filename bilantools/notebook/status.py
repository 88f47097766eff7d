"""The migration status table: what is applied, pending, failed, edited or orphaned."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

import ipywidgets as widgets

from bilantools import commands
from bilantools.commands import MigrationStatus, State, Status, TargetLike
from bilantools.notebook import log
from bilantools.notebook.panel import Panel, button, dropdown, set_options
from bilantools.notebook.render import Cell, esc, table

STATE_COLOURS: dict[str, str] = {
    "applied": "#2e7d32",  # green
    "pending": "#757575",  # grey
    "failed": "#c62828",  # red
    "changed": "#c2185b",  # magenta
    "outdated": "#0277bd",  # blue: a repeatable migration that runs again
    "missing-file": "#c62828",  # red
}
HEADERS = ("version", "name", "state", "applied at", "ms", "by", "error")


def label(m: MigrationStatus) -> str:
    """How a migration is named in dropdowns: version, name and state."""
    return f"{m.version} {m.name} ({m.state})"


class MigrationTable(Panel):
    """`commands.status()` as a coloured HTML table, with a `refresh()`.

    Other panels share one table: after a change they call `refresh()`, and the
    callbacks registered with `on_refresh` rebuild their dropdowns from the new status,
    so every dropdown offers only versions the operation can take.
    """

    def __init__(self, target: TargetLike = None, migrations: Path | str = "migrations") -> None:
        super().__init__(target, migrations)
        self.status: Status | None = None
        self.html = widgets.HTML()
        self.refresh_button = button("Refresh", "read the status again", icon="refresh")
        self.versions = dropdown("Migration", "a migration's details")
        self.detail = widgets.HTML()
        self._listeners: list[Callable[[Status], None]] = []
        self.on_click(self.refresh_button, self.refresh)
        self.versions.observe(lambda _change: self.guard(self._show_detail), names="value")
        self.widget = self.stack([self.refresh_button, self.versions], self.html, self.detail)
        self.refresh()

    def on_refresh(self, callback: Callable[[Status], None]) -> None:
        """Call `callback(status)` after every refresh (and now, if a status is known)."""
        self._listeners.append(callback)
        if self.status is not None:
            callback(self.status)

    def refresh(self) -> Status | None:
        """Read the status again and redraw; None (and a red line) when it cannot be read."""
        if not self.guard(self._refresh):
            return None
        return self.status

    def options(self, states: Iterable[State]) -> list[tuple[str, str]]:
        """(label, version) of the migrations in `states`, in order: dropdown options."""
        wanted = set(states)
        return [
            (label(m), m.version)
            for m in (self.status.migrations if self.status else [])
            if m.state in wanted
        ]

    def _refresh(self) -> None:
        status = commands.status(target=self.target, project=self.migrations)
        self.status = status
        rows = []
        attrs = []
        for m in status.migrations:
            colour = STATE_COLOURS[m.state]
            state = m.state + (" (half-way)" if m.partial else "")
            error = m.error or ""
            rows.append(
                [
                    m.version,
                    m.name,
                    Cell(state, f"color:{colour};font-weight:bold"),
                    m.applied_at.strftime("%Y-%m-%d %H:%M:%S") if m.applied_at else "",
                    "" if m.execution_time_ms is None else m.execution_time_ms,
                    m.applied_by or "",
                    Cell(error if len(error) <= 160 else error[:157] + "...", f"color:{colour}", error),
                ]
            )
            attrs.append({"data-version": m.version, "data-state": m.state})
        tracking = "" if status.tracking else " · no tracking table yet"
        self.html.value = (
            f"<div><b>{esc(status.summary())}</b>{esc(tracking)} · {esc(status.target)}</div>"
            + table(HEADERS, rows, attrs, empty="no migrations")
        )
        previous = self.versions.value
        options = [(label(m), m.version) for m in status.migrations]
        kept = previous if previous in {v for _, v in options} else (options[0][1] if options else None)
        set_options(self.versions, options, kept)
        for callback in list(self._listeners):
            self.guard(partial(callback, status))

    def _show_detail(self) -> None:
        chosen = next(
            (m for m in (self.status.migrations if self.status else []) if m.version == self.versions.value),
            None,
        )
        if chosen is None:
            self.detail.value = ""
            return
        facts = [
            ("state", chosen.state + (" (half-way: part of it committed)" if chosen.partial else "")),
            ("file", Path(chosen.file).name if chosen.file else "(no file: applied from a file now missing)"),
            ("applied at", str(chosen.applied_at or "")),
            ("by", chosen.applied_by or ""),
            ("error", chosen.error or ""),
        ]
        colour = STATE_COLOURS[chosen.state]
        self.detail.value = (
            f'<div style="border-left:4px solid {colour};padding-left:6px">'
            + "".join(f"<div><b>{esc(k)}</b>: {esc(log.one_line(v))}</div>" for k, v in facts if v)
            + "</div>"
        )
