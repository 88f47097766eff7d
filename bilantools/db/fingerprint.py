"""A stable fingerprint of a schema, and the per-object details it is built from.

Two databases with the same tables, columns (name, type, nullability, default),
constraints, indexes, RLS flags, policies, triggers, functions (full definitions),
views, sequences, types and extensions, and the same row count in every table, have the
same fingerprint, whatever their OIDs, column order or history. Rollback round trips,
drift and backup checks all compare these. One catalog query per kind of object, plus
one query for every row count.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import psycopg

TRACKING_TABLES = ("schema_migrations", "schema_migration_events")

# Each query returns (kind, name, detail) rows for the objects of schema %(schema)s.
_QUERIES: tuple[str, ...] = (
    """SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view'
                             WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table' END,
              c.relname,
              concat_ws(' ', 'rls=' || c.relrowsecurity, 'force=' || c.relforcerowsecurity,
                        CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END)
       FROM pg_class c
       WHERE c.relnamespace = quote_ident(%(schema)s)::regnamespace
         AND c.relkind IN ('r', 'p', 'v', 'm', 'f')""",
    """SELECT 'column', c.relname || '.' || a.attname,
              concat_ws(' ', format_type(a.atttypid, a.atttypmod),
                        CASE WHEN a.attnotnull THEN 'not null' END,
                        'default ' || pg_get_expr(d.adbin, d.adrelid),
                        CASE WHEN a.attidentity <> '' THEN 'identity ' || a.attidentity::text END,
                        CASE WHEN a.attgenerated <> '' THEN 'generated' END)
       FROM pg_attribute a
       JOIN pg_class c ON c.oid = a.attrelid
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
       WHERE c.relnamespace = quote_ident(%(schema)s)::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
         AND a.attnum > 0 AND NOT a.attisdropped""",
    """SELECT 'constraint', c.relname || '.' || k.conname,
              pg_get_constraintdef(k.oid) || CASE WHEN k.convalidated THEN '' ELSE ' (not valid)' END
       FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
       WHERE k.connamespace = quote_ident(%(schema)s)::regnamespace
         AND k.contype <> 'n'  -- PostgreSQL 18 lists NOT NULL here too; columns carry it""",
    """SELECT 'index', i.relname,
              pg_get_indexdef(i.oid) || CASE WHEN x.indisvalid THEN '' ELSE ' (invalid)' END
       FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
       WHERE i.relnamespace = quote_ident(%(schema)s)::regnamespace""",
    """SELECT 'policy', tablename || '.' || policyname,
              concat_ws(' ', permissive, roles::text, cmd, 'using ' || qual, 'check ' || with_check)
       FROM pg_policies WHERE schemaname = %(schema)s""",
    """SELECT 'trigger', c.relname || '.' || t.tgname, pg_get_triggerdef(t.oid) || ' ' || t.tgenabled::text
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
       WHERE c.relnamespace = quote_ident(%(schema)s)::regnamespace AND NOT t.tgisinternal""",
    """SELECT 'function', p.oid::regprocedure::text, md5(pg_get_functiondef(p.oid))
       FROM pg_proc p
       WHERE p.pronamespace = quote_ident(%(schema)s)::regnamespace AND p.prokind IN ('f', 'p', 'w')""",
    """SELECT 'sequence', c.relname,
              concat_ws(' ', format_type(s.seqtypid, NULL), s.seqincrement, s.seqmin, s.seqmax, s.seqcycle)
       FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
       WHERE c.relnamespace = quote_ident(%(schema)s)::regnamespace""",
    """SELECT 'type', t.typname,
              concat_ws(' ', t.typtype,
                        (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                         FROM pg_enum e WHERE e.enumtypid = t.oid),
                        CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END)
       FROM pg_type t
       WHERE t.typnamespace = quote_ident(%(schema)s)::regnamespace AND t.typtype IN ('e', 'd', 'c')
         AND (t.typtype <> 'c' OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')""",
    """SELECT 'extension', extname, extversion FROM pg_extension""",
)

ObjectKey = tuple[str, str]

