"""`bilantools fleet COMMAND`: one command over the databases of a fleet, wave by wave.

The targets come from the fleet file (``--fleet``, default fleet.toml beside the
project's pyproject.toml) filtered by ``--targets``, from ``--db`` given several times,
or from ``--from-query`` on one ``--db`` server. While it runs: a table redrawn in place
on a terminal, else one line per target as it starts and ends; then the final table and
a one-line summary (or, with --json, one object). Exit 0 all done, 1 some failed, 2
refused.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import click

from bilantools import commands
from bilantools.cli.flags import Context, json_option, option_group, pass_ctx, range_options, run_flags
from bilantools.cli.output import ask, print_json, print_table
from bilantools.commands import RolloutResult, RunOptions, Selection, Stage, TargetRun
from bilantools.errors import InputError, RunInterrupted
from bilantools.render.text import text_table

OUTCOME_COLOURS = {
    "done": "green",
    "running": "cyan",
    "failed": "red",
    "refused": "red",
    "stopped": "yellow",
    "skipped": "yellow",
    "not-started": "yellow",
}
QUESTIONS = {"apply": "apply migrations to", "rollback": "roll back migrations on"}

selection_options = option_group(
    click.option(
        "--fleet",
        "fleet_file",
        metavar="FILE",
        help="The fleet file (default: fleet.toml beside pyproject.toml).",
    ),
    click.option(
        "--targets",
        multiple=True,
        metavar="NAME|label:LABEL",
        help="Only these targets of the fleet file (repeatable).",
    ),
    click.option(
        "--db", "db", multiple=True, metavar="URL", help="A database of an ad-hoc fleet (repeatable)."
    ),
    click.option(
        "--from-query",
        metavar="SQL",
        help="The databases of the --db server that this query lists (first column: datname).",
    ),
    click.option(
        "--parallel", type=click.IntRange(min=1), metavar="N", help="Targets at once (default: the wave's)."
    ),
)


@click.group()
def fleet() -> None:
    """Run a command over many databases: a fleet file's waves, several --db, or --from-query."""


def _command(name: str, summary: str, *decorators: Callable[..., Any]) -> None:
    """Register `fleet NAME` with the selection flags and `decorators` (its own flags)."""

    def body(obj: Context, as_json: bool, options: RunOptions = commands.DEFAULTS, **selection: Any) -> None:
        _fleet(obj, name, options, as_json, selection)

    body.__doc__ = summary
    f: Callable[..., Any] = body
    for decorate in reversed(decorators):
        f = decorate(f)
    fleet.add_command(click.command(name)(selection_options(f)))


def _simple(f: Callable[..., Any]) -> Callable[..., Any]:
    return json_option(pass_ctx(f))


