"""Statements that break what the engine relies on, read from PostgreSQL's parse trees.

- ``tracking-object`` (error): a statement that writes to, alters, renames, drops or
  redefines the engine's tracking tables and functions (``bilantools/db/tracking.sql``),
  or hangs a trigger, rule, policy or unique index on them. The engine records each
  migration there, in the migration's own transaction; a migration that deletes rows,
  drops the table or replaces ``record_migration()`` makes the history lie. A statement
  identical to one of the engine's own changes nothing and passes: migration 029
  re-declares the tracking table and functions verbatim, for databases migrated by hand.
- ``copy-client-stream`` (error): ``COPY ... FROM STDIN`` / ``TO STDOUT`` exchange rows
  with the client over the connection, and a migration file has no such stream.
- ``session-setting`` (warning): ``SET`` without ``LOCAL``, ``SET ROLE``, ``SET SESSION
  AUTHORIZATION``, ``RESET`` and ``set_config(..., false)`` change the session, which the
  migration does not own: the migrations run after it share it.

Top-level statements and the static SQL of ``DO`` blocks count (they run with the
migration); function bodies run when called, and dynamic SQL (``EXECUTE``) cannot be
seen. Tracking objects count in the configured tracking schema (``tracking-schema``), and
unqualified when that is ``public``: in another schema, an unqualified ``schema_migrations``
is the peer tool's own table.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from bilantools.source.files import Script
from bilantools.source.findings import Finding, Severity
from bilantools.source.parsed import Node, ParsedStatement, parse_script

TRACKING_HINT = "remove the statement; the engine keeps the history"
DECLARATION_HINT = (
    "remove the statement; the engine creates and keeps its tracking objects (a copy must match "
    "bilantools/db/tracking.sql exactly)"
)
TX_OFF_SESSION_HINT = (
    "SET LOCAL and set_config(..., true) have no effect in this file, which runs with '-- transaction: "
    "off', outside any transaction block: use the '-- lock-timeout:' and '-- statement-timeout:' header "
    "lines for timeouts and schema-qualified names instead of search_path, or move the statements that "
    "need the setting to a migration that runs in a transaction, with SET LOCAL"
)
_WRITES = {"InsertStmt": "INSERT", "UpdateStmt": "UPDATE", "DeleteStmt": "DELETE", "MergeStmt": "MERGE"}
# Statements whose function calls run now (a view, a default or a policy calls them later).
_RUNS_NOW = frozenset({*_WRITES, "SelectStmt", "CallStmt", "CreateTableAsStmt", "ExplainStmt", "CopyStmt"})
_FUNCTION_TYPES = ("OBJECT_FUNCTION", "OBJECT_PROCEDURE", "OBJECT_ROUTINE")
_TABLE_CHILDREN = {"OBJECT_TRIGGER": "TRIGGER", "OBJECT_POLICY": "POLICY", "OBJECT_RULE": "RULE"}
_SET_WORDS = {"role": "ROLE", "session_authorization": "SESSION AUTHORIZATION"}
_TRUE = frozenset({"t", "true", "on", "yes", "y", "1"})  # the literals PostgreSQL reads as true

Problem = tuple[str, str]  # (message, hint)


@dataclass(frozen=True)
class TrackingObjects:
    """The engine's tracking tables and functions, as its own script declares them."""

    tables: frozenset[str]
    functions: frozenset[str]
    writers: tuple[tuple[str, str], ...]  # (function, the table its body writes to)
    statements: frozenset[str]  # the script's statements, canonical: a verbatim copy passes
    schema: str = "public"  # where the engine creates them

    @classmethod
    def from_script(cls, script: Script, schema: str = "public") -> TrackingObjects:
        tables: set[str] = set()
        functions: set[str] = set()
        writers: list[tuple[str, str]] = []
        statements: set[str] = set()
        for stmt in parse_script(script):
            statements.add(_canonical(stmt.kind, stmt.node))
            if stmt.kind == "CreateStmt":
                tables.add(str(stmt.node["relation"]["relname"]))
            elif stmt.kind == "CreateFunctionStmt":
                name = _names(stmt.node["funcname"])[-1]
                functions.add(name)
                for body_kind, body in _sql_body(stmt.node):
                    writers.extend(
                        (name, str(sub["relation"]["relname"]))
                        for sub_kind, sub in _nodes(body_kind, body)
                        if sub_kind in _WRITES
                    )
        return cls(frozenset(tables), frozenset(functions), tuple(writers), frozenset(statements), schema)

    @property
    def provided(self) -> frozenset[str]:
        """As ``kind:name`` strings: what the analysis takes as existing before migration 001."""
        return frozenset({f"table:{t}" for t in self.tables} | {f"function:{f}" for f in self.functions})

    def mentioned(self, lowered: str) -> bool:
        """Whether a statement's text (in lower case) may name a tracking object: a cheap
        test before walking its tree."""
        return any(name in lowered for name in (*self.tables, *self.functions))


