"""`bilantools new`: the next migration's files, as each layout's own tool makes them.

Ours: ``NNN_slug.sql`` and ``NNN_slug_rollback.sql`` numbered after the highest version,
with the header comments our migrations start with. golang-migrate (``migrate create``):
empty ``<version>_<name>.up.sql`` / ``.down.sql``, a sequence or a timestamp as the
directory already uses. dbmate (``dbmate new``): one timestamped file with its
``-- migrate:up`` / ``-- migrate:down`` sections. Flyway: ``V<n>__<name>.sql`` and its
undo ``U<n>__<name>.sql``. Sqitch (``sqitch add``): deploy, revert and verify scripts from
Sqitch's PostgreSQL templates and the change's line appended to ``sqitch.plan``.

Nothing is ever overwritten: every path is checked before the first file is written.
"""

from __future__ import annotations

import getpass
import re
import socket
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from bilantools.errors import InputError, RefusedError
from bilantools.source.layouts import dbmate, flyway, golang_migrate, native
from bilantools.source.layouts.sqitch_plan import PLAN_FILE, parse_plan

TIMESTAMP = "%Y%m%d%H%M%S"  # dbmate's and golang-migrate's timestamp versions (UTC)
_TIMESTAMP_DIGITS = 14
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slug(name: str) -> str:
    """`name` as a file name part: lower case ASCII letters and digits joined by '_'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    made = _NOT_SLUG.sub("_", ascii_name.lower()).strip("_")
    if not made:
        raise InputError(
            f"cannot name a migration {name!r}: it has no letter or digit; "
            "give a name such as add_user_phone (bilantools new add_user_phone)"
        )
    return made


def new_migration(directory: Path, layout: str, name: str, now: datetime) -> list[Path]:
    """Create the next migration of `directory` in `layout`, named after `name`, and return
    the files written (and, for Sqitch, the plan it appended to). `now` is UTC."""
    made = slug(name)
    if layout == "sqitch":
        return _sqitch(directory, made, name, now)
    files = _files(directory, layout, made, name, now)
    _write(files)
    return list(files)


def _files(directory: Path, layout: str, made: str, name: str, now: datetime) -> dict[Path, str]:
    """The files of the next migration in `layout` and their text."""
    names = _names(directory)
    if layout == "golang-migrate":
        version = _next_number(_versions(names, golang_migrate.FILE_NAME), now, 6)
        return {directory / f"{version}_{made}.up.sql": "", directory / f"{version}_{made}.down.sql": ""}
    if layout == "dbmate":
        version = _next_number(_versions(names, dbmate.FILE_NAME), now, _TIMESTAMP_DIGITS, timestamps=True)
        return {directory / f"{version}_{made}.sql": "-- migrate:up\n\n\n-- migrate:down\n\n"}
    if layout == "flyway":
        majors = [int(re.split(r"[._]", v)[0]) for v in _versions(names, flyway.FILE_NAME) if v]
        version = str(max(majors, default=0) + 1)
        return {
            directory / f"V{version}__{made}.sql": f"-- {name}\n",
            directory / f"U{version}__{made}.sql": f"-- Undo of V{version}: {name}\n",
        }
    versions = _versions(names, native.FILE_NAME)
    number = max((int(v) for v in versions), default=0) + 1
    version = str(number).zfill(max([3, *(len(v) for v in versions)]))
    return {
        directory / f"{version}_{made}.sql": (
            f"-- Migration {version}: {name}\n--\n-- What it creates or changes, and why.\n"
            "--\n-- depends: \n\n"
        ),
        directory / f"{version}_{made}_rollback.sql": (
            f"-- Rollback of migration {version}: undoes, in reverse order, what it created.\n\n"
        ),
    }


def _names(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir()] if directory.is_dir() else []


def _versions(names: Iterable[str], pattern: re.Pattern[str]) -> list[str]:
    """The version of each name `pattern` matches (its ``version`` group)."""
    return [m["version"] or "" for m in map(pattern.match, names) if m]


def _next_number(versions: list[str], now: datetime, width: int, timestamps: bool = False) -> str:
    """After the highest of `versions`: the time `now` when the directory numbers by
    timestamps (or is empty and `timestamps`), else the next of its sequence; never at or
    below the highest."""
    highest = max((int(v) for v in versions), default=0)
    if timestamps or any(len(v) >= _TIMESTAMP_DIGITS for v in versions):
        return str(max(int(now.strftime(TIMESTAMP)), highest + 1))
    return str(highest + 1).zfill(max([width, *(len(v) for v in versions)]))


def _write(files: dict[Path, str]) -> None:
    """Write every file, or none when one of them exists already."""
    for path in files:
        if path.exists():
            raise RefusedError(f"{path} exists already: nothing was written; choose another name")
    next(iter(files)).parent.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        with path.open("x", encoding="utf-8") as out:
            out.write(text)


_SQITCH_TEMPLATES = {
    "deploy": "-- Deploy {project}:{change} to pg\n\nBEGIN;\n\n-- XXX Add DDLs here.\n\nCOMMIT;\n",
    "revert": "-- Revert {project}:{change} from pg\n\nBEGIN;\n\n-- XXX Add DDLs here.\n\nCOMMIT;\n",
    "verify": "-- Verify {project}:{change} on pg\n\nBEGIN;\n\n-- XXX Add verifications here.\n\nROLLBACK;\n",
}


def _sqitch(directory: Path, change: str, note: str, now: datetime) -> list[Path]:
    """`sqitch add`: the three scripts from Sqitch's templates, then the plan line."""
    plan_path = directory / PLAN_FILE
    if not plan_path.is_file():
        raise InputError(f"{directory} has no {PLAN_FILE}: create the Sqitch project first (sqitch init)")
    text = plan_path.read_text(encoding="utf-8")
    plan = parse_plan(plan_path, text)
    if change in plan.instances:
        raise RefusedError(
            f"{plan_path} has a change {change} already: nothing was written; choose another name "
            "(or rework it with sqitch rework)"
        )
    project = plan.project or directory.name
    files = {
        directory / folder / f"{change}.sql": template.format(project=project, change=change)
        for folder, template in _SQITCH_TEMPLATES.items()
    }
    for path in files:
        path.parent.mkdir(exist_ok=True)
    _write(files)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    line = f"{change} {stamp} {_planner()} # {' '.join(note.split())}\n"
    with plan_path.open("a", encoding="utf-8") as out:
        out.write(("" if text.endswith("\n") or not text else "\n") + line)
    return [*files, plan_path]


def _planner() -> str:
    """The planner of a plan line, "Name <email>": the operating-system user at this host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "bilantools"
    return f"{user} <{user}@{socket.gethostname()}>"
