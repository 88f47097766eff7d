"""Reading pglast's JSON parse trees: names as the analyses spell them, and every node below one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from bilantools.source.parsed import Node

# The SQL words of parse-tree object types whose name is not their words with spaces.
_OBJECT_WORDS = {
    "MATVIEW": "MATERIALIZED VIEW",
    "FOREIGN_TABLE": "FOREIGN TABLE",
    "EVENT_TRIGGER": "EVENT TRIGGER",
    "FDW": "FOREIGN DATA WRAPPER",
    "FOREIGN_SERVER": "SERVER",
    "ACCESS_METHOD": "ACCESS METHOD",
    "OPCLASS": "OPERATOR CLASS",
    "OPFAMILY": "OPERATOR FAMILY",
    "STATISTIC_EXT": "STATISTICS",
    "TSCONFIGURATION": "TEXT SEARCH CONFIGURATION",
    "TSDICTIONARY": "TEXT SEARCH DICTIONARY",
    "TSPARSER": "TEXT SEARCH PARSER",
    "TSTEMPLATE": "TEXT SEARCH TEMPLATE",
}


def dotted_name(parts: list[Node]) -> str:
    """A name given as a list of strings ("public", "f") without the public schema ("f")."""
    names = [p["String"]["sval"] for p in parts if "String" in p]
    if len(names) > 1 and names[0] == "public":
        names = names[1:]
    return ".".join(names[-2:])


def relation_name(rv: Node) -> str:
    """A RangeVar's relation, schema-qualified unless it is in public."""
    schema = rv.get("schemaname")
    name = str(rv["relname"])
    return name if schema in (None, "public") else f"{schema}.{name}"


def walk(node: Any) -> list[tuple[str, Node]]:
    """Every (type, fields) node below `node`, in document order.

    pglast's JSON names a node's type only where the field may hold any node; a field of
    a fixed type (a statement's "relation", a column's "typeName") holds the bare fields,
    recognised here by their shape. Iterative: this is the analysis' hot loop.
    """
    found: list[tuple[str, Node]] = []
    stack: list[Any] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
            continue
        if not isinstance(item, dict):
            continue
        children: list[Any] = []
        for key, value in item.items():
            if isinstance(value, dict):
                if key[:1].isupper():
                    found.append((key, value))
                elif "relname" in value:
                    found.append(("RangeVar", value))
                elif "names" in value and "typemod" in value:
                    found.append(("TypeName", value))
                children.append(value)
            elif isinstance(value, list):
                children.append(value)
        stack.extend(reversed(children))
    return found


def own_columns(table: str, node: Any) -> Iterator[str]:
    """Unqualified column names in an expression scoped to `table` (a CHECK, an index
    expression, a policy), outside subqueries, whose columns belong to other tables."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("SubLink", "SelectStmt", "subselect"):
                continue
            if key == "ColumnRef":
                fields = [f["String"]["sval"] for f in value.get("fields", []) if "String" in f]
                if len(fields) == 1 or (len(fields) == 2 and fields[0] in ("new", "old")):
                    yield f"{table}.{fields[-1]}"
            elif isinstance(value, dict | list):
                yield from own_columns(table, value)
    elif isinstance(node, list):
        for item in node:
            yield from own_columns(table, item)


def object_words(object_type: str) -> str:
    """OBJECT_MATVIEW -> MATERIALIZED VIEW: the SQL words of a parse tree's object type."""
    short = object_type.removeprefix("OBJECT_")
    return _OBJECT_WORDS.get(short, short.replace("_", " "))


def in_schema_of(qualified: str, name: str) -> str:
    """`name` in the schema of `qualified` ("s.t", "i" -> "s.i"; "t", "i" -> "i")."""
    schema = qualified.rpartition(".")[0]
    return f"{schema}.{name}" if schema else name


def dropped_name(kind: str, target: Node) -> str:
    """One object of a DROP statement, named as the analysis names it (triggers and
    policies as "table.name")."""
    if "List" in target:
        parts = target["List"]["items"]
        if kind in ("trigger", "policy"):
            names = [p["String"]["sval"] for p in parts]
            return f"{'.'.join(n for n in names[:-1] if n != 'public')}.{names[-1]}"
        return dotted_name(parts)
    if "ObjectWithArgs" in target:
        return dotted_name(target["ObjectWithArgs"]["objname"])
    if "TypeName" in target:
        return dotted_name(target["TypeName"]["names"])
    if "String" in target:
        return str(target["String"]["sval"])
    return json.dumps(target)
