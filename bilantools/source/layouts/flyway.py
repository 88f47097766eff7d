"""The Flyway layout: ``V<version>__<description>.sql``, its undo ``U<version>__...sql`` and
repeatable ``R__<description>.sql`` scripts, with ``<script>.sql.conf`` settings and
``${name}`` placeholders.

Versions have parts separated by ``.`` or ``_`` and are ordered part by part (1.10 after
1.9). A version's key, which is also what the tracking table stores, is its dotted form
without leading zeros or trailing ``.0`` parts: ``1_1``, ``1.1`` and ``1.01`` are one
version, "1.1", as in Flyway. An undo script is the rollback of the version it names.

Repeatable scripts come after every versioned one, in description order, and are tracked
as the version ``R__<description>``; the engine runs one again whenever its checksum
differs from the last recorded one (state "outdated") and never rolls one back.

A script's ``.sql.conf`` may set ``executeInTransaction=false`` (run it statement by
statement, as ``-- transaction: off``); any other key is an error. ``${name}`` takes its
value from ``[tool.bilantools] placeholders``; ``${flyway:filename}`` is the script's file
name unless set there; every other placeholder without a value is an error (Flyway's
``${flyway:user}``, ``${flyway:database}``, ``${flyway:defaultSchema}``,
``${flyway:timestamp}`` and ``${flyway:table}`` depend on the run, not the files: set them
in the table to use them). The checksum is over the file as written (a new value is not an
edit); the replaced text is what runs, what ``plan --sql`` prints and what check reads. A
file's own outer ``BEGIN;`` ... ``COMMIT;`` is taken out as for golang-migrate.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from bilantools.source.files import (
    VERSION_MAX_LENGTH,
    Entry,
    MigrationSet,
    Script,
    read_script,
    version_too_long,
)
from bilantools.source.findings import Finding
from bilantools.source.headers import Headers
from bilantools.source.layouts import walk

NAME = "flyway"
NAMING = "V<version>__<description>.sql (undo U<version>__<description>.sql, repeatable R__<description>.sql)"
FILE_NAME = re.compile(
    r"^(?:(?P<kind>[VU])(?P<version>[0-9]+(?:[._][0-9]+)*)|R)__(?P<description>[^\n]+)\.sql\Z"
)
_VERSION = re.compile(r"[0-9]+(?:[._][0-9]+)*\Z")
REPEATABLE = "R__"  # the tracking version of a repeatable script: R__<description>
# The first part of a repeatable script's order: above any version's first part, which has
# fewer than VERSION_MAX_LENGTH digits.
_AFTER_VERSIONS = 10**VERSION_MAX_LENGTH
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.:-]+)\}")
_SETTINGS = {"executeInTransaction": ("true", "false")}


def score(files: list[Path]) -> int:
    """How many of `files` are named like Flyway scripts."""
    return sum(1 for p in files if FILE_NAME.match(p.name))


def _parts(text: str) -> tuple[int, ...] | None:
    """A version's parts without trailing zero parts ('1.10.0' -> (1, 10)), or None."""
    if not (text.isascii() and _VERSION.match(text)):
        return None
    parts = [int(part) for part in re.split(r"[._]", text)]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def key_of(text: str) -> str | None:
    """The identity of a version ('1_01' -> '1.1') or of a repeatable script ('R__views'),
    or None when `text` is neither."""
    if text.startswith(REPEATABLE) and len(text) > len(REPEATABLE):
        return text
    parts = _parts(text)
    return None if parts is None else ".".join(map(str, parts))


@dataclass(frozen=True)
class _Order:
    """The order of the set's scripts: versions part by part, then repeatable scripts by
    description (a repeatable one with no file cannot be placed: None)."""

    repeatables: tuple[str, ...]  # the tracking versions of the directory's R__ scripts, sorted

    def __call__(self, text: str) -> tuple[int, ...] | None:
        if text in self.repeatables:
            return (_AFTER_VERSIONS, self.repeatables.index(text))
        return None if text.startswith(REPEATABLE) else _parts(text)


