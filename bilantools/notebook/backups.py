"""Taking and proving backups from a notebook (the guide's "always backup before migration")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as widgets

from bilantools import commands
from bilantools.commands import TargetLike
from bilantools.notebook import log
from bilantools.notebook.panel import FULL_LABEL, Panel, button
from bilantools.render.text import short_bytes as size

FORMATS = ("custom", "plain", "directory")


def describe(meta: dict[str, Any], name: str) -> str:
    """One backup in the list: name, kind, size, when, migration version, verification."""
    verified = meta.get("verified")
    if isinstance(verified, dict):
        proof = "verified OK" if verified.get("ok") else "verification FAILED"
    else:
        proof = "not verified"
    return (
        f"{name} · {meta.get('kind', '?')} · {size(int(meta.get('bytes', 0)))} · "
        f"{meta.get('created_at', '?')} · version {meta.get('migration_version') or '-'} · {proof}"
    )


class BackupPanel(Panel):
    """Back up (schema only or full, in a format, into a directory), list the backups of
    that directory and verify one by restoring it into a scratch sandbox database."""

    def __init__(
        self,
        target: TargetLike = None,
        migrations: Path | str = "migrations",
        out: Path | str = "backups",
    ) -> None:
        super().__init__(target, migrations)
        self.schema_only = widgets.Checkbox(
            value=False, description="schema only", style=FULL_LABEL, indent=False
        )
        self.format = widgets.Dropdown(
            description="Format", options=list(FORMATS), value="custom", style=FULL_LABEL
        )
        self.out = widgets.Text(
            value=str(out), description="Directory", continuous_update=False, style=FULL_LABEL
        )
        self.backup_button = button(
            "Back up", "take a backup now (pg_dump)", button_style="primary", icon="save"
        )
        self.backups = widgets.Select(options=[], rows=6, layout=widgets.Layout(width="95%"))
        self.refresh_button = button(
            "Refresh list", "list the backups of the directory again", icon="refresh"
        )
        self.verify_button = button(
            "Verify selected", "restore the selected backup into a scratch database", icon="check"
        )
        self.on_click(self.backup_button, self.backup)
        self.on_click(self.refresh_button, self.refresh)
        self.on_click(self.verify_button, self.verify)
        self.out.observe(lambda _change: self.guard(self.refresh), names="value")
        self.widget = self.stack(
            [self.schema_only, self.format, self.out, self.backup_button],
            self.backups,
            widgets.HBox([self.refresh_button, self.verify_button]),
        )
        self.guard(self.refresh)

    def refresh(self, select: str | None = None) -> None:
        """Reread the directory's backups (newest first), keeping or setting the selection."""
        previous = select or self.backups.value
        options = [
            (describe(b.meta, b.file.name), str(b.file)) for b in commands.backup_list(out=self.out.value)
        ]
        self.backups.options = options
        values = [v for _, v in options]
        self.backups.value = previous if previous in values else (values[0] if values else None)

    def backup(self) -> None:
        log.info(self.log, f"backing up {self.target.masked} into {self.out.value} ...")
        taken = commands.backup(
            target=self.target,
            out=self.out.value,
            schema_only=bool(self.schema_only.value),
            fmt=str(self.format.value),
        )
        log.success(
            self.log,
            f"backup written: {taken.file} ({size(taken.bytes)}, sha256 {taken.sha256[:16]}..., "
            f"{taken.meta.get('kind')}, migration version {taken.meta.get('migration_version') or '-'})",
        )
        self.refresh(select=str(taken.file))

    def verify(self) -> None:
        chosen = self.backups.value
        if not chosen:
            log.info(self.log, "no backup selected: take one, or choose a directory that has some")
            return
        log.info(self.log, f"verifying {Path(chosen).name}: restoring into a scratch sandbox database ...")
        result = commands.backup_verify(file=chosen)
        if result.ok:
            log.success(self.log, f"OK: {result.file.name} restores and matches its sidecar")
        else:
            for difference in result.differences:
                log.error(self.log, difference)
        for missing in result.missing:
            log.warning(self.log, f"the restore lacked {missing} (create it where you restore)")
        self.refresh(select=str(chosen))
