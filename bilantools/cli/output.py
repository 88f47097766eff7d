"""How the commands print: tables, JSON, migration steps as they complete, and prompts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from bilantools import commands
from bilantools.commands import Progress, RunOptions, Status, Step, Target
from bilantools.errors import InputError, RefusedError
from bilantools.render.text import text_table

STATE_COLOURS = {
    "applied": "green",
    "pending": "yellow",
    "failed": "red",
    "changed": "magenta",
    "outdated": "cyan",
    "missing-file": "red",
}


def confirm(target: Target, what: str, options: RunOptions, question: str | None = None) -> None:
    """Ask before a change that needs it (see `commands.needs_confirmation`); refuse without
    a terminal. `question` replaces the generic "What target?" (apply and rollback name
    the count and the versions)."""
    if not commands.needs_confirmation(target=target, options=options):
        return
    refusal = f"refusing to {what} {target.masked} without confirmation: pass --yes"
    ask(question or f"{what.capitalize()} {target.masked}?", refusal, options.yes)


def ask(question: str, refusal: str, yes: bool) -> None:
    """`question` on a terminal unless `yes`; without a terminal, refuse with `refusal`."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise RefusedError(refusal)
    if not click.confirm(question, default=False, err=True):
        raise RefusedError("cancelled: nothing was changed")


def step_line(s: Step, width: int = 0) -> str:
    """One migration's outcome; `width` pads the version so that the lines of a layout
    whose versions differ in length (Sqitch's change names) stay in columns."""
    ms = f"{s.duration_ms} ms" if s.duration_ms is not None else ""
    detail = f"  {s.detail}" if s.detail else ""
    return f"{s.version:<{width}}  {s.name:<40} {s.outcome:<16} {ms}{detail}".rstrip()


class StepPrinter:
    """Prints each migration's line as it completes; a tqdm bar on stderr when it is a terminal."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.use_bar = not quiet and sys.stderr.isatty()
        self.bar: Any = None
        self.width = 0  # of the versions, once the project is read (see `step_line`)

    def __call__(self, progress: Progress) -> None:
        if self.quiet:
            return
        if self.use_bar and self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=progress.total, unit="migration", file=sys.stderr, leave=False)
        if progress.event == "start":
            if self.bar is not None:
                self.bar.set_description(progress.migration.label[:40])
            return
        if progress.wait is not None:  # on stderr, as the bar: stdout keeps the steps
            line = f"{progress.migration.label}: {progress.wait.line()}"
            self.bar.write(line, file=sys.stderr) if self.bar is not None else click.echo(line, err=True)
            return
        assert progress.step is not None
        line = step_line(progress.step, self.width)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.write(line, file=sys.stdout)
        else:
            click.echo(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def print_status(result: Status) -> None:
    rows = []
    for m in result.migrations:
        when = m.applied_at.strftime("%Y-%m-%d %H:%M:%S") if m.applied_at else ""
        state = m.state + (" (half-way)" if m.partial else "")
        rows.append(
            [
                m.version,
                m.name,
                click.style(state, fg=STATE_COLOURS[m.state]),
                when,
                "" if m.execution_time_ms is None else str(m.execution_time_ms),
                m.applied_by or "",
            ]
        )
    print_table(["VERSION", "NAME", "STATE", "APPLIED AT", "MS", "BY"], rows)
    for m in result.migrations:
        if m.state in ("failed", "pending") and m.error:
            click.echo(f"{m.version} {m.state}: {m.error}")
    for index in result.invalid_indexes:
        click.echo(index.one_line())
    click.echo(result.summary())


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Aligned columns; coloured cells are measured without their escapes."""
    click.echo(text_table(headers, rows, width=lambda cell: len(click.unstyle(cell))))


def emit(data: bytes, fmt: str, output: str | None, flag: str) -> None:
    """A drawing (text or image) written to `output`, else to stdout, never an image to a
    terminal; `flag` is the command's option for a file."""
    if output:
        try:
            Path(output).write_bytes(data)
        except OSError as exc:
            raise InputError(
                f"cannot write {output} ({exc.strerror}); pass {flag} FILE in a directory you can write to"
            ) from None
        click.echo(f"written: {output}", err=True)
    elif fmt in ("svg", "png") and sys.stdout.isatty():
        raise RefusedError(f"refusing to print a {fmt} image to the terminal: pass {flag} FILE")
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


def print_json(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, default=str))
