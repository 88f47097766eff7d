"""Verify scripts (Sqitch's ``verify/<change>.sql``) run against the target, never changing it.

Each script runs statement by statement inside one transaction that is always rolled
back, whatever the script says: its own ``BEGIN``/``ROLLBACK``/``COMMIT`` are not sent
(that transaction stands for them), so a verify that writes, or ends in ``COMMIT;``,
leaves nothing behind. A script passes when every statement runs; the first error (a
``SELECT 1/COUNT(*)`` dividing by zero, a missing relation) fails it, with its line.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bilantools.db.diagnostics import error_line, server_message
from bilantools.source.files import read_script
from bilantools.source.findings import Finding
from bilantools.source.layouts.sqitch import meta_commands
from bilantools.source.statements import SqlSyntaxError, split

if TYPE_CHECKING:
    import psycopg

# Transaction control a verify script may hold: the rolled-back transaction stands for it.
_CONTROL = re.compile(r"^(BEGIN|COMMIT|END|ROLLBACK|ABORT|START\s+TRANSACTION)\b", re.I)


@dataclass(frozen=True)
class ScriptCheck:
    """One change's verify script: passed, or the error it stopped at."""

    change: str
    ok: bool
    error: str | None
    file: str
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run(conn: psycopg.Connection, scripts: list[tuple[str, Path]]) -> list[ScriptCheck]:
    """Run each (change, verify script path) in order on `conn` (autocommit), each in its
    own transaction that is rolled back."""
    return [_run_one(conn, change, path) for change, path in scripts]


def _run_one(conn: psycopg.Connection, change: str, path: Path) -> ScriptCheck:
    import psycopg

    findings: list[Finding] = []
    script = read_script(path, findings, empty_ok=True)
    if script is not None:
        findings.extend(meta_commands(script))
    if script is None or findings:
        first = findings[0]
        return ScriptCheck(change, False, f"{first.message}; {first.hint}", str(path), first.line)
    try:
        statements = split(script)
    except SqlSyntaxError as exc:
        return ScriptCheck(change, False, f"syntax error: {exc.reason}", str(path), exc.line)
    stmt = None
    try:
        with conn.transaction(force_rollback=True):
            for stmt in statements:
                if not _CONTROL.match(stmt.text.lstrip()):
                    conn.execute(stmt.text)  # no parameters: a '%' is sent as written
    except psycopg.Error as exc:
        line = error_line(stmt, exc) if stmt is not None else None
        return ScriptCheck(change, False, server_message(exc), str(path), line)
    return ScriptCheck(change, True, None, str(path))
