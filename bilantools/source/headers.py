"""Header directives in a migration's leading comment block.

Recognised: ``-- depends: 001, 004``, ``-- transaction: off``, ``-- lock-timeout: 10s``
and ``-- statement-timeout: 5min`` (the last two override the run's limits for this one
script: its author knows best how long its locks may be waited for). Other comment lines
are documentation. Directives after the first SQL line are ignored on purpose: a
comment deep inside a file should not change how the whole file runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_DIRECTIVE = re.compile(
    r"^--\s*(?P<key>depends|transaction|lock-timeout|statement-timeout)\s*:\s*(?P<value>.*?)\s*$", re.I
)
_VERSION = re.compile(r"^[0-9]+\Z")  # ASCII digits: int() also reads "١٢", nobody types it back
# A PostgreSQL duration as lock_timeout and statement_timeout accept it; 0 means no limit.
_DURATION = re.compile(r"^(?P<amount>[0-9]+)\s*(?P<unit>ms|s|min|h|d)?\Z", re.I)
_UNIT_MS = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
# The largest lock_timeout / statement_timeout PostgreSQL takes: INT_MAX milliseconds (~24.8 days).
MAX_DURATION_MS = 2**31 - 1
DURATION_HINT = "write a duration such as 500ms, 10s, 5min or 1h (0 for no limit)"


def parse_duration(value: str) -> str | None:
    """The PostgreSQL spelling of a duration ('10s', '500ms', '0'), or None if it is not one."""
    match = _DURATION.match(value.strip())
    if not match:
        return None
    amount, unit = int(match["amount"]), (match["unit"] or "ms").lower()
    if amount * _UNIT_MS[unit] > MAX_DURATION_MS:  # the server would refuse it mid-run
        return None
    return f"{amount}{unit}" if amount else "0"


def duration_ms(value: str) -> int | None:
    """A duration in milliseconds (0: no limit), or None if it is not one."""
    spelled = parse_duration(value)
    match = _DURATION.match(spelled) if spelled is not None else None
    return None if match is None else int(match["amount"]) * _UNIT_MS[(match["unit"] or "ms").lower()]


def _too_long(value: str) -> bool:
    """A well-formed duration beyond what PostgreSQL accepts."""
    return _DURATION.match(value.strip()) is not None and parse_duration(value) is None


class HeaderError(ValueError):
    """A directive with a value that cannot be understood (message names the fix)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class Limits:
    """lock_timeout and statement_timeout for one script; None leaves the run's value."""

    lock_timeout: str | None = None
    statement_timeout: str | None = None


@dataclass(frozen=True)
class Headers:
    depends: tuple[str, ...] = ()
    transactional: bool = True
    limits: Limits = field(default_factory=Limits)


def parse_headers(text: str) -> Headers:
    depends: list[str] = []
    transactional = True
    timeouts: dict[str, str] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("--"):
            break
        match = _DIRECTIVE.match(line)
        if not match:
            continue
        key, value = match["key"].lower(), match["value"]
        if key == "depends":
            for item in filter(None, re.split(r"[\s,]+", value)):
                if not _VERSION.match(item):
                    raise HeaderError(
                        number,
                        f"'-- depends:' names '{item}', which is not a version number; "
                        "list versions such as '-- depends: 001, 004'",
                    )
                depends.append(item)
        elif key in ("lock-timeout", "statement-timeout"):
            duration = parse_duration(value)
            if duration is None:
                what = (
                    "is longer than PostgreSQL allows (about 24 days)"
                    if _too_long(value)
                    else "is not a duration"
                )
                raise HeaderError(number, f"'-- {key}: {value}' {what}; {DURATION_HINT}")
            timeouts[key] = duration
        else:
            mode = value.lower()
            if mode not in ("on", "off"):
                raise HeaderError(
                    number,
                    f"'-- transaction: {value}' is not understood; write '-- transaction: off' "
                    "(or 'on', the default)",
                )
            transactional = mode == "on"
    return Headers(
        depends=tuple(depends),
        transactional=transactional,
        limits=Limits(timeouts.get("lock-timeout"), timeouts.get("statement-timeout")),
    )
