"""What the layouts share when they read a directory: its ``*.sql`` entries, their names
checked against the layout's pattern, and header directives turned into findings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from bilantools.errors import InputError, option
from bilantools.source.files import (
    Entry,
    MigrationSet,
    Script,
    assemble,
    misnamed,
    not_a_file,
    report_duplicates,
)
from bilantools.source.findings import Finding
from bilantools.source.headers import HeaderError, Headers, parse_headers


def new_set(directory: Path, layout: str, naming: str) -> MigrationSet:
    """The empty set of `directory` read as `layout`; InputError when there is no such
    directory or it holds no ``*.sql`` file."""
    require_directory(directory)
    if not sql_files(directory):
        raise no_migrations(directory, naming)
    return MigrationSet(directory, layout=layout)


def finish(found: MigrationSet, entries: list[Entry]) -> MigrationSet:
    """`found` with its migrations in order (duplicate versions become findings)."""
    report_duplicates(found, entries)
    assemble(found, entries)
    return found


def require_directory(directory: Path) -> None:
    """InputError unless `directory` is a directory (the message every layout gives)."""
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise InputError(
            f"migrations directory {directory} {what}; pass {option('project', 'DIR')} (default ./migrations)"
        )


def sql_files(directory: Path) -> list[Path]:
    """The ``*.sql`` entries of `directory` (any case), sorted, without editors' lock links."""
    return sorted(
        p
        for p in directory.iterdir()
        if p.name.lower().endswith(".sql") and not (p.name.startswith(".") and not p.is_file())
    )


def named_files(
    found: MigrationSet, pattern: re.Pattern[str], naming: str
) -> Iterator[tuple[Path, re.Match[str]]]:
    """Each regular ``*.sql`` file of the set's directory whose name matches `pattern`;
    every other entry becomes an error finding (never skipped without a word)."""
    directory = found.directory
    for path in sql_files(directory):
        if not path.is_file():
            found.findings.append(not_a_file(path, directory))
            continue
        match = pattern.match(path.name)
        if match is None:
            found.findings.append(misnamed(path, naming))
            continue
        yield path, match


def headers_of(script: Script, found: MigrationSet) -> Headers | None:
    """The script's header directives, or None after adding the finding for a bad one."""
    try:
        return parse_headers(script.text)
    except HeaderError as exc:
        message, _, hint = str(exc).rpartition("; ")  # hints hold no "; ", values may
        found.findings.append(Finding("header", "error", str(script.path), exc.line, message, hint))
        return None


def no_migrations(directory: Path, naming: str) -> InputError:
    """The error for a directory with no ``*.sql`` file at all."""
    return InputError(
        f"no migrations in {directory}: it has no {naming} file; "
        f"add migrations or pass {option('project', 'DIR')}"
    )
