"""What the layouts share when they read a directory: its ``*.sql`` entries, their names
checked against the layout's pattern, header directives turned into findings, and a
file's own outer ``BEGIN;`` ... ``COMMIT;`` taken out (golang-migrate and Flyway users
write one; see `unwrap_transaction`)."""

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
    checksum,
    misnamed,
    not_a_file,
    report_duplicates,
)
from bilantools.source.findings import Finding
from bilantools.source.headers import HeaderError, Headers, parse_headers

_BEGIN = re.compile(r"^(BEGIN|START\s+TRANSACTION)(\s+(WORK|TRANSACTION))?\Z", re.I)
_COMMIT = re.compile(r"^(COMMIT|END)(\s+(WORK|TRANSACTION))?\Z", re.I)
_MAYBE_BEGIN = re.compile(r"\b(BEGIN|START)\b", re.I)
# Any transaction control between the pair: the file is not one transaction, so it stays as
# written (and is refused).
_CONTROL = re.compile(r"^(BEGIN|COMMIT|END|ROLLBACK|ABORT|START|SAVEPOINT|RELEASE|PREPARE)\b", re.I)


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


def orphan_rollback(path: Path, problem: str, hint: str) -> Finding:
    """The finding for a rollback script without its migration (`problem`: what is missing)."""
    return Finding("orphan-rollback", "error", str(path), None, f"rollback {path.name} {problem}", hint)


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


def unwrap_transaction(script: Script) -> Script:
    """`script` without an outer ``BEGIN;`` ... ``COMMIT;`` pair (blanked: lines keep their
    numbers), or `script` itself when it has no such pair or cannot be parsed (check then
    reports the syntax error)."""
    from bilantools.source.statements import SqlSyntaxError, statement_slices

    if not _MAYBE_BEGIN.search(script.text):  # most files: no need to parse them here
        return script
    try:
        slices = statement_slices(script)
    except SqlSyntaxError:
        return script
    if len(slices) < 2:
        return script
    text = script.text
    (first_start, first_stop), (last_start, last_stop) = slices[0], slices[-1]
    if not (
        _BEGIN.match(" ".join(text[first_start:first_stop].split()))
        and _COMMIT.match(" ".join(text[last_start:last_stop].split()))
    ):
        return script
    if any(_CONTROL.match(text[start:stop].lstrip()) for start, stop in slices[1:-1]):
        return script
    for start, stop in ((last_start, last_stop), (first_start, first_stop)):
        end = stop + 1 if text[stop : stop + 1] == ";" else stop
        text = text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]
    return Script(script.path, text, checksum(text))
