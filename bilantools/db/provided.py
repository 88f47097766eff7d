"""Objects declared `provided` in ``[tool.bilantools]``: are they on the target?

`check` takes them as existing (a hosting provider's ``auth`` schema, an extension the
DBA installs, a role); `apply` and `verify` confirm it on the target, so a migration that
needs one is refused before anything changes instead of failing half-way. One catalog
query answers for all of them: the names are bound as arrays, never written into the SQL,
and compared exactly as written (``table:"Users"`` is not needed: ``table:Users`` is the
table whose catalog name is ``Users``). An unqualified name is looked up in the schemas
of the search path; ``function:f(integer, text)`` is read by the server as a signature.

`rollback` does not ask: it undoes migrations that ran with these objects present, and
refusing an emergency rollback because, say, a role went away would block the recovery;
a script that needs a missing one fails in its own transaction and is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bilantools.errors import InputError, RefusedError
from bilantools.source.layouts.sqitch_plan import PROVIDED_KIND

if TYPE_CHECKING:
    import psycopg

# Relation kinds and the pg_class.relkind values each stands for (a table may be a
# partitioned or foreign one; a view, materialized).
RELKINDS = {"table": "rpf", "view": "vm", "sequence": "S", "index": "iI"}
# Kinds that name a table's member: "users.email", "auth.users.id".
MEMBERS = ("column", "constraint", "policy", "trigger", "rls")
# Kinds named by one identifier, with the statement that creates one.
CREATES = {"schema": "CREATE SCHEMA", "extension": "CREATE EXTENSION", "role": "CREATE ROLE"}
KINDS = (*CREATES, "function", "type", *RELKINDS, *MEMBERS)

# The schemas a name is looked up in: its own, or the search path's when unqualified.
_IN_SCHEMA = (
    "IN (SELECT n.oid FROM pg_namespace n WHERE n.nspname"
    " = ANY (CASE WHEN p.schema = '' THEN current_schemas(true) ELSE ARRAY[p.schema] END))"
)
_RELATION = f"SELECT c.oid FROM pg_class c WHERE c.relname = p.name AND c.relnamespace {_IN_SCHEMA}"
PRESENT_SQL = f"""
SELECT CASE
    WHEN p.kind = 'schema' THEN EXISTS (SELECT FROM pg_namespace WHERE nspname = p.name)
    WHEN p.kind = 'extension' THEN EXISTS (SELECT FROM pg_extension WHERE extname = p.name)
    WHEN p.kind = 'role' THEN EXISTS (SELECT FROM pg_roles WHERE rolname = p.name)
    WHEN p.kind = 'signature' THEN to_regprocedure(p.name) IS NOT NULL
    WHEN p.kind = 'function' THEN EXISTS (
        SELECT FROM pg_proc f WHERE f.proname = p.name AND f.pronamespace {_IN_SCHEMA})
    WHEN p.kind = 'type' THEN EXISTS (
        SELECT FROM pg_type t WHERE t.typname = p.name AND t.typnamespace {_IN_SCHEMA})
    WHEN p.kind = 'relation' THEN EXISTS (
        SELECT FROM pg_class c WHERE c.relname = p.name AND c.relnamespace {_IN_SCHEMA}
        AND strpos(p.member, c.relkind::text) > 0)
    WHEN p.kind = 'column' THEN EXISTS (
        SELECT FROM pg_attribute a WHERE a.attrelid IN ({_RELATION}) AND a.attname = p.member
        AND a.attnum > 0 AND NOT a.attisdropped)
    WHEN p.kind = 'constraint' THEN EXISTS (
        SELECT FROM pg_constraint k WHERE k.conrelid IN ({_RELATION}) AND k.conname = p.member)
    WHEN p.kind = 'policy' THEN EXISTS (
        SELECT FROM pg_policy y WHERE y.polrelid IN ({_RELATION}) AND y.polname = p.member)
    WHEN p.kind = 'trigger' THEN EXISTS (
        SELECT FROM pg_trigger g WHERE g.tgrelid IN ({_RELATION}) AND g.tgname = p.member)
    WHEN p.kind = 'rls' THEN EXISTS (
        SELECT FROM pg_class c WHERE c.oid IN ({_RELATION}) AND c.relrowsecurity)
    END,
    quote_ident(p.name)
FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[])
    WITH ORDINALITY AS p(kind, schema, name, member, i)
ORDER BY p.i
"""


@dataclass(frozen=True)
class Presence:
    """One provided entry as written ("extension:pgcrypto") and whether the target has it."""

    entry: str
    present: bool
    create: str = ""  # the statement that makes a missing one, when it is one line

    @property
    def label(self) -> str:
        """The entry as a sentence names it: "extension pgcrypto"."""
        return self.entry.replace(":", " ", 1)


def lookups(provided: frozenset[str]) -> list[tuple[str, str, str, str]]:
    """(lookup kind, schema, name, member) per entry, in sorted order; an entry whose kind
    cannot be looked up is refused, naming the kinds that can."""
    rows = []
    for entry in sorted(provided):
        kind, _, name = entry.partition(":")
        if kind not in KINDS:
            raise InputError(
                f"provided entry {entry!r} in [tool.bilantools] has kind {kind!r}, which cannot be "
                f"looked up on a database; write it with one of: {', '.join(KINDS)}"
            )
        if kind in CREATES:
            rows.append((kind, "", name, ""))
        elif kind == "function" and "(" in name:
            rows.append(("signature", "", name, ""))
        elif kind == "rls":  # "users.rls" as check writes it, or the table alone
            schema, _, table = name.removesuffix(".rls").rpartition(".")
            rows.append((kind, schema, table, ""))
        elif kind in MEMBERS:
            relation, _, member = name.rpartition(".")
            schema, _, table = relation.rpartition(".")
            rows.append((kind, schema, table, member))
        else:
            schema, _, short = name.rpartition(".")
            relkinds = RELKINDS.get(kind)
            rows.append(("relation", schema, short, relkinds) if relkinds else (kind, schema, short, ""))
    return rows


def presence(conn: psycopg.Connection, provided: frozenset[str]) -> list[Presence]:
    """Each provided entry, sorted, with whether the target has it (one query, none when
    nothing is declared). A ``sqitch:project:change`` entry (a Sqitch plan's requirement
    on another project) names no catalog object and is not looked up here."""
    provided = frozenset(e for e in provided if e.partition(":")[0] != PROVIDED_KIND)
    rows = lookups(provided)
    if not rows:
        return []
    kinds, schemas, names, members = (list(column) for column in zip(*rows, strict=True))
    found = conn.execute(PRESENT_SQL, (kinds, schemas, names, members)).fetchall()
    result = []
    for entry, (present, quoted) in zip(sorted(provided), found, strict=True):
        kind = entry.partition(":")[0]
        create = f"{CREATES[kind]} {quoted}" if kind in CREATES else ""
        result.append(Presence(entry, bool(present), create))
    return result


def require(conn: psycopg.Connection, target: str, provided: frozenset[str]) -> None:
    """Refuse the apply when a provided object is absent from `target` (its masked URL):
    one line naming each missing one and how to create it."""
    missing = [p for p in presence(conn, provided) if not p.present]
    if not missing:
        return
    if len(missing) == 1:
        [one] = missing
        how = f" ({one.create})" if one.create else ""
        raise RefusedError(
            f"refusing to apply: {one.label} is declared provided in pyproject.toml but absent from "
            f"{target}: create it{how} or remove it from provided"
        )
    named = ", ".join(p.label + (f" ({p.create})" if p.create else "") for p in missing)
    raise RefusedError(
        f"refusing to apply: {len(missing)} objects declared provided in pyproject.toml are absent "
        f"from {target}: {named}; create them or remove them from provided"
    )
