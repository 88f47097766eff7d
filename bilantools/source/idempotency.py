"""Idempotency lint: statements that fail when a migration (or rollback) is re-run.

A database migrated by hand with psql may already hold a migration's objects, so re-running
it must not fail with "already exists" (and a rollback re-run must not fail with "does
not exist"). Each problem comes with the clause that makes the statement re-runnable.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from bilantools.source.parsed import Node, ParsedStatement
from bilantools.source.trees import object_words


def idempotency(
    statements: tuple[ParsedStatement, ...], what: str
) -> Iterator[tuple[ParsedStatement, str, str, str]]:
    """(statement, rule, message, hint) for each statement that fails when the file is re-run.

    A CREATE POLICY/TRIGGER is safe after any DROP of the same object earlier in the file:
    a DROP lacking IF EXISTS is reported once, by drop-without-if-exists.
    """
    fails = f"fails when the {what} is re-run"
    dropped: set[tuple[str, str, str]] = set()  # (POLICY|TRIGGER, name, table without schema)
    for stmt in statements:
        node, kind = stmt.node, stmt.kind
        temporary = (
            kind == "CreateStmt" and node["relation"]["relpersistence"] == "t"
        )  # gone with its session
        if kind == "CreateStmt" and not node.get("if_not_exists") and not temporary:
            name = _rel(node["relation"])
            yield (stmt, *_missing_clause("create-table-not-idempotent", "TABLE", name, fails, replace=False))
        elif kind == "CreateTableAsStmt" and not node.get("if_not_exists"):
            name = _rel(node["into"]["rel"])
            rule, words = (
                ("create-object-not-idempotent", "MATERIALIZED VIEW")
                if node.get("objtype") == "OBJECT_MATVIEW"
                else ("create-table-not-idempotent", "TABLE")
            )
            yield (
                stmt,
                rule,
                f"CREATE {words} {name} AS without IF NOT EXISTS {fails}",
                f"write CREATE {words} IF NOT EXISTS {name} AS ...",
            )
        elif kind == "IndexStmt" and not node.get("if_not_exists"):
            words = "CREATE UNIQUE INDEX" if node.get("unique") else "CREATE INDEX"
            words += " CONCURRENTLY" if node.get("concurrent") else ""
            table, index = _rel(node["relation"]), node.get("idxname")
            yield (
                stmt,
                "create-index-not-idempotent",
                f"{words} {index or '(unnamed)'} ON {table} without IF NOT EXISTS {fails}",
                f"write {words} IF NOT EXISTS {index} ON {table}"
                if index
                else f"name the index and write {words} IF NOT EXISTS <name> ON {table}",
            )
        elif kind == "AlterTableStmt":
            yield from ((stmt, *problem) for problem in _alter_table(node, fails))
        elif kind in ("CreatePolicyStmt", "CreateTrigStmt"):
            what_obj = "POLICY" if kind == "CreatePolicyStmt" else "TRIGGER"
            name = node["policy_name"] if what_obj == "POLICY" else node["trigname"]
            relation = node["table"] if what_obj == "POLICY" else node["relation"]
            if node.get("replace") or (what_obj, name, relation["relname"]) in dropped:
                continue
            table = _rel(relation)
            drop = f"DROP {what_obj} IF EXISTS {name} ON {table};"
            alternative = (
                " (or CREATE OR REPLACE TRIGGER, PostgreSQL 14+)"
                if what_obj == "TRIGGER" and not node.get("isconstraint")
                else ""
            )
            yield (
                stmt,
                f"create-{what_obj.lower()}-without-drop",
                f"CREATE {what_obj} {name} ON {table} is not preceded by a DROP {what_obj} IF EXISTS "
                f"of it and {fails}",
                f"write {drop} just before it{alternative}",
            )
        elif kind == "CreateFunctionStmt" and not node.get("replace"):
            words = "PROCEDURE" if node.get("is_procedure") else "FUNCTION"
            name = ".".join(_strings(node["funcname"]))
            yield (stmt, *_missing_clause("create-function-not-replace", words, name, fails, replace=True))
        elif kind == "ViewStmt" and not node.get("replace"):
            name = _rel(node["view"])
            yield (stmt, *_missing_clause("create-object-not-idempotent", "VIEW", name, fails, replace=True))
        elif kind in ("CreateSchemaStmt", "CreateSeqStmt", "CreateExtensionStmt") and not node.get(
            "if_not_exists"
        ):
            words, name = _created(kind, node)
            yield (stmt, *_missing_clause("create-object-not-idempotent", words, name, fails, replace=False))
        elif kind in ("CreateEnumStmt", "CompositeTypeStmt", "CreateDomainStmt"):
            # CREATE TYPE/DOMAIN has no IF NOT EXISTS: only a guard makes it re-runnable.
            name = (
                _rel(node["typevar"])
                if kind == "CompositeTypeStmt"
                else ".".join(_strings(node["typeName" if kind == "CreateEnumStmt" else "domainname"]))
            )
            words = "DOMAIN" if kind == "CreateDomainStmt" else "TYPE"
            yield (
                stmt,
                "create-object-not-idempotent",
                f"CREATE {words} {name} fails when the {what} is re-run (it has no IF NOT EXISTS)",
                f"create it in a DO block that first checks pg_type for {name}",
            )
        elif kind == "DropStmt":
            words = object_words(node["removeType"])
            if words in ("POLICY", "TRIGGER"):
                for obj in node["objects"]:
                    *owner, dropped_name = _strings(obj["List"]["items"])
                    dropped.add((words, dropped_name, owner[-1]))
            if not node.get("missing_ok"):
                words += " CONCURRENTLY" if node.get("concurrent") else ""
                yield (stmt, "drop-without-if-exists", *_drop_without_if_exists(stmt.text, words, fails))
        elif kind == "DropRoleStmt" and not node.get("missing_ok"):
            yield (
                stmt,
                "drop-without-if-exists",
                *_drop_without_if_exists(stmt.text, "ROLE|USER|GROUP", fails),
            )


def _missing_clause(rule: str, words: str, name: str, fails: str, *, replace: bool) -> tuple[str, str, str]:
    """(rule, message, hint) for a CREATE lacking OR REPLACE (`replace`) or IF NOT EXISTS,
    which stand in different places: CREATE OR REPLACE VIEW v, CREATE TABLE IF NOT EXISTS t."""
    if replace:
        return (
            rule,
            f"CREATE {words} {name} without OR REPLACE {fails}",
            f"write CREATE OR REPLACE {words} {name}",
        )
    return (
        rule,
        f"CREATE {words} {name} without IF NOT EXISTS {fails}",
        f"write CREATE {words} IF NOT EXISTS {name}",
    )


def _drop_without_if_exists(text: str, words: str, fails: str) -> tuple[str, str]:
    """Message and hint quoting the DROP as written: its own spelling of names and argument types.

    `words` are the object type's keywords (a regex alternation for roles), after which
    IF EXISTS goes.
    """
    flat = " ".join(text.split())
    quoted = flat if len(flat) <= 100 else flat[:99] + "…"
    pattern = r"\s+".join(words.split(" ")) if "|" not in words else f"(?:{words})"
    head = re.match(rf"DROP\s+{pattern}\s+", flat, re.I)
    hint = (
        f"write {head[0]}IF EXISTS {flat[head.end() :]}"
        if head and len(flat) <= 100
        else f"write IF EXISTS after DROP {words.split('|')[0]}"
    )
    return f"{quoted} without IF EXISTS {fails}", hint


def _alter_table(node: Node, fails: str) -> Iterator[tuple[str, str, str]]:
    words = f"ALTER {object_words(node.get('objtype', 'OBJECT_TABLE'))} {_rel(node['relation'])}"
    for item in node.get("cmds", []):
        cmd = item["AlterTableCmd"]
        if cmd.get("missing_ok"):
            continue
        if cmd["subtype"] == "AT_AddColumn":
            column = cmd["def"]["ColumnDef"]["colname"]
            yield (
                "add-column-not-idempotent",
                f"{words} ADD COLUMN {column} without IF NOT EXISTS {fails}",
                f"write {words} ADD COLUMN IF NOT EXISTS {column}",
            )
        elif cmd["subtype"] in ("AT_DropColumn", "AT_DropConstraint"):
            sub = "COLUMN" if cmd["subtype"] == "AT_DropColumn" else "CONSTRAINT"
            yield (
                "drop-without-if-exists",
                f"{words} DROP {sub} {cmd['name']} without IF EXISTS {fails}",
                f"write {words} DROP {sub} IF EXISTS {cmd['name']}",
            )


def _created(kind: str, node: Node) -> tuple[str, str]:
    if kind == "CreateSchemaStmt":
        if "schemaname" in node:
            return "SCHEMA", str(node["schemaname"])
        role = node["authrole"]  # CREATE SCHEMA AUTHORIZATION role
        return "SCHEMA", "AUTHORIZATION " + str(
            role.get("rolename") or role["roletype"].removeprefix("ROLESPEC_")
        )
    if kind == "CreateSeqStmt":
        return "SEQUENCE", _rel(node["sequence"])
    return "EXTENSION", str(node["extname"])


def _rel(range_var: Node) -> str:
    return ".".join(p for p in (range_var.get("schemaname"), range_var["relname"]) if p)


def _strings(items: list[Node]) -> list[str]:
    return [str(item["String"]["sval"]) for item in items if "String" in item]
