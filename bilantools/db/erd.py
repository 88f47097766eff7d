"""The live schema as an entity-relationship model (`bilantools erd`): its tables, the
columns that make keys (primary and foreign), and the foreign keys between tables.

Two catalog queries whatever the number of tables. The model is drawn by `render/erd.py`;
a category (categories.toml) keeps its own tables and, drawn apart, the tables outside it
that they reference or are referenced by.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bilantools.errors import InputError, option
from bilantools.source.categories import UNCATEGORIZED

if TYPE_CHECKING:
    import psycopg

# Every column of the schema's tables (partitions left out: their parent stands for them),
# with whether it is in the primary key or in a foreign key. The schema is bound.
_COLUMNS = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p'
               AND a.attnum = ANY (k.conkey)),
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'f'
               AND a.attnum = ANY (k.conkey))
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relnamespace = quote_ident(%(schema)s)::regnamespace AND c.relkind IN ('r', 'p')
  AND NOT c.relispartition
ORDER BY c.relname, a.attnum
"""
# Each foreign key from a table of the schema: its columns and the referenced table's
# (named as the catalog names it: schema-qualified when outside the search_path).
_FOREIGN_KEYS = """
SELECT c.relname, k.conname,
       ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i),
       CASE WHEN r.relnamespace = c.relnamespace THEN r.relname::text ELSE k.confrelid::regclass::text END,
       ARRAY(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.i)
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class r ON r.oid = k.confrelid
WHERE k.contype = 'f' AND c.relnamespace = quote_ident(%(schema)s)::regnamespace AND NOT c.relispartition
ORDER BY c.relname, k.conname
"""


@dataclass(frozen=True)
class KeyColumn:
    name: str
    type: str
    not_null: bool
    primary: bool
    foreign: bool


@dataclass(frozen=True)
class ForeignKey:
    table: str
    name: str
    columns: list[str]
    references: str
    referenced_columns: list[str]


@dataclass
class SchemaModel:
    """Tables with their columns, the foreign keys between them, and `outside`: tables
    not in this model that its foreign keys lead to or come from (drawn as names only)."""

    schema: str
    tables: dict[str, list[KeyColumn]] = field(default_factory=dict)
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def only(self, names: list[str]) -> SchemaModel:
        """The model of the tables among `names` (those the database has), with the foreign
        keys touching them and the tables at their other end as `outside`."""
        kept = {n: self.tables[n] for n in names if n in self.tables}
        keys = [k for k in self.foreign_keys if k.table in kept or k.references in kept]
        ends = {k.table for k in keys} | {k.references for k in keys}
        return SchemaModel(self.schema, kept, keys, sorted(ends - kept.keys()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "tables": [
                {"name": name, "columns": [c.__dict__ for c in columns]}
                for name, columns in self.tables.items()
            ],
            "foreign_keys": [k.__dict__ for k in self.foreign_keys],
            "outside": self.outside,
        }


def read_model(conn: psycopg.Connection, schema: str = "public") -> SchemaModel:
    """The model of every table of `schema`."""
    model = SchemaModel(schema)
    for table, *column in conn.execute(_COLUMNS, {"schema": schema}).fetchall():
        model.tables.setdefault(table, []).append(KeyColumn(*column))
    model.foreign_keys = [
        ForeignKey(*row) for row in conn.execute(_FOREIGN_KEYS, {"schema": schema}).fetchall()
    ]
    return model


def require_category(categories: dict[str, list[str]], category: str) -> None:
    """InputError unless `category` is one of `categories` (or the uncategorized rest)."""
    if category not in categories and category != UNCATEGORIZED:
        choices = ", ".join([*categories, UNCATEGORIZED])
        raise InputError(
            f"unknown category '{category}': choose one of {choices} ({option('category', 'NAME')})"
        )


def of_category(model: SchemaModel, categories: dict[str, list[str]], category: str) -> SchemaModel:
    """The part of `model` that is `category`: its listed tables, or for the uncategorized
    rest every table listed nowhere."""
    listed = {t for tables in categories.values() for t in tables}
    return model.only(
        categories[category] if category in categories else [t for t in model.tables if t not in listed]
    )
