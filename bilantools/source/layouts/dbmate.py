"""The dbmate layout: one file ``<version>_<name>.sql`` holding two sections.

``-- migrate:up`` starts the SQL that migrates, ``-- migrate:down`` the SQL that rolls it
back; only the up section runs on apply, the down section is the rollback.
``-- migrate:up transaction:false`` (or on the down line) runs that section statement by
statement, outside a transaction, as ``-- transaction: off`` does in our own layout.

Each section becomes a `Script` of the real file in which every line outside the section
is blank, so the parser, check and a failing statement name the line of the real file.
A file without a ``-- migrate:up`` line is an error: guessing would run its down section
on apply, which is what destroys a schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from bilantools.source.files import (
    Entry,
    MigrationSet,
    Script,
    checksum,
    has_sql,
    normalise,
    read_script,
    version_too_long,
)
from bilantools.source.findings import Finding
from bilantools.source.headers import Headers
from bilantools.source.layouts.walk import finish, headers_of, named_files, new_set

NAME = "dbmate"
NAMING = "<version>_<name>.sql with '-- migrate:up' and '-- migrate:down' sections"
FILE_NAME = re.compile(r"^(?P<version>[0-9]+)_(?P<name>.+)\.sql\Z")
MARKER = re.compile(r"^--\s*migrate:(?P<direction>up|down)(?:\s+(?P<options>.*?))?\s*$")
_FIX = (
    "put '-- migrate:up' above the SQL that migrates and '-- migrate:down' above the SQL that rolls it back"
)


def claims(path: Path) -> bool:
    """Whether `path` is named like a dbmate migration and holds a ``-- migrate:`` line."""
    if not FILE_NAME.match(path.name):
        return False
    try:
        data = path.read_bytes()
        if b"migrate:" not in data:  # every file of other layouts: no decoding, no line split
            return False
        text = normalise(data)
    except (OSError, UnicodeDecodeError):
        return False  # discovery reports the file
    return any(MARKER.match(line) for line in text.split("\n"))


def score(files: list[Path]) -> int:
    """How many of `files` are dbmate migrations (by name and section markers)."""
    return sum(1 for p in files if claims(p))


class SectionError(ValueError):
    """A file whose sections cannot be told apart (message; hint)."""

    def __init__(self, line: int | None, message: str, hint: str = _FIX) -> None:
        super().__init__(message)
        self.line = line
        self.hint = hint


@dataclass(frozen=True)
class Section:
    first: int  # 0-based index of the marker line
    last: int  # index of the line after the section
    transactional: bool


def discover(directory: Path) -> MigrationSet:
    """The migrations of `directory`; problems become findings."""
    found = new_set(directory, NAME, NAMING)
    entries = []
    for path, match in named_files(found, FILE_NAME, NAMING):
        script = read_script(path, found.findings)
        if script is None:
            continue
        try:
            up, down = sections(script.text)
        except SectionError as exc:
            found.findings.append(
                Finding("sections", "error", str(path), exc.line, f"{path.name} {exc}", exc.hint)
            )
            continue
        forward = section_script(script, up)
        if not has_sql(forward.text):
            found.findings.append(
                Finding(
                    "sections",
                    "error",
                    str(path),
                    up.first + 1,
                    f"{path.name} has no SQL under '-- migrate:up'",
                    "write the migration's SQL under '-- migrate:up'",
                )
            )
            continue
        headers = headers_of(forward, found)
        rollback = section_script(script, down) if down is not None else None
        if rollback is not None and not has_sql(rollback.text):
            rollback = None
        rollback_headers = (headers_of(rollback, found) if rollback is not None else None) or Headers()
        if headers is None:
            continue
        too_long = version_too_long(path, match["version"])
        if too_long is not None:
            found.findings.append(too_long)
        entries.append(
            Entry(
                match["version"],
                match["name"],
                forward,
                replace(headers, transactional=headers.transactional and up.transactional),
                rollback,
                replace(
                    rollback_headers,
                    transactional=rollback_headers.transactional and bool(down and down.transactional),
                ),
                f"write the rollback SQL under '-- migrate:down' in {path.name}",
            )
        )
    return finish(found, entries)


def sections(text: str) -> tuple[Section, Section | None]:
    """The up section and the down section (None if the file has none) of a dbmate file."""
    lines = text.split("\n")
    markers: dict[str, list[tuple[int, str]]] = {"up": [], "down": []}
    for index, line in enumerate(lines):
        match = MARKER.match(line)
        if match:
            markers[match["direction"]].append((index, match["options"] or ""))
    if not markers["up"]:
        raise SectionError(
            None, "has no '-- migrate:up' line, so its migration cannot be told from its rollback"
        )
    for direction, found in markers.items():
        if len(found) > 1:
            raise SectionError(
                found[1][0] + 1,
                f"has a second '-- migrate:{direction}' line (the first is line {found[0][0] + 1})",
                f"keep one '-- migrate:{direction}' section",
            )
    (up_at, up_options), down = markers["up"][0], next(iter(markers["down"]), None)
    if down is not None and down[0] < up_at:
        raise SectionError(
            down[0] + 1,
            f"has '-- migrate:down' before '-- migrate:up' (line {up_at + 1})",
            "put the up section first, then the down section",
        )
    stray = next(
        (i for i in range(up_at) if lines[i].strip() and not lines[i].strip().startswith("--")), None
    )
    if stray is not None:
        raise SectionError(
            stray + 1,
            "has SQL before '-- migrate:up', which belongs to neither section",
            "move it under '-- migrate:up'",
        )
    up_end = down[0] if down is not None else len(lines)
    up = Section(up_at, up_end, _transactional(up_at, up_options, "up"))
    if down is None:
        return up, None
    return up, Section(down[0], len(lines), _transactional(down[0], down[1], "down"))


def _transactional(index: int, options: str, direction: str) -> bool:
    transactional = True
    for option in options.split():
        if option.lower() not in ("transaction:false", "transaction:true"):
            raise SectionError(
                index + 1,
                f"has '-- migrate:{direction} {options}': the option '{option}' is not understood",
                "write 'transaction:false' to run the section outside a transaction, or nothing",
            )
        transactional = option.lower() == "transaction:true"
    return transactional


def section_script(script: Script, section: Section) -> Script:
    """The script of one section: the file's lines up to the section's end, blank outside
    the section, so that each statement keeps its line number."""
    lines = script.text.split("\n")[: section.last]
    text = "\n".join(line if section.first < i else "" for i, line in enumerate(lines)) + "\n"
    return Script(script.path, text, checksum(text))
