"""PNG charts of a `SchemaStats`: objects and size per category, index size distribution.

Each chart is a standalone `matplotlib.figure.Figure` drawn on an Agg canvas, never
through pyplot: no global backend is switched, no window is opened (the CLI runs on
servers without a display), figures are not kept alive by pyplot's registry, and a
notebook still shows the returned Figure. matplotlib is imported inside the functions so
that `bilantools` commands which draw nothing never pay for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bilantools.render.text import human_bytes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from bilantools.db.stats import SchemaStats

PAGE = 8192  # PostgreSQL's block size: index sizes are multiples of it
DPI = 120
TABLES_COLOUR = "#2f6f9f"
INDEXES_COLOUR = "#e08a2c"


def _figure(width: float = 10.0, height: float = 5.5) -> tuple[Figure, Axes]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _caption(fig: Figure, stats: SchemaStats) -> None:
    """Which database the chart describes (the target is already masked)."""
    fig.supxlabel(f"{stats.target}, schema {stats.schema}", fontsize=8, color="0.4")


def _unit(largest: int) -> tuple[str, int]:
    """The unit that keeps the largest value between 1 and 1024."""
    for unit, size in (("TB", 1024**4), ("GB", 1024**3), ("MB", 1024**2), ("kB", 1024)):
        if largest >= size:
            return unit, size
    return "bytes", 1


def _per_category(fig: Figure, ax: Axes, stats: SchemaStats, ylabel: str, title: str) -> Figure:
    """The frame of a chart with one group of bars per category: the categories' names
    under their bars, the labels, the legend and the caption."""
    names = [c.name for c in stats.category_stats]
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_xlabel("table category (migrations/categories.toml)")
    ax.set_title(title)
    ax.legend()
    ax.margins(y=0.12)
    _caption(fig, stats)
    return fig


def category_objects(stats: SchemaStats) -> Figure:
    """Tables and indexes per category, side by side, in the guide's category order."""
    import numpy as np

    fig, ax = _figure()
    names = [c.name for c in stats.category_stats]
    x = np.arange(len(names))
    width = 0.4
    tables = [len(c.tables) for c in stats.category_stats]
    indexes = [c.index_count for c in stats.category_stats]
    for offset, values, label, colour in (
        (-width / 2, tables, "tables", TABLES_COLOUR),
        (width / 2, indexes, "indexes", INDEXES_COLOUR),
    ):
        ax.bar_label(ax.bar(x + offset, values, width, label=label, color=colour), padding=2, fontsize=8)
    title = f"Tables and indexes per category: {len(stats.tables)} tables, {len(stats.indexes)} indexes"
    return _per_category(fig, ax, stats, "number of objects", title)


def category_sizes(stats: SchemaStats) -> Figure:
    """Disk size per category, table data (heap, TOAST, maps) stacked under its indexes."""
    import numpy as np

    fig, ax = _figure()
    names = [c.name for c in stats.category_stats]
    unit, size = _unit(max([c.bytes for c in stats.category_stats], default=0))
    table_part = np.array([c.table_bytes / size for c in stats.category_stats])
    index_part = np.array([c.index_bytes / size for c in stats.category_stats])
    x = np.arange(len(names))
    ax.bar(x, table_part, 0.6, label="table data (heap + TOAST)", color=TABLES_COLOUR)
    totals = ax.bar(x, index_part, 0.6, bottom=table_part, label="indexes", color=INDEXES_COLOUR)
    ax.bar_label(totals, labels=[human_bytes(c.bytes) for c in stats.category_stats], padding=2, fontsize=8)
    total = sum(c.bytes for c in stats.category_stats)
    return _per_category(
        fig, ax, stats, f"size ({unit})", f"Disk size per category: {human_bytes(total)} in all"
    )


def index_sizes(stats: SchemaStats) -> Figure:
    """How index sizes are distributed: page-wide bins for a young schema (where most
    indexes are one or two 8 kB pages), logarithmic bins once sizes span orders of
    magnitude."""
    import numpy as np
    from matplotlib.container import BarContainer
    from matplotlib.ticker import FuncFormatter

    fig, ax = _figure()
    sizes = np.array([i.bytes for i in stats.indexes if i.bytes > 0], dtype=float)
    empty = len(stats.indexes) - len(sizes)  # partitioned indexes own no storage
    ax.set_ylabel("number of indexes")
    title = f"Index size distribution: {len(stats.indexes)} indexes, {human_bytes(int(sizes.sum()))} in all"
    if empty:
        title += f" ({empty} without storage not shown)"
    ax.set_title(title)
    if len(sizes) == 0:
        ax.text(0.5, 0.5, "no index with storage", ha="center", va="center", transform=ax.transAxes)
        _caption(fig, stats)
        return fig
    low, high = float(sizes.min()), float(sizes.max())
    if high / low > 100:
        edges = np.geomspace(low, high * 1.001, 30) / 1024
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda kb, _: human_bytes(int(kb * 1024))))
        ax.set_xlabel("index size (logarithmic scale)")
    else:
        step = max(1, math.ceil((high - low) / PAGE / 40)) * PAGE  # whole pages, at most ~40 bins
        centres = np.arange(math.floor(low / step) * step, high + step, step)
        edges = np.append(centres - step / 2, centres[-1] + step / 2) / 1024
        if len(centres) <= 12:  # few bins: name each one's size
            ax.set_xticks(centres / 1024, [human_bytes(int(c)) for c in centres])
            ax.set_xlabel("index size")
    counts, _, bars = ax.hist(sizes / 1024, bins=edges.tolist(), color=INDEXES_COLOUR, edgecolor="white")
    assert isinstance(bars, BarContainer)  # one data set: a BarContainer, not a list of them
    ax.bar_label(bars, labels=[str(int(c)) if c else "" for c in counts], padding=2, fontsize=8)
    ax.text(
        0.98,
        0.95,
        f"median {human_bytes(int(np.median(sizes)))}\nlargest {human_bytes(int(high))}",
        transform=ax.transAxes,
        ha="right",
        va="top",
        bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.7"},
    )
    if not ax.get_xlabel():
        ax.set_xlabel("index size (kB)")
    ax.margins(y=0.12)
    _caption(fig, stats)
    return fig


CHARTS: dict[str, Callable[[SchemaStats], Figure]] = {
    "category_objects.png": category_objects,
    "category_sizes.png": category_sizes,
    "index_sizes.png": index_sizes,
}


def save_all(stats: SchemaStats, directory: Path | str) -> list[Path]:
    """Write the three charts as PNG files into `directory` (created if needed)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, chart in CHARTS.items():
        path = out / name
        chart(stats).savefig(path, format="png")
        written.append(path)
    return written
