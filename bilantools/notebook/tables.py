"""Tables a DBA reads at a glance in a runbook, in place of raw pandas and printed dicts.

`show` renders any DataFrame: no index column, byte counts in human units, thousands
separators, missing values blank (never NaN, None or <NA>), numbers aligned right, and an
optional problem column in red with its rows first. `facts` renders a mapping (totals,
summaries, counts) as a two-column table instead of a Python dict.

Both return a pandas Styler whose id (its CSS selectors) comes from the caption and the
columns, so that a runbook's saved HTML is the same from one run to the next (nbval
compares it exactly): give a caption that does not vary (no run id, no duration), and two
tables with the same columns in one notebook different captions.
The catalog inspections have their own views (`bilantools.render.inspection`): `inspected`
shows one the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bilantools.render import inspection
from bilantools.render.inspection import records
from bilantools.render.text import human_bytes

if TYPE_CHECKING:
    import pandas as pd
    from pandas.io.formats.style import Styler

PROBLEM_STYLE = "color: #b00020; font-weight: bold"


def show(
    frame: pd.DataFrame,
    *,
    sizes: Sequence[str] = (),
    numbers: Sequence[str] = (),
    problems: str | None = None,
    caption: str | None = None,
) -> Styler:
    """`frame` as a DBA reads it: `sizes` (byte counts) as kB/MB/GB, `numbers` with
    thousands separators, both aligned right; with `problems` (a column naming each row's
    problem, blank when none), the rows with a problem first and that column in red.
    Rows otherwise keep the frame's order: sort it by what matters before."""
    import pandas as pd

    unknown = [c for c in (*sizes, *numbers, *([problems] if problems else [])) if c not in frame.columns]
    if unknown:
        raise ValueError(f"show(): no column {', '.join(map(repr, unknown))} in {list(frame.columns)}")
    rows = records(frame)
    if problems:
        rows.sort(key=lambda r: not r[problems])  # stable: the frame's order within each group
    cells = [{c: _cell(r[c], size=c in sizes) for c in frame.columns} for r in rows]
    shown = pd.DataFrame(cells, columns=list(frame.columns))
    style = _styler(shown, caption, right=[*sizes, *numbers])
    if problems:
        style = style.map(lambda v: PROBLEM_STYLE if v else "", subset=[problems])
    return style


def facts(mapping: Mapping[str, Any], caption: str | None = None) -> Styler:
    """A mapping as a two-column table (name, value): names with their underscores as
    spaces, numbers with thousands separators and aligned right."""
    import pandas as pd

    shown = pd.DataFrame(
        [(str(k).replace("_", " "), _cell(v)) for k, v in mapping.items()], columns=["name", "value"]
    )
    return _styler(shown, caption, right=["value"])


def _cell(value: Any, size: bool = False) -> str:
    """One value as shown: blank when missing, bytes in human units, yes/no, 1,234."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if size and isinstance(value, int | float):
        return human_bytes(int(value))
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def inspected(kind: str, frame: pd.DataFrame, caption: str | None = None) -> Styler:
    """A catalog inspection (`commands.inspect`) as `inspection.styled` shows it (biggest
    first, problems first and named, the others folded), with the same fixed id and
    alignment as `show`."""
    view = inspection.VIEWS[kind]
    right = [inspection.notebook_header(c) for c in (*view.sizes, *view.figures)]
    return _fixed(inspection.styled(kind, frame), caption or kind, right)


def _styler(shown: pd.DataFrame, caption: str | None, right: Sequence[str]) -> Styler:
    """The shown frame without its index."""
    return _fixed(shown.style.hide(axis="index"), caption, right)


def _fixed(style: Styler, caption: str | None, right: Sequence[str]) -> Styler:
    """`style` under a fixed id and its caption, each column aligned (headers too): the
    `right` ones right, the others left, whatever the frontend's default (JupyterLab
    aligns every cell right)."""
    columns = list(style.data.columns)
    key = "\n".join([caption or "", *map(str, columns)])
    style = style.set_uuid("t" + hashlib.sha256(key.encode()).hexdigest()[:8])
    align = ["right" if c in right else "left" for c in columns]
    style = style.set_table_styles(
        [{"selector": f"th.col{i}, td.col{i}", "props": [("text-align", a)]} for i, a in enumerate(align)],
        overwrite=False,
    )
    return style.set_caption(caption) if caption else style
