"""Splitting a script into statements with the PostgreSQL parser (pglast).

The runner sends statements one at a time so that a failure names the exact statement
and line, as psql does. The same pass finds what must not run inside the runner's
transaction: transaction control (the runner owns BEGIN/COMMIT) and statements that
PostgreSQL refuses inside a transaction block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bilantools.errors import InputError
from bilantools.source.files import Script

_TX_CONTROL = re.compile(
    r"^(BEGIN|COMMIT|END|ROLLBACK|ABORT|START\s+TRANSACTION|SAVEPOINT|RELEASE|PREPARE\s+TRANSACTION)\b", re.I
)
_NO_TRANSACTION = re.compile(
    r"^(CREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY|DROP\s+INDEX\s+CONCURRENTLY|REINDEX\b.*\bCONCURRENTLY"
    r"|VACUUM|CREATE\s+DATABASE|DROP\s+DATABASE|ALTER\s+SYSTEM|CREATE\s+TABLESPACE"
    r"|DROP\s+TABLESPACE|CLUSTER\s*;?$|ALTER\s+TYPE\s+\S+\s+ADD\s+VALUE"
    r"|(CREATE|ALTER)\s+SUBSCRIPTION|DROP\s+SUBSCRIPTION)",
    re.I | re.S,
)


@dataclass(frozen=True)
class Statement:
    text: str
    line: int  # 1-based line of the statement's first character in its file


def split(script: Script) -> list[Statement]:
    """The statements of `script`, each with its starting line.

    Raises InputError with file:line:col and the parser's message on a syntax error.
    """
    from pglast import parser

    text = script.text
    try:
        slices = parser.split(text, with_parser=True, only_slices=True)
    except parser.ParseError as exc:
        offset = exc.args[1] if len(exc.args) > 1 else 0  # 0-based character index
        line = text.count("\n", 0, offset) + 1
        col = offset - (text.rfind("\n", 0, offset) + 1) + 1
        raise InputError(
            f"{script.path}:{line}:{col}: syntax error: {exc.args[0]}; fix the SQL "
            "(nothing was sent to the database)"
        ) from None
    return [Statement(text[s], text.count("\n", 0, s.start) + 1) for s in slices]


def check_runnable(script: Script, statements: list[Statement], transactional: bool) -> None:
    """Refuse statements the runner cannot run as the file's header says it should."""
    for stmt in statements:
        head = stmt.text.lstrip()
        if _TX_CONTROL.match(head):
            raise InputError(
                f"{script.path}:{stmt.line}: '{_first_words(head)}' controls the transaction, which "
                "bilantools owns (one transaction per migration); remove BEGIN/COMMIT from the file"
            )
        if transactional and _NO_TRANSACTION.match(head):
            raise InputError(
                f"{script.path}:{stmt.line}: '{_first_words(head)}' cannot run inside a transaction; "
                "add the header line '-- transaction: off' to the file (it then runs statement by "
                "statement, outside a transaction)"
            )


def _first_words(text: str, count: int = 4) -> str:
    return " ".join(text.split()[:count])
