"""A run of apply or rollback as the panels show it: a progress bar fed by the `progress`
hook of `commands.apply`/`commands.rollback`, and one log line per migration."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from bilantools.commands import Progress, RunResult, Step
from bilantools.notebook import log


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
