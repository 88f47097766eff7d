"""Health gates: what a careful DBA reads on a server before migrating it.

One read-only query gives the server's recovery state, its streaming replicas' replay lag
and byte gap, other sessions' open transactions and lock waits in this database, and the
vacuums in progress; `read_health` turns them into a verdict with one reason per blocker,
and `wait_until_healthy` waits with exponential backoff for a gated server to clear.

Privileges: any role can run it. Without ``pg_monitor`` (or ``pg_read_all_stats``) the
server hides other roles' transaction ages, their replicas' lag and the table of an
autovacuum, so those readings are missing (counted in ``hidden_sessions``) and do not block;
without ``pg_read_all_settings`` (part of ``pg_monitor``) the data directory, and so the disk
headroom, is not visible. Lock waiters come from ``pg_locks``, which every role sees.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bilantools.db.target import explain
from bilantools.errors import DatabaseError, InputError
from bilantools.source.config import settings_table

if TYPE_CHECKING:
    import psycopg

__all__ = ["GateSettings", "Health", "load_gate_settings", "read_health", "wait_until_healthy"]


@dataclass(frozen=True)
class GateSettings:
    """The limits a target must be within before a migration starts on it; in
    ``[tool.bilantools.gates]`` as kebab-case keys (``max-replica-lag-s = 5.0``)."""

    max_replica_lag_s: float = 5.0  # replay lag of any streaming replica of the target
    min_replicas: int = 0  # streaming replicas the target must have (a disconnected one shows no lag)
    max_transaction_age_s: float = 60.0  # other sessions' open transactions in the database
    max_lock_waiters: int = 0  # sessions of the database waiting on a lock
    block_on_autovacuum: bool = True  # a vacuum in progress on a table the migration touches
    min_free_disk_bytes: int = 1 << 30  # free space of the data directory, where visible
    wait_limit_s: float = 300.0  # how long a gated target waits before it is given up
    backoff_initial_s: float = 1.0  # the first pause between two readings, doubled each time
    backoff_max_s: float = 30.0  # the longest pause between two readings

    def __post_init__(self) -> None:
        for item in fields(self):
            problem = _problem(item.name, getattr(self, item.name))
            if problem:
                raise InputError(f"gate setting {item.name}={getattr(self, item.name)!r} {problem}")
        if self.backoff_initial_s > self.backoff_max_s:
            raise InputError(
                f"gate setting {_BACKOFF_ORDER.format(self.backoff_initial_s, self.backoff_max_s)}"
            )


_BACKOFF_ORDER = (
    "backoff_initial_s {:g} is above backoff_max_s {:g}; make the first pause at most the longest one"
)


def _problem(name: str, value: Any) -> str | None:
    """Why `value` cannot be gate setting `name` (None: it can)."""
    kind = GateSettings.__dataclass_fields__[name].type
    if kind == "bool":
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number" if kind == "float" else "must be a whole number"
    if kind == "int" and not isinstance(value, int):
        return "must be a whole number"
    if value < 0 or (name.startswith("backoff") and value == 0):
        return "must be above 0" if name.startswith("backoff") else "must be 0 or more"
    return None


def load_gate_settings(start: Path) -> GateSettings:
    """The gates of ``[tool.bilantools.gates]`` in the nearest ``pyproject.toml`` from
    `start`; the defaults for every key left out. Bad keys or values: InputError."""
    path, values = settings_table(start, "gates", [item.name for item in fields(GateSettings)], _problem)
    for name, value in values.items():
        if GateSettings.__dataclass_fields__[name].type == "float":
            values[name] = float(value)
    initial, longest = (
        values.get(n, getattr(GateSettings, n)) for n in ("backoff_initial_s", "backoff_max_s")
    )
    if initial > longest:
        order = _BACKOFF_ORDER.format(initial, longest).replace("_", "-")
        raise InputError(f"{path}: [tool.bilantools.gates] {order}")
    return GateSettings(**values)


@dataclass(frozen=True)
class Health:
    """A verdict: `ok` when nothing blocks, else one line per blocker in `reasons`;
    `readings` holds the raw figures (JSON-ready) whatever the verdict."""

    ok: bool
    reasons: list[str]
    readings: dict[str, Any]


# One round trip. Ages use clock_timestamp(): now() is frozen in the caller's transaction.
# pg_current_wal_lsn() fails on a standby, hence the CASE (a standby may have cascaded
# replicas of its own).
_QUERY = """
SELECT pg_is_in_recovery(),
  (SELECT coalesce(json_agg(json_build_object(
      'name', r.application_name, 'client', host(r.client_addr), 'state', r.state,
      'replay_lag_s', extract(epoch FROM r.replay_lag)::float8,
      'gap_bytes', CASE WHEN NOT pg_is_in_recovery()
                   THEN pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::bigint END)
    ORDER BY r.application_name, r.pid), '[]') FROM pg_stat_replication r),
  (SELECT coalesce(json_agg(json_build_object(
      'pid', a.pid, 'user', a.usename, 'application', a.application_name, 'state', a.state,
      'age_s', extract(epoch FROM clock_timestamp() - a.xact_start)::float8,
      'query', left(regexp_replace(a.query, '\\s+', ' ', 'g'), 80))
    ORDER BY a.xact_start), '[]')
   FROM pg_stat_activity a
   WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
     AND a.backend_type = 'client backend' AND a.xact_start IS NOT NULL AND a.state <> 'idle'),
  (SELECT count(*) FROM pg_stat_activity a
   WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
     AND a.backend_type = 'client backend' AND a.state IS NULL),
  (SELECT coalesce(json_agg(json_build_object(
      'pid', l.pid, 'user', a.usename, 'lock', l.locktype, 'mode', l.mode,
      'relation', l.relation::regclass::text,
      'wait_s', extract(epoch FROM clock_timestamp() - l.waitstart)::float8,
      'blocked_by', pg_blocking_pids(l.pid))
    ORDER BY l.waitstart), '[]')
   FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
   WHERE NOT l.granted AND l.pid <> pg_backend_pid() AND a.datname = current_database()),
  (SELECT coalesce(json_agg(json_build_object(
      'pid', p.pid, 'schema', n.nspname, 'table', c.relname, 'phase', p.phase,
      'autovacuum', a.backend_type = 'autovacuum worker')
    ORDER BY p.pid), '[]')
   FROM pg_stat_progress_vacuum p
   JOIN pg_class c ON c.oid = p.relid
   JOIN pg_namespace n ON n.oid = c.relnamespace
   LEFT JOIN pg_stat_activity a ON a.pid = p.pid
   WHERE p.datname = current_database()),
  CASE WHEN pg_has_role('pg_read_all_settings', 'USAGE') THEN current_setting('data_directory') END,
  (SELECT coalesce(json_agg(json_build_object(
      'name', s.slot_name, 'type', s.slot_type, 'active', s.active,
      'retained_bytes', CASE WHEN NOT pg_is_in_recovery() AND s.restart_lsn IS NOT NULL
                        THEN pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint END)
    ORDER BY s.slot_name), '[]') FROM pg_replication_slots s)