@dataclass(frozen=True)
class FlywayScript:
    """A script as Flyway's history names it (for reading and writing its history)."""

    kind: Literal["versioned", "undo", "repeatable"]
    version: str | None  # dotted, as written ('1_01' -> '1.01'); None for a repeatable
    description: str  # underscores shown as spaces, as Flyway shows it
    script: str  # the file name

    @property
    def type(self) -> str:
        """The ``type`` column of ``flyway_schema_history``."""
        return "UNDO_SQL" if self.kind == "undo" else "SQL"


def describe(name: str) -> FlywayScript | None:
    """The Flyway script the file `name` is, or None when it is not named as one."""
    match = FILE_NAME.match(name)
    if match is None:
        return None
    kind: Literal["versioned", "undo", "repeatable"] = (
        "repeatable" if match["kind"] is None else "undo" if match["kind"] == "U" else "versioned"
    )
    version = match["version"].replace("_", ".") if match["version"] else None
    return FlywayScript(kind, version, match["description"].replace("_", " "), name)


def flyway_checksum(text: str) -> int:
    """Flyway's checksum of a script as written: the CRC-32 of its lines without their
    line endings (and without a byte order mark), as a signed 32-bit integer."""
    data = "".join(text.lstrip("\ufeff").splitlines()).encode("utf-8")
    crc = zlib.crc32(data)
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def discover(directory: Path) -> MigrationSet:
    """The scripts of `directory`; problems become findings."""
    from bilantools.source.config import load_config

    found = walk.new_set(directory, NAME, NAMING)
    found.key_of = key_of
    values = load_config(directory.absolute()).placeholders
    versioned: dict[str, list[tuple[re.Match[str], Script, Headers]]] = {}
    undos: dict[str, tuple[re.Match[str], Script, Headers]] = {}
    entries: list[Entry] = []
    rejected: set[str] = set()  # versions whose script has its own finding
    scripts: set[str] = set()
    for path, match in walk.named_files(found, FILE_NAME, NAMING):
        scripts.add(path.name)
        key = key_of(match["version"]) if match["version"] else REPEATABLE + match["description"]
        assert key is not None
        read = _read(path, found, values)
        if read is None:
            rejected.add(key)
            continue
        script, headers = read
        if match["kind"] == "U":
            if key in undos:
                found.findings.append(_second_undo(path, undos[key][1].path, key))
                continue
            undos[key] = (match, script, headers)
        elif match["kind"] == "V":
            too_long = version_too_long(path, key)
            if too_long is not None:
                found.findings.append(too_long)
            versioned.setdefault(key, []).append((match, script, headers))
        elif _repeatable_fits(path, key, found):
            entries.append(
                Entry(key, match["description"], script, headers, None, Headers(), "", repeatable=True)
            )
    for key, group in versioned.items():
        for match, script, headers in group:
            undo = undos.get(key)
            hint = f"add U{match['version']}__{match['description']}.sql"
            rollback, rollback_headers = (undo[1], undo[2]) if undo else (None, Headers())
            entries.append(
                Entry(key, match["description"], script, headers, rollback, rollback_headers, hint)
            )
    for key in sorted(set(undos) - set(versioned) - rejected):
        problem = f"has no versioned script V{undos[key][0]['version']}__*.sql"
        found.findings.append(
            walk.orphan_rollback(undos[key][1].path, problem, "add it or remove the undo script")
        )
    _orphan_settings(directory, scripts, found)
    found.order_of = _Order(tuple(sorted(e.version for e in entries if e.repeatable)))
    return walk.finish(found, entries)


def _read(path: Path, found: MigrationSet, values: dict[str, str]) -> tuple[Script, Headers] | None:
    """The script as it runs (placeholders replaced, an outer BEGIN/COMMIT taken out; the
    checksum of the file as written) and its headers, or None after its findings."""
    written = read_script(path, found.findings)
    if written is None:
        return None
    in_transaction = _settings(path, found)
    replaced = _replace(written, values, found)
    headers = walk.headers_of(written, found)
    if in_transaction is None or replaced is None or headers is None:
        return None
    headers = replace(headers, transactional=headers.transactional and in_transaction)
    body = walk.unwrap_transaction(replaced) if headers.transactional else replaced
    return replace(body, checksum=written.checksum), headers