def engine_findings(
    script: Script,
    statements: tuple[ParsedStatement, ...],
    transactional: bool,
    tracking: TrackingObjects | None,
) -> list[Finding]:
    """The three rules over `script`'s statements; without `tracking`, no ``tracking-object``."""
    file = str(script.path)
    findings: list[Finding] = []
    for stmt in statements:
        lowered = stmt.text.lower()
        drops_schema = stmt.kind == "DropStmt" and stmt.node.get("removeType") == "OBJECT_SCHEMA"
        tracked = tracking if tracking is not None and (drops_schema or tracking.mentioned(lowered)) else None
        for kind, node in _run_with_migration(stmt):
            rules: list[tuple[str, Severity, Iterable[Problem]]] = [
                ("copy-client-stream", "error", _client_copy(kind, node)),
                ("session-setting", "warning", _session(kind, node, transactional, "set_config" in lowered)),
            ]
            if tracked is not None:
                problems = list(_tracking(kind, node, tracked))
                if problems and _canonical(stmt.kind, stmt.node) in tracked.statements:
                    problems = []  # the engine's own statement, repeated: it changes nothing
                rules.insert(0, ("tracking-object", "error", problems))
            for rule, severity, found in rules:
                findings.extend(Finding(rule, severity, file, stmt.line, m, h) for m, h in found)
    return findings


# --- tracking-object ----------------------------------------------------------------------


