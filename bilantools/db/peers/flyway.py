"""Flyway's history: ``flyway_schema_history`` in the first schema of the search_path
(Flyway's default schema), one row per change in ``installed_rank`` order.

A row of type SQL, JDBC (and Flyway's other script kinds) with a version applied that
version; with a null version it is a repeatable script's latest run (its checksum tells
which content ran), keyed ``R__<description>`` as the Flyway layout tracks it. BASELINE
marks every version up to its own as applied; UNDO_SQL and UNDO_JDBC undo their version,
DELETE rows (``flyway repair``) cancel it; the SCHEMA row (Flyway created the schema) is no
migration. A failed row (``success = false``: only a
script that ran outside a transaction leaves one on PostgreSQL) stops the adoption:
Flyway itself refuses to migrate until ``flyway repair``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bilantools.db.peers import PeerHistory, PeerRow, fetch, refuse

if TYPE_CHECKING:
    import psycopg

NAME = "flyway"
TABLE = "flyway_schema_history"
COLUMNS = (
    "installed_rank",
    "version",
    "description",
    "type",
    "script",
    "checksum",
    "installed_by",
    "installed_on",
    "execution_time",
    "success",
)
_UNDONE = ("UNDO_SQL", "UNDO_JDBC", "UNDO_SCRIPT", "DELETE")
_SKIPPED = ("SCHEMA",)


def read(conn: psycopg.Connection, directory: Path) -> PeerHistory:
    """What flyway_schema_history says is applied (`directory` is not needed)."""
    label, rows = fetch(
        conn,
        NAME,
        TABLE,
        COLUMNS,
        "SELECT installed_rank, version, description, type, script, checksum::text, installed_on, success"
        " FROM {table} ORDER BY installed_rank",
    )
    kept: dict[str, PeerRow] = {}
    for rank, version, description, kind, script, checksum, installed_on, success in rows:
        if not success:
            raise refuse(
                NAME,
                label,
                f"installed_rank {rank} ({script}, version {version or 'repeatable'}) failed",
                "fix what it left half-done, run `flyway repair` to remove the failed row, and adopt again",
            )
        if kind in _SKIPPED:
            continue
        key = version if version is not None else script.removesuffix(".sql")  # R__<description>
        if kind in _UNDONE:
            kept.pop(key, None)
            continue
        kept.pop(key, None)  # a repeatable's latest run wins, and goes last
        kept[key] = PeerRow(key, description, installed_on, checksum, through=kind == "BASELINE")
    return PeerHistory(NAME, label, list(kept.values()))
