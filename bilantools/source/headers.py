"""Header directives in a migration's leading comment block.

Recognised: ``-- depends: 001, 004`` and ``-- transaction: off``. Other comment lines
are documentation. Directives after the first SQL line are ignored on purpose: a
comment deep inside a file should not change how the whole file runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DIRECTIVE = re.compile(r"^--\s*(?P<key>depends|transaction)\s*:\s*(?P<value>.*?)\s*$", re.I)
_VERSION = re.compile(r"^\d+$")


class HeaderError(ValueError):
    """A directive with a value that cannot be understood (message names the fix)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class Headers:
    depends: tuple[str, ...] = ()
    transactional: bool = True


def parse_headers(text: str) -> Headers:
    depends: list[str] = []
    transactional = True
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
        else:
            mode = value.lower()
            if mode not in ("on", "off"):
                raise HeaderError(
                    number,
                    f"'-- transaction: {value}' is not understood; write '-- transaction: off' "
                    "(or 'on', the default)",
                )
            transactional = mode == "on"
    return Headers(depends=tuple(depends), transactional=transactional)