def _tracking(kind: str, node: Node, tr: TrackingObjects) -> Iterator[Problem]:
    """Each way the statement changes a tracking object: (message, hint)."""

    def table(range_var: Node | None) -> str | None:
        if not range_var or not _in(range_var.get("schemaname"), tr.schema):
            return None
        return str(range_var["relname"]) if range_var.get("relname") in tr.tables else None

    def function(object_with_args: Node | None) -> str | None:
        names = _names((object_with_args or {}).get("objname", []))
        return names[-1] if _ours(names, tr.functions, tr.schema) else None

    for sub_kind, sub in _nodes(kind, node):  # writes anywhere: CTEs, rule actions
        written = table(sub.get("relation")) if sub_kind in _WRITES else None
        if written:
            yield f"{_WRITES[sub_kind]} writes to {_table(written)}", TRACKING_HINT
        call = sub if sub_kind == "FuncCall" else sub.get("funccall") if sub_kind == "CallStmt" else None
        if call is not None:
            names = _names(call.get("funcname", []))
            for writer, target in tr.writers:
                if _ours(names, frozenset({writer}), tr.schema):
                    yield f"calling {writer}() writes to {_table(target)}", TRACKING_HINT

    relation = table(node.get("relation"))
    objects = node.get("object", {}).get("ObjectWithArgs") if isinstance(node.get("object"), dict) else None
    if kind == "TruncateStmt":
        for item in node.get("relations", []):
            name = table(item.get("RangeVar"))
            if name:
                yield f"TRUNCATE empties {_table(name)}", TRACKING_HINT
    elif kind == "CopyStmt" and node.get("is_from") and relation:
        yield f"COPY ... FROM writes to {_table(relation)}", TRACKING_HINT
    elif kind == "AlterTableStmt" and relation:
        yield f"ALTER TABLE changes {_table(relation)}", TRACKING_HINT
    elif kind == "RenameStmt" and relation:
        what = "renames" if node.get("renameType") == "OBJECT_TABLE" else "changes"
        yield f"ALTER ... RENAME {what} {_table(relation)}", TRACKING_HINT
    elif kind == "RenameStmt" and node.get("renameType") in _FUNCTION_TYPES and function(objects):
        yield f"ALTER FUNCTION ... RENAME renames {_function(str(function(objects)))}", TRACKING_HINT
    elif kind == "AlterObjectSchemaStmt" and (relation or function(objects)):
        what = _table(relation) if relation else _function(str(function(objects)))
        yield f"ALTER ... SET SCHEMA moves {what}", TRACKING_HINT
    elif kind == "DropStmt":
        yield from _dropped(node, table, function, tr.schema)
    elif kind == "CreateStmt" and relation:
        yield f"CREATE TABLE declares {_table(relation)} differently from the engine", DECLARATION_HINT
    elif kind == "CreateFunctionStmt" and _ours(_names(node["funcname"]), tr.functions, tr.schema):
        words = ("CREATE OR REPLACE " if node.get("replace") else "CREATE ") + (
            "PROCEDURE" if node.get("is_procedure") else "FUNCTION"
        )
        yield f"{words} redefines {_function(_names(node['funcname'])[-1])}", DECLARATION_HINT
    elif kind == "AlterFunctionStmt" and function(node.get("func")):
        yield f"ALTER FUNCTION changes {_function(str(function(node['func'])))}", TRACKING_HINT
    elif kind == "AlterOwnerStmt" and node.get("objectType") in _FUNCTION_TYPES and function(objects):
        yield f"ALTER FUNCTION ... OWNER TO changes {_function(str(function(objects)))}", TRACKING_HINT
    elif kind == "CreateTrigStmt" and relation:
        yield f"CREATE TRIGGER {node['trigname']} adds a trigger to {_table(relation)}", TRACKING_HINT
    elif kind == "RuleStmt" and relation:
        yield f"CREATE RULE {node['rulename']} adds a rule to {_table(relation)}", TRACKING_HINT
    elif kind in ("CreatePolicyStmt", "AlterPolicyStmt") and table(node.get("table")):
        words, what = (
            ("CREATE POLICY", "adds a policy to")
            if kind == "CreatePolicyStmt"
            else ("ALTER POLICY", "changes a policy of")
        )
        yield f"{words} {node['policy_name']} {what} {_table(str(table(node['table'])))}", TRACKING_HINT
    elif kind == "IndexStmt" and node.get("unique") and relation:
        # a unique index can make the engine's own inserts fail; a plain one cannot
        yield f"CREATE UNIQUE INDEX adds a unique index to {_table(relation)}", TRACKING_HINT


def _dropped(
    node: Node,
    table: Callable[[Node | None], str | None],
    function: Callable[[Node | None], str | None],
    schema: str,
) -> Iterator[Problem]:
    remove = node["removeType"]
    for target in node.get("objects", []):
        names = _names(target.get("List", {}).get("items", []))
        if remove == "OBJECT_TABLE" and names:
            name = table({"schemaname": names[0] if len(names) > 1 else None, "relname": names[-1]})
            if name:
                yield f"DROP TABLE drops {_table(name)}", TRACKING_HINT
        elif remove in _TABLE_CHILDREN and len(names) >= 2:
            *owner, _child = names
            name = table({"schemaname": owner[0] if len(owner) > 1 else None, "relname": owner[-1]})
            if name:
                yield f"DROP {_TABLE_CHILDREN[remove]} changes {_table(name)}", TRACKING_HINT
        elif remove in _FUNCTION_TYPES and function(target.get("ObjectWithArgs")):
            yield f"DROP FUNCTION drops {_function(str(function(target['ObjectWithArgs'])))}", TRACKING_HINT
        elif (
            remove == "OBJECT_SCHEMA"
            and target.get("String", {}).get("sval") == schema
            and node.get("behavior") == "DROP_CASCADE"
        ):
            yield (
                f"DROP SCHEMA {schema} CASCADE drops the engine's tracking tables and functions",
                TRACKING_HINT,
            )


