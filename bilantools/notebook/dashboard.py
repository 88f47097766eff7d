"""All panels in one widget: the banner above tabs, sharing one status table."""

from __future__ import annotations

from pathlib import Path

import ipywidgets as widgets

from bilantools import commands
from bilantools.commands import TargetLike
from bilantools.errors import BilanToolsError
from bilantools.notebook.apply import ApplyPanel
from bilantools.notebook.backups import BackupPanel
from bilantools.notebook.banner import TargetBanner
from bilantools.notebook.explorer import TableExplorer
from bilantools.notebook.rollback import RollbackPanel
from bilantools.notebook.status import MigrationTable
from bilantools.notebook.verify import VerifyPanel

TITLES = ("Status", "Apply", "Rollback", "Backups", "Verify", "Tables")


class Dashboard:
    """The banner and a tab per panel, on one target.

    The target is resolved once and handed to every panel, so they all act on the same
    database (and the sandbox is started once). Apply and Rollback share the status
    table: a change in one tab refreshes the table, both dropdowns and the table list.
    """

    def __init__(
        self,
        target: TargetLike = None,
        migrations: Path | str = "migrations",
        backup_dir: Path | str = "backups",
    ) -> None:
        try:
            resolved: TargetLike = commands.resolve_target(target=target)
        except BilanToolsError:
            resolved = target  # each panel shows the error in its own log
        self.banner = TargetBanner(resolved, migrations)
        self.table = MigrationTable(resolved, migrations)
        self.apply = ApplyPanel(resolved, migrations, table=self.table, backup_dir=backup_dir)
        self.rollback = RollbackPanel(resolved, migrations, table=self.table, backup_dir=backup_dir)
        self.backups = BackupPanel(resolved, migrations, out=backup_dir)
        self.verify = VerifyPanel(resolved, migrations)
        self.explorer = TableExplorer(resolved, migrations)
        self.table.on_refresh(lambda _status: self.explorer.refresh())
        panels = [self.table, self.apply, self.rollback, self.backups, self.verify, self.explorer]
        self.tabs = widgets.Tab(children=[p.widget for p in panels], titles=list(TITLES))
        self.widget = widgets.VBox([self.banner.widget, self.tabs])


def dashboard(
    target: TargetLike = None, migrations: Path | str = "migrations", backup_dir: Path | str = "backups"
) -> widgets.VBox:
    """The whole runbook UI for `target` (None: DATABASE_URL, else the sandbox): display it."""
    return Dashboard(target, migrations, backup_dir).widget
