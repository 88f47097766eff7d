"""Which of squawk's lock and timeout advice applies to a statement of a migration.

squawk warns about statements that lock a table others use (an index built without
CONCURRENTLY, a column type changed in place, a constraint validated at once...). A table
created earlier in the same migration is used by no one else: the migration runs in one
transaction (or, with ``-- transaction: off``, before anything is told the table
exists), so nobody can wait on its lock and its rows are the migration's own. squawk
itself knows that for some rules; the rules in LOCK_RULES are dropped here for the others.

``require-lock-timeout`` asks each file to set ``lock_timeout``: the engine does that
itself (``DEFAULT_LOCK_TIMEOUT``, or the file's ``-- lock-timeout:`` header), so the
advice is kept only for a file whose header turns the limit off (``-- lock-timeout: 0``).
A run started with ``--lock-timeout 0`` is not known to a static check. Likewise
``require-statement-timeout`` is dropped for a file whose header sets a statement timeout.
`check` says so, as notes apart from its findings (`engine_note`).
"""

from __future__ import annotations

from bilantools.source.findings import Finding
from bilantools.source.headers import Limits
from bilantools.source.parsed import Node, ParsedStatement
from bilantools.source.trees import relation_name

# squawk rules about locks, table rewrites, rows already present and clients that use the
# table: none applies to a table the same migration created.
LOCK_RULES = frozenset(
    {
        "adding-field-with-default",
        "adding-foreign-key-constraint",
        "adding-not-nullable-field",
        "adding-required-field",
        "adding-serial-primary-key-field",
        "changing-column-type",
        "constraint-missing-not-valid",
        "disallowed-unique-constraint",
        "renaming-column",
        "renaming-object",
        "renaming-table",
        "require-concurrent-index-creation",
        "require-concurrent-index-deletion",
    }
)


def timeout_advice_applies(rule: str, limits: Limits) -> bool:
    """False for a timeout rule the engine or the file's header already satisfies."""
    if rule == "require-lock-timeout":
        return limits.lock_timeout == "0"  # the run's timeout applies unless the header turns it off
    if rule == "require-statement-timeout":
        return limits.statement_timeout in (None, "0")
    return True


def engine_note(rule: str, file: str, line: int, limits: Limits) -> Finding:
    """A note that the engine follows squawk's timeout advice `rule` for the statement at `line`."""
    if rule == "require-lock-timeout":
        limit = (
            f"'-- lock-timeout: {limits.lock_timeout}' of this file's header"
            if limits.lock_timeout
            else "run's lock_timeout (--lock-timeout)"
        )
        message = (
            f"the engine sets lock_timeout before this migration runs: this statement waits at most the "
            f"{limit} for its lock, then fails rather than holding up the table's queries"
        )
        hint = "nothing to add; the '-- lock-timeout:' header line sets another limit for this file"
    else:
        message = (
            f"the engine sets statement_timeout before this migration runs: this statement runs at most "
            f"the '-- statement-timeout: {limits.statement_timeout}' of this file's header"
        )
        hint = "nothing to add"
    return Finding(f"squawk:{rule}", "info", file, line, message, hint)


def on_new_tables(statements: tuple[ParsedStatement, ...]) -> list[bool]:
    """For each statement: does it act on a table or an index that an earlier statement of
    the same script created?"""
    created: set[str] = set()
    result = []
    for stmt in statements:
        node, kind = stmt.node, stmt.kind
        target = _acted_on(kind, node)
        result.append(target is not None and target in created)
        if kind == "CreateStmt":
            created.add(relation_name(node["relation"]))
        elif kind == "CreateTableAsStmt":
            created.add(relation_name(node["into"]["rel"]))
        elif kind == "IndexStmt" and node.get("idxname"):  # a new index, whatever its table
            schema = node["relation"].get("schemaname")
            created.add(relation_name({"schemaname": schema, "relname": node["idxname"]}))
        elif kind == "RenameStmt" and target in created and node.get("renameType") != "OBJECT_COLUMN":
            schema = node["relation"].get("schemaname")
            created.add(relation_name({"schemaname": schema, "relname": node["newname"]}))
    return result


def _acted_on(kind: str, node: Node) -> str | None:
    """The relation a statement locks: its table, or the index it drops."""
    if kind in ("IndexStmt", "AlterTableStmt", "RenameStmt") and "relation" in node:
        return relation_name(node["relation"])
    if kind == "DropStmt" and node.get("removeType") == "OBJECT_INDEX" and len(node["objects"]) == 1:
        parts = [p["String"]["sval"] for p in node["objects"][0]["List"]["items"]]
        return relation_name({"schemaname": parts[0] if len(parts) > 1 else None, "relname": parts[-1]})
    return None
