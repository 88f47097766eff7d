"""The commands the engine sends for one unit (a migration or a rollback script), built
once and either sent (`batched`, `autocommit`) or printed (`recording`): so what `plan
--sql` shows is what a run sends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bilantools.db import history, integrity
from bilantools.db.engine.limits import limits_sql
from bilantools.source.headers import Limits
from bilantools.source.statements import Statement

if TYPE_CHECKING:
    import psycopg

    from bilantools.source.files import Migration


@dataclass(frozen=True)
class Command:
    """One statement as sent: `what` it is ('start': BEGIN and the limits; 'statement':
    the script's statement number `statement`; the stages 'reset', 'write', 'check'
    (see integrity.STAGES); 'commit'), its text and parameters."""

    what: str
    query: str
    params: Sequence[object] | Mapping[str, Any] | None = None
    statement: int | None = None
    tracking: bool = False  # the tracking write, whose one row is the unit's duration


def tracking_write(
    actor: history.Actor, m: Migration, action: str, duration_ms: int | None = None
) -> Command:
    """The unit's tracking change: its success recorded, or its row removed after a rollback."""
    if action == "apply":
        query, params = history.success_sql(actor, m.version, m.name, m.checksum, duration_ms)
    else:
        query, params = history.forget_sql(actor, m.version, m.checksum, duration_ms)
    return Command("write", query, params, tracking=True)


def peer_writes(actor: history.Actor, m: Migration, action: str) -> list[Command]:
    """The peer tool's history written as that tool would, after ours (keep-peer-history)."""
    from bilantools.db.peers import keeping

    return [Command("write", query, params) for query, params in keeping.writes(actor.tracking, m, action)]


def in_transaction(
    actor: history.Actor,
    guard: integrity.Guard,
    m: Migration,
    statements: list[Statement],
    action: str,
    limits: Limits,
    durable: bool,
) -> list[Command]:
    """BEGIN, the limits, the statements, the session reset and the limits again, the
    tracking change, the proof that the tracking objects are as expected (which advances
    `guard` past this unit) and COMMIT. Unless `durable`, the commit does not wait for
    the disk (synchronous_commit off)."""
    settings = limits_sql(limits, True, durable)
    commands = [Command("start", "BEGIN")]
    if settings is not None:
        commands.append(Command("start", *settings))
    commands.extend(Command("statement", stmt.text, None, number) for number, stmt in enumerate(statements))
    commands.extend(Command("reset", query) for query in integrity.RESET_SESSION)
    if settings is not None:
        commands.append(Command("write", *settings))
    commands.append(tracking_write(actor, m, action))
    commands.extend(peer_writes(actor, m, action))
    commands.append(Command("check", *guard.proof(m.version, m.checksum, action)))
    commands.append(Command("commit", "COMMIT"))
    return commands


def send(conn: psycopg.Connection, command: Command) -> psycopg.Cursor[Any]:
    """Hand `command` to psycopg: the one place the executors send a unit's statements
    (a migration's own, or the engine's, built from constants with bound values)."""
    return conn.execute(command.query, command.params or None)
