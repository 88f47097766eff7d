"""Other tools' histories: what golang-migrate, dbmate, Flyway and Sqitch say is applied.

Each module reads its tool's own table as that tool writes it (`read`); `keeping` writes
golang-migrate's, dbmate's and Flyway's as those tools would, for a team that may switch
back (keep-peer-history). `pair` matches what a peer says is applied with the migration
files, by the layout's keys and order, for `bilantools adopt`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bilantools.errors import InputError, RefusedError, option

if TYPE_CHECKING:
    import psycopg

    from bilantools.source.files import Migration, MigrationSet


@dataclass(frozen=True)
class PeerRow:
    """One migration the peer says is applied, as it stores it."""

    key: str  # its version as the layout reads it (Sqitch: the plan's key of the change)
    description: str | None = None
    applied_at: datetime | None = None
    checksum: str | None = None
    through: bool = False  # every earlier migration is applied too (golang's one row, a baseline)


@dataclass(frozen=True)
class PeerHistory:
    tool: str
    table: str  # where it was read, as users name it (public.schema_migrations)
    rows: list[PeerRow] = field(default_factory=list)


@dataclass(frozen=True)
class Pairing:
    """The peer's rows matched with the migration files."""

    applied: list[Migration]  # in the directory's order
    no_file: list[PeerRow]  # rows naming no migration of the directory
    never: list[Migration]  # files the peer never applied


@dataclass(frozen=True)
class Peer:
    name: str  # the tool, as --from and the layouts name it
    read: Callable[[psycopg.Connection, Path], PeerHistory]  # the target, the migrations directory


def pair(history: PeerHistory, migrations: MigrationSet) -> Pairing:
    """Which migrations the peer's rows say are applied: a row's own, and for a `through`
    row every migration before it (golang-migrate keeps only the current version)."""
    applied: set[str] = set()
    no_file: list[PeerRow] = []
    for row in history.rows:
        found = migrations.find(row.key)
        if found is None:
            no_file.append(row)
        else:
            applied.add(found.version)
        upto = found.order if found is not None else migrations.order_of(row.key)
        if row.through and upto is not None:
            applied.update(m.version for m in migrations if m.order <= upto)
    listed = list(migrations)
    return Pairing(
        [m for m in listed if m.version in applied], no_file, [m for m in listed if m.version not in applied]
    )


def located(conn: psycopg.Connection, table: str, schema: str | None = None) -> tuple[str, dict[str, str]]:
    """(`table` qualified as users read it, its columns and types; empty when absent), in
    `schema`, else in the first schema of the search_path, where the peer tools create it."""
    row = conn.execute("SELECT coalesce(%s, current_schema())", (schema,)).fetchone()
    where = str(row[0]) if row and row[0] else "public"
    columns = conn.execute(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
        " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (where, table),
    ).fetchall()
    return f"{where}.{table}", dict(columns)


def require_table(
    tool: str, label: str, columns: dict[str, str], needs: tuple[str, ...], exact: bool = False
) -> None:
    """InputError when the peer's table is absent or is not the peer's: it lacks one of
    `needs`, or (`exact`) has another column too."""
    if not columns:
        raise InputError(
            f"no {tool} history here: {label} does not exist; run adopt on the database {tool} migrated, "
            f"or name the tool that did with {option('source', 'TOOL')}"
        )
    if not set(needs) <= set(columns) or (exact and set(columns) != set(needs)):
        if {"success", "error_message", "checksum"} <= set(columns):
            raise InputError(
                f"{label} is bilantools' own history, not {tool}'s: there is no {tool} history to adopt "
                f"here; name the tool that migrated the database with {option('source', 'TOOL')}"
            )
        shown = ", ".join(f"{name} {kind}" for name, kind in columns.items())
        raise InputError(
            f"{label} is not {tool}'s history (its columns are {shown}, {tool}'s are {', '.join(needs)}); "
            f"name the tool that wrote it with {option('source', 'TOOL')}"
        )


def fetch(
    conn: psycopg.Connection, tool: str, table: str, needs: tuple[str, ...], select: str, exact: bool = False
) -> tuple[str, list[tuple[Any, ...]]]:
    """(where the peer's `table` is, the rows of `select` from it: a constant query naming
    it {table}); InputError when it is absent or not the peer's (see `require_table`)."""
    from psycopg import sql

    label, columns = located(conn, table)
    require_table(tool, label, columns, needs, exact)
    schema = label.split(".", 1)[0]
    return label, conn.execute(sql.SQL(select).format(table=sql.Identifier(schema, table))).fetchall()


def refuse(tool: str, label: str, reason: str, fix: str) -> RefusedError:
    return RefusedError(
        f"refusing to adopt {tool}'s history ({label}): {reason}; nothing was recorded: {fix}"
    )


def peers() -> dict[str, Peer]:
    """Every peer tool whose history bilantools reads, by name."""
    from bilantools.db.peers import dbmate, flyway, golang_migrate, sqitch

    return {
        module.NAME: Peer(module.NAME, module.read) for module in (golang_migrate, dbmate, flyway, sqitch)
    }


def peer(name: str) -> Peer:
    """The peer tool `name`; InputError naming the known ones."""
    known = peers()
    if name not in known:
        raise InputError(
            f"bilantools cannot read {name!r}'s history; name one of {', '.join(known)} with "
            f"{option('source', 'TOOL')}"
        )
    return known[name]
