"""One table as a DBA reads it (`bilantools inspect table NAME`): its CREATE script, its
constraints, the foreign keys out of it and into it, indexes, size, estimated rows, row
level security with its policies, and triggers.

Every name and definition comes from the server (`quote_ident`, `pg_get_*def`,
`pg_get_expr`), so the script is what PostgreSQL itself would print, not a re-spelling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

# The table named by the user's text (a parameter, read as to_regclass reads a name), if
# it is an ordinary or partitioned table: its oid, name, sizes, estimated rows, RLS.
_TABLE = (
    "SELECT c.oid, c.oid::regclass::text, pg_table_size(c.oid), pg_indexes_size(c.oid),"
    " pg_total_relation_size(c.oid), CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END,"
    " c.relrowsecurity, c.relforcerowsecurity"
    " FROM pg_class c WHERE c.oid = to_regclass(%s) AND c.relkind IN ('r', 'p')"
)
_COLUMNS = (
    "SELECT quote_ident(a.attname), format_type(a.atttypid, a.atttypmod), a.attnotnull,"
    " pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated"
    " FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
    " WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
)
# NOT NULL constraints (catalogued since PostgreSQL 18) are the columns' NOT NULL.
_CONSTRAINTS = (
    "SELECT quote_ident(conname), contype::text, pg_get_constraintdef(oid) FROM pg_constraint"
    " WHERE conrelid = %s AND contype <> 'n'"
    " ORDER BY CASE contype WHEN 'p' THEN 0 WHEN 'u' THEN 1 WHEN 'c' THEN 2 WHEN 'f' THEN 3 ELSE 4 END,"
    " conname"
)
_REFERENCED_BY = (
    "SELECT conrelid::regclass::text, quote_ident(conname), pg_get_constraintdef(oid) FROM pg_constraint"
    " WHERE confrelid = %s AND contype = 'f' ORDER BY 1, 2"
)
# Indexes that no constraint owns (those come with their constraint).
_INDEXES = (
    "SELECT quote_ident(i.relname), pg_get_indexdef(x.indexrelid), x.indisvalid,"
    " pg_relation_size(x.indexrelid), EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid"
    " AND k.conrelid = x.indrelid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
    " WHERE x.indrelid = %s ORDER BY i.relname"
)
_POLICIES = (
    "SELECT quote_ident(p.polname), p.polpermissive, CASE p.polcmd WHEN 'r' THEN 'SELECT'"
    " WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,"
    " CASE WHEN p.polroles = '{0}' THEN ARRAY['PUBLIC'] ELSE ARRAY(SELECT quote_ident(rolname)"
    " FROM pg_roles WHERE oid = ANY (p.polroles) ORDER BY 1) END,"
    " pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)"
    " FROM pg_policy p WHERE p.polrelid = %s ORDER BY p.polname"
)
_TRIGGERS = (
    "SELECT quote_ident(tgname), pg_get_triggerdef(oid), tgenabled <> 'D' FROM pg_trigger"
    " WHERE tgrelid = %s AND NOT tgisinternal ORDER BY tgname"
)


@dataclass(frozen=True)
class Column:
    name: str  # quoted as SQL needs it
    type: str
    not_null: bool
    default: str | None
    identity: str  # '', 'a' (ALWAYS) or 'd' (BY DEFAULT)
    generated: str  # '' or 's' (stored)

    @property
    def definition(self) -> str:
        """The column as a line of CREATE TABLE."""
        parts = [self.name, self.type]
        if self.generated:
            parts.append(f"GENERATED ALWAYS AS ({self.default}) STORED")
        elif self.identity:
            parts.append(f"GENERATED {'ALWAYS' if self.identity == 'a' else 'BY DEFAULT'} AS IDENTITY")
        elif self.default is not None:
            parts.append(f"DEFAULT {self.default}")
        if self.not_null:
            parts.append("NOT NULL")
        return " ".join(parts)


@dataclass(frozen=True)
class Constraint:
    name: str
    kind: str  # p, u, c, f, x (exclusion), t (trigger); NOT NULL is on its column
    definition: str


@dataclass(frozen=True)
class Reference:
    """A foreign key of another table (or this one) that references this table."""

    table: str
    name: str
    definition: str


@dataclass(frozen=True)
class Index:
    name: str
    definition: str
    valid: bool
    bytes: int
    of_constraint: bool  # a primary key's or unique constraint's own index


@dataclass(frozen=True)
class Policy:
    name: str
    permissive: bool
    command: str
    roles: list[str]
    using: str | None
    check: str | None

    def create_sql(self, table: str) -> str:
        text = f"CREATE POLICY {self.name} ON {table} AS {'PERMISSIVE' if self.permissive else 'RESTRICTIVE'}"
        text += f" FOR {self.command} TO {', '.join(self.roles)}"
        if self.using is not None:
            text += f" USING ({self.using})"
        if self.check is not None:
            text += f" WITH CHECK ({self.check})"
        return text + ";"


@dataclass(frozen=True)
class Trigger:
    name: str
    definition: str
    enabled: bool


@dataclass
class TableDetail:
    """Everything `inspect table` shows of one table."""

    name: str  # as the catalog names it: schema-qualified when not on the search_path
    table_bytes: int
    index_bytes: int
    total_bytes: int
    estimated_rows: int | None  # None: never analysed
    rls: bool
    force_rls: bool
    columns: list[Column] = field(default_factory=list)
    constraints: list[Constraint] = field(default_factory=list)
    referenced_by: list[Reference] = field(default_factory=list)
    indexes: list[Index] = field(default_factory=list)
    policies: list[Policy] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)

    @property
    def foreign_keys(self) -> list[Constraint]:
        """The foreign keys out of this table."""
        return [c for c in self.constraints if c.kind == "f"]

    def create_sql(self) -> str:
        """The table as a script: CREATE TABLE with its columns and constraints, then its
        other indexes, row level security, policies and triggers."""
        lines = [f"    {c.definition}" for c in self.columns]
        lines += [f"    CONSTRAINT {c.name} {c.definition}" for c in self.constraints]
        script = [f"CREATE TABLE {self.name} (\n" + ",\n".join(lines) + "\n);"]
        script += [f"{i.definition};" for i in self.indexes if not i.of_constraint]
        if self.rls:
            script.append(f"ALTER TABLE {self.name} ENABLE ROW LEVEL SECURITY;")
        if self.force_rls:
            script.append(f"ALTER TABLE {self.name} FORCE ROW LEVEL SECURITY;")
        script += [p.create_sql(self.name) for p in self.policies]
        script += [f"{t.definition};" for t in self.triggers]
        return "\n".join(script) + "\n"

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "foreign_keys": [asdict(c) for c in self.foreign_keys],
            "create_sql": self.create_sql(),
        }


def table_detail(conn: psycopg.Connection, name: str) -> TableDetail | None:
    """The table `name` (as to_regclass reads it: 'users', 'public.users', '"Odd"'), or
    None when there is no such table."""
    import psycopg

    try:
        row = conn.execute(_TABLE, (name,)).fetchone()
    except psycopg.errors.InvalidName:  # before PostgreSQL 16, to_regclass raises on "a b"
        conn.rollback()
        return None
    if row is None:
        return None
    oid, *facts = row
    detail = TableDetail(*facts)
    detail.columns = [Column(*r) for r in conn.execute(_COLUMNS, (oid,)).fetchall()]
    detail.constraints = [Constraint(*r) for r in conn.execute(_CONSTRAINTS, (oid,)).fetchall()]
    detail.referenced_by = [Reference(*r) for r in conn.execute(_REFERENCED_BY, (oid,)).fetchall()]
    detail.indexes = [Index(*r) for r in conn.execute(_INDEXES, (oid,)).fetchall()]
    detail.policies = [Policy(*r) for r in conn.execute(_POLICIES, (oid,)).fetchall()]
    detail.triggers = [Trigger(*r) for r in conn.execute(_TRIGGERS, (oid,)).fetchall()]
    return detail
