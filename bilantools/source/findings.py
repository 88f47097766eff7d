"""A finding: one problem found in the migrations directory or the tracking history."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]
# The rules of files that reading a directory leaves out: they cannot be read, or are not
# taken for migrations. Commands that use the migrations name them rather than drop them.
LEFT_OUT = frozenset({"unreadable", "encoding", "empty-file", "file-name", "header"})


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    file: str
    line: int | None
    message: str
    hint: str
    column: int | None = None
    safe_sql: str | None = None  # the statement's safe form, when it is mechanical (see safe_forms)

    @property
    def leaves_file_out(self) -> bool:
        """This finding's file is not among the migrations read (see LEFT_OUT)."""
        return self.rule in LEFT_OUT

    def as_dict(self) -> dict[str, Any]:
        """Its fields; "safe_sql" only for a finding that has a safe form."""
        shown = asdict(self)
        if self.safe_sql is None:
            del shown["safe_sql"]
        return shown

    def one_line(self) -> str:
        """The message and its fix, as the CLI prints it."""
        where = f"{self.file}:{self.line}: " if self.line else ""
        if self.line and self.column:
            where = f"{self.file}:{self.line}:{self.column}: "
        return f"{where}{self.message}; {self.hint}" if self.hint else f"{where}{self.message}"
