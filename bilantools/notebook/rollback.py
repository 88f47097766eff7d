"""Rolling back from a notebook: preview the exact scripts, then confirm, always."""

from __future__ import annotations

from pathlib import Path

import ipywidgets as widgets

from bilantools import commands
from bilantools.commands import RunResult, Status
from bilantools.notebook import log
from bilantools.notebook.panel import button, dropdown, set_options
from bilantools.notebook.render import esc
from bilantools.notebook.runs import RunPanel, step_line

EVERYTHING = "0"
PRE_STYLE = "background:#f5f5f5;padding:4px;margin:2px 0"


def rollback_file(migration_file: str) -> Path:
    """The rollback script beside a migration (the NNN_slug_rollback.sql convention)."""
    path = Path(migration_file)
    return path.with_name(f"{path.stem}_rollback.sql")


class RollbackPanel(RunPanel):
    """How far to go (a version that stays applied, or "0" for everything), "Preview SQL"
    and "Roll back".

    A rollback drops data, so it asks for confirmation on every target, the sandbox
    included. Both the preview and the confirmation come from a dry run
    (`commands.rollback(..., dry_run=True)`), which lists exactly the migrations the
    real run would take, and proves their scripts run, before anyone confirms.
    """

    def _build(self) -> widgets.VBox:
        self.to = dropdown("Keep up to", "the last migration that stays applied (0: roll back everything)")
        self.preview_button = button("Preview SQL", "show the rollback scripts that would run", icon="eye")
        self.rollback_button = button(
            "Roll back",
            "roll back after the chosen version (asks to confirm)",
            button_style="warning",
            icon="undo",
        )
        self.on_click(self.preview_button, self.preview)
        self.on_click(self.rollback_button, self.request)
        return self.stack(
            [self.to, self.preview_button, self.rollback_button],
            self.progress,
            self.confirm_box,
            self.table.html,
        )

    def _update_options(self, status: Status) -> None:
        applied = self.table.options(("applied", "changed"))
        options = [("0 (roll back everything)", EVERYTHING), *[(f"keep {lbl}", v) for lbl, v in applied]]
        previous = self.to.value
        # Keep the choice while it still rolls something back; else roll back the last one only.
        useful = [v for _, v in options[:-1]]
        default = applied[-2][1] if len(applied) >= 2 else EVERYTHING
        set_options(self.to, options, previous if previous in useful else default)

    def _dry_run(self) -> tuple[str, RunResult]:
        to = str(self.to.value or EVERYTHING)
        return to, commands.rollback(
            target=self.target, project=self.migrations, options=commands.RunOptions(to=to, dry_run=True)
        )

    def preview(self) -> None:
        """Show the rollback scripts that would run, newest first, as they would run."""
        to, result = self._dry_run()
        if not result.steps:
            log.info(self.log, f"nothing to roll back: nothing is applied after {to}")
            return
        files = {
            m.version: m.file for m in commands.status(target=self.target, project=self.migrations).migrations
        }
        log.info(
            self.log, f"preview: rollback to {to} on {self.target.masked} runs {len(result.steps)} script(s)"
        )
        for step in result.steps:
            source = files.get(step.version)
            if step.outcome == "failed":
                log.error(self.log, step_line(step))
            if source is None:
                log.error(self.log, f"{step.version} {step.name}: its migration file is missing")
                continue
            script = rollback_file(source)
            sql = script.read_text(encoding="utf-8", errors="replace")
            header = f"-- {script.name} ({step.outcome})"
            log.block(
                self.log,
                f"<div><b>{esc(header)}</b><pre style='{PRE_STYLE}'>{esc(sql)}</pre></div>",
                f"{header}\n{sql}",
            )

    def request(self) -> None:
        """First click: dry run, then ask to confirm the exact list (always, even on the sandbox)."""
        self.confirmation.disarm()
        to, result = self._dry_run()
        if not result.steps:
            log.info(self.log, f"nothing to roll back: nothing is applied after {to}")
            return
        failed = [s for s in result.steps if s.outcome == "failed"]
        if failed:
            log.error(self.log, f"the rollback would fail, nothing was changed: {step_line(failed[0])}")
            return
        versions = [s.version for s in result.steps]
        target = self.target
        seen = self._states()
        self.confirmation.ask(
            f"Confirm: roll back {len(versions)} migration(s) ({', '.join(versions)}) on {target.masked}",
            lambda: self._run(to, seen),
        )

    def _states(self) -> list[tuple[str, str]]:
        """What the rollback list depends on: each migration's state (cheap to compare)."""
        return [
            (m.version, m.state)
            for m in commands.status(target=self.target, project=self.migrations).migrations
        ]

    def _run(self, to: str, seen: list[tuple[str, str]]) -> None:
        target = self.target
        if self._states() != seen:
            log.error(
                self.log,
                "the database changed since confirmation was asked: nothing was rolled back; "
                "preview again and click Roll back again",
            )
            self.table.refresh()
            return
        log.info(self.log, f"rollback to {to} on {target.masked}")
        result = self.perform(
            lambda: commands.rollback(
                target=target,
                project=self.migrations,
                options=commands.RunOptions(to=to, backup_dir=self.backup_dir),
                progress=self.runner,
            )
        )
        log.success(self.log, f"rolled back {len(result.steps)} migration(s) on {target.masked}")
        self.table.refresh()
