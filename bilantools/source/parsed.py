"""Scripts parsed once by the PostgreSQL parser, as plain JSON trees.

pglast's JSON output is an order of magnitude cheaper than its Python node objects, and
the analyses only read it. Statement texts and lines come from `statements.split` (they
are character-exact even with accented text), the trees from `parse_sql_json`, in the same
order.
"""

from __future__ import annotations

import json
import re
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


# Seed data: INSERT ... VALUES with rows of plain literals. Their rows cannot name an
# object, so the analyses need the statement with its first row only; parsing and walking
# 100,000 rows of constants took 8 s of a 9 s check (bench/compare.py, seed corpus).
_LITERAL = (
    r"(?:'(?:[^']|'')*'(?:::\w+(?:\[\])?)?|[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|true|false|null|default)"
)
_ROW = rf"\(\s*{_LITERAL}(?:\s*,\s*{_LITERAL})*\s*\)"
_DATA_INSERT = re.compile(rf"(\s*INSERT\s+INTO\s+[^'$;]*?\bVALUES\s*{_ROW})(?:\s*,\s*{_ROW})+", re.I)
_DATA_INSERT_MIN = 2000  # characters: shorter statements are parsed as they are


def _without_data_rows(text: str) -> str:
    """`text` without the rows of plain literals that follow an INSERT's first row."""
    if len(text) < _DATA_INSERT_MIN:
        return text
    found = _DATA_INSERT.match(text)
    return found[1] + text[found.end() :] if found else text


@lru_cache(maxsize=4096)
def parse_script(script: Script) -> tuple[ParsedStatement, ...]:
    """Every statement of `script` with its parse tree; InputError on a syntax error.

    The texts are the file's; the trees of data-only INSERTs keep their first row alone.
    """
    from pglast import parser

    statements = split(script)
    reduced = [_without_data_rows(stmt.text) for stmt in statements]
    text = (
        script.text
        if all(r is s.text for r, s in zip(reduced, statements, strict=True))
        else ";\n".join(reduced)
    )
    trees = json.loads(parser.parse_sql_json(text))["stmts"]
    result = []
    for stmt, tree in zip(statements, trees, strict=True):
        ((kind, node),) = tree["stmt"].items()
        result.append(ParsedStatement(stmt.text, stmt.line, kind, node))
    return tuple(result)
