"""A run of apply or rollback as the panels show it: a progress bar fed by the `progress`
hook of `commands.apply`/`commands.rollback`, one log line per migration, and `RunPanel`,
the base of the two panels that run them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from bilantools.commands import Progress, RunResult, Status, Step, TargetLike
from bilantools.errors import BilanToolsError
from bilantools.notebook import log
from bilantools.notebook.panel import Confirmation, Panel
from bilantools.notebook.status import MigrationTable


def step_line(step: Step) -> str:
    """One migration's outcome, as the CLI prints it."""
    parts = [f"{step.version} {step.name}: {step.outcome}"]
    if step.duration_ms is not None:
        parts.append(f"in {step.duration_ms} ms")
    if step.statements is not None:
        parts.append(f"({step.statements} statement{'s' if step.statements != 1 else ''})")
    line = " ".join(parts)
    return f"{line}: {step.detail}" if step.detail else line


def log_step(out: Any, step: Step) -> None:
    if step.outcome == "failed":
        log.error(out, step_line(step))
    elif step.outcome == "skipped":
        log.warning(out, step_line(step))
    else:
        log.info(out, step_line(step))


class RunProgress:
    """Drives an `IntProgress` and the log from the runner's progress events.

    Lines are written as each migration finishes (a long run shows where it is); steps
    the hook never reports (a dry run's "skipped") are logged from the result afterwards.
    """

    def __init__(self, out: Any) -> None:
        self.out = out
        self.bar = widgets.IntProgress(value=0, min=0, max=1, description="", bar_style="")
        self.logged = 0

    def start(self) -> None:
        self.logged = 0
        self.bar.value = 0
        self.bar.max = 1
        self.bar.bar_style = "info"
        self.bar.description = "running"

    def __call__(self, progress: Progress) -> None:
        self.bar.max = max(progress.total, 1)
        if progress.event == "start":
            self.bar.description = progress.migration.version
            return
        if progress.wait is not None:
            self.bar.description = "waiting"
            log.warning(self.out, f"{progress.migration.label}: {progress.wait.line()}")
            return
        self.bar.value = progress.index + 1
        if progress.step is not None:
            log_step(self.out, progress.step)
            self.logged += 1

    def finish(self, result: RunResult) -> None:
        for step in result.steps[self.logged :]:
            log_step(self.out, step)
        failed = any(s.outcome == "failed" for s in result.steps)
        if not result.steps:
            self.bar.max, self.bar.value = 1, 1
        self.bar.bar_style = "danger" if failed else "success"
        self.bar.description = "failed" if failed else "done"

    def fail(self) -> None:
        self.bar.bar_style = "danger"
        self.bar.description = "failed"


class RunPanel(Panel, ABC):
    """Base of the Apply and Rollback panels: the status table they may share, the
    progress bar, the confirmation, and the guarded run that drives them."""

    def __init__(
        self,
        target: TargetLike = None,
        migrations: Path | str = "migrations",
        table: MigrationTable | None = None,
        backup_dir: Path | str = "backups",
    ) -> None:
        super().__init__(target, migrations)
        self.backup_dir = Path(backup_dir)
        # The resolved target when there is one, so the shared table does not resolve again.
        wanted = self._target if self._target is not None else self._wanted
        self.table = table if table is not None else MigrationTable(wanted, migrations)
        self.runner = RunProgress(self.log)
        self.progress = self.runner.bar
        self.confirmation = Confirmation(self)
        self.confirm = self.confirmation.confirm
        self.cancel = self.confirmation.cancel
        self.confirm_box = self.confirmation.box
        self.widget = self._build()
        self.table.on_refresh(self._update_options)

    @abstractmethod
    def _build(self) -> widgets.VBox:
        """The panel's own controls, bound, and its layout (shared parts above are ready)."""

    @abstractmethod
    def _update_options(self, status: Status) -> None:
        """Refill the version dropdown from the table's `status` after each refresh."""

    def perform(self, run: Callable[[], RunResult]) -> RunResult:
        """`run` (a `commands` call fed `progress=self.runner`) with the bar and log driven;
        an error turns the bar red and rereads the table before it propagates."""
        self.runner.start()
        try:
            result = run()
        except BilanToolsError:
            self.runner.fail()
            self.table.refresh()
            raise
        self.runner.finish(result)
        if result.backup:
            log.info(self.log, f"backup taken before the first change: {result.backup}")
        return result
