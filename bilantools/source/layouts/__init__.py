"""Layouts: how a directory names its migrations, read as other tools wrote them.

A layout has a name, a `score` (how many of the directory's ``*.sql`` files it
recognises as its own, for detection) and a `discover` that turns the directory into the
engine's `MigrationSet` of `Migration`s with forward and rollback `Script`s. The set
carries the layout's reading of a version: `key_of` (the identity compared with history
rows and ``--to``) and `order_of` (the sort key), so that the engine never reads a
version as a number itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bilantools.errors import InputError, option
from bilantools.source.files import MigrationSet
from bilantools.source.layouts import dbmate, flyway, golang_migrate, native, sqitch
from bilantools.source.layouts.walk import sql_files

LayoutName = Literal["bilantools", "golang-migrate", "dbmate", "flyway", "sqitch"]


@dataclass(frozen=True)
class Layout:
    name: LayoutName
    naming: str  # how its files are named, for messages
    score: Callable[[list[Path]], int]
    discover: Callable[[Path], MigrationSet]


LAYOUTS: dict[str, Layout] = {
    native.NAME: Layout("bilantools", native.NAMING, native.score, native.discover),
    golang_migrate.NAME: Layout(
        "golang-migrate", golang_migrate.NAMING, golang_migrate.score, golang_migrate.discover
    ),
    dbmate.NAME: Layout("dbmate", dbmate.NAMING, dbmate.score, dbmate.discover),
    flyway.NAME: Layout("flyway", flyway.NAMING, flyway.score, flyway.discover),
    sqitch.NAME: Layout("sqitch", sqitch.NAMING, sqitch.score, sqitch.discover),
}


def detect(directory: Path) -> LayoutName:
    """The one layout whose migrations `directory` holds.

    A sqitch.plan makes it a Sqitch project. InputError when two layouts both recognise
    files there, or when it holds ``*.sql``
    files and no layout recognises any (never "0 migrations"). A directory with no
    ``*.sql`` file (or no directory) is left to `discover`, which says so.
    """
    if not directory.is_dir():
        return "bilantools"
    files = [p for p in sql_files(directory) if p.is_file()]
    scores = {layout.name: layout.score(files) for layout in LAYOUTS.values()}
    if sqitch.claims(directory):
        scores["sqitch"] = 1  # its sqitch.plan makes it one, not files at the top
    matching = [name for name, count in scores.items() if count]
    if len(matching) == 1:
        return matching[0]
    if not matching:
        if not files:
            return "bilantools"
        namings = "; ".join(f"{layout.name}: {layout.naming}" for layout in LAYOUTS.values())
        raise InputError(
            f"{directory} holds {len(files)} .sql files but no migration of any known layout "
            f"({', '.join(LAYOUTS)}): name them as one layout does ({namings}) "
            f"or pass {option('layout', 'NAME')}"
        )
    found = " and ".join(f"{name} ({scores[name]} file(s))" for name in matching)
    choices = " or ".join(option("layout", name) for name in matching)
    raise InputError(f"{directory} holds migrations of more than one layout: {found}; pass {choices}")


def discover(directory: Path, layout: LayoutName) -> MigrationSet:
    """The migrations of `directory` read as `layout` names them.

    InputError when the directory holds ``*.sql`` files and none is a migration of this
    layout (every one misnamed): a status of "0 migrations" would hide them.
    """
    spec = LAYOUTS[layout]
    found = spec.discover(directory)
    if not found.migrations and found.findings and all(f.rule == "file-name" for f in found.findings):
        raise InputError(
            f"{directory} holds {len(found.findings)} .sql files but no {layout} migration: name them "
            f"{spec.naming} or pass the layout they follow "
            f"({option('layout', 'NAME')}; one of {', '.join(LAYOUTS)})"
        )
    return found
