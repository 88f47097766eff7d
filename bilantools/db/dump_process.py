"""pg_dump as a child process: started, fed, hashed and stopped with the call that runs it.

Its standard output streams through us into the partial file (hashed on the way), its
standard error is read meanwhile (a full pipe would stop it); whatever ends the call (an
error, a full disk, a signal) ends pg_dump too, so it never holds a lock or a snapshot's
transaction for nobody.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bilantools.db import dump_files
from bilantools.db.diagnostics import server_message
from bilantools.db.pgtools import DIR_OPTIONS, connection_env
from bilantools.db.scratch import held
from bilantools.errors import BilanToolsError
from bilantools.secrets import redact

if TYPE_CHECKING:
    from bilantools.db.target import Target

ProgressHook = Callable[[int], None]  # called with the bytes written so far


class BackupError(BilanToolsError):
    """pg_dump or pg_restore failed, or a restore reported errors; a failed dump leaves nothing."""


def run(
    target: Target,
    args: list[str],
    partial: Path,
    progress: ProgressHook | None,
    during: Callable[[], None],
) -> str | None:
    """Run pg_dump; `during` runs meanwhile. Returns the SHA-256 of what pg_dump wrote on
    its standard output (None when it wrote a directory itself). Whatever stops the run
    (an error, a full disk, a signal) stops pg_dump too: it never outlives the call."""
    import psycopg

    streamed = "--file" not in args
    digest = hashlib.sha256()
    written = [0]
    failed: list[OSError] = []  # the copier's write error
    errors: list[bytes] = []
    process: subprocess.Popen[bytes] | None = None
    threads: list[threading.Thread] = []
    with connection_env(target) as (conninfo, env):
        try:
            with held():  # pg_dump and its readers started and known here, or not started
                process = subprocess.Popen(
                    [*args, "--dbname", conninfo],
                    env=env,
                    stderr=subprocess.PIPE,
                    stdout=subprocess.PIPE if streamed else subprocess.DEVNULL,
                )
                threads.append(threading.Thread(target=_read_all, args=(process.stderr, errors)))
                if streamed:
                    threads.append(
                        threading.Thread(target=copy, args=(process, partial, digest, written, failed))
                    )
                for thread in threads:
                    thread.start()
            try:
                during()
            except psycopg.Error as exc:
                raise BackupError(
                    f"cannot read the database in the dump's snapshot: {server_message(exc)}; "
                    "nothing was kept"
                ) from None
            while process.poll() is None:
                if progress is not None:
                    progress(written[0] if streamed else dump_files.size(partial))
                time.sleep(0.1)
        finally:
            with held():  # a second signal must not leave pg_dump running, or its readers waiting
                if process is not None and process.poll() is None:
                    process.kill()
                if process is not None:
                    process.wait()
                for thread in threads:
                    if thread.ident is not None:
                        thread.join()
    assert process is not None
    if failed:
        raise write_failed(partial.parent, failed[0], written[0])
    if process.returncode != 0:
        stderr = b"".join(errors).decode(errors="replace")
        if "No space left on device" in stderr:  # pg_dump writing a directory itself
            raise write_failed(partial.parent, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        raise BackupError(f"pg_dump failed: {_last_error(stderr)}; nothing was kept")
    if progress is not None:
        progress(written[0] if streamed else dump_files.size(partial))
    return digest.hexdigest() if streamed else None


def _read_all(stream: Any, into: list[bytes]) -> None:
    """What pg_dump writes on its standard error (read meanwhile: a full pipe would stop it)."""
    into.append(stream.read() if stream is not None else b"")


def copy(
    process: subprocess.Popen[bytes], partial: Path, digest: Any, written: list[int], failed: list[OSError]
) -> None:
    """pg_dump's output into the partial file (0600 from the start), hashed on the way.
    A write error (a full disk) stops pg_dump, which would otherwise wait forever on a
    pipe nobody reads, holding its locks and its snapshot's transaction."""
    assert process.stdout is not None
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            for block in iter(lambda: process.stdout.read(1 << 20), b""):  # type: ignore[union-attr]
                digest.update(block)
                handle.write(block)
                written[0] += len(block)
            handle.flush()
            os.fsync(handle.fileno())  # a backup reported as taken must survive a crash
    except OSError as exc:
        failed.append(exc)
        process.kill()


def write_failed(directory: Path, exc: OSError, written: int | None = None) -> BackupError:
    """One line naming the directory that could not take the backup, and the fix."""
    so_far = f" after {written} bytes" if written else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        what = f"backup directory {directory} is full ({exc.strerror}{so_far})"
        fix = f"free space there or pass {DIR_OPTIONS} elsewhere"
    else:
        what = f"cannot write the backup into {directory} ({exc.strerror}{so_far})"
        fix = f"fix the directory or pass {DIR_OPTIONS} elsewhere"
    return BackupError(f"{what}: pg_dump was stopped and nothing was kept; {fix}")


def _last_error(stderr: str) -> str:
    """pg_dump's last error line (not the 'detail:' line that may follow it)."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line] or lines
    return redact(" ".join(errors[-1].split())) if errors else "no message"
