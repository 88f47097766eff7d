"""dbmate's history: ``schema_migrations(version varchar(128) primary key)`` in the first
schema of the search_path, one row per applied migration (a rollback deletes its row)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bilantools.db.peers import PeerHistory, PeerRow, located, require_table

if TYPE_CHECKING:
    import psycopg

NAME = "dbmate"
TABLE = "schema_migrations"
COLUMNS = ("version",)


def read(conn: psycopg.Connection, directory: Path) -> PeerHistory:
    """What the tool's table in the target says is applied (`directory` is not needed)."""
    from psycopg import sql

    label, columns = located(conn, TABLE)
    require_table(NAME, label, columns, COLUMNS, exact=True)
    schema = label.split(".", 1)[0]
    rows = conn.execute(
        sql.SQL("SELECT version FROM {} ORDER BY version").format(sql.Identifier(schema, TABLE))
    ).fetchall()
    return PeerHistory(NAME, label, [PeerRow(str(version)) for (version,) in rows])
