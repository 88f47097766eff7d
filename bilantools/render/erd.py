"""An entity-relationship diagram as Graphviz DOT: one box per table listing its key
columns (PK, FK) with their types, one edge per foreign key from its columns to the
referenced table; tables outside the chosen category are grey boxes with their name only."""

from __future__ import annotations

from html import escape

from bilantools.db.erd import ForeignKey, KeyColumn, SchemaModel

_HEADER = '<tr><td bgcolor="#dbe8f6" colspan="3"><b>{name}</b></td></tr>'
_ROW = (
    '<tr><td align="left">{mark}</td><td align="left">{name}</td>'
    '<td align="left" port="{port}">{type}</td></tr>'
)
_OUTSIDE = 'style="rounded,dashed", color=grey, fontcolor=grey40'
_MORE = '<tr><td colspan="3" align="left"><i>+ {count} other column(s)</i></td></tr>'


def to_dot(model: SchemaModel, title: str) -> str:
    """The diagram of `model` as DOT source, titled `title`."""
    lines = [
        "digraph erd {",
        f"  graph [rankdir=LR, fontname=Helvetica, label={_quoted(title)}, labelloc=t];",
        "  node [shape=plaintext, fontname=Helvetica, fontsize=10];",
        '  edge [color="#5a6b7d", dir=both, arrowtail=crow, arrowhead=tee];',
    ]
    lines += [f"  {_quoted(name)} [label=<{_box(name, columns)}>];" for name, columns in model.tables.items()]
    lines += [f"  {_quoted(name)} [shape=box, {_OUTSIDE}, label={_quoted(name)}];" for name in model.outside]
    lines += [_edge(key, model) for key in model.foreign_keys]
    return "\n".join([*lines, "}"]) + "\n"


def _box(name: str, columns: list[KeyColumn]) -> str:
    """A table's HTML-like label: its name, then its key columns."""
    keys = [c for c in columns if c.primary or c.foreign]
    rows = [_HEADER.format(name=escape(name))]
    for c in keys:
        mark = " ".join(m for m, on in (("PK", c.primary), ("FK", c.foreign)) if on)
        rows.append(_ROW.format(port=escape(c.name), mark=mark, name=escape(c.name), type=escape(c.type)))
    if len(columns) > len(keys):
        rows.append(_MORE.format(count=len(columns) - len(keys)))
    return '<table border="0" cellborder="1" cellspacing="0" cellpadding="3">' + "".join(rows) + "</table>"


def _edge(key: ForeignKey, model: SchemaModel) -> str:
    """The foreign key from its (first) column to the referenced table."""
    tail = _quoted(key.table)
    if key.table in model.tables:
        tail += ":" + _quoted(key.columns[0])
    label = _quoted(", ".join(key.columns))
    return f"  {tail} -> {_quoted(key.references)} [tooltip={_quoted(key.name)}, label={label}, fontsize=8];"


def _quoted(text: str) -> str:
    """`text` as a DOT string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
