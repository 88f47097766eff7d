"""A catalog inspection as a DBA reads it: the columns that matter, sizes in human units,
sorted by what matters (biggest first, problems first), each problem named in one
column, the rows without one folded into a count, and cells cut to fit the terminal.

`View` says, per inspection, what to show; `text` renders the CLI's table, `styled` the
same rows as a pandas Styler for the notebooks, and `records` the rows for --json
(missing values as null, never NaN).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bilantools.render.text import human_bytes, text_table

if TYPE_CHECKING:
    import pandas as pd
    from pandas.io.formats.style import Styler

Row = dict[str, Any]
PROBLEM = "problem"
MIN_CELL = 16  # a text column is never cut below this many characters
# Short headers where the column's name is long; the others are the name in capitals.
HEADERS = {
    "total_bytes": "SIZE",
    "table_bytes": "DATA",
    "index_bytes": "INDEXES",
    "estimated_rows": "ROWS (EST.)",
    "rls_enabled": "RLS",
    "rls_forced": "FORCED",
    "referenced_table": "REFERENCES",
    "security_definer": "DEFINER",
    "used_fraction": "USED",
}


@dataclass(frozen=True)
class View:
    columns: tuple[str, ...]  # shown, in this order (names first, then figures)
    order: Callable[[Row], Any]  # the sort key: what matters first
    problem: Callable[[Row], str | None] = lambda row: None
    fold: bool = False  # list only the rows with a problem, the others as a count
    sizes: tuple[str, ...] = ()  # byte counts, shown as kB / MB / GB
    figures: tuple[str, ...] = ()  # other numbers: aligned right
    wide: tuple[str, ...] = ()  # long texts, cut first when a line is too wide
    shown: Callable[[str, Any], Any] = lambda column, value: value  # a cell's value as shown


def _index_problem(row: Row) -> str | None:
    if row.get("valid") is False:
        return "invalid (a failed build): drop, rebuild"
    if row.get("duplicate_of"):
        return f"duplicate of {row['duplicate_of']}"
    if row.get("redundant_prefix_of"):
        return f"prefix of {row['redundant_prefix_of']}"
    if row.get("unused") and not row.get("primary") and not row.get("unique"):
        return "unused (0 scans)"
    return None


def _index_method(definition: str | None) -> str | None:
    """'CREATE UNIQUE INDEX x ON t USING btree (a, b) WHERE c' -> 'unique btree (a, b) WHERE c'."""
    if definition is None or " USING " not in definition:
        return definition
    unique = "unique " if definition.startswith("CREATE UNIQUE") else ""
    return unique + definition.split(" USING ", 1)[1]


def _rls_problem(row: Row) -> str | None:
    if row.get("enabled_without_policy"):
        return "RLS on, no policy: only the owner and BYPASSRLS roles see rows"
    if row.get("policies_without_rls"):
        return "policies, but RLS is off: they are not applied"
    return None


VIEWS: dict[str, View] = {
    "tables": View(
        ("table", "total_bytes", "table_bytes", "index_bytes", "estimated_rows", "rls_enabled", "partitions"),
        order=lambda r: (-(r["total_bytes"] or 0), r["table"]),
        problem=lambda r: None if r.get("has_primary_key") else "no primary key",
        sizes=("total_bytes", "table_bytes", "index_bytes"),
        figures=("estimated_rows", "partitions"),
    ),
    "columns": View(
        ("table", "column", "type", "nullable", "default"),
        order=lambda r: (r["table"], r["position"]),
        wide=("default", "type"),
    ),
    "indexes": View(
        ("table", "index", "bytes", "scans", "definition"),  # definition: its method and keys
        order=lambda r: (-(r["bytes"] or 0), r["index"]),
        problem=_index_problem,
        fold=True,
        sizes=("bytes",),
        figures=("scans",),
        wide=("definition",),
        shown=lambda column, value: _index_method(value) if column == "definition" else value,
    ),
    "constraints": View(
        ("table", "name", "type", "definition"),
        order=lambda r: (r["table"], r["type"], r["name"]),
        problem=lambda r: (
            None if r.get("validated", True) else "NOT VALID: run ALTER TABLE ... VALIDATE CONSTRAINT"
        ),
        fold=True,
    ),
    "foreign_keys_without_index": View(
        ("table", "constraint", "columns", "referenced_table", "partly_covered_by"),
        order=lambda r: (r["table"], r["constraint"]),
        problem=lambda r: f"a delete in {r['referenced_table']} scans it",
        wide=("partly_covered_by", "constraint"),
    ),
    "rls": View(
        ("table", "rls_enabled", "rls_forced", "policies", "commands", "roles"),
        order=lambda r: (not r.get("rls_enabled"), r["table"]),
        problem=_rls_problem,
        figures=("policies",),
        wide=("commands", "roles"),
    ),
    "policies": View(
        ("table", "policy", "command", "roles", "using", "with_check"),
        order=lambda r: (r["table"], r["policy"]),
        wide=("using", "with_check"),
    ),
    "triggers": View(
        ("table", "trigger", "enabled", "function"),
        order=lambda r: (r["table"], r["trigger"]),
        problem=lambda r: None if r.get("enabled") == "enabled" else f"{r.get('enabled')}: it does not fire",
        fold=True,
    ),
    "functions": View(
        ("name", "kind", "language", "returns", "volatility", "security_definer"),
        order=lambda r: r["name"],
        problem=lambda r: (
            "SECURITY DEFINER without a pinned search_path" if r.get("definer_without_search_path") else None
        ),
        fold=True,
    ),
    "sequences": View(
        ("name", "data_type", "owned_by", "last_value", "used_fraction"),
        order=lambda r: (-(r.get("used_fraction") or 0), r["name"]),
        problem=lambda r: "close to its maximum" if r.get("close_to_max") else None,
        figures=("last_value", "used_fraction"),
    ),
    "extensions": View(("name", "version", "schema"), order=lambda r: r["name"]),
}


def records(frame: pd.DataFrame) -> list[Row]:
    """The frame's rows with pandas' missing values (NaN, NaT, <NA>) as None."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _plain(value: Any) -> Any:
    import pandas as pd

    if isinstance(value, list | tuple | dict):
        return value
    if value is None or pd.isna(value):
        return None
    return value.item() if hasattr(value, "item") else value


