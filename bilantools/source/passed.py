"""Pre-run checks that passed, remembered by content so `apply` does not redo them.

Before every apply the forward scripts are parsed and analysed: 0.2-0.4 s on the
project's 29 migrations, as long as the SQL itself takes on an empty database. The
verdict depends only on the scripts (names and checksums), the directory's check
configuration, and the code that checks them (bilantools' own files and the pglast
parser's), so a key over those tells whether an identical check already passed. Only
passes are remembered: a directory with errors is checked afresh every time, so its
message is always current. With a pass go the statement boundaries of each script, so
that a remembered run does not even load the parser (splitting 100,000 seed rows takes
0.3 s). The store is a directory of small JSON files named by key; any failure to read
or write it, or a record that does not fit its scripts, only means checking again.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib.util import find_spec
from pathlib import Path

import bilantools
from bilantools.source.config import CheckConfig
from bilantools.source.files import MigrationSet
from bilantools.source.statements import Slices, statement_slices

_CODE_SUFFIXES = (".py", ".sql", ".json", ".so")


def key(found: MigrationSet, config: CheckConfig) -> str:
    """A digest of everything the pre-run check reads."""
    digest = hashlib.sha256()
    digest.update(f"{bilantools.__version__}\0{_code_stamp()}\0".encode())
    settings = (sorted(config.disabled), sorted(config.provided), config.squawk_after)
    # A checksum is over the file as written: the placeholders' values change what runs.
    digest.update(repr((*settings, sorted(config.placeholders.items()))).encode())
    for m in found:
        rollback = m.rollback.checksum if m.rollback is not None else ""
        digest.update(f"\0{m.path.name}\0{m.checksum}\0{rollback}\0{m.transactional}".encode())
    for f in found.findings:
        digest.update(f"\0{f.rule}\0{f.severity}\0{f.file}\0{f.line}".encode())
    return digest.hexdigest()


def recall(store: Path, digest: str, found: MigrationSet) -> dict[str, Slices] | None:
    """The statement slices of each forward script (by checksum) if this check passed."""
    try:
        record = json.loads((store / f"{digest}.json").read_text(encoding="utf-8"))
        known = {m.checksum: tuple((int(a), int(b)) for a, b in record[m.checksum]) for m in found}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return known if all(_fits(m.script.text, known[m.checksum]) for m in found) else None


def remember(store: Path, digest: str, found: MigrationSet) -> None:
    """Record the pass with the slices of every forward script (parsed by the check)."""
    record = {m.checksum: statement_slices(m.script) for m in found}
    try:
        store.mkdir(parents=True, exist_ok=True)
        partial = store / f".{digest}.{os.getpid()}.partial"
        partial.write_text(json.dumps(record), encoding="utf-8")
        partial.replace(store / f"{digest}.json")  # whole or absent, even with two runs at once
    except OSError:
        pass  # a read-only or odd BILANTOOLS_HOME costs a re-check next time, nothing else


def _fits(text: str, slices: Slices) -> bool:
    """Ordered, non-overlapping slices within the text, each starting a statement."""
    end = 0
    for start, stop in slices:
        if not (end <= start < stop <= len(text)) or text[start].isspace():
            return False
        end = stop
    return bool(slices)


def _code_stamp() -> str:
    """Size and modification time of every file of bilantools and of pglast (found without
    importing it): an edited rule, or another parser, never reuses an old verdict."""
    roots = [Path(bilantools.__file__).parent]
    spec = find_spec("pglast")
    if spec is not None and spec.submodule_search_locations:
        roots += [Path(p) for p in spec.submodule_search_locations]
    parts = []
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.suffix in _CODE_SUFFIXES:
                st = path.stat()
                parts.append(f"{path.name}:{st.st_size}:{st.st_mtime_ns}")
    return ";".join(parts)