# Casts the server adds or moves when it re-parses its own output (a dump restored):
# `status IN ('a')` on a varchar column is stored as `(status)::text = ANY ((ARRAY[...])::text[])`
# when created and as `... ANY (ARRAY[('a'::varchar)::text])` after a restore. Same meaning.
_CAST = re.compile(
    r"::(?:\"[^\"]+\"|character varying|timestamp with(?:out)? time zone|time with(?:out)? time zone"
    r"|double precision|bit varying|[a-z_][a-z0-9_.]*)(?:\(\d+(?:,\d+)?\))?(?:\[\])*",
    re.I,
)
_EXPRESSION_KINDS = ("constraint", "index", "policy", "view", "materialized view")


def _normalise(detail: str, kind: str) -> str:
    """An expression without casts, parentheses and spaces: stable across dump and restore.
    View bodies also lose their column qualifiers, which PostgreSQL 18 no longer prints
    when they are unambiguous (`m.version` becomes `version`)."""
    if kind in ("view", "materialized view"):
        detail = re.sub(r"\b[a-z_][a-z0-9_]*\.(?=[a-z_\"])", "", detail)
    return re.sub(r"[()\s]", "", _CAST.sub("", detail))


@dataclass(frozen=True)
class Fingerprint:
    """The hash and the (kind, name) -> detail map it was computed from; `sources`, when
    asked for, holds the readable text of the objects whose detail is a hash (functions),
    so that a changed one can be shown as a diff."""

    digest: str
    objects: dict[ObjectKey, str]
    sources: dict[ObjectKey, str] = field(default_factory=dict, compare=False)

    def readable(self, key: ObjectKey) -> str:
        """What a person compares: the source when kept, else the detail."""
        return self.sources.get(key, self.objects[key])

    def diff(self, other: Fingerprint) -> list[tuple[str, str, Literal["added", "removed", "changed"]]]:
        """(kind, name, change) for each object that differs, `other` being the newer state."""
        changes: list[tuple[str, str, Literal["added", "removed", "changed"]]] = []
        for key in sorted(self.objects.keys() | other.objects.keys()):
            if key not in other.objects:
                changes.append((*key, "removed"))
            elif key not in self.objects:
                changes.append((*key, "added"))
            elif self.objects[key] != other.objects[key]:
                changes.append((*key, "changed"))
        return changes


_SOURCES = """SELECT 'function', p.oid::regprocedure::text, pg_get_functiondef(p.oid)
   FROM pg_proc p
   WHERE p.pronamespace = quote_ident(%(schema)s)::regnamespace AND p.prokind IN ('f', 'p', 'w')"""


def fingerprint(
    conn: psycopg.Connection, schema: str = "public", rows: bool = True, sources: bool = False
) -> Fingerprint:
    """Fingerprint `schema`; with `rows`, include every table's row count (tracking tables
    excepted: their rows are history, not schema); with `sources`, keep the functions'
    definitions (verify and drift show what changed in them)."""
    objects: dict[ObjectKey, str] = {}
    params = {"schema": schema}
    for query in _QUERIES:
        for kind, name, detail in conn.execute(query, params).fetchall():
            objects[(kind, name)] = (
                _normalise(detail or "", kind) if kind in _EXPRESSION_KINDS else detail or ""
            )
    if rows:
        objects.update(count_rows(conn, schema))
    text = "\n".join(f"{k}\t{n}\t{d}" for (k, n), d in sorted(objects.items()))
    kept = {}
    if sources:
        kept = {(kind, name): source for kind, name, source in conn.execute(_SOURCES, params).fetchall()}
    return Fingerprint(hashlib.sha256(text.encode("utf-8")).hexdigest(), objects, kept)


def count_rows(conn: psycopg.Connection, schema: str) -> dict[ObjectKey, str]:
    from psycopg import sql

    names = [
        r[0]
        for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = quote_ident(%s)::regnamespace"
            " AND relkind IN ('r', 'p') AND NOT relispartition ORDER BY relname",
            (schema,),
        ).fetchall()
        if r[0] not in TRACKING_TABLES
    ]
    if not names:
        return {}
    query = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {}, count(*) FROM {}.{}").format(
            sql.Literal(name), sql.Identifier(schema), sql.Identifier(name)
        )
        for name in names
    )
    return {("rows", name): str(count) for name, count in conn.execute(query).fetchall()}
