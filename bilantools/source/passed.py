"""Pre-run checks that passed, remembered by content so `apply` does not redo them.

Before every apply the forward scripts are parsed and analysed: 0.2-0.4 s on the
project's 29 migrations, as long as the SQL itself takes on an empty database. The
verdict depends only on the scripts (names and checksums), the directory's check
configuration, and the code that checks them (bilantools' own source files and the
pglast parser), so a key over those tells whether an identical check already passed.
Only passes are remembered: a directory with errors is checked afresh every time, so
its message is always current. The store is a directory of empty files named by key;
any failure to read or write it only means checking again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import bilantools
from bilantools.source.config import CheckConfig
from bilantools.source.files import MigrationSet

_CODE_SUFFIXES = (".py", ".sql", ".json")


def key(found: MigrationSet, config: CheckConfig) -> str:
    """A digest of everything the pre-run check reads."""
    import pglast

    digest = hashlib.sha256()
    digest.update(f"{bilantools.__version__}\0{pglast.__version__}\0{_code_stamp()}\0".encode())
    digest.update(repr((sorted(config.disabled), sorted(config.provided), config.squawk_after)).encode())
    for m in found:
        rollback = m.rollback.checksum if m.rollback is not None else ""
        digest.update(f"\0{m.path.name}\0{m.checksum}\0{rollback}\0{m.transactional}".encode())
    for f in found.findings:
        digest.update(f"\0{f.rule}\0{f.severity}\0{f.file}\0{f.line}".encode())
    return digest.hexdigest()


def known(store: Path, digest: str) -> bool:
    return (store / digest).is_file()


def remember(store: Path, digest: str) -> None:
    try:
        store.mkdir(parents=True, exist_ok=True)
        (store / digest).touch()
    except OSError:
        pass  # a read-only or odd BILANTOOLS_HOME costs a re-check next time, nothing else


def _code_stamp() -> str:
    """Size and modification time of every file of the package: an edited rule, or a
    reinstalled bilantools, never reuses a verdict of the old code."""
    root = Path(bilantools.__file__).parent
    parts = []
    for path in sorted(root.rglob("*")):
        if path.suffix in _CODE_SUFFIXES:
            st = path.stat()
            parts.append(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}")
    return ";".join(parts)
