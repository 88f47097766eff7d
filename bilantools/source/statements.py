"""Splitting a script into statements with the PostgreSQL parser (pglast).

The runner sends statements one at a time so that a failure names the exact statement
and line, as psql does. The same pass finds what must not run inside the runner's
transaction: transaction control (the runner owns BEGIN/COMMIT) and statements that
PostgreSQL refuses inside a transaction block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from bilantools.errors import InputError
from bilantools.source.files import Script
from bilantools.source.findings import Finding

_TX_CONTROL = re.compile(
    r"^(BEGIN|COMMIT|END|ROLLBACK|ABORT|START\s+TRANSACTION|SAVEPOINT|RELEASE|PREPARE\s+TRANSACTION)\b", re.I
)
_NO_TRANSACTION = re.compile(
    r"^(CREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY|DROP\s+INDEX\s+CONCURRENTLY|REINDEX\b.*\bCONCURRENTLY"
    r"|VACUUM|CREATE\s+DATABASE|DROP\s+DATABASE|ALTER\s+SYSTEM|CREATE\s+TABLESPACE"
    r"|DROP\s+TABLESPACE|CLUSTER\s*;?$"
    r"|(CREATE|ALTER)\s+SUBSCRIPTION|DROP\s+SUBSCRIPTION)",
    re.I | re.S,
)


class SqlSyntaxError(InputError):
    """A script the PostgreSQL parser rejects; nothing of it may run."""

    def __init__(self, script: Script, line: int, col: int, reason: str) -> None:
        super().__init__(
            f"{script.path}:{line}:{col}: syntax error: {reason}; fix the SQL "
            "(nothing was sent to the database)"
        )
        self.path = script.path
        self.line = line
        self.col = col
        self.reason = reason

    def finding(self) -> Finding:
        return Finding(
            "syntax-error",
            "error",
            str(self.path),
            self.line,
            f"syntax error: {self.reason}",
            "fix the SQL; the server would reject the whole file",
            self.col,
        )


@dataclass(frozen=True)
class Statement:
    text: str
    line: int  # 1-based line of the statement's first character in its file


Slices = tuple[tuple[int, int], ...]  # (start, end) character offsets of each statement


def split(script: Script, known: Slices | None = None) -> list[Statement]:
    """The statements of `script`, each with its starting line; `known` are its slices
    from an earlier parse (see `source.passed`), which spares the parser.

    Raises SqlSyntaxError (file:line:col and the parser's message) on a syntax error.
    """
    text = script.text
    statements = []
    line, counted = 1, 0
    for start, end in known if known is not None else statement_slices(script):
        line += text.count("\n", counted, start)
        counted = start
        statements.append(Statement(text[start:end], line))
    return statements


@lru_cache(maxsize=4096)
def statement_slices(script: Script) -> Slices:
    """Where each statement of `script` starts and ends, by the PostgreSQL parser."""
    from pglast import parser

    text = script.text
    try:
        slices = parser.split(text, with_parser=True, only_slices=True)
    except parser.ParseError as exc:
        offset = exc.args[1] if len(exc.args) > 1 else 0  # 0-based character index
        line = text.count("\n", 0, offset) + 1
        col = offset - (text.rfind("\n", 0, offset) + 1) + 1
        raise SqlSyntaxError(script, line, col, str(exc.args[0])) from None
    return tuple((s.start, s.stop) for s in slices)


def runnable_findings(script: Script, statements: list[Statement], transactional: bool) -> list[Finding]:
    """Statements the runner cannot run as the file's header says it should."""
    findings = []
    for stmt in statements:
        head = stmt.text.lstrip()
        if _TX_CONTROL.match(head):
            findings.append(
                Finding(
                    "transaction-control",
                    "error",
                    str(script.path),
                    stmt.line,
                    f"'{_first_words(head)}' controls the transaction, which bilantools owns (one "
                    "transaction per migration)",
                    "remove BEGIN/COMMIT from the file",
                )
            )
        elif transactional and _NO_TRANSACTION.match(head):
            findings.append(
                Finding(
                    "needs-transaction-off",
                    "error",
                    str(script.path),
                    stmt.line,
                    f"'{_first_words(head)}' cannot run inside a transaction",
                    "add the header line '-- transaction: off' to the file (it then runs statement by "
                    "statement, outside a transaction)",
                )
            )
    return findings


def check_runnable(script: Script, statements: list[Statement], transactional: bool) -> None:
    """Raise the first statement the runner cannot run (see `runnable_findings`)."""
    findings = runnable_findings(script, statements, transactional)
    if findings:
        raise InputError(findings[0].one_line())


def _first_words(text: str, count: int = 6) -> str:
    return " ".join(text.split()[:count])
