"""bilantools' own layout: ``NNN_slug.sql`` and ``NNN_slug_rollback.sql``.

Versions are integers ('1' and '001' are one version), the sets' default reading.
"""

from __future__ import annotations

import re
from pathlib import Path

from bilantools.errors import InputError, option
from bilantools.source.files import (
    Entry,
    MigrationSet,
    Script,
    assemble,
    misnamed,
    not_a_file,
    read_script,
    report_duplicates,
    version_too_long,
)
from bilantools.source.findings import Finding
from bilantools.source.headers import HeaderError, Headers, parse_headers
from bilantools.source.layouts import dbmate

NAME = "bilantools"
NAMING = "NNN_slug.sql (rollback NNN_slug_rollback.sql)"
# ASCII digits only (\d would take "١٢" or "１２", which int() reads but nobody can type back),
# and \Z, not $, which would accept a name ending in a newline.
FILE_NAME = re.compile(
    r"^(?P<version>[0-9]+)_(?P<slug>[A-Za-z0-9][A-Za-z0-9_-]*?)(?P<rollback>_rollback)?\.sql\Z"
)
NAME_HINT = "name migrations NNN_slug.sql and their rollbacks NNN_slug_rollback.sql"


def score(files: list[Path]) -> int:
    """How many of `files` are named ``NNN_slug[_rollback].sql`` and are not dbmate files
    (whose names have the same shape: their ``-- migrate:`` lines tell them apart)."""
    return sum(1 for p in files if FILE_NAME.match(p.name) and not dbmate.claims(p))


def discover(directory: Path | str) -> MigrationSet:
    """Read every ``*.sql`` file of `directory`; problems become findings."""
    directory = Path(directory)
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise InputError(
            f"migrations directory {directory} {what}; pass {option('project', 'DIR')} (default ./migrations)"
        )
    found = MigrationSet(directory)
    mains: dict[int, list[tuple[str, str, Script, int]]] = {}
    rollbacks: dict[tuple[int, str], tuple[str, str, Script]] = {}
    rollback_headers: dict[tuple[int, str], Headers] = {}
    rejected: set[tuple[int, str]] = set()  # migrations with their own finding (unreadable, header)
    headers_of: dict[int, Headers] = {}

    # *.sql in any case: a 001_x.SQL made on a case-insensitive file system would otherwise
    # be skipped without a word on Linux, and its migration never applied.
    for path in sorted(p for p in directory.iterdir() if p.name.lower().endswith(".sql")):
        match = FILE_NAME.match(path.name)
        if path.name.startswith(".") and not path.is_file():
            continue  # an editor's lock link (Emacs: .#001_x.sql -> user@host), not a migration
        if not path.is_file():
            # A directory, a dangling link or a link loop named like a migration would be
            # skipped silently and the migration never applied: say so instead.
            found.findings.append(not_a_file(path, directory))
            if match and not match["rollback"]:
                rejected.add((int(match["version"]), match["slug"]))
            continue
        if not match:
            found.findings.append(misnamed(path, "NNN_slug.sql", f"rename it ({NAME_HINT})"))
            continue
        version, slug = match["version"], match["slug"]
        script = read_script(path, found.findings)
        if script is None:
            if not match["rollback"]:
                rejected.add((int(version), slug))
            continue
        try:
            headers = parse_headers(script.text)
        except HeaderError as exc:
            message, _, hint = str(exc).rpartition("; ")  # hints hold no "; ", values may
            found.findings.append(Finding("header", "error", str(path), exc.line, message, hint))
            if not match["rollback"]:
                rejected.add((int(version), slug))
            continue
        if match["rollback"]:
            rollbacks[(int(version), slug)] = (version, slug, script)
            rollback_headers[(int(version), slug)] = headers
            continue
        too_long = version_too_long(path, version)
        if too_long is not None:
            found.findings.append(too_long)
        mains.setdefault(int(version), []).append((version, slug, script, 0))
        headers_of[int(version)] = headers

    if not mains and not found.findings:
        raise InputError(
            f"no migrations in {directory}: it has no NNN_slug.sql file; "
            f"add migrations or pass {option('project', 'DIR')}"
        )

    entries = []
    for number, candidates in mains.items():
        for version, slug, script, _ in candidates:
            rollback = rollbacks.get((number, slug))
            entries.append(
                Entry(
                    version,
                    slug,
                    script,
                    headers_of[number],
                    rollback[2] if rollback else None,
                    rollback_headers.get((number, slug), Headers()),
                    f"add {version}_{slug}_rollback.sql",
                )
            )
    report_duplicates(found, entries)
    for (number, slug), (version, _, script) in sorted(rollbacks.items()):
        owners = mains.get(number, [])
        if any(entry[1] == slug for entry in owners) or (number, slug) in rejected:
            continue
        if not owners:
            problem = f"has no migration {version}_{slug}.sql"
            hint = "add the migration or remove it"
        else:
            owner = owners[0]
            problem = f"does not match migration {owner[2].path.name}"
            hint = f"rename it {owner[0]}_{owner[1]}_rollback.sql"
        found.findings.append(
            Finding(
                "orphan-rollback",
                "error",
                str(script.path),
                None,
                f"rollback {script.path.name} {problem}",
                hint,
            )
        )

    assemble(found, entries)
    return found