def _replace(script: Script, values: dict[str, str], found: MigrationSet) -> Script | None:
    """`script` with its ``${name}`` placeholders replaced, or None after a finding for
    each placeholder without a value."""
    if "${" not in script.text:
        return script
    missing: dict[str, int] = {}

    def value(match: re.Match[str]) -> str:
        name = match[1]
        if name in values:
            return values[name]
        if name == "flyway:filename":
            return script.path.name
        missing.setdefault(name, script.text.count("\n", 0, match.start()) + 1)
        return match[0]

    text = _PLACEHOLDER.sub(value, script.text)
    for name, line in missing.items():
        found.findings.append(
            Finding(
                "placeholder",
                "error",
                str(script.path),
                line,
                f"{script.path.name} uses the placeholder ${{{name}}}, which has no value",
                f'set it in pyproject.toml: [tool.bilantools] placeholders = {{"{name}" = "..."}}',
            )
        )
    return None if missing else Script(script.path, text, script.checksum)


def _settings(path: Path, found: MigrationSet) -> bool | None:
    """Whether the script runs in a transaction, from its ``.sql.conf`` (True without
    one), or None after a finding for a setting it cannot honour."""
    conf = path.with_name(path.name + ".conf")
    if not conf.is_file():
        return True
    text = read_script(conf, found.findings, empty_ok=True)
    if text is None:
        return None
    in_transaction = True
    for number, raw in enumerate(text.text.split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, equals, value = (part.strip() for part in line.partition("="))
        choices = _SETTINGS.get(key)
        if not equals or choices is None or value.lower() not in choices:
            what = (
                f"sets {key} to {value!r}, not {' or '.join(choices)}"
                if equals and choices is not None
                else f"has the setting {key!r}, which bilantools does not read"
                if equals
                else f"has the line {line!r}, which is not key=value"
            )
            found.findings.append(
                Finding(
                    "script-settings",
                    "error",
                    str(conf),
                    number,
                    f"{conf.name} {what}",
                    "the one setting read is executeInTransaction=true|false: fix or remove the line",
                )
            )
            return None
        in_transaction = value.lower() == "true"
    return in_transaction


def _orphan_settings(directory: Path, scripts: set[str], found: MigrationSet) -> None:
    """A finding for each ``.sql.conf`` file without its script (its settings would apply
    to nothing, without a word)."""
    for conf in sorted(directory.glob("*.sql.conf")):
        if conf.name[: -len(".conf")] not in scripts:
            found.findings.append(
                Finding(
                    "script-settings",
                    "error",
                    str(conf),
                    None,
                    f"{conf.name} has no script {conf.name[: -len('.conf')]}",
                    "rename it after its script or remove it",
                )
            )


def _second_undo(path: Path, first: Path, key: str) -> Finding:
    """The finding for a second undo script of one version (which one is the undo?)."""
    return Finding(
        "duplicate-version",
        "error",
        str(path),
        None,
        f"two undo scripts share version {key}: {first.name} and {path.name}",
        "remove one of them",
    )


def _repeatable_fits(path: Path, version: str, found: MigrationSet) -> bool:
    """Whether the repeatable script's tracking version fits the tracking table; else a finding."""
    if len(version) <= VERSION_MAX_LENGTH:
        return True
    found.findings.append(
        Finding(
            "version-too-long",
            "error",
            str(path),
            None,
            f"{path.name} is tracked as {version}, {len(version)} characters; the tracking table "
            f"stores versions of at most {VERSION_MAX_LENGTH} characters",
            f"shorten its description to at most {VERSION_MAX_LENGTH - len(REPEATABLE)} characters",
        )
    )
    return False
