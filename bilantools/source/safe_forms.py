"""The safe forms of the statements that lock a table others use for as long as they scan it.

squawk finds the risky forms; this module, reading PostgreSQL's parse tree, writes what
to run instead (strong_migrations' and GitLab's recipes):

- ``ADD FOREIGN KEY`` / ``ADD CHECK`` scan the table under their lock: add the constraint
  ``NOT VALID`` (new rows are checked at once) and ``VALIDATE CONSTRAINT`` it in a later
  migration, which scans without blocking reads or writes. Not in the same migration: in
  its transaction the ADD's lock is held until the end, so the scan would run under it.
- ``CREATE INDEX`` blocks writes while it builds and ``DROP INDEX`` takes an ACCESS
  EXCLUSIVE lock: ``CONCURRENTLY``, in a migration whose header is ``-- transaction:
  off``, with ``IF NOT EXISTS`` / ``IF EXISTS`` because such a migration is re-run
  statement by statement after a failure (the engine drops the invalid index a failed
  concurrent build leaves before it builds again).
- ``SET NOT NULL`` scans the table under an ACCESS EXCLUSIVE lock: add ``CHECK (col IS NOT
  NULL) NOT VALID``, and in a later migration validate it, ``SET NOT NULL`` (PostgreSQL 12+
  skips the scan when a valid CHECK proves it) and drop the CHECK.

Only a table created earlier in the same file is known to be new (`lock_scope`): a table
an earlier migration of the same run creates is not, since which migrations are pending
is known only to the database. Unnamed constraints and indexes are named in PostgreSQL's
style (table_columns_fkey, table_column_check, table_columns_idx, "expr" for an
expression), written out since the later step must name them. A partitioned table takes
no CONCURRENTLY: that, like the statement's effect on clients, is beyond a static check.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bilantools.source.parsed import Node, ParsedStatement
from bilantools.source.trees import own_columns, relation_name

LATER = "-- in a later migration:"
OWN = "-- in a migration of its own:"
TX_OFF = "-- transaction: off"

# squawk's rules each safe form answers, the one whose message is kept first.
CONSTRAINT_RULES = ("adding-foreign-key-constraint", "constraint-missing-not-valid")
CREATE_INDEX_RULES = ("require-concurrent-index-creation",)
DROP_INDEX_RULES = ("require-concurrent-index-deletion",)
NOT_NULL_RULES = ("adding-not-nullable-field",)


@dataclass(frozen=True)
class SafeForm:
    """What to write instead of a statement: the fix text and, when it is mechanical, the SQL."""

    answers: tuple[str, ...]  # squawk rules it answers, in order of preference
    hint: str
    sql: str | None


NotNullChecks = dict[tuple[str, str], str]  # (table, constraint) -> the column it proves NOT NULL


def not_null_checks(statements: tuple[ParsedStatement, ...]) -> NotNullChecks:
    """The CHECK (col IS NOT NULL) constraints the statements add, by table and name."""
    found: NotNullChecks = {}
    for stmt in statements:
        for table, cmd in _commands(stmt):
            constraint = cmd.get("def", {}).get("Constraint", {})
            column = _not_null_column(constraint.get("raw_expr"))
            if cmd["subtype"] == "AT_AddConstraint" and constraint.get("conname") and column:
                found[table, constraint["conname"]] = column
    return found


def helper_drops(statements: tuple[ParsedStatement, ...], checks: NotNullChecks) -> set[int]:
    """Lines of the statements that drop a CHECK (col IS NOT NULL) after the same script set
    the column NOT NULL: the last step of the safe SET NOT NULL, which loses no guarantee."""
    set_not_null: set[tuple[str, str]] = set()
    lines = set()
    for stmt in statements:
        for table, cmd in _commands(stmt):
            if cmd["subtype"] == "AT_SetNotNull":
                set_not_null.add((table, cmd["name"]))
            elif cmd["subtype"] == "AT_DropConstraint" and (table, checks.get((table, cmd["name"]), "")) in (
                set_not_null
            ):
                lines.add(stmt.line)
    return lines


def safe_form(stmt: ParsedStatement, transactional: bool) -> SafeForm | None:
    """The safe form of a risky statement on a table that exists before the migration, or None."""
    node = stmt.node
    if stmt.kind == "IndexStmt" and not node.get("concurrent"):
        return _index(stmt.text, transactional)
    if stmt.kind == "DropStmt" and node.get("removeType") == "OBJECT_INDEX" and not node.get("concurrent"):
        return _drop_index(stmt.text, transactional)
    if stmt.kind == "AlterTableStmt" and node.get("objtype") == "OBJECT_TABLE":
        cmds = [cmd for _, cmd in _commands(stmt)]
        if any(_validates(cmd) or cmd["subtype"] == "AT_SetNotNull" for cmd in cmds):
            return _alter_table(stmt.text, _check_names(stmt))
    return None


# --- the forms ------------------------------------------------------------------------------


def _index(text: str, transactional: bool) -> SafeForm:
    index: Any = _tree(text)
    if index.idxname is None:
        index.idxname = _index_name(index)
    index.concurrent, index.if_not_exists = True, True
    sql = _sql(index)
    where = "in a migration of its own whose header is '-- transaction: off'" if transactional else "here"
    hint = (
        f"build it without blocking writes, {where}: {sql} (IF NOT EXISTS, since such a migration is re-run "
        "statement by statement; the engine drops the invalid index a failed build leaves before it builds "
        "again)"
    )
    return SafeForm(CREATE_INDEX_RULES, hint, _in_own_file(sql) if transactional else sql)


def _drop_index(text: str, transactional: bool) -> SafeForm:
    from pglast import ast, enums

    drop: Any = _tree(text)
    where = "in a migration of its own whose header is '-- transaction: off'" if transactional else "here"
    if drop.behavior == enums.DropBehavior.DROP_CASCADE:
        hint = (
            "drop what depends on the index first, then the index with DROP INDEX CONCURRENTLY IF EXISTS "
            f"{where} (CONCURRENTLY cannot CASCADE)"
        )
        return SafeForm(DROP_INDEX_RULES, hint, None)
    statements = []
    for name in drop.objects:  # CONCURRENTLY drops one index per statement
        one = ast.DropStmt(objects=(name,), removeType=drop.removeType, missing_ok=True, concurrent=True)
        statements.append(_sql(one))
    sql = "\n".join(statements)
    hint = f"drop it without an ACCESS EXCLUSIVE lock on its table, {where}: {' '.join(statements)}"
    return SafeForm(DROP_INDEX_RULES, hint, _in_own_file(sql) if transactional else sql)


def _alter_table(text: str, check_names: dict[int, str]) -> SafeForm:
    """NOT VALID constraints and NOT NULL checks now; their validation (and SET NOT NULL) later.
    `check_names`: the names PostgreSQL would give the unnamed CHECKs, by command."""
    from pglast import ast, enums

    stmt: Any = _tree(text)
    table = stmt.relation.relname
    now: list[Any] = []
    later: list[Any] = []
    drops: list[Any] = []
    answers: list[str] = []
    for number, cmd in enumerate(stmt.cmds):
        constraint = cmd.def_ if cmd.subtype == enums.AlterTableType.AT_AddConstraint else None
        if constraint is not None and _validates_ast(constraint):
            foreign = constraint.contype == enums.ConstrType.CONSTR_FOREIGN
            if not constraint.conname:
                fk_columns = [c.sval for c in constraint.fk_attrs or ()]
                constraint.conname = (
                    "_".join([table, *fk_columns]) + "_fkey" if foreign else check_names[number]
                )
            constraint.skip_validation, constraint.initially_valid = True, False
            later.append(_validate(stmt.relation, constraint.conname))
            answers.extend(CONSTRAINT_RULES)
            now.append(cmd)
        elif cmd.subtype == enums.AlterTableType.AT_SetNotNull:
            name = f"{table}_{cmd.name}_not_null"
            check = ast.Constraint(
                contype=enums.ConstrType.CONSTR_CHECK,
                conname=name,
                is_enforced=True,
                skip_validation=True,
                initially_valid=False,
                raw_expr=ast.NullTest(
                    arg=ast.ColumnRef(fields=(ast.String(sval=cmd.name),)),
                    nulltesttype=enums.NullTestType.IS_NOT_NULL,
                ),
            )
            now.append(ast.AlterTableCmd(subtype=enums.AlterTableType.AT_AddConstraint, def_=check))
            later.append(_validate(stmt.relation, name))
            set_not_null = ast.AlterTableCmd(subtype=enums.AlterTableType.AT_SetNotNull, name=cmd.name)
            later.append(_alter(stmt.relation, set_not_null))
            drops.append(
                _alter(
                    stmt.relation,
                    ast.AlterTableCmd(
                        subtype=enums.AlterTableType.AT_DropConstraint, name=name, missing_ok=True
                    ),
                )
            )
            answers.extend(NOT_NULL_RULES)
        else:
            now.append(cmd)
    stmt.cmds = tuple(now)
    first, rest = _sql(stmt), [_sql(s) for s in (*later, *drops)]
    what = (
        "add the constraint NOT VALID now (new rows are checked at once, the rows already there are not "
        "scanned under the lock) and validate it in a later migration, which scans without blocking reads "
        "or writes"
    )
    if drops:
        what = (
            "add a CHECK (column IS NOT NULL) NOT VALID now; in a later migration validate it (a scan that "
            "blocks neither reads nor writes), then SET NOT NULL, which PostgreSQL 12+ does without a scan "
            "when a valid CHECK proves it, and drop the CHECK"
        )
    hint = f"{what}: {first} then, in a later migration: {' '.join(rest)}"
    return SafeForm(tuple(dict.fromkeys(answers)), hint, "\n".join([first, LATER, *rest]))


# --- reading the trees ------------------------------------------------------------------------


def _commands(stmt: ParsedStatement) -> Iterator[tuple[str, Node]]:
    """(table, command) of each command of an ALTER TABLE."""
    if stmt.kind == "AlterTableStmt" and "relation" in stmt.node:
        table = relation_name(stmt.node["relation"])
        for item in stmt.node.get("cmds", []):
            yield table, item["AlterTableCmd"]


def _validates(cmd: Node) -> bool:
    """An ADD FOREIGN KEY or ADD CHECK that scans the table (no NOT VALID)."""
    constraint = cmd.get("def", {}).get("Constraint", {})
    return (
        cmd["subtype"] == "AT_AddConstraint"
        and constraint.get("contype") in ("CONSTR_FOREIGN", "CONSTR_CHECK")
        and not constraint.get("skip_validation")
    )


def _validates_ast(constraint: Any) -> bool:
    from pglast import enums

    kinds = (enums.ConstrType.CONSTR_FOREIGN, enums.ConstrType.CONSTR_CHECK)
    return constraint.contype in kinds and not constraint.skip_validation


def _not_null_column(expr: Node | None) -> str | None:
    test = (expr or {}).get("NullTest", {})
    fields = test.get("arg", {}).get("ColumnRef", {}).get("fields", [])
    if test.get("nulltesttype") == "IS_NOT_NULL" and len(fields) == 1 and "String" in fields[0]:
        return str(fields[0]["String"]["sval"])
    return None


def _check_names(stmt: ParsedStatement) -> dict[int, str]:
    """The names PostgreSQL gives the unnamed CHECKs of an ALTER TABLE, by command:
    table_column_check after the first column the expression uses."""
    names = {}
    for number, (_, cmd) in enumerate(_commands(stmt)):
        constraint = cmd.get("def", {}).get("Constraint", {})
        if constraint.get("contype") == "CONSTR_CHECK" and not constraint.get("conname"):
            table = str(stmt.node["relation"]["relname"])
            columns = [c.rsplit(".", 1)[-1] for c in own_columns(table, constraint.get("raw_expr"))]
            names[number] = "_".join([table, *columns[:1]]) + "_check"
    return names


def _index_name(index: Any) -> str:
    """The name PostgreSQL gives an unnamed index: table_columns_idx (expr for an expression)."""
    columns = [p.name or "expr" for p in index.indexParams]
    return "_".join([index.relation.relname, *columns]) + "_idx"


# --- writing SQL --------------------------------------------------------------------------------


def _tree(text: str) -> Any:
    from pglast import parse_sql

    return parse_sql(text)[0].stmt


def _sql(node: Any) -> str:
    from pglast.stream import RawStream

    return f"{RawStream()(node)};"


def _validate(relation: Any, name: str) -> Any:
    from pglast import ast, enums

    return _alter(relation, ast.AlterTableCmd(subtype=enums.AlterTableType.AT_ValidateConstraint, name=name))


def _alter(relation: Any, cmd: Any) -> Any:
    from pglast import ast, enums

    return ast.AlterTableStmt(relation=relation, objtype=enums.ObjectType.OBJECT_TABLE, cmds=(cmd,))


def _in_own_file(sql: str) -> str:
    return "\n".join([OWN, TX_OFF, sql])
