"""What every panel shares: the target, the migrations directory, the log and the guard
that turns errors into red log lines instead of exceptions escaping a callback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from bilantools import commands
from bilantools.commands import Target, TargetLike
from bilantools.errors import BilanToolsError
from bilantools.notebook import log


class Panel:
    """Base of the panels: resolves the target once and guards every callback.

    The target is resolved when the panel is built (so that the panel shows where it
    acts before anyone clicks) and again on the next action if that failed, e.g. while
    the sandbox was still starting.
    """

    widget: Any  # the container to display; set by each panel

    def __init__(self, target: TargetLike, migrations: Path | str) -> None:
        self._wanted = target
        self._target: Target | None = None
        self.migrations = Path(migrations)
        self.log = widgets.Output(layout=widgets.Layout(max_height="320px", overflow="auto"))
        self.guard(self.resolve)

    @property
    def target(self) -> Target:
        """The resolved target; raises the `BilanToolsError` that prevents resolving it."""
        return self.resolve()

    def resolve(self) -> Target:
        if self._target is None:
            self._target = commands.resolve_target(target=self._wanted)
        return self._target

    @property
    def masked(self) -> str:
        """The target as shown everywhere: password masked (or a placeholder when unresolved)."""
        try:
            return self.target.masked
        except BilanToolsError:
            return "(target not resolved)"

    def guard(self, action: Callable[[], object]) -> bool:
        """Run `action`; an error becomes one red line in the log. True when it succeeded.

        Unexpected exceptions are caught too: a traceback from a callback lands nowhere
        useful in a notebook (and could quote a connection string); the red line names it.
        """
        try:
            action()
        except BilanToolsError as exc:
            log.error(self.log, str(exc))
            return False
        except Exception as exc:
            log.error(self.log, f"unexpected {type(exc).__name__}: {exc}")
            return False
        return True

    def on_click(self, button: Any, action: Callable[[], object]) -> None:
        """Bind `action` to `button`, guarded."""
        button.on_click(lambda _button: self.guard(action))

    def stack(self, controls: list[Any], *body: Any) -> widgets.VBox:
        """Every panel's layout: its row of controls on top, what it shows below, the log last."""
        return widgets.VBox([widgets.HBox(controls), *body, self.log])


# Labels shown in full: a description's width is its text's, not ipywidgets' fixed 80 px
# ("Apply to select...", "--dry-run (roll back at the e..." otherwise).
FULL_LABEL = {"description_width": "initial"}


def button(description: str, tooltip: str, **kwargs: Any) -> widgets.Button:
    """A button as wide as its label (ipywidgets' default 148 px cuts longer ones), with
    the tooltip that says what it does."""
    return widgets.Button(
        description=description, tooltip=tooltip, layout=widgets.Layout(width="auto"), **kwargs
    )


def dropdown(description: str, tooltip: str) -> widgets.Dropdown:
    """A version dropdown whose label is shown in full."""
    return widgets.Dropdown(
        description=description,
        tooltip=tooltip,
        options=[],
        style=FULL_LABEL,
        layout=widgets.Layout(width="50%"),
    )


def set_options(choice: Any, options: list[tuple[str, str]], value: str | None) -> None:
    """New options and the value to keep, sent to the browser as ONE update: set one after
    the other, the front end first gets ipywidgets' reset to the first option, and the
    dropdown then shows (and may send back) that option instead of the user's choice."""
    with choice.hold_sync():
        choice.options = options
        choice.value = value


def hidden(box: Any, hide: bool) -> None:
    """Show or hide a widget without removing it from the layout tree."""
    box.layout.display = "none" if hide else None


class Confirmation:
    """A two-step guard for changes: the first click arms it and names what will happen;
    only the confirm button runs it. Cancel (or a new request) disarms it."""

    def __init__(self, panel: Panel) -> None:
        self.panel = panel
        self.confirm = widgets.Button(
            description="Confirm",
            button_style="danger",
            icon="exclamation-triangle",
            layout=widgets.Layout(width="auto"),
        )
        self.cancel = widgets.Button(description="Cancel", layout=widgets.Layout(width="auto"))
        self.box = widgets.HBox([self.confirm, self.cancel])
        self._action: Callable[[], object] | None = None
        hidden(self.box, True)
        self.confirm.on_click(lambda _button: self._run())
        self.cancel.on_click(lambda _button: self._cancel())

    @property
    def armed(self) -> bool:
        return self._action is not None

    def ask(self, question: str, action: Callable[[], object]) -> None:
        """Arm: show `question` on the confirm button; `action` runs on confirmation."""
        self._action = action
        self.confirm.description = question
        self.confirm.tooltip = question
        hidden(self.box, False)
        log.warning(self.panel.log, f"waiting for confirmation: {question}")

    def disarm(self) -> None:
        self._action = None
        self.confirm.description = "Confirm"
        self.confirm.tooltip = ""
        hidden(self.box, True)

    def _run(self) -> None:
        action = self._action
        self.disarm()
        if action is not None:
            self.panel.guard(action)

    def _cancel(self) -> None:
        if self.armed:
            self.disarm()
            log.info(self.panel.log, "cancelled: nothing was changed")
