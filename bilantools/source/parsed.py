"""Scripts parsed once by the PostgreSQL parser, as plain JSON trees.

pglast's JSON output is an order of magnitude cheaper than its Python node objects, and
the analyses only read it. Statement texts and lines come from `statements.split` (they
are character-exact even with accented text), the trees from `parse_sql_json`, in the same
order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from bilantools.source.files import Script
from bilantools.source.statements import split

Node = dict[str, Any]


@dataclass(frozen=True)
class ParsedStatement:
    text: str
    line: int  # 1-based line of the statement's first character in its file
    kind: str  # the parse node's type, e.g. "CreateStmt", "IndexStmt"
    node: Node = field(repr=False, compare=False, hash=False)


@lru_cache(maxsize=4096)
def parse_script(script: Script) -> tuple[ParsedStatement, ...]:
    """Every statement of `script` with its parse tree; InputError on a syntax error."""
    from pglast import parser

    statements = split(script)
    trees = json.loads(parser.parse_sql_json(script.text))["stmts"]
    result = []
    for stmt, tree in zip(statements, trees, strict=True):
        ((kind, node),) = tree["stmt"].items()
        result.append(ParsedStatement(stmt.text, stmt.line, kind, node))
    return tuple(result)
