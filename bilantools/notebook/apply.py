"""Applying migrations from a notebook, one at a time or up to a chosen version."""

from __future__ import annotations

import ipywidgets as widgets

from bilantools import commands
from bilantools.commands import RunOptions, Status
from bilantools.notebook import log
from bilantools.notebook.panel import FULL_LABEL, button, dropdown, set_options
from bilantools.notebook.runs import RunPanel
from bilantools.render.text import version_span


class ApplyPanel(RunPanel):
    """Buttons "Apply next" and "Apply up to", a --dry-run checkbox, a progress bar and the log.

    On anything but the sandbox the first click only plans: it shows "Confirm: apply N
    migration(s) to <target>", and the confirm button runs exactly that plan (refused if
    the plan changed in between, e.g. a colleague applied something). A dry run never
    asks, as on the command line. `commands.apply` takes the automatic backup itself.
    """

    def _build(self) -> widgets.VBox:
        self.next_button = button(
            "Apply next", "apply the next pending migration", button_style="primary", icon="step-forward"
        )
        self.to_button = button(
            "Apply up to",
            "apply every pending migration up to the one chosen in 'Up to'",
            button_style="primary",
            icon="forward",
        )
        self.selected = dropdown("Up to", "the last migration 'Apply up to' applies")
        self.dry_run = widgets.Checkbox(
            value=False,
            description="--dry-run",
            tooltip="rehearse: run in one transaction, then roll everything back",
            style=FULL_LABEL,
            indent=False,
        )
        self.on_click(self.next_button, lambda: self.request(step=1))
        self.on_click(self.to_button, self._request_selected)
        return self.stack(
            [self.next_button, self.selected, self.to_button],
            self.dry_run,
            self.progress,
            self.confirm_box,
            self.table.html,
        )

    def _update_options(self, status: Status) -> None:
        previous = self.selected.value
        options = self.table.options(("pending", "failed"))
        versions = [v for _, v in options]
        set_options(
            self.selected, options, previous if previous in versions else (versions[-1] if versions else None)
        )

    def _request_selected(self) -> None:
        if self.selected.value is None:
            log.info(self.log, "nothing to apply: no migration is pending")
            return
        self.request(to=str(self.selected.value))

    def request(self, to: str | None = None, step: int | None = None) -> None:
        """What a click does: run now (sandbox, dry run) or ask for confirmation first."""
        self.confirmation.disarm()
        options = RunOptions(to=to, step=step, dry_run=bool(self.dry_run.value), backup_dir=self.backup_dir)
        target = self.target
        if not commands.needs_confirmation(target=target, options=options):
            self._run(options, None)
            return
        planned = [m.version for m in commands.plan(target=target, project=self.migrations, options=options)]
        if not planned:
            log.info(self.log, "nothing to apply: every migration is applied")
            return
        self.confirmation.ask(
            f"Confirm: apply {len(planned)} migration(s) ({version_span(planned)}) to {target.masked}",
            lambda: self._run(options, planned),
        )

    def _run(self, options: RunOptions, planned: list[str] | None) -> None:
        target = self.target
        if planned is not None:
            now = [m.version for m in commands.plan(target=target, project=self.migrations, options=options)]
            if now != planned:
                log.error(
                    self.log,
                    f"the plan changed since confirmation was asked ({', '.join(planned) or 'nothing'} "
                    f"-> {', '.join(now) or 'nothing'}): nothing was applied; click again for the new plan",
                )
                self.table.refresh()
                return
        dry_run = options.dry_run
        what = f"up to {options.to}" if options.to is not None else f"next {options.step}"
        log.info(self.log, f"{'dry run: ' if dry_run else ''}apply {what} on {target.masked}")
        result = self.perform(
            lambda: commands.apply(
                target=target, project=self.migrations, options=options, progress=self.runner
            )
        )
        done = [s for s in result.steps if s.outcome in ("applied", "would apply")]
        if dry_run:
            failed = [s for s in result.steps if s.outcome == "failed"]
            summary = f"dry run: {len(done)} migration(s) would apply; everything was rolled back"
            (log.warning if failed else log.success)(self.log, summary)
        elif not result.steps:
            log.info(self.log, "nothing to apply: every migration is applied")
        else:
            log.success(self.log, f"applied {len(done)} migration(s) to {target.masked}")
        self.table.refresh()
