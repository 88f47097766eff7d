"""Table categories for the schema overview, read from ``categories.toml`` beside the
migrations (the guide's "Table Categories"). Optional: without the file every table is
"Uncategorized"."""

from __future__ import annotations

import tomllib
from pathlib import Path

from bilantools.errors import InputError

FILE_NAME = "categories.toml"
UNCATEGORIZED = "Uncategorized"


def load_categories(migrations: Path | str) -> dict[str, list[str]]:
    """{category: [table, ...]} in file order; empty when there is no file."""
    path = Path(migrations) / FILE_NAME
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid TOML ({exc}); fix the file or remove it") from None
    table = data.get("categories")
    if not isinstance(table, dict) or not all(
        isinstance(v, list) and all(isinstance(t, str) for t in v) for v in table.values()
    ):
        raise InputError(
            f'{path}: expected a [categories] table of lists of table names, e.g. Core = ["users"]'
        )
    return {str(k): list(v) for k, v in table.items()}
