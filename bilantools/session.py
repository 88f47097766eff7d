"""How a front-door call reaches its database: the target resolved, a connection named
after the action (server refusals become one-line errors), and the engine's `Runner` for
the project's migrations, under the migration lock for a change."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from bilantools.db.diagnostics import server_message
from bilantools.db.engine.limits import DEFAULT_LOCK_TIMEOUT, run_limits
from bilantools.db.engine.results import ProgressHook
from bilantools.db.runner import Runner
from bilantools.db.sandbox import Sandbox
from bilantools.db.target import Target, parse_target
from bilantools.errors import ConnectionLostError, DatabaseError, InputError, option
from bilantools.options import RunOptions
from bilantools.project import ProjectLike, as_project
from bilantools.source.headers import Limits

if TYPE_CHECKING:
    import psycopg

TargetLike = Target | str | None


def resolve_target(
    *,
    target: TargetLike = None,
    pg_bin: Path | str | None = None,
    home: Path | str | None = None,
    start: bool = True,
) -> Target:
    """`target`, else DATABASE_URL, else the sandbox's default database: started if needed,
    or with ``start=False`` (a read-only command) only if it runs, so that nothing is left
    running that the caller did not ask for."""
    if isinstance(target, Target):
        return target
    box = Sandbox(home, pg_bin)
    if target is None and os.environ.get("DATABASE_URL") is not None:
        return parse_target(os.environ["DATABASE_URL"], "DATABASE_URL", _sandbox_port(box))
    if target is not None:
        return parse_target(target, "--db", _sandbox_port(box))
    if not start and box.running() is None:
        box.bin_dir  # noqa: B018 -- a bad --pg-bin (or BILANTOOLS_HOME) is the input to fix first
        if box.home.exists() and not box.home.is_dir():
            raise InputError(
                f"BILANTOOLS_HOME {box.home} is not a directory; set BILANTOOLS_HOME to a directory "
                "you can write to"
            )
        raise InputError(
            f"no database to read: pass {option('target', 'URL')} (or set DATABASE_URL), or start the "
            "sandbox with 'bilantools sandbox start' (a read-only command starts no server it would "
            "leave running)"
        )
    return parse_target(box.start(), "sandbox")


def backup_hook(runner: Runner, options: RunOptions) -> Callable[[], str] | None:
    """The automatic backup before changes: on by default for anything but the sandbox."""
    if options.backup is False or (options.backup is None and runner.target.is_sandbox):
        return None

    def take_backup() -> str:
        from bilantools.db import backup as backups

        taken = backups.take(
            runner.target,
            options.backup_dir,
            lock_wait_timeout=runner.limits.lock_timeout,
            origin="automatic",
        )
        return str(taken.file)

    return take_backup


@contextmanager
def connection(target: TargetLike, action: str) -> Iterator[tuple[Target, psycopg.Connection]]:
    """A connection named after the action; server refusals become one-line errors."""
    import psycopg

    resolved = resolve_target(target=target)
    conn = resolved.connect(f"bilantools {action} {_whoami()}")
    try:
        yield resolved, conn
    except psycopg.Error as exc:
        if conn.closed or conn.broken:
            raise ConnectionLostError(
                f"lost the connection to {resolved.masked} during the {action}: {server_message(exc)}; "
                f"check that the server is running, then run the {action} again"
            ) from None
        if getattr(getattr(exc, "diag", None), "sqlstate", None) == "42501":
            raise DatabaseError(
                f"{resolved.masked} refused the {action}: {server_message(exc)}; the connected role "
                f"{conn.info.user} lacks the privilege: GRANT it, or connect as the objects' owner"
            ) from None
        raise DatabaseError(
            f"the {action} on {resolved.masked} failed: {server_message(exc)}; fix what the error names, "
            f"then run the {action} again"
        ) from None
    finally:
        conn.close()


@contextmanager
def changing(
    target: TargetLike, project: ProjectLike, action: str, options: RunOptions, progress: ProgressHook | None
) -> Iterator[Runner]:
    """The runner of a changing run: its limits checked first, then the migration lock;
    its events name the options' rollout."""
    limits = run_limits(options.lock_timeout, options.statement_timeout)
    with runner(target, project, action, options.lock_wait, progress, limits, options.rollout_id) as engine:
        yield engine


@contextmanager
def runner(
    target: TargetLike,
    project: ProjectLike,
    action: str,
    lock_wait: float | None = None,
    progress: ProgressHook | None = None,
    limits: Limits | None = None,
    rollout_id: str | None = None,
) -> Iterator[Runner]:
    """The engine for the project's migrations on a connection to the target (the files are
    read first); with `lock_wait`, under the migration lock and the engine's Ctrl-C handling.
    `rollout_id`: the fleet rollout its events name."""
    import psycopg

    found = as_project(project).migrations
    with connection(target, action) as (resolved, conn):
        limits = limits or run_limits(DEFAULT_LOCK_TIMEOUT, None)
        engine = Runner(conn, found, resolved, progress, limits, rollout_id)
        if lock_wait is None:
            yield engine
            return
        from bilantools.db.failures import lost_before
        from bilantools.db.lock import MigrationLock

        try:
            # Ctrl-C: a KeyboardInterrupt until the runner changes anything, then a cancel
            # and a stop it reports; never one while the lock is released.
            with engine.interrupts, MigrationLock(conn, resolved.masked, lock_wait):
                yield engine
        except psycopg.Error as exc:
            # The runner turns every error of its migrations into its own: a server error
            # reaching here came before the first migration was sent.
            if action in ("apply", "rollback") and (conn.closed or conn.broken):
                raise lost_before(resolved.masked, action, exc) from None
            raise


def _sandbox_port(box: Sandbox) -> int | None:
    running = box.running()
    return running.port if running else None


def _whoami() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
