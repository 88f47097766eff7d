"""Where the notebook acts, shown before anything else: the one thing a DBA must never
have to guess."""

from __future__ import annotations

from pathlib import Path

import ipywidgets as widgets

from bilantools import BilanToolsError
from bilantools.commands import TargetLike
from bilantools.notebook import log
from bilantools.notebook.panel import Panel
from bilantools.notebook.render import esc

SANDBOX_STYLE = "background:#e8f5e9;border:2px solid #2e7d32;color:#1b5e20"
DATABASE_STYLE = "background:#fff3e0;border:2px solid #e65100;color:#bf360c"
UNKNOWN_STYLE = "background:#ffebee;border:2px solid #c62828;color:#b71c1c"


class TargetBanner(Panel):
    """An HTML banner: masked target, coloured by kind (green sandbox, orange anything
    else, with a "PRODUCTION?" caution), the server version and the migrations directory."""

    def __init__(self, target: TargetLike = None, migrations: Path | str = "migrations") -> None:
        super().__init__(target, migrations)
        self.html = widgets.HTML()
        self.widget = self.html
        self.refresh()

    def refresh(self) -> None:
        """Reconnect and redraw (the server version is read live, which proves it is reachable)."""
        self.guard(self._refresh)

    def _refresh(self) -> None:
        try:
            target = self.target
        except BilanToolsError as exc:  # already in the log: Panel tried when it was built
            self._draw(UNKNOWN_STYLE, "⛔ NO TARGET", str(exc), "")
            return
        if target.is_sandbox:
            style, heading = SANDBOX_STYLE, "✅ sandbox"
            note = "local disposable server: changes run without confirmation"
        else:
            style, heading = DATABASE_STYLE, "⚠️ PRODUCTION? database"
            note = "not the sandbox: every change asks for confirmation and takes a backup first"
        try:
            with target.connect("bilantools notebook banner") as conn:
                row = conn.execute("SHOW server_version").fetchone()
            version = f"PostgreSQL {row[0] if row else '?'}"
        except BilanToolsError as exc:
            version = "unreachable"
            note = str(exc)
            style = UNKNOWN_STYLE
            log.error(self.log, str(exc))
        self._draw(style, heading, f"{target.masked} (from {target.source})", f"{version} · {note}")

    def _draw(self, style: str, heading: str, where: str, detail: str) -> None:
        self.html.value = (
            f'<div style="{style};padding:6px 10px;border-radius:4px;font-family:monospace">'
            f"<b>{esc(heading)}</b> <span>{esc(log.one_line(where))}</span><br>"
            f"<small>{esc(log.one_line(detail))} · migrations: {esc(self.migrations)}</small></div>"
        )