def text(kind: str, frame: pd.DataFrame, show_all: bool = False, width: int | None = None) -> str:
    """The CLI's table for inspection `kind`, and a line for what it folded or found."""
    view = VIEWS[kind]
    rows = sorted(records(frame), key=lambda r: (view.fold and view.problem(r) is None, view.order(r)))
    problems = [r for r in rows if view.problem(r)]
    shown = rows if show_all or not view.fold else problems
    columns = [*view.columns, *([PROBLEM] if problems else [])]
    cells = [[_cell(view, c, r) for c in columns] for r in shown]
    lines = (
        [_fit(columns, cells, view, width or shutil.get_terminal_size((160, 24)).columns)] if shown else []
    )
    lines.append(_count(kind, len(rows), len(problems), len(rows) - len(shown)))
    return "\n".join(lines)


def _count(kind: str, total: int, problems: int, folded: int) -> str:
    said = f"{total} {kind.replace('_', ' ')}: " + (
        f"{problems} with a problem" if problems else "no problem"
    )
    return said + (f", {folded} ok not listed (--all lists them)" if folded else "")


def _cell(view: View, column: str, row: Row) -> str:
    value = view.problem(row) if column == PROBLEM else view.shown(column, row.get(column))
    if value is None:
        return "?" if column == "estimated_rows" else ""  # never analysed
    if column in view.sizes:
        return human_bytes(int(value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if column == "used_fraction":
        return f"{value:.1%}"
    if isinstance(value, float):
        return "?" if math.isnan(value) or value < 0 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return " ".join(str(value).split())


def _fit(columns: Sequence[str], cells: list[list[str]], view: View, width: int) -> str:
    """The table, its widest text columns cut (with …) until a line fits `width`."""
    right = {i for i, c in enumerate(columns) if c in view.sizes or c in view.figures}
    headers = [HEADERS.get(c, c.replace("_", " ").upper()) for c in columns]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    first = [i for i, c in enumerate(columns) if c in view.wide]
    names = [i for i, c in enumerate(columns) if i not in right and i not in first and c != PROBLEM]
    last = [i for i, c in enumerate(columns) if c == PROBLEM]
    # The long texts first, then the names, the problem last.
    for group in (first, [*first, *names], [*first, *names, *last]):
        while group and sum(widths) + 2 * (len(widths) - 1) > width:
            cut = max(group, key=lambda i: widths[i])
            if widths[cut] <= MIN_CELL:
                break
            widths[cut] -= 1
    clipped = [
        [c if len(c) <= widths[i] else c[: widths[i] - 1] + "…" for i, c in enumerate(row)] for row in cells
    ]
    return text_table(headers, clipped, right=right)


def notebook_header(column: str) -> str:
    """A column's header in a notebook: the CLI's short one, in lower case like the others."""
    return HEADERS.get(column, column.replace("_", " ")).lower()


def styled(kind: str, frame: pd.DataFrame, show_all: bool = False) -> Styler:
    """The same rows for a notebook: no index column, human sizes, problems first."""
    import pandas as pd

    view = VIEWS[kind]
    rows = sorted(records(frame), key=lambda r: (view.fold and view.problem(r) is None, view.order(r)))
    if view.fold and not show_all:
        rows = [r for r in rows if view.problem(r)]
    problems = any(view.problem(r) for r in rows)
    columns = [*view.columns, *([PROBLEM] if problems else [])]
    headers = [notebook_header(c) for c in columns]
    shown = pd.DataFrame([[_cell(view, c, r) for c in columns] for r in rows], columns=headers)
    style = shown.style.hide(axis="index").set_uuid(f"inspect_{kind}")  # the same HTML every run
    if problems:
        style = style.map(lambda v: "color: #b00020; font-weight: bold" if v else "", subset=[PROBLEM])
    numbers = [h for c, h in zip(columns, headers, strict=True) if c in view.sizes or c in view.figures]
    return style.set_properties(subset=numbers, **{"text-align": "right"})
