"""`RunOptions`: the options of a run, checked once and passed whole.

Every face builds one (the CLI from its flags, a panel from its widgets, a runbook from
its parameters) and the front door reads it, so an option is added in one place. Values
are checked when the options are made: a bad one raises `InputError` naming the
parameter with `errors.option`, which each face spells its own way.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from bilantools.db.engine.limits import DEFAULT_LOCK_TIMEOUT
from bilantools.db.lock import DEFAULT_WAIT
from bilantools.errors import InputError, option
from bilantools.source.headers import DURATION_HINT, parse_duration

DEFAULT_BACKUP_DIR = "backups"


@dataclass(frozen=True)
class RunOptions:
    """How apply, rollback, baseline and repair run (the plans read `to` and `step`).

    to, step: the range (a version, or the next N migrations; not both). dry_run: run in
    a transaction that is rolled back. force: let forward references through (apply).
    lock_timeout, statement_timeout: PostgreSQL durations ("5s"; None keeps the server's
    setting). lock_wait: seconds to wait for another run's migration lock. backup: the
    automatic backup before the first change (None: for anything but the sandbox).
    backup_dir: where it goes. yes: the change is confirmed (faces skip their prompt).
    rollout_id: the fleet rollout the run is part of (a UUID, written in its events; set
    by `fleet.rollout.Rollout` for each target's run, None for a run of its own).
    """

    to: str | None = None
    step: int | None = None
    dry_run: bool = False
    force: bool = False
    lock_timeout: str | None = DEFAULT_LOCK_TIMEOUT
    statement_timeout: str | None = None
    lock_wait: float = DEFAULT_WAIT
    backup: bool | None = None
    backup_dir: Path | str = DEFAULT_BACKUP_DIR
    yes: bool = False
    rollout_id: str | None = None

    def __post_init__(self) -> None:
        if self.to is not None and not isinstance(self.to, str):
            raise InputError(f"{option('to', self.to)}: pass the version as text, e.g. '017'")
        if self.step is not None and (isinstance(self.step, bool) or not isinstance(self.step, int)):
            raise InputError(f"{option('step', self.step)}: pass a whole number of migrations")
        if self.step is not None and self.step < 1:
            raise InputError(f"{option('step', self.step)}: pass a number of migrations of 1 or more")
        for name in ("lock_timeout", "statement_timeout"):
            value = getattr(self, name)
            if value is not None and parse_duration(str(value)) is None:
                raise InputError(f"{option(name, value)} is not a duration; {DURATION_HINT}")
        wait = self.lock_wait
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not wait >= 0:
            raise InputError(f"{option('lock_wait', wait)}: pass a number of seconds of 0 or more")
        for name in ("dry_run", "force", "yes"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{option(name, getattr(self, name))}: pass True or False")
        if self.backup not in (None, True, False):
            raise InputError(f"{option('backup', self.backup)}: pass None (automatic), True or False")
        if self.rollout_id is not None:
            # as PostgreSQL prints it, so the id a rollout reports is the text of its events
            object.__setattr__(self, "rollout_id", _uuid(self.rollout_id))

    def but(self, **changes: Any) -> RunOptions:
        """A copy with `changes` (checked again), e.g. ``options.but(step=1)``."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise InputError(f"no run option named {', '.join(unknown)}; the options are {_names()}")
        return replace(self, **changes)


def _uuid(value: object) -> str:
    """`value` (text, or a uuid.UUID) as a UUID's canonical text; InputError when it is not one."""
    try:
        if isinstance(value, str | uuid.UUID):
            return str(uuid.UUID(str(value)))
    except ValueError:
        pass
    raise InputError(
        f"{option('rollout_id', value)} is not a UUID; pass the rollout's id as 'bilantools fleet apply "
        "--json' prints it (e.g. 123e4567-e89b-12d3-a456-426614174000), or None"
    )


def _names() -> str:
    return ", ".join(f.name for f in fields(RunOptions))
