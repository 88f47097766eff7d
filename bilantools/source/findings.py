"""A finding: one problem found in the migrations directory or the tracking history."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    file: str
    line: int | None
    message: str
    hint: str
    column: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def one_line(self) -> str:
        """The message and its fix, as the CLI prints it."""
        where = f"{self.file}:{self.line}: " if self.line else ""
        if self.line and self.column:
            where = f"{self.file}:{self.line}:{self.column}: "
        return f"{where}{self.message}; {self.hint}" if self.hint else f"{where}{self.message}"