"""
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def read_health(conn: psycopg.Connection, settings: GateSettings, tables: frozenset[str]) -> Health:
    """Read the server behind `conn` (one read-only query) and judge it by `settings`.

    `tables` are the tables the next migration touches, plain (``users``) or qualified
    (``public.users``): a vacuum of any other table does not block. A transaction `conn`
    was in is left as it was; one this call had to open is rolled back."""
    from psycopg import pq

    opened = not conn.autocommit and conn.info.transaction_status == pq.TransactionStatus.IDLE
    try:
        row = conn.execute(_QUERY).fetchone()
    finally:
        if opened:
            conn.rollback()
    assert row is not None
    in_recovery, replicas, transactions, hidden, waiters, vacuums, data_dir, slots = row
    for vacuum in vacuums:
        vacuum["touched"] = vacuum["table"] in tables or f"{vacuum['schema']}.{vacuum['table']}" in tables
    readings: dict[str, Any] = {
        "in_recovery": in_recovery,
        "replicas": replicas,
        "slots": slots,
        "long_transactions": [t for t in transactions if t["age_s"] > settings.max_transaction_age_s],
        "open_transactions": len(transactions),
        "hidden_sessions": hidden,
        "lock_waiters": waiters,
        "vacuums": vacuums,
        "disk": _disk(conn.info.host, data_dir),
    }
    return Health(not (reasons := _reasons(readings, settings)), reasons, readings)


def _disk(host: str, data_dir: str | None) -> dict[str, Any]:
    """Free space of the data directory when the server runs on this machine and we may
    see where its data lives; otherwise why not ("not visible" never blocks)."""
    if data_dir is None:
        return {"visible": False, "why": "not visible: data_directory needs pg_read_all_settings"}
    if not (host in _LOCAL_HOSTS or host.startswith("/")) or not Path(data_dir).is_dir():
        return {"visible": False, "why": f"not visible: {data_dir} is not on this machine"}
    usage = shutil.disk_usage(data_dir)
    return {"visible": True, "path": data_dir, "free_bytes": usage.free, "total_bytes": usage.total}


def _reasons(readings: dict[str, Any], settings: GateSettings) -> list[str]:
    """One line per blocker, naming the value, the limit and the object."""
    if readings["in_recovery"]:
        return ["standby: the server is in recovery (a standby is never a migration target)"]
    reasons = []
    for replica in readings["replicas"]:
        lag, gap = replica["replay_lag_s"], replica["gap_bytes"]
        # A replica that replayed all the primary wrote is not behind, whatever its last lag.
        if lag is not None and lag > settings.max_replica_lag_s and gap != 0:
            reasons.append(
                f"replica {replica['name'] or '?'} ({replica['client'] or 'local'}): replay lag "
                f"{lag:.1f} s > max_replica_lag_s {settings.max_replica_lag_s:g} ({gap} bytes behind)"
            )
    streaming = sum(1 for r in readings["replicas"] if r["state"] == "streaming")
    if streaming < settings.min_replicas:
        idle = [
            f"{s['name']} ({s['retained_bytes'] or 0} bytes of WAL kept)"
            for s in readings["slots"]
            if s["type"] == "physical" and not s["active"]
        ]
        why = f"inactive slot(s) {', '.join(idle)}" if idle else "a replica is disconnected or not streaming"
        reasons.append(f"{streaming} streaming replica(s) < min_replicas {settings.min_replicas}: {why}")
    for tx in readings["long_transactions"]:
        reasons.append(
            f"pid {tx['pid']} ({tx['user']}, {tx['application'] or 'no application_name'}, {tx['state']}): "
            f"transaction open {tx['age_s']:.1f} s > max_transaction_age_s "
            f"{settings.max_transaction_age_s:g}: {tx['query']}"
        )
    waiters = readings["lock_waiters"]
    if len(waiters) > settings.max_lock_waiters:
        named = "; ".join(
            f"pid {w['pid']} waits {w['wait_s'] or 0:.1f} s for {w['mode']} on "
            f"{w['relation'] or w['lock']}, blocked by pid {', '.join(map(str, w['blocked_by'])) or '?'}"
            for w in waiters
        )
        reasons.append(
            f"{len(waiters)} lock waiter(s) > max_lock_waiters {settings.max_lock_waiters}: {named}"
        )
    if settings.block_on_autovacuum:
        for vacuum in readings["vacuums"]:
            if vacuum["touched"]:
                kind = "autovacuum" if vacuum["autovacuum"] else "vacuum"
                reasons.append(
                    f"{kind} (pid {vacuum['pid']}, {vacuum['phase']}) on "
                    f"{vacuum['schema']}.{vacuum['table']}, a table the migration touches, "
                    "and block_on_autovacuum is on"
                )
    disk = readings["disk"]
    if disk["visible"] and disk["free_bytes"] < settings.min_free_disk_bytes:
        reasons.append(
            f"free disk {disk['free_bytes']} bytes < min_free_disk_bytes {settings.min_free_disk_bytes} "
            f"at {disk['path']}"
        )
    return reasons


def wait_until_healthy(
    connect: Callable[[], psycopg.Connection],
    settings: GateSettings,
    tables: frozenset[str],
    on_wait: Callable[[Health], None],
    stop: threading.Event,
) -> Health:
    """Read the target until it is healthy, pausing backoff_initial_s, doubled each time up
    to backoff_max_s, and calling `on_wait` before each pause; after wait_limit_s, or when
    `stop` is set, the last (not ok) reading with a last reason saying so. A standby is
    returned at once: waiting never makes it a target. A reading that fails (the server
    went away) raises DatabaseError: the target cannot be judged, so it is not run."""
    import psycopg

    deadline = time.monotonic() + settings.wait_limit_s
    pause = settings.backoff_initial_s
    with connect() as conn:
        while True:
            try:
                health = read_health(conn, settings, tables)
            except psycopg.Error as exc:  # the server went away, or a view is not readable
                raise DatabaseError(f"cannot read the health gates: {explain(exc)}") from None
            if health.ok or health.readings["in_recovery"]:
                return health
            left = deadline - time.monotonic()
            if left <= 0 or stop.is_set():
                why = (
                    "stopped while waiting for the gates"
                    if stop.is_set()
                    else f"still gated after wait_limit_s {settings.wait_limit_s:g}"
                )
                return Health(False, [*health.reasons, why], health.readings)
            on_wait(health)
            stop.wait(min(pause, left))
            pause = min(pause * 2, settings.backoff_max_s)
