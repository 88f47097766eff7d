"""The time limits a migration runs with (lock_timeout, statement_timeout): the run's,
overridden by a script's header, and the one statement that sets them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bilantools.errors import InputError, option
from bilantools.source.headers import DURATION_HINT, Limits, parse_duration

if TYPE_CHECKING:
    import psycopg

    from bilantools.source.files import Migration

# A migration waits at most this long for a table lock, then fails instead of queueing
# every later query on that table behind it (production traffic stalls while a DDL
# statement waits for its lock). Per run: lock_timeout; per script: '-- lock-timeout:'.
DEFAULT_LOCK_TIMEOUT = "5s"
DEFAULT_LIMITS = Limits(lock_timeout=DEFAULT_LOCK_TIMEOUT)


def run_limits(lock_timeout: str | None, statement_timeout: str | None) -> Limits:
    """Validated run-level limits (None keeps the server's setting)."""
    checked: list[str | None] = []
    for name, value in (("lock_timeout", lock_timeout), ("statement_timeout", statement_timeout)):
        duration = None if value is None else parse_duration(str(value))
        if value is not None and duration is None:
            raise InputError(f"{option(name, value)} is not a duration; {DURATION_HINT}")
        checked.append(duration)
    return Limits(*checked)


def script_limits(run: Limits, m: Migration, action: str) -> Limits:
    """The limits of the script `action` runs for `m`: its header's, else the run's."""
    script = m.limits if action == "apply" else m.rollback_limits
    return Limits(
        script.lock_timeout if script.lock_timeout is not None else run.lock_timeout,
        script.statement_timeout if script.statement_timeout is not None else run.statement_timeout,
    )


def limits_sql(limits: Limits, local: bool, synchronous_commit: bool) -> tuple[str, list[object]] | None:
    """One statement setting lock_timeout, statement_timeout and (unless the commit must
    wait for the disk) synchronous_commit; `local` limits them to the current transaction."""
    settings = [("lock_timeout", limits.lock_timeout), ("statement_timeout", limits.statement_timeout)]
    if not synchronous_commit:
        settings.append(("synchronous_commit", "off"))
    chosen = [(name, value) for name, value in settings if value is not None]
    if not chosen:
        return None
    calls = ", ".join("set_config(%s, %s, %s)" for _ in chosen)
    params: list[object] = []
    for name, value in chosen:
        params.extend((name, value, local))
    return f"SELECT {calls}", params


def set_limits(
    conn: psycopg.Connection, limits: Limits, local: bool = True, synchronous_commit: bool = True
) -> None:
    settings = limits_sql(limits, local, synchronous_commit)
    if settings is not None:
        conn.execute(*settings)
