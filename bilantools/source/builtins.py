"""What PostgreSQL itself provides: names an unresolved-reference check must not flag.

The lists in ``pg_builtins.json`` were read from the catalog of a PostgreSQL 18 server
(functions, types and relations of ``pg_catalog`` and ``information_schema``). Refresh
them against any server with::

    python -m bilantools.source.builtins postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from importlib.resources import files

_QUERIES = {
    "functions": "SELECT DISTINCT proname FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace",
    "types": "SELECT DISTINCT typname FROM pg_type WHERE typnamespace = 'pg_catalog'::regnamespace"
    " AND typname NOT LIKE '\\_%'",
    "relations": "SELECT DISTINCT relname FROM pg_class"
    " WHERE relnamespace IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)"
    " AND relkind IN ('r', 'v', 'm', 'p', 'f')",
}
# Names the grammar turns into type or function names that are not in the catalog as such.
_GRAMMAR_TYPES = {"serial", "bigserial", "smallserial", "serial4", "serial8", "serial2"}
_SCHEMAS = {"pg_catalog", "information_schema", "public", "pg_temp", "pg_toast"}


@lru_cache(maxsize=1)
def builtins() -> dict[str, frozenset[str]]:
    data = json.loads((files("bilantools.source") / "pg_builtins.json").read_text(encoding="utf-8"))
    result = {kind: frozenset(names) for kind, names in data.items()}
    result["types"] = result["types"] | _GRAMMAR_TYPES
    result["schemas"] = frozenset(_SCHEMAS)
    return result


def refresh(url: str) -> dict[str, list[str]]:
    import psycopg

    with psycopg.connect(url) as conn:
        return {kind: sorted(r[0] for r in conn.execute(q)) for kind, q in _QUERIES.items()}


if __name__ == "__main__":
    target = files("bilantools.source") / "pg_builtins.json"
    with open(str(target), "w", encoding="utf-8") as out:
        json.dump(refresh(sys.argv[1]), out, separators=(",", ":"))
        out.write("\n")
