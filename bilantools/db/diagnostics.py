"""Turning a server error into one line: the message, the file line, the statement."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bilantools.secrets import redact

if TYPE_CHECKING:
    from bilantools.source.statements import Statement


def server_message(exc: BaseException) -> str:
    """'ERROR <sqlstate>: <primary message>', masked, on one line."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None)
    sqlstate = getattr(diag, "sqlstate", None)
    text = f"ERROR {sqlstate}: {primary}" if primary and sqlstate else str(exc)
    return redact(" ".join(text.split()))


def error_line(stmt: Statement, exc: BaseException) -> int:
    """The file line of the error: the statement's line, refined by the server's position."""
    diag = getattr(exc, "diag", None)
    position = getattr(diag, "statement_position", None)
    if position and str(position).isdigit():
        return stmt.line + stmt.text.count("\n", 0, int(position) - 1)
    return stmt.line


def excerpt(text: str, width: int = 80) -> str:
    """The statement flattened to one line and cut to `width` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."
