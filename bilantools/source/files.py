"""Discovering migrations on disk: file names, encodings, checksums, headers, order.

A directory is read in full and every problem becomes a `Finding`, so that `validate`
can list them all; commands that change a database call `require_valid()` and stop at
the first error before anything is sent to the server.
"""

from __future__ import annotations

import errno
import hashlib
import heapq
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

from bilantools.errors import InputError, option
from bilantools.source.findings import Finding
from bilantools.source.headers import HeaderError, Headers, Limits, parse_headers

# ASCII digits only (\d would take "١٢" or "１２", which int() reads but nobody can type back),
# and \Z, not $, which would accept a name ending in a newline.
FILE_NAME = re.compile(
    r"^(?P<version>[0-9]+)_(?P<slug>[A-Za-z0-9][A-Za-z0-9_-]*?)(?P<rollback>_rollback)?\.sql\Z"
)
NAME_HINT = "name migrations NNN_slug.sql and their rollbacks NNN_slug_rollback.sql"
# The widest version the tracking table stores: schema_migrations.version and
# schema_migration_events.version are varchar(50) in bilantools/db/tracking.sql (a test
# holds the two to each other). A longer one would fail only after earlier migrations
# committed, so it is refused with the directory's other problems.
VERSION_MAX_LENGTH = 50


