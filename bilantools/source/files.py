"""What every layout builds from a directory: scripts read and normalised, checksums,
migrations with their keys and order, dependency order, and the findings they share.

A directory is read in full and every problem becomes a `Finding`, so that `validate`
can list them all; commands that change a database call `require_valid()` and stop at
the first error before anything is sent to the server.
"""

from __future__ import annotations

import errno
import hashlib
import heapq
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

from bilantools.errors import InputError, option
from bilantools.source.findings import Finding
from bilantools.source.headers import Headers, Limits

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


def integer_key(text: str) -> str | None:
    """The identity of an integer version ('001' and '1' are one), or None for text that is
    not ASCII digits ('²'.isdigit() is true, yet int('²') fails)."""
    return str(int(text)) if text.isascii() and text.isdigit() else None


def integer_order(text: str) -> tuple[int, ...] | None:
    """The sort key of an integer version, or None for text that is not one."""
    key = integer_key(text)
    return None if key is None else (int(key),)


@dataclass(frozen=True)
class Migration:
    version: str
    key: str  # the identity compared with history rows and --to (MigrationSet.key_of)
    order: tuple[int, ...]  # the sort key its layout gives it
    name: str
    script: Script
    rollback: Script | None
    depends: tuple[str, ...]
    transactional: bool
    limits: Limits = field(default_factory=Limits)  # from the migration's headers
    rollback_limits: Limits = field(default_factory=Limits)  # from the rollback script's headers
    rollback_transactional: bool = True  # the rollback script's own '-- transaction:' header
    rollback_hint: str = ""  # how to add the missing rollback, in its layout's terms
    # Run again whenever its checksum changes (Flyway's R__ scripts), never rolled back.
    repeatable: bool = False

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
    # The layout's reading of a version as written (a file name, a history row, --to): its
    # identity, or None when the text is not a version of this layout...
    key_of: Callable[[str], str | None] = integer_key
    # ...and its sort key, or None when the layout cannot place it (a history row whose
    # file is gone, in a layout that orders by something other than the version).
    order_of: Callable[[str], tuple[int, ...] | None] = integer_order

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
        """The migration whose key is `version`'s ('1' finds '001')."""
        key = self.key_of(version)
        return None if key is None else next((m for m in self.migrations if m.key == key), None)

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
    repeatable: bool = False  # see Migration.repeatable: it has no rollback to miss


def _by_key(found: MigrationSet, entries: list[Entry]) -> dict[str, list[Entry]]:
    """The entries grouped by their versions' keys, in order of those versions."""
    by_key: dict[str, list[Entry]] = {}
    for entry in sorted(entries, key=lambda e: _order_of(found, e.version)):
        by_key.setdefault(_key_of(found, entry.version), []).append(entry)
    return by_key


def _key_of(found: MigrationSet, version: str) -> str:
    key = found.key_of(version)
    assert key is not None, f"{found.layout} made an entry of {version!r}, not one of its versions"
    return key


def _order_of(found: MigrationSet, version: str) -> tuple[int, ...]:
    order = found.order_of(version)
    assert order is not None, f"{found.layout} made an entry of {version!r}, which it cannot order"
    return order


def report_duplicates(found: MigrationSet, entries: list[Entry]) -> None:
    """A finding for each version that two entries share (by key: 1 and 001 clash)."""
    for group in _by_key(found, entries).values():
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
    by_key = _by_key(found, entries)
    built: dict[str, Migration] = {}
    for key, group in by_key.items():
        entry, script = group[0], group[0].script
        if entry.rollback is None and not entry.repeatable:
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
            dep_key = found.key_of(dep)
            target = None if dep_key is None else by_key.get(dep_key)
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
            elif dep_key == key:
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
        built[key] = Migration(
            entry.version,
            key,
            _order_of(found, entry.version),
            entry.name,
            script,
            entry.rollback,
            tuple(deps),
            entry.headers.transactional,
            entry.headers.limits,
            entry.rollback_headers.limits,
            entry.rollback_headers.transactional,
            entry.rollback_hint,
            entry.repeatable,
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


def _order(built: dict[str, Migration], found: MigrationSet) -> list[Migration]:
    """Dependency order; among migrations that are ready, the lowest in the layout's order first."""
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
        return sorted(built.values(), key=lambda m: m.order)
    ready: list[tuple[tuple[int, ...], str]] = []
    order: list[Migration] = []
    while sorter.is_active():
        for version in sorter.get_ready():
            heapq.heappush(ready, (by_version[version].order, version))
        _order_key, version = heapq.heappop(ready)
        order.append(by_version[version])
        sorter.done(version)
    return order
