"""The files of a backup: names, sidecars, modes, hashes and durable writes.

A dump holds every row of the database, so every file is 0600 (directories 0700) from the
moment it exists; a name is claimed without ever replacing another backup's; a write is
fsynced, with its directory, before it counts (a backup reported as taken survives a crash).
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any


def claim(partial: Path, out: Path, stem: str, suffix: str) -> Path:
    """Give the finished dump its name, `<stem><suffix>`, or `<stem>-2<suffix>`... when a
    backup of the same second has it: an existing backup is never replaced."""
    for n in itertools.count(1):
        final = out / f"{stem}{'' if n == 1 else f'-{n}'}{suffix}"
        if sidecar_of(final).exists():
            continue
        try:
            if partial.is_dir():  # fails onto an existing (never empty) directory backup
                partial.rename(final)
            else:  # a hard link fails if the name exists, where a rename would replace it
                os.link(partial, final)
                partial.unlink()
        except (FileExistsError, IsADirectoryError, NotADirectoryError):
            continue
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            continue
        sync_directory(out)
        return final
    raise AssertionError("unreachable")


def sidecar_of(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "database"


def files_of(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def size(path: Path) -> int:
    try:
        return sum(p.stat().st_size for p in files_of(path)) if path.exists() else 0
    except OSError:
        return 0


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    for file in files_of(path):
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def protect(path: Path) -> None:
    """0600 files (0700 directories): a dump holds every row of the database."""
    if path.is_dir():
        path.chmod(0o700)
        for file in files_of(path):
            file.chmod(0o600)
    else:
        path.chmod(0o600)


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_json(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_name(f".{path.name}.partial")
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        partial.rename(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    sync_directory(path.parent)


def sync_directory(directory: Path) -> None:
    """Make renames in `directory` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