def _ranged(f: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(f)
    def with_range(*args: Any, to: str | None, step: int | None, **rest: Any) -> Any:
        return f(*args, options=RunOptions(to=to, step=step), **rest)

    return range_options(_simple(with_range))


def _out(f: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(f)
    def with_out(*args: Any, out: str, **rest: Any) -> Any:
        return f(*args, options=RunOptions(backup_dir=out), **rest)

    option = click.option("--out", default=commands.DEFAULT_BACKUP_DIR, show_default=True, metavar="DIR")
    return option(_simple(with_out))


_command("apply", "Apply pending migrations to every selected database.", run_flags(force=True))
_command("rollback", "Roll back migrations on every selected database.", run_flags(force=False))
_command("status", "Each selected database's migrations: applied, pending, failed.", _simple)
_command("plan", "The migrations apply would run on each selected database.", _ranged)
_command("verify", "Verify the objects of the applied migrations on each database.", _simple)
_command("drift", "Objects that differ from the migrations on each database.", _simple)
_command("validate", "Problems of the directory and of each database's history.", _simple)
_command("backup", "A full backup of each selected database (pg_dump).", _out)


def _fleet(obj: Context, action: str, options: RunOptions, as_json: bool, selection: dict[str, Any]) -> None:
    if obj.db is not None:  # `bilantools --db URL fleet ...`: one database, given where fleet cannot see it
        raise InputError(
            f"the --db before 'fleet' is not used by fleet commands: give the databases after the "
            f"command ('bilantools fleet {action} --db URL --db URL ...'), or use --fleet / --targets"
        )
    stages = commands.fleet_select(project=obj.project, selection=Selection(**selection))
    members = [m for stage in stages for m in stage.members]
    click.echo(f"fleet: {len(members)} target(s) in {len(stages)} wave(s)", err=True)
    for stage in stages:
        for m in stage.members:
            click.echo(f"  {stage.name}: {m.name}  {m.target.masked}", err=True)
    if action in QUESTIONS and not options.dry_run and not all(m.target.is_sandbox for m in members):
        refusal = (
            f"refusing to {QUESTIONS[action]} {len(members)} database(s) without confirmation: pass --yes"
        )
        ask(f"{QUESTIONS[action].capitalize()} {len(members)} database(s)?", refusal, options.yes)
    board = Board(stages, live=not as_json)
    rollout_id = str(uuid.uuid4())
    try:
        try:
            result = commands.fleet(
                action=action,
                stages=stages,
                project=obj.project,
                options=options,
                watch=board,
                rollout_id=rollout_id,
            )
        except KeyboardInterrupt:
            raise RunInterrupted(
                "interrupted (Ctrl-C): no target started after it, running ones stopped before their "
                f"next migration; run the same fleet {action} again to finish"
            ) from None
    except BaseException:  # stopped (Ctrl-C, SIGTERM) or refused: how far each target got
        board.close()
        if board.started:
            _show(RolloutResult(rollout_id, action, list(board.runs.values())), as_json)
        raise
    board.close()
    _show(result, as_json)
    sys.exit(result.exit_code)


def _show(result: RolloutResult, as_json: bool) -> None:
    if as_json:
        print_json(result.as_dict())
    else:
        print_result(result)


def print_result(result: RolloutResult) -> None:
    """The final table; status and plan also say what is still pending on each target."""
    pending = result.action in ("status", "plan")
    rows = [
        [
            t.name,
            t.wave,
            click.style(t.outcome, fg=OUTCOME_COLOURS[t.outcome]),
            str(t.applied),
            *([("?" if t.pending is None else str(t.pending))] if pending else []),
            str(t.failed),
            "" if t.duration_ms is None else str(t.duration_ms),
            t.error or "",
        ]
        for t in result.targets
    ]
    headers = [
        "TARGET",
        "WAVE",
        "OUTCOME",
        "APPLIED",
        *(["PENDING"] if pending else []),
        "FAILED",
        "MS",
        "ERROR",
    ]
    print_table(headers, rows)
    click.echo(result.summary_line())


class Board:
    """The live view: on a terminal a table redrawn in place (at most 10 times a second),
    else one line on stderr as each target starts and ends. Called under the rollout's lock."""

    def __init__(self, stages: list[Stage], live: bool) -> None:
        self.runs = {m.name: TargetRun(m.name, m.target.masked, s.name) for s in stages for m in s.members}
        self.live = live
        self.tty = live and sys.stderr.isatty()
        self.printed: dict[str, str] = {}
        self.started = False  # a target has started
        self.drawn = 0
        self.last = 0.0
        self._lock = threading.Lock()

    def __call__(self, run: TargetRun) -> None:
        with self._lock:
            self.started = True
            self.runs[run.name] = run
            if self.tty:
                if time.monotonic() - self.last >= 0.1 or run.state != "running":
                    self._draw()
            elif self.live and self.printed.get(run.name) != run.state:
                self.printed[run.name] = run.state
                counts = (
                    f"{run.applied} migration(s)"
                    if run.pending is None
                    else (f"{run.applied} applied, {run.pending} pending")
                )
                more = "" if run.state == "running" else f" ({counts}) {run.error or ''}"
                more = f": {run.gate}" if run.state == "gated" else more
                click.echo(f"{run.name}: {run.state}{more}".rstrip(), err=True)

    def _draw(self) -> None:
        now = time.monotonic()
        rows = [
            [
                r.name,
                r.wave,
                r.state,
                (r.gate or r.current or "")[:60],
                "" if r.started is None else f"{(r.duration_ms or (now - r.started) * 1000) / 1000:.1f}s",
                "" if r.lag_s is None else f"{r.lag_s:.1f}s",
            ]
            for r in self.runs.values()
        ]
        text = text_table(["TARGET", "WAVE", "STATE", "MIGRATION / GATE", "ELAPSED", "LAG"], rows)
        up = f"\x1b[{self.drawn}F\x1b[J" if self.drawn else ""
        click.echo(up + text, err=True)
        self.drawn = text.count("\n") + 1
        self.last = now

    def close(self) -> None:
        """Erase the live table: the final one follows."""
        with self._lock:
            if self.tty and self.drawn:
                click.echo(f"\x1b[{self.drawn}F\x1b[J", err=True, nl=False)
                self.drawn = 0
