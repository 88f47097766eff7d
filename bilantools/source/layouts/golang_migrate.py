"""The golang-migrate layout: ``<version>_<title>.up.sql`` and ``<version>_<title>.down.sql``.

The version is an unsigned integer (a sequence or a 14-digit timestamp), ordered as a
number; the down file is the rollback. An empty down file (golang-migrate's way of saying
"irreversible") means no rollback: a warning, as for a missing one.

Files that manage their own transaction: golang-migrate does not wrap a file in one, so
its users often write ``BEGIN;`` ... ``COMMIT;`` around the whole file. When the file's
first statement is a plain ``BEGIN`` (or ``START TRANSACTION``) and its last a plain
``COMMIT`` (or ``END``), that outer pair is taken out and the rest runs in bilantools' own
transaction, with its tracking row: what the author asked for (all or nothing), and
history and schema commit together. The pair is blanked, not deleted, so every line
keeps its number. Any other transaction control (a second BEGIN, a COMMIT half-way, an
isolation level on the BEGIN) is left in place, and check and apply refuse the file
('transaction-control'): it never runs half inside a transaction.
"""

from __future__ import annotations

import re
from pathlib import Path

from bilantools.source.files import (
    Entry,
    MigrationSet,
    Script,
    has_sql,
    read_script,
    version_too_long,
)
from bilantools.source.headers import Headers
from bilantools.source.layouts.walk import (
    finish,
    headers_of,
    named_files,
    new_set,
    orphan_rollback,
    unwrap_transaction,
)

NAME = "golang-migrate"
NAMING = "<version>_<title>.up.sql / .down.sql"
FILE_NAME = re.compile(r"^(?P<version>[0-9]+)_(?P<title>.+)\.(?P<direction>up|down)\.sql\Z")


def score(files: list[Path]) -> int:
    """How many of `files` are named like golang-migrate migrations."""
    return sum(1 for p in files if FILE_NAME.match(p.name))


def discover(directory: Path) -> MigrationSet:
    """The migrations of `directory`; problems become findings."""
    found = new_set(directory, NAME, NAMING)
    ups: dict[tuple[int, str], tuple[str, Script, Headers]] = {}
    downs: dict[tuple[int, str], tuple[Path, Script | None, Headers]] = {}  # Script None: no SQL
    rejected: set[tuple[int, str]] = set()
    for path, match in named_files(found, FILE_NAME, NAMING):
        version, title, up = match["version"], match["title"], match["direction"] == "up"
        key = (int(version), title)
        script = read_script(path, found.findings, empty_ok=not up)
        headers = headers_of(script, found) if script is not None else None
        if script is None or headers is None:
            if up:
                rejected.add(key)
            continue
        body = unwrap_transaction(script) if headers.transactional else script
        if not up:
            downs[key] = (path, body if has_sql(script.text) else None, headers)
            continue
        too_long = version_too_long(path, version)
        if too_long is not None:
            found.findings.append(too_long)
        ups[key] = (version, body, headers)

    entries = []
    for (number, title), (version, script, headers) in ups.items():
        down_path, down, down_headers = downs.get((number, title), (None, None, Headers()))
        hint = (
            f"write its rollback SQL in {down_path.name}" if down_path else f"add {version}_{title}.down.sql"
        )
        entries.append(Entry(version, title, script, headers, down, down_headers, hint))
    for key in sorted(set(downs) - set(ups) - rejected):
        path = downs[key][0]
        problem = f"has no migration {path.name[: -len('.down.sql')]}.up.sql"
        found.findings.append(orphan_rollback(path, problem, "add the migration or remove it"))
    return finish(found, entries)
