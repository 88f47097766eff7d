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
    left_out: int = 0  # rows of literals of an INSERT that `node` does not hold


# Seed data: INSERT ... VALUES with rows of plain literals. Their rows cannot name an
# object, so the analyses need the statement with its first row only; parsing and walking
# 100,000 rows of constants took 8 s of a 9 s check (bench/compare.py, seed corpus).
_LITERAL = (
    r"(?:'(?:[^']|'')*'(?:::\w+(?:\[\])?)?|[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|true|false|null|default)"
)
_ROW = rf"\(\s*{_LITERAL}(?:\s*,\s*{_LITERAL})*\s*\)"
_DATA_INSERT = re.compile(rf"(\s*INSERT\s+INTO\s+[^'$;]*?\bVALUES\s*{_ROW})(?:\s*,\s*{_ROW})+", re.I)
_ROWS = re.compile(_ROW, re.I)
_DATA_INSERT_MIN = 2000  # characters: shorter statements are parsed as they are


def _without_data_rows(text: str) -> tuple[str, int]:
    """`text` without the rows of plain literals that follow an INSERT's first row, and
    how many rows were left out."""
    if len(text) < _DATA_INSERT_MIN:
        return text, 0
    found = _DATA_INSERT.match(text)
    if not found:
        return text, 0
    return found[1] + text[found.end() :], len(_ROWS.findall(text, found.end(1), found.end()))


@lru_cache(maxsize=4096)
def parse_script(script: Script) -> tuple[ParsedStatement, ...]:
    """Every statement of `script` with its parse tree; InputError on a syntax error.

    The texts are the file's; the trees of data-only INSERTs keep their first row alone
    (`left_out` counts the others).
    """
    from pglast import parser

    statements = split(script)
    reduced = [_without_data_rows(stmt.text) for stmt in statements]
    text = script.text if not any(left for _, left in reduced) else ";\n".join(r for r, _ in reduced)
    trees = json.loads(parser.parse_sql_json(text))["stmts"]
    result = []
    for stmt, (_, left_out), tree in zip(statements, reduced, trees, strict=True):
        ((kind, node),) = tree["stmt"].items()
        result.append(ParsedStatement(stmt.text, stmt.line, kind, node, left_out))
    return tuple(result)
