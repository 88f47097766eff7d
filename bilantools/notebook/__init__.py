"""Panels for the runbook notebooks: ipywidgets faces over `bilantools.commands`.

Each panel is a class with a `.widget` to display and its child widgets as attributes,
so that a test (or a runbook cell) can set values, click and read the log without a
browser. Panels never raise out of a callback: a `BilanToolsError` becomes one red line
in the panel's `log` (an `ipywidgets.Output`), and no widget ever shows a password.

Needs the ``notebooks`` extra (ipywidgets).
"""

from bilantools.notebook.apply import ApplyPanel
from bilantools.notebook.backups import BackupPanel
from bilantools.notebook.banner import TargetBanner
from bilantools.notebook.dashboard import Dashboard, dashboard
from bilantools.notebook.explorer import TableExplorer
from bilantools.notebook.log import log_text
from bilantools.notebook.rollback import RollbackPanel
from bilantools.notebook.status import MigrationTable
from bilantools.notebook.verify import VerifyPanel

__all__ = [
    "ApplyPanel",
    "BackupPanel",
    "Dashboard",
    "MigrationTable",
    "RollbackPanel",
    "TableExplorer",
    "TargetBanner",
    "VerifyPanel",
    "dashboard",
    "log_text",
]