def _table(name: str) -> str:
    return f"the engine's tracking table {name}"


def _function(name: str) -> str:
    return f"the engine's tracking function {name}()"


def _in(written: str | None, schema: str) -> bool:
    """Whether a name qualified with `written` (None: unqualified) is in the tracking `schema`."""
    return written == schema or (written is None and schema == "public")


def _ours(names: list[str], among: frozenset[str], schema: str) -> bool:
    """A name among `among`, in the tracking `schema`."""
    return bool(names) and names[-1] in among and _in(names[-2] if len(names) > 1 else None, schema)


# --- copy-client-stream -------------------------------------------------------------------


def _client_copy(kind: str, node: Node) -> Iterator[Problem]:
    if kind != "CopyStmt" or node.get("filename") is not None or node.get("is_program"):
        return
    if node.get("is_from"):
        yield (
            "COPY ... FROM STDIN waits for rows from the client, and a migration file has no client-side "
            "data stream",
            "put the rows in the migration as INSERT ... VALUES, or COPY FROM a file on the database "
            "server (needs pg_read_server_files)",
        )
    else:
        yield (
            "COPY ... TO STDOUT sends rows to the client, and a migration file has no client-side data "
            "stream",
            "remove it, or COPY TO a file on the database server (needs pg_write_server_files)",
        )


# --- session-setting ----------------------------------------------------------------------


def _session(kind: str, node: Node, transactional: bool, calls_set_config: bool) -> Iterator[Problem]:
    """SET, RESET and set_config() that change the session rather than the transaction."""
    if kind == "VariableSetStmt" and not node.get("is_local"):
        setting = _setting(node)
        if setting is not None:
            words, local = setting
            yield (
                f"{words} changes the whole session, not only this migration",
                _local_hint(local, transactional),
            )
    if calls_set_config and kind in _RUNS_NOW:
        for sub_kind, sub in _nodes(kind, node):
            names = _names(sub.get("funcname", [])) if sub_kind == "FuncCall" else []
            if names[-1:] == ["set_config"] and names[:-1] in ([], ["pg_catalog"]):
                args = sub.get("args", [])
                if len(args) == 3 and _constant_true(args[2]):
                    continue
                name = _string(args[0]) if args else None
                words = f"set_config('{name}', ...)" if name is not None else "set_config(...)"
                hint = (
                    "pass true as set_config's third argument (is_local): it then ends with the "
                    "migration's transaction"
                )
                if not transactional:
                    hint = TX_OFF_SESSION_HINT
                yield (
                    f"{words} without is_local = true changes the whole session, not only this migration",
                    hint,
                )


def _setting(node: Node) -> tuple[str, str] | None:
    """(the statement's words, its SET LOCAL form), or None for a transaction-level SET."""
    kind, name = node["kind"], str(node.get("name", ""))
    if kind == "VAR_SET_MULTI":
        if name != "SESSION CHARACTERISTICS":  # SET TRANSACTION ...: this transaction only
            return None
        return "SET SESSION CHARACTERISTICS", "SET TRANSACTION ..."
    words = _SET_WORDS.get(name, name)
    if kind == "VAR_RESET_ALL":
        return "RESET ALL", "SET LOCAL ... TO DEFAULT, for each setting that needs it"
    if kind == "VAR_RESET":
        return f"RESET {words}", f"SET LOCAL {words} TO DEFAULT"
    return f"SET {words}", f"SET LOCAL {words} ..." + (
        " (or set_config(..., true))" if name not in _SET_WORDS else ""
    )


