"""The strongest table lock a migration is expected to take on a table that already exists.

A DBA about to run a plan on production wants to know which migrations stop readers
(ACCESS EXCLUSIVE), which stop writers (SHARE, SHARE ROW EXCLUSIVE) and which only take the
row locks of an ordinary write. The level is read from each statement's parse tree, as
PostgreSQL's "Explicit Locking" table lists it; it is an estimate: a DO block or a
function called by the script is not followed, and ALTER TABLE forms not listed below are
taken as ACCESS EXCLUSIVE, their usual level. A table created earlier in the same script
is no one else's yet (see `lock_scope`), so its locks are not counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from bilantools.source.files import Script
from bilantools.source.parsed import Node, ParsedStatement, parse_script
from bilantools.source.trees import relation_name

# PostgreSQL's table lock modes, weakest first.
MODES = (
    "ROW EXCLUSIVE",
    "SHARE UPDATE EXCLUSIVE",
    "SHARE",
    "SHARE ROW EXCLUSIVE",
    "EXCLUSIVE",
    "ACCESS EXCLUSIVE",
)
# ALTER TABLE subcommands that take less than ACCESS EXCLUSIVE.
_ALTER_LEVELS = {
    "AT_ValidateConstraint": "SHARE UPDATE EXCLUSIVE",
    "AT_SetStatistics": "SHARE UPDATE EXCLUSIVE",
    "AT_ClusterOn": "SHARE UPDATE EXCLUSIVE",
    "AT_DropCluster": "SHARE UPDATE EXCLUSIVE",
    "AT_EnableTrig": "SHARE ROW EXCLUSIVE",
    "AT_DisableTrig": "SHARE ROW EXCLUSIVE",
    "AT_EnableTrigAll": "SHARE ROW EXCLUSIVE",
    "AT_DisableTrigAll": "SHARE ROW EXCLUSIVE",
    "AT_EnableTrigUser": "SHARE ROW EXCLUSIVE",
    "AT_DisableTrigUser": "SHARE ROW EXCLUSIVE",
}
_WRITES = ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt")


@dataclass(frozen=True)
class LockEstimate:
    """The strongest lock (`mode`, None: none on an existing table) and the table it is on."""

    mode: str | None
    table: str | None = None

    def __str__(self) -> str:
        return f"{self.mode} on {self.table}" if self.mode else "no lock on an existing table"


def estimate(script: Script) -> LockEstimate:
    """The strongest lock the statements of `script` take on a table it did not create."""
    created: set[str] = set()
    best = LockEstimate(None)
    for stmt in parse_script(script):
        for mode, table in _locks(stmt, created):
            if table not in created and (best.mode is None or MODES.index(mode) > MODES.index(best.mode)):
                best = LockEstimate(mode, table)
        if stmt.kind == "CreateStmt":
            created.add(relation_name(stmt.node["relation"]))
        elif stmt.kind == "CreateTableAsStmt":
            created.add(relation_name(stmt.node["into"]["rel"]))
    return best


def _locks(stmt: ParsedStatement, created: set[str]) -> Iterator[tuple[str, str]]:
    """(mode, table) for each table lock `stmt` takes."""
    kind, node = stmt.kind, stmt.node
    if kind == "AlterTableStmt":
        table = relation_name(node["relation"])
        for cmd in node.get("cmds", []):
            sub = cmd.get("AlterTableCmd", {})
            yield _ALTER_LEVELS.get(sub.get("subtype", ""), "ACCESS EXCLUSIVE"), table
            yield from _references(sub.get("def", {}))
    elif kind == "CreateStmt":
        for element in node.get("tableElts", []):
            for constraint in element.get("ColumnDef", {}).get("constraints", [element]):
                yield from _references(constraint)
    elif kind == "IndexStmt":
        yield (
            ("SHARE UPDATE EXCLUSIVE" if node.get("concurrent") else "SHARE"),
            relation_name(node["relation"]),
        )
    elif kind in ("RenameStmt", "CreatePolicyStmt", "AlterPolicyStmt", "ClusterStmt") and "relation" in node:
        yield "ACCESS EXCLUSIVE", relation_name(node["relation"])
    elif kind in ("CreatePolicyStmt", "AlterPolicyStmt"):
        yield "ACCESS EXCLUSIVE", relation_name(node["table"])
    elif kind == "CreateTrigStmt":
        yield "SHARE ROW EXCLUSIVE", relation_name(node["relation"])
    elif kind == "TruncateStmt":
        for relation in node.get("relations", []):
            yield "ACCESS EXCLUSIVE", relation_name(relation["RangeVar"])
    elif kind == "DropStmt":
        yield from _dropped(node)
    elif kind in _WRITES:
        yield "ROW EXCLUSIVE", relation_name(node["relation"])


def _references(constraint: Node) -> Iterator[tuple[str, str]]:
    """A foreign key locks the table it references (SHARE ROW EXCLUSIVE)."""
    pktable = constraint.get("Constraint", {}).get("pktable")
    if pktable is not None:
        yield "SHARE ROW EXCLUSIVE", relation_name(pktable)


def _dropped(node: Node) -> Iterator[tuple[str, str]]:
    """DROP TABLE / INDEX / POLICY / TRIGGER: ACCESS EXCLUSIVE on the table (the index
    itself for an index, which names no table); CONCURRENTLY takes less."""
    kind = node.get("removeType")
    if kind not in ("OBJECT_TABLE", "OBJECT_INDEX", "OBJECT_POLICY", "OBJECT_TRIGGER"):
        return
    mode = "SHARE UPDATE EXCLUSIVE" if node.get("concurrent") else "ACCESS EXCLUSIVE"
    for obj in node.get("objects", []):
        parts = [p["String"]["sval"] for p in obj.get("List", {}).get("items", []) if "String" in p]
        if kind in ("OBJECT_POLICY", "OBJECT_TRIGGER"):
            parts = parts[:-1]  # the policy's or trigger's own name comes last
        if parts:
            yield (
                mode,
                relation_name({"schemaname": parts[0] if len(parts) > 1 else None, "relname": parts[-1]}),
            )