def normalise(raw: bytes) -> str:
    """Decode UTF-8, drop the byte order mark(s) and turn CRLF/CR into LF.

    Every leading BOM goes (an editor that adds one to a file read without noticing the
    first doubles it), so that normalising normalised text changes nothing.
    Raises UnicodeDecodeError for bytes that are not UTF-8.
    """
    text = raw.decode("utf-8").lstrip("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def checksum(text: str) -> str:
    """SHA-256 of normalised text: a CRLF checkout or a BOM does not look like an edit."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Script:
    """One SQL file, read and normalised."""

    path: Path
    text: str
    checksum: str


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    script: Script
    rollback: Script | None
    depends: tuple[str, ...]
    transactional: bool
    limits: Limits = field(default_factory=Limits)  # from the migration's headers
    rollback_limits: Limits = field(default_factory=Limits)  # from the rollback script's headers
    rollback_transactional: bool = True  # the rollback script's own '-- transaction:' header

    @property
    def number(self) -> int:
        return int(self.version)

    @property
    def path(self) -> Path:
        return self.script.path

    @property
    def checksum(self) -> str:
        return self.script.checksum

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"


@dataclass
class MigrationSet:
    """The migrations of one directory, in the order they apply."""

    directory: Path
    migrations: list[Migration] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    layout: str = "bilantools"  # the layout that read it (see `bilantools.source.layouts`)

    def __iter__(self) -> Iterator[Migration]:
        return iter(self.migrations)

    def __len__(self) -> int:
        return len(self.migrations)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def require_valid(self) -> None:
        """Raise the first error (with a count of the others) before any database work."""
        errors = self.errors
        if errors:
            more = (
                f" (and {len(errors) - 1} more problem(s); run 'bilantools validate')"
                if len(errors) > 1
                else ""
            )
            raise InputError(errors[0].one_line() + more)

    def find(self, version: str) -> Migration | None:
        """The migration whose number equals `version` ('1' finds '001')."""
        if not (version.isascii() and version.isdigit()):  # "²".isdigit(), yet int("²") fails
            return None
        number = int(version)
        return next((m for m in self.migrations if m.number == number), None)

    def resolve(self, version: str, param: str = "to") -> Migration:
        """The migration of `version`, given as the option `param`; InputError if none."""
        found = self.find(version)
        if found is None:
            span = (
                f"versions {self.migrations[0].version}..{self.migrations[-1].version}"
                if self.migrations
                else "no migrations"
            )
            raise InputError(
                f"{_option(param, version)}: no migration has version {version} in {self.directory} "
                f"({span}); pass one of those versions"
            )
        return found


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


@dataclass(frozen=True)
class Entry:
    """One forward script a layout found, with its rollback script (None: it has none)."""

    version: str
    name: str
    script: Script
    headers: Headers
    rollback: Script | None
    rollback_headers: Headers
    rollback_hint: str  # how to add the missing rollback, in this layout's terms


def _by_number(entries: list[Entry]) -> dict[int, list[Entry]]:
    by_number: dict[int, list[Entry]] = {}
    for entry in entries:
        by_number.setdefault(int(entry.version), []).append(entry)
    return by_number


def report_duplicates(found: MigrationSet, entries: list[Entry]) -> None:
    """A finding for each version that two entries share (as numbers: 1 and 001 clash)."""
    for _, group in sorted(_by_number(entries).items()):
        if len(group) > 1:
            names = " and ".join(e.script.path.name for e in group)
            found.findings.append(
                Finding(
                    "duplicate-version",
                    "error",
                    str(group[1].script.path),
                    None,
                    f"two migrations share version {group[0].version}: {names}",
                    "renumber one of them",
                )
            )


def assemble(found: MigrationSet, entries: list[Entry]) -> None:
    """Turn a layout's entries into `found.migrations`, in order; missing rollbacks and
    '-- depends:' lines become findings the same way in every layout (the first entry of
    a duplicated version stands for it)."""
    by_number = _by_number(entries)
    built: dict[int, Migration] = {}
    for number, group in by_number.items():
        entry, script = group[0], group[0].script
        if entry.rollback is None:
            found.findings.append(
                Finding(
                    "missing-rollback",
                    "warning",
                    str(script.path),
                    None,
                    f"migration {script.path.name} has no rollback script",
                    entry.rollback_hint,
                )
            )
        deps: list[str] = []
        for dep in entry.headers.depends:
            target = by_number.get(int(dep))
            if target is None:
                found.findings.append(
                    Finding(
                        "unknown-dependency",
                        "error",
                        str(script.path),
                        None,
                        f"'-- depends: {dep}' names no migration in {found.directory}",
                        "fix the '-- depends:' line",
                    )
                )
            elif int(dep) == number:
                found.findings.append(
                    Finding(
                        "dependency-cycle",
                        "error",
                        str(script.path),
                        None,
                        f"{script.path.name} depends on itself",
                        "fix the '-- depends:' line",
                    )
                )
            else:
                deps.append(target[0].version)
        built[number] = Migration(
            entry.version,
            entry.name,
            script,
            entry.rollback,
            tuple(deps),
            entry.headers.transactional,
            entry.headers.limits,
            entry.rollback_headers.limits,
            entry.rollback_headers.transactional,
        )
    found.migrations = _order(built, found)


def misnamed(path: Path, naming: str, fix: str = "rename it") -> Finding:
    """The finding for a ``*.sql`` file whose name does not follow the layout's `naming`."""
    return Finding(
        "file-name",
        "error",
        str(path),
        None,
        f"migration file name '{path.name}' does not match {naming}",
        f"{fix} or move it out of {path.parent}",
    )


def version_too_long(path: Path, version: str) -> Finding | None:
    """The finding for a version longer than the tracking table stores, or None."""
    if len(version) <= VERSION_MAX_LENGTH:
        return None
    return Finding(
        "version-too-long",
        "error",
        str(path),
        None,
        f"{path.name} has a version of {len(version)} digits; the tracking table stores "
        f"versions of at most {VERSION_MAX_LENGTH} characters",
        f"renumber the migration (and its rollback) with at most {VERSION_MAX_LENGTH} digits",
    )


def _option(param: str, value: str) -> str:
    """`option(param, value)`, or the value after the bare option when it holds a brace
    (a placeholder cannot carry one: it would be printed as typed)."""
    return option(param, value) if not set(value) & set("{}") else f"{option(param)} {value}"


def not_a_file(path: Path, directory: Path) -> Finding:
    """The finding for a ``*.sql`` entry that is not a readable regular file."""
    hint = f"move it out of {directory} or rename it so that it does not end in .sql"
    if path.is_symlink():
        try:
            path.stat()
        except OSError as exc:
            what = (
                "is a symbolic link loop"
                if exc.errno == errno.ELOOP
                else f"is a symbolic link to {os.readlink(path)}, which does not exist"
                if exc.errno == errno.ENOENT
                else f"is a symbolic link that cannot be followed ({exc.strerror})"
            )
            hint = "fix or remove the link"
            return Finding("unreadable", "error", str(path), None, f"{path.name} {what}", hint)
    what = "is a directory, not a migration file" if path.is_dir() else "is not a regular file"
    return Finding("unreadable", "error", str(path), None, f"{path.name} {what}", hint)


def has_sql(text: str) -> bool:
    """Whether `text` holds anything but blank lines and ``--`` comments."""
    return any(line.strip() and not line.strip().startswith("--") for line in text.split("\n"))


def read_script(path: Path, findings: list[Finding], *, empty_ok: bool = False) -> Script | None:
    """The normalised script of `path`, or None after adding the finding that says why it
    cannot be one (unreadable, not UTF-8, a NUL byte, no SQL unless `empty_ok`)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:  # permissions (not for root), I/O errors, a file gone since the listing
        findings.append(
            Finding(
                "unreadable",
                "error",
                str(path),
                None,
                f"{path.name} cannot be read ({exc.strerror})",
                "make it readable by the user running bilantools",
            )
        )
        return None
    try:
        text = normalise(raw)
    except UnicodeDecodeError as exc:
        findings.append(
            Finding(
                "encoding",
                "error",
                str(path),
                None,
                f"{path.name} is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                "save the file as UTF-8",
            )
        )
        return None
    nul = text.find("\0")
    if nul >= 0:  # the parser and libpq read up to it: what follows would never run
        line = text.count("\n", 0, nul) + 1
        findings.append(
            Finding(
                "encoding",
                "error",
                str(path),
                line,
                f"{path.name} contains a NUL byte at line {line}: everything after it would be cut off "
                "without a word",
                "remove it (a file saved as UTF-16 has one after every ASCII character: save it as UTF-8)",
                nul - text.rfind("\n", 0, nul),
            )
        )
        return None
    if not empty_ok and not has_sql(text):
        findings.append(
            Finding(
                "empty-file",
                "error",
                str(path),
                None,
                f"{path.name} contains no SQL",
                "write its SQL or remove the file",
            )
        )
        return None
    return Script(path, text, checksum(text))


def _order(built: dict[int, Migration], found: MigrationSet) -> list[Migration]:
    """Dependency order; among migrations that are ready, the lowest number first."""
    by_version = {m.version: m for m in built.values()}
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for m in built.values():
        sorter.add(m.version, *m.depends)
    try:
        sorter.prepare()
    except CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        first = by_version[exc.args[1][0]]
        found.findings.append(
            Finding(
                "dependency-cycle",
                "error",
                str(first.path),
                None,
                f"dependency cycle {cycle}",
                "fix the '-- depends:' lines",
            )
        )
        return sorted(built.values(), key=lambda m: m.number)
    ready: list[tuple[int, str]] = []
    order: list[Migration] = []
    while sorter.is_active():
        for version in sorter.get_ready():
            heapq.heappush(ready, (by_version[version].number, version))
        _number, version = heapq.heappop(ready)
        order.append(by_version[version])
        sorter.done(version)
    return order
