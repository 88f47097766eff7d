"""golang-migrate's history: ``schema_migrations(version bigint, dirty boolean)`` in the
first schema of the search_path, one row, the current version. Every migration up to it
is applied; ``dirty`` says the migration to it failed half-way and golang-migrate refuses
to go on until ``migrate force`` says what the schema is."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bilantools.db.peers import PeerHistory, PeerRow, fetch, refuse

if TYPE_CHECKING:
    import psycopg

NAME = "golang-migrate"
TABLE = "schema_migrations"
COLUMNS = ("version", "dirty")


def read(conn: psycopg.Connection, directory: Path) -> PeerHistory:
    """What the tool's table in the target says is applied (`directory` is not needed)."""
    label, rows = fetch(
        conn, NAME, TABLE, COLUMNS, "SELECT version::text, dirty FROM {table} ORDER BY version", True
    )
    for version, dirty in rows:
        if dirty:
            raise refuse(
                NAME,
                label,
                f"version {version} is dirty (its migration failed half-way)",
                "repair the schema by hand, then run golang-migrate's `migrate force <version>` with the "
                "version the schema is really at, and adopt again (a migration that fails under bilantools "
                "later is rolled back, and `bilantools repair` clears its failed row)",
            )
    return PeerHistory(NAME, label, [PeerRow(str(version), through=True) for version, _ in rows[-1:]])
