"""dbmate's history: ``schema_migrations(version varchar(128) primary key)`` in the first
schema of the search_path, one row per applied migration (a rollback deletes its row)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bilantools.db.peers import PeerHistory, PeerRow, fetch

if TYPE_CHECKING:
    import psycopg

NAME = "dbmate"
TABLE = "schema_migrations"
COLUMNS = ("version",)


def read(conn: psycopg.Connection, directory: Path) -> PeerHistory:
    """What the tool's table in the target says is applied (`directory` is not needed)."""
    label, rows = fetch(conn, NAME, TABLE, COLUMNS, "SELECT version FROM {table} ORDER BY version", True)
    return PeerHistory(NAME, label, [PeerRow(str(version)) for (version,) in rows])