def _local_hint(local: str, transactional: bool) -> str:
    if not transactional:
        return TX_OFF_SESSION_HINT
    return f"write {local}: it then ends with the migration's transaction"


def _constant_true(arg: Node) -> bool:
    const = arg.get("A_Const", {})
    if "boolval" in const:
        return bool(const["boolval"].get("boolval"))
    value = const.get("sval", {}).get("sval")
    return isinstance(value, str) and value.strip().lower() in _TRUE


def _string(arg: Node) -> str | None:
    value = arg.get("A_Const", {}).get("sval", {}).get("sval")
    return value if isinstance(value, str) else None


# --- trees ---------------------------------------------------------------------------------


def _run_with_migration(stmt: ParsedStatement) -> Iterator[tuple[str, Node]]:
    """The statement, and for a DO block each statement of its body (run right now too)."""
    yield stmt.kind, stmt.node
    if stmt.kind != "DoStmt":
        return
    options = {a["DefElem"]["defname"]: a["DefElem"].get("arg", {}) for a in stmt.node.get("args", [])}
    language = options.get("language", {}).get("String", {}).get("sval", "plpgsql")
    body = options.get("as", {}).get("String", {}).get("sval")
    if language.lower() != "plpgsql" or not isinstance(body, str):
        return
    from pglast import parser

    wrapped = f"CREATE FUNCTION bilantools_do() RETURNS void LANGUAGE plpgsql AS $bt_do${body}$bt_do$"
    try:
        tree = json.loads(parser.parse_plpgsql_json(wrapped))
    except parser.ParseError:
        return
    for kind, fields in _nodes("", tree):
        if kind == "PLpgSQL_expr":
            code = str(fields.get("query", ""))  # parsed here, never sent to the server
            yield from _sql(code if fields.get("parseMode", 0) == 0 else "SELECT " + code.split(":=", 1)[-1])


def _sql_body(node: Node) -> Iterator[tuple[str, Node]]:
    """The statements of a LANGUAGE sql function's body."""
    options = {o["DefElem"]["defname"]: o["DefElem"].get("arg", {}) for o in node.get("options", [])}
    if options.get("language", {}).get("String", {}).get("sval", "sql") != "sql":
        return
    for item in options.get("as", {}).get("List", {}).get("items", [])[:1]:
        yield from _sql(str(item["String"]["sval"]))


def _sql(text: str) -> Iterator[tuple[str, Node]]:
    from pglast import parser

    try:
        trees = json.loads(parser.parse_sql_json(text))["stmts"]
    except parser.ParseError:
        return
    for tree in trees:
        ((kind, node),) = tree["stmt"].items()
        yield kind, node


def _nodes(kind: str, node: Node) -> Iterator[tuple[str, Node]]:
    """`node` and every node below it whose type the tree names, in document order."""
    stack: list[tuple[str, Any]] = [(kind, node)]
    while stack:
        name, item = stack.pop()
        if isinstance(item, dict):
            if name[:1].isupper():
                yield name, item
            stack.extend(
                reversed([(key, value) for key, value in item.items() if isinstance(value, dict | list)])
            )
        elif isinstance(item, list):
            stack.extend(reversed([("", value) for value in item]))


def _names(items: list[Node]) -> list[str]:
    return [str(item["String"]["sval"]) for item in items if "String" in item]


def _canonical(kind: str, node: Node) -> str:
    """The statement's tree without source positions, and relations without ``public.``."""
    return json.dumps({kind: _plain(node)}, sort_keys=True)


def _plain(item: Any) -> Any:
    if isinstance(item, dict):
        return {
            key: _plain(value)
            for key, value in item.items()
            if not key.endswith("location") and not (key == "schemaname" and value == "public")
        }
    if isinstance(item, list):
        return [_plain(value) for value in item]
    return item
