"""Inspect a live schema as pandas DataFrames: tables, columns, indexes, constraints, RLS,
policies, triggers, functions, sequences, extensions.

Each function sends exactly ONE catalog query, whatever the number of tables (a schema of
5,000 tables costs the same number of round trips as one of 45; `bench/catalog_scale.py`
measures it), and returns a DataFrame with the documented columns in that order, sorted by
table (when there is one) then name. The DataFrames are for notebooks and scripts: filter
them with pandas instead of writing catalog SQL (``idx[idx.unused]``,
``rls(conn).query("enabled_without_policy")``).

Scope: the relations of `schema` (default ``public``). "Tables" are ordinary and partitioned
tables; partitions are not listed on their own: a partitioned table's sizes and row estimate
add up its partitions', so nothing is counted twice. Every function only reads, and needs
no privilege beyond the catalog's (a sequence this role may not read shows no last value);
`sequences` alone takes locks, see there.

pandas is imported inside each function so that importing this module (or running
``bilantools status``) does not pay for it. Text columns have pandas' default string
inference: a missing value (no default, no duplicate) is NaN, or None in a column where
every value is missing, so test with ``isna()``/``notna()``, never ``is None``.

Cost: 0.01-0.5 s per call at 5,000 tables (bench/results/catalog_scale.md), mostly the
server computing per-object values (file sizes, index definitions). On a server with JIT
(Debian's builds), a query whose estimated cost exceeds ``jit_above_cost`` is compiled
first, for about a second; the queries keep their estimates honest and stay below it up
to roughly 15,000 tables. Beyond that, ``SET jit = off`` on the connection saves it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bilantools.db import catalog_queries as queries

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]
    import psycopg

SUMMARY_KEYS = (
    "tables",
    "tables_without_primary_key",
    "total_bytes",
    "indexes",
    "invalid_indexes",
    "constraints_not_validated",
    "foreign_keys_without_index",
    "rls_tables",
    "rls_without_policy",
    "policies",
    "triggers",
    "disabled_triggers",
    "functions",
    "definer_without_search_path",
    "sequences",
    "extensions",
)


def _frame(
    conn: psycopg.Connection,
    query: str,
    params: dict[str, Any],
    dtypes: dict[str, str],
) -> pd.DataFrame:
    """Run `query` once and build a DataFrame named after its result columns.

    `dtypes` fixes the types that pandas would otherwise infer from the values, so an
    empty result, or one where every value is NULL, has the same dtypes as a full one."""
    import pandas

    cursor = conn.execute(query, params)
    rows = cursor.fetchall()
    names = [d.name for d in cursor.description or ()]
    frame = pandas.DataFrame.from_records(rows, columns=names)
    return frame.astype(dtypes) if dtypes else frame


def tables(conn: psycopg.Connection, schema: str = "public") -> pd.DataFrame:
    """One row per table (ordinary or partitioned; partitions are folded into their parent).

    Columns:
      table            name
      estimated_rows   float: the planner's estimate (pg_class.reltuples), NaN when unknown
                       (never vacuumed nor analyzed); not a count, but free to read
      table_bytes      pg_table_size: heap, free space and visibility maps, TOAST
      index_bytes      pg_indexes_size: all its indexes
      total_bytes      table_bytes + index_bytes, i.e. pg_total_relation_size
      has_primary_key  a table without one cannot be replicated logically with UPDATE/DELETE
                       and its duplicate rows cannot be told apart
      rls_enabled, rls_forced   row level security on; forced also for the table owner
      partitioned      a partitioned table: its sizes and estimate add up its leaf partitions
      partitions       number of leaf partitions (0 for an ordinary table)
    """
    return _frame(
        conn,
        queries.TABLES_SQL,
        {"schema": schema},
        {
            "estimated_rows": "float64",
            "table_bytes": "int64",
            "index_bytes": "int64",
            "total_bytes": "int64",
            "has_primary_key": "bool",
            "rls_enabled": "bool",
            "rls_forced": "bool",
            "partitioned": "bool",
            "partitions": "int64",
        },
    )


def columns(conn: psycopg.Connection, schema: str = "public") -> pd.DataFrame:
    """One row per column of every table of `schema` (the tables of `tables()`).

    Columns: table, column, position (attnum, as information_schema's ordinal_position: it
    keeps the gaps left by dropped columns), type (format_type, e.g. ``character
    varying(255)``), nullable, default (expression text, missing when none), identity
    (``always``/``by default``/missing), generated (the expression of a generated column, missing
    otherwise; such a column has no default).
    """
    return _frame(conn, queries.COLUMNS_SQL, {"schema": schema}, {"position": "int64", "nullable": "bool"})


def indexes(conn: psycopg.Connection, schema: str = "public") -> pd.DataFrame:
    """One row per index on the relations of `schema`, with what makes an index worth dropping.

    Columns:
      table, index, definition (pg_get_indexdef), bytes (pg_relation_size)
      scans        index scans since `stats_reset` (pg_stat_user_indexes.idx_scan)
      unique, primary, valid (indisvalid: False after a failed CREATE INDEX CONCURRENTLY;
                   the index is maintained on every write but never used)
      unused       scans == 0 and the index enforces nothing (not unique, not primary, not
                   an exclusion constraint's): it only costs writes and space. Meaningful
                   only after the application has run a while since `stats_reset`
      duplicate_of another index of the same table with the same method, columns,
                   expressions, operator classes, collations, orderings and predicate: the
                   one to keep (primary key, else a constraint's, else unique, else valid,
                   else the oldest); missing (isna) on the one to keep and on indexes
                   without duplicate
      redundant_prefix_of  for a plain (non-unique) btree index: another btree index of the
                   same table with the same predicate whose key columns start with all of
                   this index's key columns, in order (the shortest such index); it serves
                   the same searches, so this one only costs writes
      stats_reset  when the database's statistics were last reset (pg_stat_database); NaT
                   when never reset: scans are then counted since the database's creation
                   or the last crash/immediate shutdown, which discards statistics. Also in
                   ``frame.attrs["stats_reset"]``.
    """
    frame = _frame(
        conn,
        queries.INDEXES_SQL,
        {"schema": schema},
        {
            "bytes": "int64",
            "scans": "int64",
            "unique": "bool",
            "primary": "bool",
            "valid": "bool",
            "unused": "bool",
        },
    )
    import pandas

    frame["stats_reset"] = pandas.to_datetime(frame["stats_reset"], utc=True)
    frame.attrs["stats_reset"] = frame["stats_reset"].iloc[0] if len(frame) else pandas.NaT
    return frame


def constraints(conn: psycopg.Connection, schema: str = "public") -> pd.DataFrame:
    """One row per table constraint: table, name, type (``primary key``, ``unique``,
    ``foreign key``, ``check``, ``exclusion``, ``trigger``), definition
    (pg_get_constraintdef), validated (False for a constraint added NOT VALID and not yet
    validated: existing rows may violate it, new ones are checked).

    NOT NULL constraints are left out (PostgreSQL 18 lists them, 15 does not): see
    ``columns(conn).nullable``.
    """
    return _frame(conn, queries.CONSTRAINTS_SQL, {"schema": schema}, {"validated": "bool"})


def foreign_keys_without_index(conn: psycopg.Connection, schema: str = "public") -> pd.DataFrame:
    """Foreign keys whose columns are not, in any order, the leading key columns of a valid
    index of their table that the server can use to check them.

    On every DELETE of a referenced row and every change of its key, the server looks up
    the referencing rows (``WHERE fk_col = $1 ...``); without such an index that lookup
    scans the whole table, once per row deleted. A partial index counts only when its
    predicate just says FK columns are NOT NULL (implied by the lookup's equality), so
    ``(user_id) WHERE revoked_at IS NULL`` does not cover ``user_id``.

    Columns: table, constraint, columns (comma-separated, quoted when needed),
    referenced_table (schema-qualified when outside the search_path), partly_covered_by (an
    index the check can still use because its first key column is one of the FK's, e.g.
    ``(survey_id)`` for a FK on ``(survey_id, organization_id)``: the lookup reads it and
    filters the other columns, usually fine when that column is selective; missing when
    there is none, so every check scans the table).
    """
    return _frame(conn, queries.FK_WITHOUT_INDEX_SQL, {"schema": schema}, {})


def rls(conn: psycopg.Connection, schema: str = "public") -> pd.DataFrame:
    """Row level security per table (every table of `tables()`, protected or not).

    Columns: table, rls_enabled, rls_forced, policies (count), commands (the policies'
    commands in the order SELECT, INSERT, UPDATE, DELETE, ALL, e.g. ``SELECT, ALL``; empty
    without policy), roles (comma-separated, ``public`` for all roles; missing without policy),
    enabled_without_policy (RLS on and no policy: every role but the owner and superusers
    sees and may change nothing, usually a forgotten CREATE POLICY), policies_without_rls
    (policies defined while RLS is off: they protect nothing).
    """
    return _frame(
        conn,
        queries.RLS_SQL,
        {"schema": schema},
        {
            "rls_enabled": "bool",
            "rls_forced": "bool",
            "policies": "int64",
            "enabled_without_policy": "bool",
            "policies_without_rls": "bool",
        },
    )


def policies(conn: psycopg.Connection, schema: str = "public") -> pd.DataFrame:
    """One row per RLS policy: table, policy, permissive (False: restrictive, ANDed with the
    permissive ones), command (SELECT, INSERT, UPDATE, DELETE or ALL), roles
    (comma-separated, ``public`` for all), using and with_check (expressions; missing when
    absent)."""
    return _frame(conn, queries.POLICIES_SQL, {"schema": schema}, {"permissive": "bool"})


def triggers(conn: psycopg.Connection, schema: str = "public") -> pd.DataFrame:
    """One row per user trigger (the internal ones of foreign keys are left out): table,
    trigger, definition (pg_get_triggerdef), enabled (``enabled``: fires normally;
    ``disabled``: ALTER TABLE ... DISABLE TRIGGER, never fires; ``replica``: fires only
    when session_replication_role is replica; ``always``: fires in every mode), function
    (regprocedure, e.g. ``update_updated_at_column()``)."""
    return _frame(conn, queries.TRIGGERS_SQL, {"schema": schema}, {})


def functions(conn: psycopg.Connection, schema: str = "public") -> pd.DataFrame:
    """One row per function, procedure or window function of `schema` (aggregates excluded).

    Columns: name (regprocedure: name and argument types, what DROP FUNCTION needs), kind,
    language, security_definer, search_path (the value pinned with SET search_path, missing
    when none), search_path_pinned, volatility (immutable, stable, volatile), returns
    (pg_get_function_result; missing for a procedure), owner (a SECURITY DEFINER function runs
    with the owner's rights), extension (the extension that owns it, missing if none),
    definer_without_search_path (SECURITY DEFINER without a pinned search_path: a caller
    can put its own objects first on the search_path and run them with the owner's rights).
    """
    return _frame(
        conn,
        queries.FUNCTIONS_SQL,
        {"schema": schema},
        {"security_definer": "bool", "search_path_pinned": "bool", "definer_without_search_path": "bool"},
    )


def sequences(
    conn: psycopg.Connection,
    schema: str = "public",
    threshold: float = 0.8,
    read_last_values: bool = True,
) -> pd.DataFrame:
    """One row per sequence, with how much of its range is used (a sequence that reaches its
    limit makes every INSERT fail).

    Columns: name, data_type, last_value (nullable Int64: NA when never used, not readable
    by this role, or not read), max_value, increment, cycle, owned_by (``table.column`` of a
    serial or identity column, missing otherwise), limit_value (the last value the sequence
    can give: its max_value, or the owning column's type bound when smaller, e.g. 2147483647
    for a bigint sequence behind an integer column; its min for a descending sequence),
    used_fraction (share of the range up to limit_value already consumed: 0 when never
    used, NaN when not readable or not read), close_to_max (used_fraction > `threshold`).

    Reading a sequence's last value locks it (RowExclusiveLock, as ``pg_sequences`` does)
    until the end of the transaction: on a connection that is not in autocommit, commit or
    roll back afterwards, or DDL on those sequences waits. ``read_last_values=False`` reads
    only the catalog and takes no lock.
    """
    return _frame(
        conn,
        queries.SEQUENCES_SQL,
        {"schema": schema, "threshold": threshold, "read": read_last_values},
        {
            "last_value": "Int64",
            "max_value": "Int64",
            "increment": "Int64",
            "cycle": "bool",
            "limit_value": "Int64",
            "used_fraction": "float64",
            "close_to_max": "bool",
        },
    )


def extensions(conn: psycopg.Connection) -> pd.DataFrame:
    """Installed extensions of the database (not of a schema): name, version, schema."""
    return _frame(conn, queries.EXTENSIONS_SQL, {}, {})


def summary(conn: psycopg.Connection, schema: str = "public") -> dict[str, int]:
    """Small totals for a one-line health check, in one query (see SUMMARY_KEYS): counts of
    tables, tables without primary key, bytes of tables, indexes, invalid indexes,
    constraints not validated, foreign keys without index, RLS tables, RLS tables without
    policy, policies, triggers, disabled triggers, functions, SECURITY DEFINER functions
    without search_path, sequences, extensions. Needs no pandas."""
    row = conn.execute(queries.SUMMARY_SQL, {"schema": schema}).fetchone()
    assert row is not None
    return dict(zip(SUMMARY_KEYS, (int(v) for v in row), strict=True))
