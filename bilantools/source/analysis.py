"""What each script creates, alters, drops and uses, read from PostgreSQL's parse trees.

Statements are walked as pglast JSON trees. Static SQL inside ``DO`` blocks runs when the
migration runs, so it counts like top-level SQL; the SQL inside PL/pgSQL function bodies
runs only when the function is called, so its uses are marked `deferred` (a missing
table there fails at run time, not at apply time). ``LANGUAGE sql`` bodies are checked
by the server at creation, so their uses are not deferred. Dynamic SQL (``EXECUTE``)
cannot be seen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from bilantools.source.files import Script
from bilantools.source.parsed import Node, parse_script
from bilantools.source.trees import dotted_name, dropped_name, in_schema_of, own_columns, relation_name, walk

RELATION_KINDS = ("table", "view", "sequence", "materialized view", "foreign table")
# Kinds whose name is "table.child": they disappear with their table.
TABLE_CHILDREN = ("column", "constraint", "trigger", "policy", "rls")

_DROP_KINDS = {
    "OBJECT_TABLE": "table",
    "OBJECT_VIEW": "view",
    "OBJECT_MATVIEW": "materialized view",
    "OBJECT_SEQUENCE": "sequence",
    "OBJECT_INDEX": "index",
    "OBJECT_TYPE": "type",
    "OBJECT_DOMAIN": "type",
    "OBJECT_SCHEMA": "schema",
    "OBJECT_EXTENSION": "extension",
    "OBJECT_FUNCTION": "function",
    "OBJECT_PROCEDURE": "function",
    "OBJECT_ROUTINE": "function",
    "OBJECT_TRIGGER": "trigger",
    "OBJECT_POLICY": "policy",
    "OBJECT_ROLE": "role",
    "OBJECT_FOREIGN_TABLE": "foreign table",
}
_INDEX = "OBJECT_INDEX"
_RENAMED_KINDS = {
    "OBJECT_TABLE": "table",
    "OBJECT_INDEX": "index",
    "OBJECT_SEQUENCE": "sequence",
    "OBJECT_VIEW": "view",
    "OBJECT_MATVIEW": "materialized view",
    "OBJECT_FOREIGN_TABLE": "foreign table",
}


@dataclass(frozen=True, order=True)
class Obj:
    """A database object: `kind` and a name ("users", "users.cv_url", "auth.uid")."""

    kind: str
    name: str

    @property
    def key(self) -> tuple[str, str]:
        """Relations share one namespace: a view can satisfy a use of a 'table'."""
        return ("relation", self.name) if self.kind in RELATION_KINDS else (self.kind, self.name)

    @property
    def table(self) -> str | None:
        return self.name.rsplit(".", 1)[0] if self.kind in TABLE_CHILDREN else None

    def __str__(self) -> str:
        if self.kind == "rls":
            return f"row level security on {self.table}"
        return f"{self.kind} {self.name}"

    def undo_sql(self) -> str:
        """The statement a rollback uses to take this object away."""
        table, _, short = self.name.rpartition(".")
        return {
            "column": f"ALTER TABLE {table} DROP COLUMN IF EXISTS {short}",
            "constraint": f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {short}",
            "policy": f"DROP POLICY IF EXISTS {short} ON {table}",
            "trigger": f"DROP TRIGGER IF EXISTS {short} ON {table}",
            "rls": f"ALTER TABLE {self.table} DISABLE ROW LEVEL SECURITY",
            "materialized view": f"DROP MATERIALIZED VIEW IF EXISTS {self.name}",
            "foreign table": f"DROP FOREIGN TABLE IF EXISTS {self.name}",
        }.get(self.kind, f"DROP {self.kind.upper()} IF EXISTS {self.name}")


@dataclass(frozen=True)
class Use:
    obj: Obj
    line: int
    statement: str
    deferred: bool = False


@dataclass
class Effects:
    """Everything one script does to the schema, with the line of the first occurrence."""

    script: Script
    creates: dict[Obj, int] = field(default_factory=dict)
    replaces: dict[Obj, int] = field(default_factory=dict)  # CREATE OR REPLACE / IF NOT EXISTS
    alters: dict[Obj, int] = field(default_factory=dict)
    drops: dict[Obj, int] = field(default_factory=dict)
    uses: list[Use] = field(default_factory=list)
    seeds: dict[str, int] = field(default_factory=dict)  # table -> rows inserted (-1: unknown)
    deletes: set[str] = field(default_factory=set)
    owned: dict[Obj, str] = field(default_factory=dict)  # index or implicit sequence -> its table
    renames: dict[str, str] = field(default_factory=dict)  # new table name -> old
    broken: bool = False  # the script has a syntax error: its effects are unknown

    def dropped(self, obj: Obj) -> bool:
        """Dropped directly, or with its table (columns, triggers, policies, indexes...)."""
        if obj in self.drops or obj.key in {d.key for d in self.drops}:
            return True
        table = self.table_of(obj)
        return table is not None and Obj("table", table) in self.drops

    def table_of(self, obj: Obj) -> str | None:
        """The table `obj` belongs to and goes with: a column's, an index's, a serial's sequence's."""
        return obj.table or self.owned.get(obj)


def analyse_script(script: Script) -> Effects:
    effects = Effects(script)
    for stmt in parse_script(script):
        _Statement(effects, stmt.line, stmt.text, stmt.left_out).visit(stmt.kind, stmt.node)
    return effects


def salvage_script(script: Script) -> Effects:
    """What a script the parser rejects creates, read from the statements that parse on
    their own: one broken statement must not turn the tables its neighbours create into
    "no migration creates it" in every later file. Its uses stay unknown (the broken
    statement may create what they need), and so does the rest: the Effects are `broken`."""
    from pglast import parser

    effects = Effects(script, broken=True)
    text = script.text
    try:  # the scanner knows strings, comments and dollar quotes: each ';' token ends a statement
        ends = [token.end + 1 for token in parser.scan(text) if token.name == "ASCII_59"]
    except parser.ParseError:
        return effects
    start = 0
    for end in [*ends, len(text)]:
        chunk = text[start:end]
        begin = start + len(chunk) - len(chunk.lstrip())
        start = end
        try:
            trees = json.loads(parser.parse_sql_json(chunk))["stmts"]
        except parser.ParseError:
            continue
        visitor = _Statement(effects, text.count("\n", 0, begin) + 1, chunk.strip())
        for tree in trees:
            ((kind, node),) = tree["stmt"].items()
            visitor.visit(kind, node)
    effects.uses.clear()
    return effects


class _Statement:
    """Records one statement's effects into `effects`."""

    def __init__(
        self,
        effects: Effects,
        line: int,
        text: str,
        left_out: int = 0,
        runs: bool = True,
        deferred: bool = False,
    ) -> None:
        self.e = effects
        self.line = line
        self.text = text
        self.left_out = left_out  # seed rows of an INSERT its parse tree leaves out
        self.runs = runs  # executed by the migration itself (top level, DO blocks)
        self.deferred = deferred  # in a PL/pgSQL body: resolved only when the function runs

    # -- recording -----------------------------------------------------------------------
    def create(self, kind: str, name: str, replace: bool = False) -> None:
        obj = Obj(kind, name)
        self.e.creates.setdefault(obj, self.line)
        if replace:
            self.e.replaces.setdefault(obj, self.line)

    def use(self, kind: str, name: str) -> None:
        self.e.uses.append(Use(Obj(kind, name), self.line, self.text, self.deferred))

    def visit(self, kind: str, node: Node) -> None:
        handler = getattr(self, f"_{kind}", None)
        if handler is not None and self.runs:
            handler(node)
        self._uses(node)

    def _uses(self, node: Node) -> None:
        nodes = walk(node)
        ctes = {n["ctename"] for t, n in nodes if t == "CommonTableExpr"}
        # ALTER INDEX names an index where other ALTERs name a relation
        index = node.get("relation") if _INDEX in (node.get("objtype"), node.get("renameType")) else None
        for kind, fields in nodes:
            if fields is index:
                self.use("index", relation_name(fields))
            elif kind == "RangeVar" and not (fields.get("schemaname") is None and fields["relname"] in ctes):
                self.use("table", relation_name(fields))
            elif kind == "FuncCall":
                self.use("function", dotted_name(fields["funcname"]))
            elif kind == "TypeName" and "names" in fields and not fields.get("pct_type"):
                self.use("type", dotted_name(fields["names"]))
            elif kind == "TypeCast":
                self._regclass(fields)
            elif kind == "Constraint" and "pktable" in fields:
                table = relation_name(fields["pktable"])
                for attr in fields.get("pk_attrs", []):
                    self.use("column", f"{table}.{attr['String']['sval']}")

    def _regclass(self, cast: Node) -> None:
        """'bilans'::regclass names a relation in a string."""
        names = [p["String"]["sval"] for p in cast.get("typeName", {}).get("names", []) if "String" in p]
        value = cast.get("arg", {}).get("A_Const", {}).get("sval", {}).get("sval")
        if names and names[-1] == "regclass" and isinstance(value, str):
            self.use("table", value.removeprefix("public."))

    # -- statements that create, alter or drop ---------------------------------------------
    def _CreateStmt(self, node: Node) -> None:
        table = relation_name(node["relation"])
        self.create("table", table, replace=bool(node.get("if_not_exists")))
        for element in node.get("tableElts", []):
            if "ColumnDef" in element:
                self._column(table, element["ColumnDef"], bool(node.get("if_not_exists")))
            elif "Constraint" in element:
                self._constraint(table, element["Constraint"])

    def _constraint(self, table: str, constraint: Node) -> None:
        if constraint.get("conname"):
            self.create("constraint", f"{table}.{constraint['conname']}")
        for key in ("keys", "fk_attrs"):
            for attr in constraint.get(key, []):
                self.use("column", f"{table}.{attr['String']['sval']}")
        for column in own_columns(table, constraint.get("raw_expr")):
            self.use("column", column)

    def _column(self, table: str, column: Node, replace: bool) -> None:
        self.create("column", f"{table}.{column['colname']}", replace=replace)
        type_name = [
            p["String"]["sval"] for p in column.get("typeName", {}).get("names", []) if "String" in p
        ]
        identity = False
        for constraint in column.get("constraints", []):
            if "Constraint" in constraint:
                identity |= constraint["Constraint"].get("contype") == "CONSTR_IDENTITY"
                self._constraint(table, constraint["Constraint"])
        if identity or type_name[-1:] in (
            ["smallserial"],
            ["serial"],
            ["bigserial"],
            ["serial2"],
            ["serial4"],
            ["serial8"],
        ):
            self._implicit_sequence(table, str(column["colname"]), replace)

    def _implicit_sequence(self, table: str, column: str, replace: bool = False) -> None:
        """SERIAL and IDENTITY columns get a sequence named table_column_seq, in the table's
        schema, which goes with its table."""
        sequence = Obj("sequence", f"{table}_{column}_seq")
        self.create(sequence.kind, sequence.name, replace=replace)
        self.e.owned[sequence] = table

    def _IndexStmt(self, node: Node) -> None:
        table = relation_name(node["relation"])
        if node.get("idxname"):
            index = in_schema_of(table, node["idxname"])  # an index lives in its table's schema
            self.create("index", index, replace=bool(node.get("if_not_exists")))
            self.e.owned[Obj("index", index)] = table
        for param in node.get("indexParams", []):
            column = param.get("IndexElem", {}).get("name")
            if column:
                self.use("column", f"{table}.{column}")
        for column in own_columns(table, [node.get("indexParams"), node.get("whereClause")]):
            self.use("column", column)

    def _CreatePolicyStmt(self, node: Node) -> None:
        table = relation_name(node["table"])
        self.create("policy", f"{table}.{node['policy_name']}")
        for column in own_columns(table, [node.get("qual"), node.get("with_check")]):
            self.use("column", column)

    def _CreateTrigStmt(self, node: Node) -> None:
        table = relation_name(node["relation"])
        self.create("trigger", f"{table}.{node['trigname']}", replace=bool(node.get("replace")))
        self.use("function", dotted_name(node["funcname"]))
        for column in own_columns(table, node.get("whenClause")):
            self.use("column", column)

    def _CreateFunctionStmt(self, node: Node) -> None:
        self.create("function", dotted_name(node["funcname"]), replace=bool(node.get("replace")))
        options = {o["DefElem"]["defname"]: o["DefElem"].get("arg") for o in node.get("options", [])}
        language = (options.get("language") or {}).get("String", {}).get("sval", "sql")
        body = [p["String"]["sval"] for p in (options.get("as") or {}).get("List", {}).get("items", [])]
        if language == "plpgsql":
            self._plpgsql(self.text, runs=False, deferred=True)
        elif language == "sql" and body:  # checked by the server at creation, run later
            self._sql(body[0], runs=False, deferred=False)

    def _DoStmt(self, node: Node) -> None:
        for arg in node.get("args", []):
            item = arg.get("DefElem", {})
            if item.get("defname") == "as":
                body = item["arg"]["String"]["sval"]
                self._plpgsql(
                    f"CREATE FUNCTION bilantools_do() RETURNS void LANGUAGE plpgsql AS $bt_do${body}$bt_do$",
                    runs=True,
                    deferred=False,
                )

    def _ViewStmt(self, node: Node) -> None:
        self.create("view", relation_name(node["view"]), replace=bool(node.get("replace")))

    def _CreateTableAsStmt(self, node: Node) -> None:
        kind = "materialized view" if node.get("objtype") == "OBJECT_MATVIEW" else "table"
        self.create(kind, relation_name(node["into"]["rel"]), replace=bool(node.get("if_not_exists")))

    def _CreateSeqStmt(self, node: Node) -> None:
        self.create("sequence", relation_name(node["sequence"]), replace=bool(node.get("if_not_exists")))

    def _CreateEnumStmt(self, node: Node) -> None:
        self.create("type", dotted_name(node["typeName"]))

    def _CompositeTypeStmt(self, node: Node) -> None:
        self.create("type", relation_name(node["typevar"]))

    def _CreateDomainStmt(self, node: Node) -> None:
        self.create("type", dotted_name(node["domainname"]))

    def _CreateSchemaStmt(self, node: Node) -> None:
        self.create("schema", node["schemaname"], replace=bool(node.get("if_not_exists")))

    def _CreateExtensionStmt(self, node: Node) -> None:
        self.create("extension", node["extname"], replace=bool(node.get("if_not_exists")))

    def _CreateRoleStmt(self, node: Node) -> None:
        self.create("role", node["role"])

    def _AlterTableStmt(self, node: Node) -> None:
        table = relation_name(node["relation"])
        for item in node.get("cmds", []):
            cmd = item["AlterTableCmd"]
            subtype, name = cmd["subtype"], cmd.get("name")
            if subtype == "AT_AddColumn":
                self._column(table, cmd["def"]["ColumnDef"], bool(cmd.get("missing_ok")))
            elif subtype == "AT_DropColumn":
                self.e.drops.setdefault(Obj("column", f"{table}.{name}"), self.line)
            elif subtype == "AT_AddConstraint":
                self._constraint(table, cmd["def"]["Constraint"])
            elif subtype == "AT_DropConstraint":
                self.e.drops.setdefault(Obj("constraint", f"{table}.{name}"), self.line)
            elif subtype == "AT_EnableRowSecurity":
                self.create("rls", f"{table}.rls")
            elif subtype == "AT_DisableRowSecurity":
                self.e.drops.setdefault(Obj("rls", f"{table}.rls"), self.line)
            elif subtype == "AT_AddIdentity":
                self._implicit_sequence(table, str(name))
            elif name:
                self.e.alters.setdefault(Obj("column", f"{table}.{name}"), self.line)
            else:
                self.e.alters.setdefault(Obj("table", table), self.line)

    def _RenameStmt(self, node: Node) -> None:
        """A renamed table, index, sequence, view or column is a new name for what exists
        (the old name is gone); the new name stays in the old one's schema."""
        if "relation" not in node:
            return
        old = relation_name(node["relation"])
        kind = _RENAMED_KINDS.get(node.get("renameType", ""))
        if node.get("renameType") == "OBJECT_COLUMN":
            self.create("column", f"{old}.{node['newname']}")
            self.e.drops.setdefault(Obj("column", f"{old}.{node['subname']}"), self.line)
        elif kind is not None:
            new = in_schema_of(old, node["newname"])
            self.create(kind, new)
            if kind == "table":
                self.e.renames[new] = old
            self.e.drops.setdefault(Obj(kind, old), self.line)

    def _DropStmt(self, node: Node) -> None:
        kind = _DROP_KINDS.get(node["removeType"])
        if kind is None:
            return
        for target in node.get("objects", []):
            self.e.drops.setdefault(Obj(kind, dropped_name(kind, target)), self.line)

    def _InsertStmt(self, node: Node) -> None:
        table = relation_name(node["relation"])
        rows = node.get("selectStmt", {}).get("SelectStmt", {}).get("valuesLists")
        count = len(rows) + self.left_out if rows is not None else -1
        previous = self.e.seeds.get(table, 0)
        self.e.seeds[table] = -1 if -1 in (count, previous) else previous + count

    def _DeleteStmt(self, node: Node) -> None:
        self.e.deletes.add(relation_name(node["relation"]))

    def _TruncateStmt(self, node: Node) -> None:
        for rel in node.get("relations", []):
            self.e.deletes.add(relation_name(rel["RangeVar"]))

    # -- bodies ------------------------------------------------------------------------------
    def _sql(self, text: str, runs: bool, deferred: bool) -> None:
        from pglast import parser

        try:
            trees = json.loads(parser.parse_sql_json(text))["stmts"]
        except parser.ParseError:
            return
        inner = _Statement(self.e, self.line, self.text, runs=runs, deferred=deferred)
        for tree in trees:
            ((kind, node),) = tree["stmt"].items()
            inner.visit(kind, node)

    def _plpgsql(self, create_function: str, runs: bool, deferred: bool) -> None:
        """Each SQL statement and expression of a PL/pgSQL body, parsed as SQL."""
        from pglast import parser

        try:
            tree = json.loads(parser.parse_plpgsql_json(create_function))
        except parser.ParseError:
            return
        for kind, fields in walk(tree):
            if kind != "PLpgSQL_expr":
                continue
            query, mode = fields.get("query", ""), fields.get("parseMode", 0)
            if mode == 0:
                self._sql(query, runs, deferred)
            else:  # an expression or an assignment "x := expr"
                self._sql("SELECT " + query.split(":=", 1)[-1], runs, deferred)
