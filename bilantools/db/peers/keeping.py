"""Another tool's history kept in step (``[tool.bilantools] keep-peer-history``), so that a
team can switch back to that tool at any time.

Each apply and rollback writes the peer's table as the peer would, in the same transaction
as our own tracking row (for a ``transaction: off`` migration, in the transaction that
records it): both commit or neither does.

- golang-migrate: its one row is the highest version applied, ``dirty = false``; after a
  rollback the highest one left, or no row at all.
- dbmate: the version's row is inserted on apply and deleted on rollback.
- Flyway: apply inserts the row Flyway writes (next ``installed_rank``, version,
  description, type SQL, script, Flyway's checksum of the file as written, installed_by,
  execution time, success; a repeatable script's row has no version). A rollback inserts
  the UNDO_SQL row that Flyway Teams' ``undo`` writes, with the undo script's name and
  checksum: Flyway then sees the version as undone and pending again (rows are never
  deleted, as Flyway keeps them).
- Sqitch is not kept (see `bilantools.source.config.NO_SQITCH`).

The peer's table is created as its tool creates it when it does not exist yet, in the
first schema of the search_path, where the tool looks for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bilantools.db.peers import dbmate, flyway, golang_migrate, located, require_table

if TYPE_CHECKING:
    import psycopg

    from bilantools.db.history import Tracking
    from bilantools.source.files import Migration

Query = tuple[str, Sequence[object]]

TABLES = {golang_migrate.NAME: golang_migrate.TABLE, dbmate.NAME: dbmate.TABLE, flyway.NAME: flyway.TABLE}
_COLUMNS = {
    golang_migrate.NAME: golang_migrate.COLUMNS,
    dbmate.NAME: dbmate.COLUMNS,
    flyway.NAME: flyway.COLUMNS,
}
_CREATE = {
    "golang-migrate": (
        "CREATE TABLE IF NOT EXISTS {peer} (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)",
    ),
    "dbmate": ("CREATE TABLE IF NOT EXISTS {peer} (version varchar(128) PRIMARY KEY)",),
    "flyway": (
        "CREATE TABLE IF NOT EXISTS {peer} (installed_rank integer NOT NULL, version varchar(50),"
        " description varchar(200) NOT NULL, type varchar(20) NOT NULL, script varchar(1000) NOT NULL,"
        " checksum integer, installed_by varchar(100) NOT NULL,"
        " installed_on timestamp NOT NULL DEFAULT now(), execution_time integer NOT NULL,"
        " success boolean NOT NULL, CONSTRAINT flyway_schema_history_pk PRIMARY KEY (installed_rank))",
        "CREATE INDEX IF NOT EXISTS flyway_schema_history_s_idx ON {peer} (success)",
    ),
}
_GOLANG = (
    "DELETE FROM {peer}",
    "INSERT INTO {peer} (version, dirty) SELECT max(version::numeric)::bigint, false FROM {history}"
    " WHERE success HAVING count(*) > 0",
)
_DBMATE_APPLY = "INSERT INTO {peer} (version) VALUES (%s) ON CONFLICT (version) DO NOTHING"
_DBMATE_ROLLBACK = "DELETE FROM {peer} WHERE version = %s"
_FLYWAY = (
    "INSERT INTO {peer} (installed_rank, version, description, type, script, checksum, installed_by,"
    " execution_time, success) SELECT coalesce(max(installed_rank), 0) + 1, %s, %s, %s, %s, %s,"
    " current_user, (extract(epoch FROM clock_timestamp() - now()) * 1000)::int, true FROM {peer}"
)


def _render(template: str, tracking: Tracking) -> str:
    from psycopg import sql

    assert tracking.peer is not None
    names = {
        "peer": sql.Identifier(tracking.peer_schema, TABLES[tracking.peer]),
        "history": sql.SQL(tracking.name("schema_migrations")),
    }
    return sql.SQL(template).format(**names).as_string(None)


def prepare(conn: psycopg.Connection, tracking: Tracking) -> None:
    """Before a run that keeps the peer's table: create it as its tool would when absent,
    and refuse a table of that name that is not the tool's."""
    from psycopg import sql

    if tracking.peer is None:
        return
    table = sql.Identifier(tracking.peer_schema, TABLES[tracking.peer])
    with conn.transaction():
        for template in _CREATE[tracking.peer]:
            conn.execute(sql.SQL(template).format(peer=table))
    label, columns = located(conn, TABLES[tracking.peer], tracking.peer_schema)
    require_table(tracking.peer, label, columns, _COLUMNS[tracking.peer], exact=tracking.peer != "flyway")


def writes(tracking: Tracking, m: Migration, action: str) -> list[Query]:
    """The peer's table written as its tool would after `action` ran for `m` (after our
    own tracking write, in its transaction)."""
    if tracking.peer is None:
        return []
    if tracking.peer == "golang-migrate":
        return [(_render(template, tracking), ()) for template in _GOLANG]
    if tracking.peer == "dbmate":
        return [(_render(_DBMATE_APPLY if action == "apply" else _DBMATE_ROLLBACK, tracking), (m.version,))]
    from bilantools.source.layouts.flyway import describe, flyway_checksum

    script = m.script if action == "apply" else m.rollback
    assert script is not None
    # a file of another layout (keep-peer-history = "flyway" on our own) as Flyway would name it
    version: str | None = m.version
    description, kind = m.name.replace("_", " "), "SQL" if action == "apply" else "UNDO_SQL"
    named = describe(script.path.name)
    if named is not None:
        version, description, kind = named.version, named.description, named.type
    checksum = flyway_checksum(script.path.read_text(encoding="utf-8"))
    return [(_render(_FLYWAY, tracking), (version, description, kind, script.path.name, checksum))]
